"""Routes of the hosted MemOS API (what `memos.api.client.MemOSClient` calls), served under
`/api/openmem/v1` (the path of the SDK's default base URL) and at the root, so the SDK works
with `base_url="http://<host>:<port>/api/openmem/v1"` or `"http://<host>:<port>"`.

Thin, like `app`: parse, map onto the `/product` requests (`memcube_api.schemas.hosted`), call one
service, shape the hosted answer. A success is HTTP 200 with `code: 0`, as the hosted API
answers; an error is the usual memcube envelope with the HTTP status as its code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from memcube.domain import limits
from memcube.domain.deletion import Receipt
from memcube.domain.errors import InvalidRequest
from memcube.domain.ids import check_id
from memcube.domain.model import Principal, TaskRecord, TaskState
from memcube.wiring import Container
from memcube_api.app import BY_ID_DOC, Caller, MemoryIdParams, Services, _openapi_body, blocking, read_body, read_json
from memcube_api.errors import BadBody
from memcube_api.params import Params, idempotency_key, openapi_params, read_params
from memcube_api.schemas import hosted
from memcube_api.schemas.hosted import (
    ANONYMOUS,
    HOSTED_STATUS,
    PREFIX,
    AddFeedbackBody,
    AddMessageBody,
    CreateKnowledgebaseBody,
    DeleteKnowledgebaseBody,
    DeleteKnowledgebaseFilesBody,
    DeleteMemoryBody,
    GetMemoryBody,
    KnowledgebaseFilesBody,
    SearchMemoryBody,
    StatusBody,
    detail,
)
from memcube_api.schemas.product import AddRequest, to_command
from memcube_api.schemas.uploads import Upload, json_upload, mime_for, upload_request
from memcube_api.schemas.views import part_view, receipt_view

F = TypeVar("F", bound=Callable[..., Any])
TAG = "MemOS cloud API (memos.api.client.MemOSClient)"
TAG_AT_ROOT = "MemOS cloud API, also at the root"
FAILED = frozenset({TaskState.FAILED, TaskState.CANCELLED})


def ok(message: str, data: Any) -> JSONResponse:
    """A hosted-API success: `code` 0."""
    return JSONResponse({"code": 0, "message": message, "data": data})


def task_data(record: TaskRecord) -> dict[str, Any]:
    return {
        "success": record.status not in FAILED,
        "task_id": record.task.public_id,
        "status": HOSTED_STATUS[record.status],
    }


class _Routes:
    """Routes recorded once and added to the app under each base path (as plain routes of the
    app, so everything that walks `app.routes`, the template check included, sees them)."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, Callable[..., Any], dict[str, Any]]] = []

    def _route(self, method: str, path: str, **options: Any) -> Callable[[F], F]:
        def record(fn: F) -> F:
            self.recorded.append((method, path, fn, options))
            return fn

        return record

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        return self._route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[F], F]:
        return self._route("POST", path, **options)

    def add_to(self, app: FastAPI, base: str, tag: str) -> None:
        for method, path, fn, options in self.recorded:
            app.add_api_route(base + path, fn, methods=[method], tags=[tag], **options)


class UploadParams(Params):
    """The SDK's form upload names its knowledge base (and the file type) in the query string."""

    knowledgebase_id: str | None = Field(default=None, max_length=limits.MAX_ID_CHARS)
    type: str | None = Field(default=None, max_length=32)


def mount(app: FastAPI) -> list[type[BaseModel]]:  # noqa: PLR0915 - one statement per route, as in `app`
    """Add the hosted API's routes to `app`; the body models, for the OpenAPI schema."""
    router = _Routes()
    models: list[type[BaseModel]] = []

    def post_json(path: str, model: type[BaseModel], summary: str) -> Callable[[F], F]:
        models.append(model)
        return router.post(path, openapi_extra=_openapi_body(model), summary=summary)

    @post_json("/add/message", AddMessageBody, "Add messages (hosted API): a task per add, async by default")
    async def add_message(request: Request, c: Services, who: Caller) -> JSONResponse:
        req = hosted.add_request(await read_json(request, AddMessageBody))
        return await _add(request, c, who, req, "Messages accepted")

    @post_json("/add/feedback", AddFeedbackBody, "Add feedback (hosted API): a correction of the user's memories")
    async def add_feedback(request: Request, c: Services, who: Caller) -> JSONResponse:
        req = hosted.feedback_request(await read_json(request, AddFeedbackBody))
        return await _add(request, c, who, req, "Feedback accepted")

    @post_json("/get/status", StatusBody, "Status of a task (hosted API): running, completed or failed")
    async def get_status(request: Request, c: Services, who: Caller) -> JSONResponse:
        body = await read_json(request, StatusBody)
        record = await blocking(request, c.status.get, body.task_id, c.authority.task_owner(who))
        outcomes = [(o.memory_id, o.outcome) for p in record.parts for o in p.outcomes]
        data = {
            "task_id": record.task.public_id,
            "status": HOSTED_STATUS[record.status],
            "memory_views": hosted.memory_views(outcomes),
            "state": record.status.value,
            "cubes": [part_view(p) for p in record.parts],
        }
        return ok(f"Task {record.status.value}", data)

    @post_json("/search/memory", SearchMemoryBody, "Search memories (hosted API): the cube and knowledge bases")
    async def search_memory(request: Request, c: Services, who: Caller) -> JSONResponse:
        body = await read_json(request, SearchMemoryBody)
        req = hosted.search_request(body)
        principal = c.authority.acting_for(who, req.user_id)
        answer = await blocking(request, c.searcher.search, req.to_query(), principal)
        scored = sorted((s for r in answer.cubes for s in r.memories), key=lambda s: (-s.relativity, s.item.id))
        data = {
            "memory_detail_list": [detail(s.item, s.relativity) for s in scored],
            "preference_detail_list": [],
            "tool_memory_detail_list": [],
            "skill_detail_list": [],
            "preference_note": "",
        }
        return ok(f"Search completed: {len(scored)} memories", data)

    @post_json("/get/memory", GetMemoryBody, "One page of the subject's memories (hosted API)")
    async def get_memory(request: Request, c: Services, who: Caller) -> JSONResponse:
        body = await read_json(request, GetMemoryBody)
        subject = body.user_id or body.agent_id
        assert subject is not None  # the model requires one
        principal = c.authority.acting_for(who, subject)
        page = await blocking(request, c.reader.page, subject, principal, body.page, body.size)
        data = {
            "memory_detail_list": [detail(i) for i in page.items],
            "preference_detail_list": [],
            "tool_memory_detail_list": [],
            "skill_detail_list": [],
            "total": page.total,
            "size": page.page_size,
            "current": page.page,
            "pages": math.ceil(page.total / page.page_size),
        }
        return ok(f"Memories retrieved: page {page.page} of {data['pages']}", data)

    @router.get("/get/memory/{memory_id}", summary="One memory by id (hosted API)", openapi_extra=BY_ID_DOC)
    async def get_memory_by_id(request: Request, c: Services, who: Caller) -> JSONResponse:
        q = read_params(request, MemoryIdParams)
        principal = c.authority.acting_for(who, q.user_id)  # with keys off and no user: read as its writer
        item = await blocking(request, c.reader.get, q.memory_id, principal if q.user_id or who else None)
        return ok("Memory retrieved", detail(item))

    @post_json("/delete/memory", DeleteMemoryBody, "Delete memories by ids, user, agent or filter (hosted API)")
    async def delete_memory(request: Request, c: Services, who: Caller) -> JSONResponse:
        body = await read_json(request, DeleteMemoryBody)
        if body.memory_ids is not None:
            receipt = await blocking(request, c.knowledgebases.delete_memories, body.memory_ids, _caller(c, who))
        else:
            req = hosted.delete_request(body, who.user_id if who else None)
            principal = c.authority.acting_for(who, req.user_id)
            receipt = await blocking(request, c.deleter.delete, req.to_command(), principal)
        return _deleted(receipt)

    @post_json("/create/knowledgebase", CreateKnowledgebaseBody, "Create a knowledge base (hosted API), yours to own")
    async def create_knowledgebase(request: Request, c: Services, who: Caller) -> JSONResponse:
        body = await read_json(request, CreateKnowledgebaseBody)
        name = body.knowledgebase_name
        knowledgebase_id = await blocking(request, c.knowledgebases.create_knowledgebase, name, _caller(c, who))
        return ok(f"Knowledge base {knowledgebase_id} created", {"id": knowledgebase_id})

    @post_json("/delete/knowledgebase", DeleteKnowledgebaseBody, "Erase a knowledge base and its files (hosted API)")
    async def delete_knowledgebase(request: Request, c: Services, who: Caller) -> JSONResponse:
        body = await read_json(request, DeleteKnowledgebaseBody)
        principal = _knowledgebase_principal(c, who)
        receipt = await blocking(request, c.knowledgebases.delete_knowledgebase, body.knowledgebase_id, principal)
        return _deleted(receipt)

    @router.post(
        "/add/knowledgebase-file",
        summary="Add files to a knowledge base (hosted API): text, markdown, JSON or PDF, read in document mode",
        openapi_extra=_file_upload_body() | openapi_params(UploadParams),
    )
    async def add_knowledgebase_file(request: Request, c: Services, who: Caller) -> JSONResponse:
        q = read_params(request, UploadParams)
        knowledgebase_id, type = q.knowledgebase_id, q.type
        ctype = _content_type(request)
        if ctype not in {"multipart/form-data", "application/json"}:
            raise BadBody(
                f"content-type: expected application/json or multipart/form-data, got {ctype or 'none'!r}", 415
            )
        if ctype == "multipart/form-data":
            kb = _query_id(knowledgebase_id, "knowledgebase_id")
            if type not in (None, "document"):
                raise InvalidRequest(f"type: {type!r} is not supported; memcube reads documents")
            uploads = await _form_uploads(request)
        else:
            body = await read_json(request, KnowledgebaseFilesBody, limit=limits.MAX_FILE_BODY_BYTES)
            kb = body.knowledgebase_id
            uploads = [json_upload(f, n) for n, f in enumerate(body.file)]
        principal = _knowledgebase_principal(c, who, adding=True)
        req, file_ids = upload_request(kb, uploads, principal.user_id)
        record = await blocking(request, _accept, c, req, principal)
        status = HOSTED_STATUS[record.status]
        data = [
            {
                "id": file_id,
                "type": "document",
                "name": upload.name,
                "sizeMB": upload.size_mb,
                "status": status,
                "task_id": record.task.public_id,
                "knowledgebase_id": kb,
            }
            for file_id, upload in zip(file_ids, uploads, strict=True)
        ]
        return ok(f"{len(data)} file(s) accepted into {kb}: task {record.task.public_id}", data)

    @post_json("/delete/knowledgebase-file", DeleteKnowledgebaseFilesBody, "Delete knowledge-base files by id")
    async def delete_knowledgebase_file(request: Request, c: Services, who: Caller) -> JSONResponse:
        body = await read_json(request, DeleteKnowledgebaseFilesBody)
        principal = _knowledgebase_principal(c, who)
        receipt = await blocking(request, c.knowledgebases.delete_files, body.file_ids, principal)
        return _deleted(receipt)

    models.append(KnowledgebaseFilesBody)
    router.add_to(app, PREFIX, TAG)
    router.add_to(app, "", TAG_AT_ROOT)  # the same routes, for a base URL without the SDK's path
    return models


async def _add(request: Request, c: Container, who: Principal | None, req: AddRequest, what: str) -> JSONResponse:
    key = idempotency_key(request)
    principal = c.authority.acting_for(who, req.user_id, adding=True)
    record = await blocking(request, _accept, c, req, principal, key)
    return ok(_task_message(what, record), task_data(record))


def _accept(c: Container, req: AddRequest, principal: Principal, key: str | None = None) -> TaskRecord:
    """Record and queue the add; a sync one is waited for (up to the sync timeout). With an
    `Idempotency-Key` (the hosted body has no task id) a resend is the same task, and a resend
    of a failed one runs it again."""
    cmd = to_command(req)
    sub = c.add.submit(cmd, principal, key)
    if cmd.async_mode == "sync":
        return c.add.wait(sub.task_id, c.settings.sync_timeout_seconds)
    return sub.record


def _task_message(what: str, record: TaskRecord) -> str:
    errors = "; ".join(f"{p.cube_id}: {p.error}" for p in record.parts if p.error)
    suffix = f" ({errors})" if errors else ""
    return f"{what}: task {record.task.public_id} is {HOSTED_STATUS[record.status]}{suffix}"


def _caller(c: Container, who: Principal | None) -> Principal | None:
    """The key's principal, its request counted; None with keys off (no user named)."""
    c.authority.acting_for(who, None)
    return who


def _knowledgebase_principal(c: Container, who: Principal | None, *, adding: bool = False) -> Principal:
    """The key's principal, or with keys off the `anonymous` user (knowledge bases are open then)."""
    principal = c.authority.acting_for(who, None if who else ANONYMOUS, adding=adding)
    return principal


def _deleted(receipt: Receipt) -> JSONResponse:
    data = {
        "success": True,
        "deleted": receipt.memories,
        "not_found": receipt.not_found,
        "cubes": [receipt_view(r) for r in receipt.cubes],
    }
    return ok(f"Deleted {receipt.memories} memories", data)


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def _query_id(value: str | None, field: str) -> str:
    if not value:
        raise InvalidRequest(f"{field}: required (a query parameter of a multipart upload)")
    try:
        return check_id(value, field)
    except ValueError as exc:
        raise InvalidRequest(f"{field}: {exc}") from exc


async def _form_uploads(request: Request) -> list[Upload]:
    """The files of a multipart upload (field `file`, repeated), size-checked before parsing."""
    await read_body(request, limits.MAX_FILE_BODY_BYTES)  # starlette parses the form from the read body
    form = await request.form(max_files=limits.MAX_FILES_PER_REQUEST, max_fields=limits.MAX_FILES_PER_REQUEST)
    unknown = sorted({k for k in form if k != "file"})
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: unknown form field (send the files as `file`)")
    uploads: list[Upload] = []
    for n, part in enumerate(form.getlist("file")):
        if not isinstance(part, UploadFile):
            raise InvalidRequest(f"file[{n}]: not a file (send each file as a multipart file part)")
        name = part.filename or f"file-{n + 1}"
        uploads.append(Upload(name, await part.read(), mime_for(name, part.content_type)))
    if not uploads:
        raise InvalidRequest("file: required (one or more files)")
    return uploads


def _file_upload_body() -> dict[str, Any]:
    """The OpenAPI body of the file upload: JSON (base64 data URLs) or multipart files."""
    multipart = {
        "type": "object",
        "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
        "required": ["file"],
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{KnowledgebaseFilesBody.__name__}"}},
                "multipart/form-data": {"schema": multipart},
            },
        }
    }
