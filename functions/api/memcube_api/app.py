"""Routes of the MemOS-compatible `/product` API. Thin: parse, call one domain service, shape
the MemOS envelope. No Lambda imports here (`handler` adds Mangum)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from memcube.domain import limits
from memcube.domain.auth import VerifiedToken
from memcube.domain.deletion import Receipt
from memcube.domain.ids import Id
from memcube.domain.model import Principal, TaskRecord, TaskState
from memcube.domain.transfer import exported
from memcube.wiring import Container
from memcube_api.errors import BadBody, envelope, install
from memcube_api.params import IDEMPOTENCY_KEY_DOC, Params, idempotency_key, openapi_params, read_params
from memcube_api.schemas.product import (
    AddRequest,
    CreateCubeRequest,
    DeleteCubeRequest,
    DeleteMemoryRequest,
    ExportRequest,
    GetMemoryRequest,
    GrantRequest,
    ImportRequest,
    SearchRequest,
    UndoRequest,
    to_command,
)
from memcube_api.schemas.views import (
    added_view,
    cube_memories,
    memory_view,
    receipt_view,
    scored_view,
    status_view,
)

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
JSON_TYPES = frozenset({"application/json"})


def _openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


async def read_json(request: Request, model: type[M], limit: int = limits.MAX_BODY_BYTES) -> M:
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


class StatusParams(Params):
    user_id: Id
    task_id: str | None = Field(default=None, min_length=1, max_length=200)


class MemoryIdParams(Params):
    memory_id: str = Field(min_length=1, max_length=200)
    user_id: str | None = Field(default=None, max_length=limits.MAX_ID_CHARS)


BY_ID_DOC = openapi_params(MemoryIdParams, path=["memory_id"])


async def blocking(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking domain call (store, queue, index, a sync add's wait): in the thread pool
    when the app offloads (a server: the event loop keeps serving other requests), inline
    when it does not (Lambda: one request per process, and Mangum ends an invocation's pool
    threads with it, so each hop would start a new thread)."""
    if request.app.state.offload:
        return await run_in_threadpool(fn, *args)
    return fn(*args)


async def services(request: Request) -> Container:
    """The request's container (a dependency, so tests can override it)."""
    factory: Callable[[], Container] = request.app.state.container
    return factory()


Services = Annotated[Container, Depends(services)]


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


def create_app(  # noqa: PLR0915 - one statement per route: the routes read best in one place
    container: Callable[[], Container], on_shutdown: Sequence[Callable[[], None]] = (), *, offload: bool = True
) -> FastAPI:
    """Build the app around a container factory (called per request; it caches itself).

    `on_shutdown` runs when the server shuts down gracefully (SIGTERM included): the embedded
    default stops its worker there, letting an in-flight add finish. Lambda runs no lifespan.
    `offload=False` runs blocking calls inline (the Lambda entry; see `blocking`).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for hook in on_shutdown:
            await run_in_threadpool(hook)

    app = FastAPI(
        title="memcube",
        version="0.1.0",
        summary="MemOS-compatible memory service: add, task status, read back, search.",
        lifespan=lifespan,
        # A path with a trailing slash is 404, not a 307 whose Location is built from the Host header.
        redirect_slashes=False,
    )
    install(app)
    app.state.container = container
    app.state.offload = offload
    body_models: list[type[BaseModel]] = []

    def post_json(
        path: str, model: type[BaseModel], summary: str, parameters: list[dict[str, Any]] | None = None
    ) -> Callable[[F], F]:
        """A POST route whose JSON body `model` is read by `read_json` (so FastAPI does not
        parse it) and documented in the OpenAPI schema (with `parameters`, if any)."""
        body_models.append(model)
        extra = _openapi_body(model) | ({"parameters": parameters} if parameters else {})
        return app.post(path, openapi_extra=extra, summary=summary)

    # No response model: inferring one from the annotation costs FastAPI a pydantic.v1 import.
    @app.get("/health", include_in_schema=False, response_model=None)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @post_json(
        "/product/add",
        AddRequest,
        summary="Add memories to one or more cubes (async by default)",
        parameters=[IDEMPOTENCY_KEY_DOC],
    )
    async def add(request: Request, c: Services, who: Caller) -> JSONResponse:
        key = idempotency_key(request)
        req = await read_json(request, AddRequest)
        # Store and queue calls block (and a sync add waits for its task): off the event loop.
        principal = c.authority.acting_for(who, req.user_id, adding=True)
        return await blocking(request, _add, c, req, principal, key)

    @app.get(
        "/product/scheduler/status",
        summary="Status of an add task, per cube and per memory",
        openapi_extra=openapi_params(StatusParams),
    )
    async def scheduler_status(request: Request, c: Services, who: Caller) -> JSONResponse:
        q = read_params(request, StatusParams)
        user_id = c.authority.acting_for(who, q.user_id).user_id
        if q.task_id is None:
            records = await blocking(request, c.status.recent, user_id)
            return envelope(200, "Task status retrieved", [status_view(r) for r in records])
        record = await blocking(request, c.status.get, q.task_id, user_id)
        return envelope(200, "Task status retrieved", [status_view(record)])

    @app.get("/product/get_memory/{memory_id}", summary="One memory by id", openapi_extra=BY_ID_DOC)
    async def get_memory_by_id(request: Request, c: Services, who: Caller) -> JSONResponse:
        q = read_params(request, MemoryIdParams)
        item = await blocking(request, c.reader.get, q.memory_id, c.authority.acting_for(who, q.user_id))
        return envelope(200, "Memory retrieved successfully", memory_view(item))

    @app.get(
        "/product/get_memory_history/{memory_id}",
        summary="One memory (any status) with its versions: merges, corrections, archivals and undos",
        openapi_extra=BY_ID_DOC,
    )
    async def get_memory_history(request: Request, c: Services, who: Caller) -> JSONResponse:
        q = read_params(request, MemoryIdParams)
        item = await blocking(request, c.history.history, q.memory_id, c.authority.acting_for(who, q.user_id))
        data = {
            "memory_id": item.id,
            "status": item.metadata.status,
            "version": item.metadata.version,
            "memory": memory_view(item),
            "history": list(reversed(item.metadata.history)),
        }
        return envelope(200, f"Memory history retrieved: {len(item.metadata.history)} change(s)", data)

    @post_json(
        "/product/undo_memory",
        UndoRequest,
        summary="Undo a memory's latest merge or correction, restoring the previous active item(s)",
    )
    async def undo_memory(request: Request, c: Services, who: Caller) -> JSONResponse:
        req = await read_json(request, UndoRequest)
        receipt = await blocking(request, c.history.undo, req.memory_id, c.authority.acting_for(who, req.user_id))
        return envelope(200, f"Undid the {receipt.undone} change of {receipt.memory_id}", asdict(receipt))

    @post_json(
        "/product/get_memory",
        GetMemoryRequest,
        summary="A cube's memories, page by page",
    )
    async def get_memory(request: Request, c: Services, who: Caller) -> JSONResponse:
        req = await read_json(request, GetMemoryRequest)
        principal = c.authority.acting_for(who, req.user_id)
        page = await blocking(request, c.reader.page, req.mem_cube_id, principal, req.page, req.page_size)
        data = {
            "text_mem": [cube_memories(page.cube_id, [memory_view(i) for i in page.items], page.total)],
            "pref_mem": [],
            "page": page.page,
            "page_size": page.page_size,
            "total": page.total,
        }
        return envelope(200, "Memories retrieved successfully", data)

    @post_json(
        "/product/search",
        SearchRequest,
        summary="Hybrid (vector + text) search over readable cubes, with filters",
    )
    async def search(request: Request, c: Services, who: Caller) -> JSONResponse:
        req = await read_json(request, SearchRequest)
        principal = c.authority.acting_for(who, req.user_id)
        answer = await blocking(request, c.searcher.search, req.to_query(), principal)
        text_mem = [
            cube_memories(r.cube_id, [scored_view(s.item, s.relativity) for s in r.memories], len(r.memories))
            for r in answer.cubes
        ]
        data: dict[str, Any] = {"text_mem": text_mem, "pref_mem": [], "tool_mem": [], "skill_mem": []}
        data |= {"act_mem": [], "para_mem": [], "notes": answer.notes}
        return envelope(200, "Search completed successfully", data)

    @post_json(
        "/product/delete_memory",
        DeleteMemoryRequest,
        summary="Delete memories by ids, file ids, filter or session; erase a user's data in cubes",
    )
    async def delete_memory(request: Request, c: Services, who: Caller) -> JSONResponse:
        req = await read_json(request, DeleteMemoryRequest)
        principal = c.authority.acting_for(who, req.user_id)
        receipt = await blocking(request, c.deleter.delete, req.to_command(), principal)
        return _receipt_response(receipt)

    @post_json(
        "/product/delete_cube",
        DeleteCubeRequest,
        summary="Erase a whole cube: its memories, index documents, queued adds and dead letters",
    )
    async def delete_cube(request: Request, c: Services, who: Caller) -> JSONResponse:
        req = await read_json(request, DeleteCubeRequest)
        receipt = await blocking(request, c.deleter.erase_cube, req.cube_id, c.authority.acting_for(who, req.user_id))
        return _receipt_response(receipt)

    @post_json(
        "/product/create_cube",
        CreateCubeRequest,
        summary="Create a knowledge-base cube owned by user_id, optionally granting readers and writers",
    )
    async def create_cube(request: Request, c: Services, who: Caller) -> JSONResponse:
        req = await read_json(request, CreateCubeRequest)
        principal = c.authority.acting_for(who, req.user_id)
        acl = await blocking(request, c.cubes.create, req.to_command(), principal)
        return envelope(200, f"Cube {acl.cube_id} created", acl.model_dump())

    @post_json(
        "/product/grant_cube",
        GrantRequest,
        summary="The cube's owner grants read or write (write implies read) to target_user_id",
    )
    async def grant_cube(request: Request, c: Services, who: Caller) -> JSONResponse:
        return await _change_grant(request, c, who, grant=True)

    @post_json(
        "/product/revoke_cube",
        GrantRequest,
        summary="The cube's owner revokes read or write (revoking read revokes write too)",
    )
    async def revoke_cube(request: Request, c: Services, who: Caller) -> JSONResponse:
        return await _change_grant(request, c, who, grant=False)

    @post_json(
        "/product/export_memory",
        ExportRequest,
        summary="A page of a cube's items (any status, no embeddings) for export; follow next_cursor",
    )
    async def export_memory(request: Request, c: Services, who: Caller) -> JSONResponse:
        req = await read_json(request, ExportRequest)
        principal = c.authority.acting_for(who, req.user_id)
        page = (req.cube_id, req.cursor, req.limit, principal)
        items, cursor = await blocking(request, c.transfer.export_page, *page)
        data = {"cube_id": req.cube_id, "items": [exported(i) for i in items], "next_cursor": cursor}
        return envelope(200, f"Exported {len(items)} memories", data)

    @post_json(
        "/product/import_memory",
        ImportRequest,
        summary="Write exported items into a cube as they are (embeddings computed again)",
    )
    async def import_memory(request: Request, c: Services, who: Caller) -> JSONResponse:
        req = await read_json(request, ImportRequest)
        principal = c.authority.acting_for(who, req.user_id)
        result = await blocking(request, c.transfer.import_items, req.cube_id, req.items, principal)
        data = {"imported": result.imported, "existing": result.existing, "duplicates": result.duplicates}
        counts = (len(result.imported), len(result.existing), len(result.duplicates))
        message = "Memories imported: {} new, {} already there, {} duplicates".format(*counts)
        return envelope(200, message, data)

    # The hosted MemOS API (memos.api.client.MemOSClient), on the same domain.
    from memcube_api.openmem import mount

    body_models += mount(app)
    # Register the body models so the OpenAPI `$ref`s above resolve.
    _register_schemas(app, body_models)
    return app


async def _change_grant(request: Request, c: Container, who: Principal | None, *, grant: bool) -> JSONResponse:
    req = await read_json(request, GrantRequest)
    change = c.cubes.grant if grant else c.cubes.revoke
    principal = c.authority.acting_for(who, req.user_id)
    acl = await blocking(request, change, req.to_command(), principal)
    done = "Granted" if grant else "Revoked"
    return envelope(200, f"{done} {req.permission} on {acl.cube_id} for {req.target_user_id}", acl.model_dump())


def _receipt_response(receipt: Receipt) -> JSONResponse:
    """MemOS's `{"status": "success"}`, plus the receipt: counts per place, per cube."""
    data = {
        "status": "success",
        "deleted": receipt.memories,
        "cubes": [receipt_view(r) for r in receipt.cubes],
        "not_found": receipt.not_found,
    }
    return envelope(200, f"Memories deleted successfully: {receipt.memories} removed", data)


def _add(c: Container, req: AddRequest, principal: Principal, idempotency_key: str | None) -> JSONResponse:
    cmd = to_command(req)
    sub = c.add.submit(cmd, principal, idempotency_key)
    again = " (repeated request: the existing task is returned)" if sub.replay else ""
    if sub.retried:
        again = " (repeated request: the task had failed and runs again)"
    if cmd.async_mode == "async":
        data = [{"cube_id": p.cube_id, "task_id": sub.public_id, "status": p.status.value} for p in sub.record.parts]
        return envelope(200, f"Memory add task accepted{again}", data, task_id=sub.public_id)
    record = c.add.wait(sub.task_id, c.settings.sync_timeout_seconds)
    return _sync_response(c, record, again)


def _sync_response(c: Container, record: TaskRecord, again: str) -> JSONResponse:
    task_id = record.task.public_id
    if record.status is TaskState.CANCELLED:
        return envelope(
            409,
            "memory add cancelled: the cube was erased while it waited",
            [{"cube_id": p.cube_id, "task_id": task_id, "status": p.status.value} for p in record.parts],
            task_id=task_id,
        )
    if record.status not in {TaskState.COMPLETED, TaskState.FAILED}:
        waiting = [{"cube_id": p.cube_id, "task_id": task_id, "status": p.status.value} for p in record.parts]
        return envelope(
            202,
            f"sync add still in progress after {c.settings.sync_timeout_seconds:g}s; "
            "poll /product/scheduler/status with this task_id",
            waiting,
            task_id=task_id,
        )
    if record.status is TaskState.FAILED:
        data: list[dict[str, Any]] = [
            {"cube_id": p.cube_id, "task_id": task_id, "status": p.status.value, "error": p.error} for p in record.parts
        ]
        failed = ", ".join(f"{p.cube_id}: {p.error}" for p in record.parts if p.error)
        return envelope(422, f"memory add failed ({failed})", data, task_id=task_id)
    outcomes = [(o, p.cube_id) for p in record.parts for o in p.outcomes]
    items = {i.id: i for i in c.store.get_memories([o.memory_id for o, _ in outcomes])}
    data = [added_view(items[o.memory_id], o.outcome, o.reason) for o, _ in outcomes if o.memory_id in items]
    counts: dict[str, int] = {}
    for o, _ in outcomes:
        counts[o.outcome] = counts.get(o.outcome, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    return envelope(200, f"Memory added successfully: {summary}{again}", data, task_id=task_id)


def _register_schemas(app: FastAPI, models: list[type[BaseModel]]) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
