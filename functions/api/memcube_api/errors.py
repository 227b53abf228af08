"""Errors mapped to HTTP in one place, always in the MemOS envelope `{code, message, data}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from memcube.domain.errors import DomainError, RateLimited
from memcube_api.schemas.messages import UNION_TAGS

log = logging.getLogger(__name__)
MAX_REPORTED = 10
REFUSALS = frozenset({401, 403, 429})
"""Answers logged as security events (the API Gateway access log has every request besides)."""


class BadBody(DomainError):
    """The body is not usable JSON (broken, not UTF-8, empty, wrong content type, too large)."""

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.http_status = http_status


def envelope(status: int, message: str, data: Any = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": status, "message": message, "data": data, **extra}, status_code=status)


def field_path(loc: tuple[int | str, ...]) -> str:
    """`('messages', 0, 'chat', 'content')` -> `messages[0].content` (union tags dropped)."""
    out = ""
    for n, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif n > 0 and (part in UNION_TAGS or part.startswith(("function-", "list[", "json-or-python"))):
            continue  # a union member's tag, never a body's own field (the hosted upload has `file`)
        else:
            out += f".{part}" if out else part
    return out or "body"


def _problem(err: dict[str, Any]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown field (not part of the request model)"
    if err["type"] == "missing":
        return "required"
    return msg


def validation_response(errors: list[dict[str, Any]]) -> JSONResponse:
    if any(e["type"] == "json_invalid" for e in errors):
        bad = next(e for e in errors if e["type"] == "json_invalid")
        ctx = bad.get("ctx") or {}
        return envelope(400, f"body: not valid JSON ({ctx.get('error', bad['msg'])})")
    detail = [{"field": field_path(tuple(e["loc"])), "problem": _problem(e)} for e in errors[:MAX_REPORTED]]
    more = f" (and {len(errors) - MAX_REPORTED} more)" if len(errors) > MAX_REPORTED else ""
    message = "; ".join(f"{d['field']}: {d['problem']}" for d in detail) + more
    return envelope(422, message, detail=detail)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        if exc.http_status in REFUSALS:  # who was refused what, and why; never a credential or a body
            caller = getattr(request.state, "caller", None)
            log.warning(
                "request refused",
                extra={"status": exc.http_status, "code": exc.code, "method": request.method,
                       "path": request.url.path, "caller": caller, "reason": exc.message},
            )  # fmt: skip
        response = envelope(exc.http_status, exc.message)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(ValidationError)
    async def _model(_: Request, exc: ValidationError) -> JSONResponse:
        return validation_response(list(exc.errors()))  # type: ignore[arg-type]

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(list(exc.errors()))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return envelope(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return envelope(500, "internal error; the request may be retried with the same task_id")
