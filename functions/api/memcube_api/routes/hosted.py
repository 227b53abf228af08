"""Routes of the hosted MemOS API (what `memos.api.client.MemOSClient` calls), served under
`/api/openmem/v1` (the path of the SDK's default base URL) and at the root, so the SDK works
with `base_url="http://<host>:<port>/api/openmem/v1"` or `"http://<host>:<port>"` (the app
includes this router twice).

Thin, like the `/product` routes: the dependencies authenticate, read the body and resolve the
principal (its rate limit counted), mapping the hosted request onto the `/product` one
(`memcube_api.schemas.hosted`); a route calls one service and shapes the hosted answer. A
success is HTTP 200 with `code: 0`, as the hosted API answers; an error is the usual memcube
envelope with the HTTP status as its code.

With API keys off, knowledge-base operations act as the user `anonymous` (`ANONYMOUS`), and a
delete by memory ids or a knowledge base's creation names no one.
"""

import math
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from memcube.domain import limits
from memcube.domain.auth import Authority
from memcube.domain.errors import InvalidRequest
from memcube.domain.filters import compile_filter
from memcube.domain.ids import check_id
from memcube.domain.model import Principal, TaskRecord, TaskState
from memcube.wiring import Container
from memcube_api.deps import Acting, Services, acting, blocking, documented, read_body, read_json
from memcube_api.errors import BadBody
from memcube_api.params import openapi_params, read_params
from memcube_api.routes.product import BY_ID
from memcube_api.routing import MemcubeRoute
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
from memcube_api.schemas.kinds import by_kind, pref_texts
from memcube_api.schemas.product import AddRequest, DeleteMemoryRequest, MemoryIdParams, SearchRequest, to_command
from memcube_api.schemas.uploads import Upload, UploadParams, json_upload, mime_for, upload_request
from memcube_api.schemas.views import part_view, receipt_view

if TYPE_CHECKING:  # the deletion service loads on the first delete, not with the app (cold start)
    from memcube.domain.deletion import Receipt

TAG = "MemOS cloud API (memos.api.client.MemOSClient)"
TAG_AT_ROOT = "MemOS cloud API, also at the root"
FAILED = frozenset({TaskState.FAILED, TaskState.CANCELLED})

router = APIRouter(prefix=PREFIX, tags=[TAG], route_class=MemcubeRoute)


def ok(message: str, data: Any) -> JSONResponse:
    """A hosted-API success: `code` 0."""
    return JSONResponse({"code": 0, "message": message, "data": data})


def task_data(record: TaskRecord) -> dict[str, Any]:
    return {
        "success": record.status not in FAILED,
        "task_id": record.task.public_id,
        "status": HOSTED_STATUS[record.status],
    }


async def _uploaded(request: Request) -> tuple[str, list[Upload]]:
    """A knowledge-base upload: the knowledge base's id and its files, from a multipart form (the
    knowledge base in the query) or a JSON body (files as data URLs or text)."""
    q = read_params(request, UploadParams)
    ctype = _content_type(request)
    if ctype not in {"multipart/form-data", "application/json"}:
        raise BadBody(f"content-type: expected application/json or multipart/form-data, got {ctype or 'none'!r}", 415)
    if ctype == "multipart/form-data":
        kb = _query_id(q.knowledgebase_id, "knowledgebase_id")
        if q.type not in (None, "document"):
            raise InvalidRequest(f"type: {q.type!r} is not supported; memcube reads documents")
        return kb, await _form_uploads(request)
    body = await read_json(request, KnowledgebaseFilesBody, limit=limits.MAX_FILE_BODY_BYTES)
    return body.knowledgebase_id, [json_upload(f, n) for n, f in enumerate(body.file)]


def _no_user(_: Any, __: Principal | None) -> None:
    """The caller's own principal (with keys off, nobody's)."""


def _knowledgebase_user(_: Any, who: Principal | None) -> str | None:
    """The key's principal, or with keys off the `anonymous` user (knowledge bases are open then)."""
    return None if who else ANONYMOUS


def _subject(body: GetMemoryBody, _: Principal | None) -> str | None:
    """The user (or agent) whose cube is read."""
    return body.user_id or body.agent_id


def _delete_selection(body: DeleteMemoryBody, who: Principal | None) -> DeleteMemoryBody | DeleteMemoryRequest:
    """A delete by ids as it is (each memory's writer may delete it); any other as a /product delete
    in the subject's cube (`who`'s, for a filter alone)."""
    return body if body.memory_ids is not None else hosted.delete_request(body, who.user_id if who else None)


def _delete_subject(selection: DeleteMemoryBody | DeleteMemoryRequest, _: Principal | None) -> str | None:
    return selection.user_id if isinstance(selection, DeleteMemoryRequest) else None


def _accept(c: Container, req: AddRequest, principal: Principal, key: str | None = None) -> TaskRecord:
    """Record and queue the add; a sync one is waited for (up to the sync timeout). With an
    `Idempotency-Key` (the hosted body has no task id) a resend is the same task, and a resend
    of a failed one runs it again."""
    cmd = to_command(req)
    sub = c.add.submit(cmd, principal, key)
    if not sub.replay:  # the conversation's own messages, for get_message
        c.conversations.remember_add(cmd, sub.public_id, sub.record.task.created_at)
    if cmd.async_mode == "sync":
        return c.add.wait(sub.task_id, c.settings.sync_timeout_seconds)
    return sub.record


def _task_message(what: str, record: TaskRecord) -> str:
    errors = "; ".join(f"{p.cube_id}: {p.error}" for p in record.parts if p.error)
    suffix = f" ({errors})" if errors else ""
    return f"{what}: task {record.task.public_id} is {HOSTED_STATUS[record.status]}{suffix}"


def _deleted(receipt: "Receipt") -> JSONResponse:
    data = {
        "success": True,
        "deleted": receipt.memories,
        "not_found": receipt.not_found,
        "cubes": [receipt_view(r) for r in receipt.cubes],
        "messages_deleted": receipt.messages,
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


UPLOADED = documented(_uploaded, _file_upload_body() | openapi_params(UploadParams), (KnowledgebaseFilesBody,))

Adding = Annotated[
    Acting[AddRequest],
    Depends(acting(AddMessageBody, mapped=lambda body, _: hosted.add_request(body), adding=True, keyed=True)),
]
Feedback = Annotated[
    Acting[AddRequest],
    Depends(acting(AddFeedbackBody, mapped=lambda body, _: hosted.feedback_request(body), adding=True, keyed=True)),
]
Status = Annotated[Acting[StatusBody], Depends(acting(StatusBody, subject=_no_user))]
Searching = Annotated[
    Acting[SearchRequest], Depends(acting(SearchMemoryBody, mapped=lambda body, _: hosted.search_request(body)))
]
Listing = Annotated[Acting[GetMemoryBody], Depends(acting(GetMemoryBody, subject=_subject))]
ById = Annotated[Acting[MemoryIdParams], Depends(acting(BY_ID))]
Deleting = Annotated[
    Acting[DeleteMemoryBody | DeleteMemoryRequest],
    Depends(acting(DeleteMemoryBody, mapped=_delete_selection, subject=_delete_subject)),
]
Creating = Annotated[Acting[CreateKnowledgebaseBody], Depends(acting(CreateKnowledgebaseBody, subject=_no_user))]
Erasing = Annotated[
    Acting[DeleteKnowledgebaseBody], Depends(acting(DeleteKnowledgebaseBody, subject=_knowledgebase_user))
]
Uploading = Annotated[
    Acting[tuple[str, list[Upload]]], Depends(acting(UPLOADED, subject=_knowledgebase_user, adding=True))
]
DeletingFiles = Annotated[
    Acting[DeleteKnowledgebaseFilesBody], Depends(acting(DeleteKnowledgebaseFilesBody, subject=_knowledgebase_user))
]


@router.post("/add/message", summary="Add messages (hosted API): a task per add, async by default")
async def add_message(request: Request, c: Services, call: Adding) -> JSONResponse:
    return await _add(request, c, call, "Messages accepted")


@router.post("/add/feedback", summary="Add feedback (hosted API): a correction of the user's memories")
async def add_feedback(request: Request, c: Services, call: Feedback) -> JSONResponse:
    return await _add(request, c, call, "Feedback accepted")


@router.post("/get/status", summary="Status of a task (hosted API): running, completed or failed")
async def get_status(request: Request, c: Services, call: Status) -> JSONResponse:
    owner = Authority.task_owner(call.caller, call.principal)
    record = await blocking(request, c.status.get, call.input.task_id, owner)
    outcomes = [(o.memory_id, o.outcome) for p in record.parts for o in p.outcomes]
    data = {
        "task_id": record.task.public_id,
        "status": HOSTED_STATUS[record.status],
        "memory_views": hosted.memory_views(outcomes),
        "state": record.status.value,
        "cubes": [part_view(p) for p in record.parts],
    }
    return ok(f"Task {record.status.value}", data)


@router.post("/search/memory", summary="Search memories (hosted API): the cube and knowledge bases")
async def search_memory(request: Request, c: Services, call: Searching) -> JSONResponse:
    answer = await blocking(request, c.searcher.search, call.input.to_query(), call.principal)
    scored = sorted((s for r in answer.cubes for s in r.memories), key=lambda s: (-s.relativity, s.item.id))
    prefs = sorted((s for r in answer.preferences for s in r.memories), key=lambda s: (-s.relativity, s.item.id))
    tools = sorted((s for r in answer.tools for s in r.memories), key=lambda s: (-s.relativity, s.item.id))
    data = {
        "memory_detail_list": [detail(s.item, s.relativity) for s in scored],
        "preference_detail_list": [detail(s.item, s.relativity) for s in prefs],
        "tool_memory_detail_list": [detail(s.item, s.relativity) for s in tools],
        "skill_detail_list": [],
        "preference_note": pref_texts(s.item for s in prefs).get("pref_note", ""),
        "notes": answer.notes,
    }
    return ok(f"Search completed: {len(scored)} memories", data)


@router.post("/get/memory", summary="One page of the subject's memories (hosted API)")
async def get_memory(request: Request, c: Services, call: Listing) -> JSONResponse:
    body = call.input
    subject = _subject(body, call.caller)
    assert subject is not None  # the model requires one
    flt = compile_filter(body.filter)  # the search's filter language; an invalid one is a 422 naming its key
    if flt is None:
        page = await blocking(request, c.reader.page, subject, call.principal, body.page, body.size)
    else:
        page = await blocking(request, c.reads.page, subject, call.principal, body.page, body.size, flt)
    kinds = by_kind(page.items)
    data = {
        "memory_detail_list": [detail(i) for i in kinds["text"]],
        "preference_detail_list": [detail(i) for i in kinds["preference"]] if body.include_preference else [],
        "tool_memory_detail_list": [detail(i) for i in kinds["tool"]] if body.include_tool_memory else [],
        "skill_detail_list": [],
        "total": page.total,
        "size": page.page_size,
        "current": page.page,
        "pages": math.ceil(page.total / page.page_size),
    }
    return ok(f"Memories retrieved: page {page.page} of {data['pages']}", data)


@router.get("/get/memory/{memory_id}", summary="One memory by id (hosted API)")
async def get_memory_by_id(request: Request, c: Services, call: ById) -> JSONResponse:
    q = call.input  # with keys off and no user: read as its writer
    principal = call.principal if q.user_id or call.caller else None
    item = await blocking(request, c.reader.get, q.memory_id, principal, q.show_expired)
    return ok("Memory retrieved", detail(item))


@router.post("/delete/memory", summary="Delete memories by ids, user, agent or filter (hosted API)")
async def delete_memory(request: Request, c: Services, call: Deleting) -> JSONResponse:
    selection = call.input
    if isinstance(selection, DeleteMemoryRequest):
        receipt = await blocking(request, c.deleter.delete, selection.to_command(), call.principal)
    else:  # by ids: as the key's principal, or with keys off each memory's writer
        receipt = await blocking(request, c.knowledgebases.delete_memories, selection.memory_ids, call.caller)
    return _deleted(receipt)


@router.post("/create/knowledgebase", summary="Create a knowledge base (hosted API), yours to own")
async def create_knowledgebase(request: Request, c: Services, call: Creating) -> JSONResponse:
    name = call.input.knowledgebase_name
    knowledgebase_id = await blocking(request, c.knowledgebases.create_knowledgebase, name, call.caller)
    return ok(f"Knowledge base {knowledgebase_id} created", {"id": knowledgebase_id})


@router.post("/delete/knowledgebase", summary="Erase a knowledge base and its files (hosted API)")
async def delete_knowledgebase(request: Request, c: Services, call: Erasing) -> JSONResponse:
    kb = call.input.knowledgebase_id
    receipt = await blocking(request, c.knowledgebases.delete_knowledgebase, kb, call.principal)
    return _deleted(receipt)


@router.post(
    "/add/knowledgebase-file",
    summary="Add files to a knowledge base (hosted API): text, markdown, JSON or PDF, read in document mode",
)
async def add_knowledgebase_file(request: Request, c: Services, call: Uploading) -> JSONResponse:
    kb, uploads = call.input
    req, file_ids = upload_request(kb, uploads, call.principal.user_id)
    record = await blocking(request, _accept, c, req, call.principal)
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


@router.post("/delete/knowledgebase-file", summary="Delete knowledge-base files by id")
async def delete_knowledgebase_file(request: Request, c: Services, call: DeletingFiles) -> JSONResponse:
    receipt = await blocking(request, c.knowledgebases.delete_files, call.input.file_ids, call.principal)
    return _deleted(receipt)


async def _add(request: Request, c: Container, call: Acting[AddRequest], what: str) -> JSONResponse:
    record = await blocking(request, _accept, c, call.input, call.principal, call.key)
    return ok(_task_message(what, record), task_data(record))
