"""The routes' FastAPI dependencies: the container's services (`Services`), the caller
(`Caller`, authenticated before any body is read), and `acting`: the request's input (a JSON
body, query parameters, an upload) read and mapped, then the principal the request acts as,
its rate limit counted.

A route gets its principal only from `acting`, and the routers refuse a route without it
(`routing.MemcubeRoute`), so no route can skip authentication or the rate limit. Each input
reader (`json_body`, `query`, the `IdempotencyKey` header) carries its OpenAPI documentation
(`documented`), which the route class puts into the route's operation.

Bodies and parameters are read here, not by FastAPI's own `Body`/`Query` declarations: those
check every field against pydantic v1, importing `pydantic.v1` (60-70 ms of the API's cold start,
BENCHMARKS.md), and could not refuse a wrong content type (415) or an oversized body (413) before
parsing, nor name fields as memcube's error envelope does.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from memcube.domain import limits
from memcube.domain.auth import VerifiedToken
from memcube.domain.model import Principal
from memcube.wiring import Container
from memcube_api.errors import BadBody
from memcube_api.params import IDEMPOTENCY_KEY_DOC, Params, idempotency_key, openapi_params, read_params

M = TypeVar("M")
B = TypeVar("B", bound=BaseModel)
T = TypeVar("T")
JSON_TYPES = frozenset({"application/json"})


async def services(request: Request) -> Container:
    """The request's container (a dependency, so tests can override it)."""
    factory: Callable[[], Container] = request.app.state.container
    return factory()


Services = Annotated[Container, Depends(services)]


async def blocking(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking domain call (store, queue, index, a sync add's wait): in the thread pool
    when the app offloads (a server: the event loop keeps serving other requests), inline
    when it does not (Lambda: one request per process, and Mangum ends an invocation's pool
    threads with it, so each hop would start a new thread)."""
    if request.app.state.offload:
        return await run_in_threadpool(fn, *args)
    return fn(*args)


def gateway_token(request: Request, jwt_api_id: str | None) -> VerifiedToken | None:
    """The JWT that API Gateway's authorizer verified, for a request that came through the
    stack's JWT API (`jwt_api_id`); None for any other request. API Gateway builds the event's
    requestContext itself, so a client cannot forge it through either API."""
    event = request.scope.get("aws.event")
    if not jwt_api_id or not isinstance(event, dict):
        return None
    context = event.get("requestContext") or {}
    jwt = (context.get("authorizer") or {}).get("jwt")
    if context.get("apiId") != jwt_api_id or not isinstance(jwt, dict):
        return None
    claims = {str(k): str(v) for k, v in (jwt.get("claims") or {}).items()}
    return VerifiedToken(claims=claims, scopes=tuple(str(s) for s in jwt.get("scopes") or ()))


async def authenticated(request: Request, c: Services) -> Principal | None:
    """The caller's principal (API key, or a verified JWT on AWS), checked before the body is
    read; None with keys off."""
    token = gateway_token(request, c.settings.jwt_api_id)
    principal = await blocking(request, c.authority.caller, request.headers.get("authorization"), token)
    request.state.caller = principal.user_id if principal is not None else None  # for the refusal log
    return principal


Caller = Annotated[Principal | None, Depends(authenticated)]


# --- input -------------------------------------------------------------------------------------


async def read_json(request: Request, model: type[B], limit: int = limits.MAX_BODY_BYTES) -> B:
    """Parse the body as `model`, checking the content type and size (`limit` bytes) before parsing."""
    ctype, _, params = request.headers.get("content-type", "").partition(";")
    if ctype.strip().lower() not in JSON_TYPES:
        raise BadBody(f"content-type: expected application/json, got {ctype.strip() or 'none'!r}", 415)
    charset = params.strip().lower().removeprefix("charset=").strip('"') if "charset=" in params else "utf-8"
    if charset not in {"utf-8", "utf8"}:
        raise BadBody(f"content-type: charset must be utf-8, got {charset!r}", 415)
    body = await read_body(request, limit)
    if not body.strip():
        raise BadBody("body: empty; send a JSON object")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(f"body: not valid UTF-8 (byte {exc.start})") from exc
    return model.model_validate_json(body)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) when its declared or actual size is over `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadBody(f"body: at most {limit} bytes, got {declared}", 413)
    body = await request.body()
    if len(body) > limit:
        raise BadBody(f"body: at most {limit} bytes, got {len(body)}", 413)
    return body


def documented(
    dependency: Callable[..., Any], openapi: dict[str, Any], schemas: tuple[type[BaseModel], ...] = ()
) -> Callable[..., Any]:
    """Mark an input reader with its OpenAPI fragment (`requestBody` or `parameters`) and the
    models its `$ref`s name (`routing` documents both for every route that uses it)."""
    dependency.openapi = openapi  # type: ignore[attr-defined]
    dependency.schemas = schemas  # type: ignore[attr-defined]
    return dependency


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def json_body(model: type[B]) -> Callable[..., Any]:
    """The request's JSON body as `model` (`read_json`)."""

    async def body(request: Request) -> B:
        return await read_json(request, model)

    return documented(body, json_body_doc(model), (model,))


def query(model: type[Params], *, path: tuple[str, ...] = ()) -> Callable[..., Any]:
    """The request's query (and path, those named in `path`) parameters as `model`."""

    async def parameters(request: Request) -> Params:
        return read_params(request, model)

    return documented(parameters, openapi_params(model, path=path))


async def _idempotency_key(request: Request) -> str | None:
    return idempotency_key(request)


IdempotencyKey = Annotated[str | None, Depends(documented(_idempotency_key, {"parameters": [IDEMPOTENCY_KEY_DOC]}))]
"""The `Idempotency-Key` header (documented on the route)."""


# --- the principal -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Acting(Generic[M]):
    """A request's input, the principal it acts as (its rate limit counted), and its caller."""

    input: M
    principal: Principal
    caller: Principal | None
    key: str | None = None
    """The `Idempotency-Key` header, when `acting` read it (`keyed`)."""


def _user_id(value: Any, _: Principal | None) -> str | None:
    user_id: str | None = value.user_id
    return user_id


def acting(
    source: type[BaseModel] | Callable[..., Any],
    *,
    mapped: Callable[[Any, Principal | None], Any] | None = None,
    subject: Callable[[Any, Principal | None], str | None] = _user_id,
    adding: bool = False,
    keyed: bool = False,
) -> Callable[..., Any]:
    """A dependency giving the route its input and principal: the caller authenticated, the
    input read (`source`: a body model, or an input reader of the request), mapped (`mapped(input, caller)`),
    the `Idempotency-Key` header read (`keyed`), then the principal resolved for
    `subject(input, caller)` (the user the request names, None for the caller's own), its
    request (and, `adding`, its add) counted against the caller's rate limit and quota."""
    read: Callable[[Request], Awaitable[Any]] = json_body(source) if isinstance(source, type) else source

    async def act(request: Request, c: Services, who: Caller) -> Acting[Any]:
        given = await read(request)  # after the caller is authenticated
        value = mapped(given, who) if mapped is not None else given
        key = idempotency_key(request) if keyed else None
        # Counting the rate limit and registering the user write the store: off the event loop.
        principal = await blocking(request, partial(c.authority.acting_for, adding=adding), who, subject(value, who))
        return Acting(value, principal, who, key)

    act.acting = True  # type: ignore[attr-defined]
    act.inputs = (read,)  # type: ignore[attr-defined]  # documented by the route (`routing`)
    return act
