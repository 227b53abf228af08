"""Query, path and header parameters, read by hand.

FastAPI's own parameter declarations (`Query`, `Path`, `Header`) check each parameter's type
against pydantic v1, and so import `pydantic.v1`: about 60 ms of the API function's cold start
(BENCHMARKS.md), for a handful of parameters. The routes that take such parameters declare them
as a `Params` model instead; they are validated here by pydantic, fail with the same error
locations FastAPI gives (`query.user_id`, `header.idempotency-key`), and are documented in the
OpenAPI schema the same way (`openapi_params`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ConfigDict, ValidationError

from memcube.domain import limits
from memcube.domain.base import Model


class Params(Model):
    """A route's query (and path) parameters; unknown query parameters are ignored, as FastAPI does."""

    model_config = ConfigDict(extra="ignore", frozen=True)


P = TypeVar("P", bound=Params)

IDEMPOTENCY_KEY = "idempotency-key"


def read_params(request: Request, model: type[P]) -> P:
    path = request.path_params
    try:
        return model.model_validate({**request.query_params, **path})
    except ValidationError as exc:
        errors = [{**e, "loc": ("path" if e["loc"][:1] and e["loc"][0] in path else "query", *e["loc"])}
                  for e in exc.errors()]  # fmt: skip
        raise RequestValidationError(errors) from exc


def idempotency_key(request: Request) -> str | None:
    """The `Idempotency-Key` header, at most `MAX_ID_CHARS` characters."""
    value = request.headers.get(IDEMPOTENCY_KEY)
    if value is not None and len(value) > limits.MAX_ID_CHARS:
        raise RequestValidationError(
            [{"type": "string_too_long", "loc": ("header", IDEMPOTENCY_KEY), "input": value,
              "msg": f"String should have at most {limits.MAX_ID_CHARS} characters"}]
        )  # fmt: skip
    return value


IDEMPOTENCY_KEY_DOC: dict[str, Any] = {
    "name": IDEMPOTENCY_KEY,
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": limits.MAX_ID_CHARS},
    "description": "A client key: the same key (for the same body) returns the same task, never a second one.",
}


def openapi_params(model: type[Params], *, path: Sequence[str] = ()) -> dict[str, Any]:
    """`openapi_extra` documenting `model`'s fields as query parameters (those named in `path`
    as path parameters)."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    documented = []
    for name, prop in schema.get("properties", {}).items():
        where = "path" if name in path else "query"
        documented.append({"name": name, "in": where, "required": where == "path" or name in required, "schema": prop})
    return {"parameters": documented}
