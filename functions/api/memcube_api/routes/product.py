"""MemOS's `/product` routes. Thin: the dependencies authenticate, read the input and resolve the
principal (its rate limit counted); a route maps the request to a command, calls one service and
shapes the MemOS envelope."""

from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from memcube.domain.filters import compile_filter
from memcube.domain.model import MemoryItem, Principal, TaskRecord, TaskState
from memcube.wiring import Container
from memcube_api.deps import Acting, IdempotencyKey, Services, acting, blocking, query
from memcube_api.errors import envelope
from memcube_api.routing import MemcubeRoute
from memcube_api.schemas.kinds import by_kind, pref_texts
from memcube_api.schemas.product import (
    AddRequest,
    CreateCubeRequest,
    CubeRequest,
    DeleteCubeRequest,
    DeleteMemoryRequest,
    ExportRequest,
    GetMemoryRequest,
    GrantRequest,
    ImportRequest,
    MemoryIdParams,
    SearchRequest,
    StatusParams,
    UndoRequest,
    to_command,
)
from memcube_api.schemas.views import (
    added_view,
    cube_memories,
    cube_view,
    memory_view,
    receipt_view,
    scored_view,
    status_view,
)

if TYPE_CHECKING:  # the deletion service loads on the first delete, not with the app (cold start)
    from memcube.domain.deletion import Receipt

router = APIRouter(prefix="/product", route_class=MemcubeRoute)

BY_ID = query(MemoryIdParams, path=("memory_id",))
"""A memory id in the path (and the reader's user_id in the query): shared with the hosted API."""

Adding = Annotated[Acting[AddRequest], Depends(acting(AddRequest, adding=True))]
Status = Annotated[Acting[StatusParams], Depends(acting(query(StatusParams)))]
ById = Annotated[Acting[MemoryIdParams], Depends(acting(BY_ID))]
Undo = Annotated[Acting[UndoRequest], Depends(acting(UndoRequest))]
Listing = Annotated[Acting[GetMemoryRequest], Depends(acting(GetMemoryRequest))]
Searching = Annotated[Acting[SearchRequest], Depends(acting(SearchRequest))]
Deleting = Annotated[Acting[DeleteMemoryRequest], Depends(acting(DeleteMemoryRequest))]
Erasing = Annotated[Acting[DeleteCubeRequest], Depends(acting(DeleteCubeRequest))]
Creating = Annotated[Acting[CreateCubeRequest], Depends(acting(CreateCubeRequest))]
Granting = Annotated[Acting[GrantRequest], Depends(acting(GrantRequest))]
Exporting = Annotated[Acting[ExportRequest], Depends(acting(ExportRequest))]
Importing = Annotated[Acting[ImportRequest], Depends(acting(ImportRequest))]
Describing = Annotated[Acting[CubeRequest], Depends(acting(CubeRequest))]


# The Idempotency-Key header is read (and checked) before the body.
@router.post("/add", summary="Add memories to one or more cubes (async by default)")
async def add(request: Request, c: Services, key: IdempotencyKey, call: Adding) -> JSONResponse:
    # Store and queue calls block (and a sync add waits for its task): off the event loop.
    return await blocking(request, _add, c, call.input, call.principal, key)


@router.get("/scheduler/status", summary="Status of an add task, per cube and per memory")
async def scheduler_status(request: Request, c: Services, call: Status) -> JSONResponse:
    user_id, task_id = call.principal.user_id, call.input.task_id
    if task_id is None:
        records = await blocking(request, c.status.recent, user_id)
        return envelope(200, "Task status retrieved", [status_view(r) for r in records])
    record = await blocking(request, c.status.get, task_id, user_id)
    return envelope(200, "Task status retrieved", [status_view(record)])


@router.get("/get_memory/{memory_id}", summary="One memory by id")
async def get_memory_by_id(request: Request, c: Services, call: ById) -> JSONResponse:
    item = await blocking(request, c.reader.get, call.input.memory_id, call.principal, call.input.show_expired)
    return envelope(200, "Memory retrieved successfully", memory_view(item))


@router.get(
    "/get_memory_history/{memory_id}",
    summary="One memory (any status) with its versions: merges, corrections, archivals and undos",
)
async def get_memory_history(request: Request, c: Services, call: ById) -> JSONResponse:
    item = await blocking(request, c.history.history, call.input.memory_id, call.principal, call.input.show_expired)
    data = {
        "memory_id": item.id,
        "status": item.metadata.status,
        "version": item.metadata.version,
        "memory": memory_view(item),
        "history": list(reversed(item.metadata.history)),
    }
    return envelope(200, f"Memory history retrieved: {len(item.metadata.history)} change(s)", data)


@router.post(
    "/undo_memory", summary="Undo a memory's latest merge or correction, restoring the previous active item(s)"
)
async def undo_memory(request: Request, c: Services, call: Undo) -> JSONResponse:
    receipt = await blocking(request, c.history.undo, call.input.memory_id, call.principal)
    return envelope(200, f"Undid the {receipt.undone} change of {receipt.memory_id}", asdict(receipt))


@router.post("/get_memory", summary="A cube's memories, page by page")
async def get_memory(request: Request, c: Services, call: Listing) -> JSONResponse:
    req = call.input
    flt = compile_filter(req.filter)  # the search's filter language; an invalid one is a 422 naming its key
    if flt is None:
        page = await blocking(
            request, c.reader.page, req.mem_cube_id, call.principal, req.page, req.page_size, req.show_expired
        )
    else:
        filtered = partial(c.reads.page, show_expired=req.show_expired)
        page = await blocking(request, filtered, req.mem_cube_id, call.principal, req.page, req.page_size, flt)
    kinds = by_kind(page.items)
    data = {
        "text_mem": [cube_memories(page.cube_id, [memory_view(i) for i in kinds["text"]], page.total)],
        "pref_mem": _kind_block(page.cube_id, kinds["preference"], req.include_preference),
        "tool_mem": _kind_block(page.cube_id, kinds["tool"], req.include_tool_memory),
        "page": page.page,
        "page_size": page.page_size,
        "total": page.total,
    }
    return envelope(200, "Memories retrieved successfully", data)


@router.post("/search", summary="Hybrid (vector + text) search over readable cubes, with filters")
async def search(request: Request, c: Services, call: Searching) -> JSONResponse:
    answer = await blocking(request, c.searcher.search, call.input.to_query(), call.principal)
    text_mem = [
        cube_memories(r.cube_id, [scored_view(s.item, s.relativity) for s in r.memories], len(r.memories))
        for r in answer.cubes
    ]
    pref_mem = [cube_memories(r.cube_id, [scored_view(s.item, s.relativity) for s in r.memories], len(r.memories))
                for r in answer.preferences]  # fmt: skip
    tool_mem = [cube_memories(r.cube_id, [scored_view(s.item, s.relativity) for s in r.memories], len(r.memories))
                for r in answer.tools]  # fmt: skip
    data: dict[str, Any] = {"text_mem": text_mem, "pref_mem": pref_mem, "tool_mem": tool_mem, "skill_mem": []}
    data |= {"act_mem": [], "para_mem": [], "notes": answer.notes}
    data |= pref_texts(s.item for r in answer.preferences for s in r.memories)
    return envelope(200, "Search completed successfully", data)


def _kind_block(cube_id: str, items: list[MemoryItem], included: bool) -> list[dict[str, Any]]:
    """A page's preference or tool memories as MemOS's per-cube block; none when switched off."""
    return [cube_memories(cube_id, [memory_view(i) for i in items], len(items))] if included else []


@router.post(
    "/delete_memory", summary="Delete memories by ids, file ids, filter or session; erase a user's data in cubes"
)
async def delete_memory(request: Request, c: Services, call: Deleting) -> JSONResponse:
    receipt = await blocking(request, c.deleter.delete, call.input.to_command(), call.principal)
    return _receipt_response(receipt)


@router.post("/delete_cube", summary="Erase a whole cube: its memories, index documents, queued adds and dead letters")
async def delete_cube(request: Request, c: Services, call: Erasing) -> JSONResponse:
    receipt = await blocking(request, c.deleter.erase_cube, call.input.cube_id, call.principal)
    return _receipt_response(receipt)


@router.post(
    "/create_cube", summary="Create a knowledge-base cube owned by user_id, optionally granting readers and writers"
)
async def create_cube(request: Request, c: Services, call: Creating) -> JSONResponse:
    acl = await blocking(request, c.cubes.create, call.input.to_command(), call.principal)
    return envelope(200, f"Cube {acl.cube_id} created", acl.model_dump())


@router.post("/grant_cube", summary="The cube's owner grants read or write (write implies read) to target_user_id")
async def grant_cube(request: Request, c: Services, call: Granting) -> JSONResponse:
    return await _change_grant(request, c, call, grant=True)


@router.post("/revoke_cube", summary="The cube's owner revokes read or write (revoking read revokes write too)")
async def revoke_cube(request: Request, c: Services, call: Granting) -> JSONResponse:
    return await _change_grant(request, c, call, grant=False)


@router.post(
    "/export_memory",
    summary="A page of a cube's items (any status, no embeddings; filter as get_memory) for export; follow next_cursor",
)
async def export_memory(request: Request, c: Services, call: Exporting) -> JSONResponse:
    from memcube.domain.transfer import exported  # loaded with the transfer service, not with the app

    req = call.input
    flt = compile_filter(req.filter)  # as get_memory's: an invalid one is a 422 naming its key
    exporting = partial(c.transfer.export_page, show_expired=req.show_expired, flt=flt)
    items, cursor = await blocking(request, exporting, req.cube_id, req.cursor, req.limit, call.principal)
    data = {"cube_id": req.cube_id, "items": [exported(i) for i in items], "next_cursor": cursor}
    return envelope(200, f"Exported {len(items)} memories", data)


@router.post("/import_memory", summary="Write exported items into a cube as they are (embeddings computed again)")
async def import_memory(request: Request, c: Services, call: Importing) -> JSONResponse:
    req = call.input
    result = await blocking(request, c.transfer.import_items, req.cube_id, req.items, call.principal)
    data = {"imported": result.imported, "existing": result.existing, "duplicates": result.duplicates}
    counts = (len(result.imported), len(result.existing), len(result.duplicates))
    message = "Memories imported: {} new, {} already there, {} duplicates".format(*counts)
    return envelope(200, message, data)


async def _change_grant(request: Request, c: Container, call: Acting[GrantRequest], *, grant: bool) -> JSONResponse:
    req = call.input
    change = c.cubes.grant if grant else c.cubes.revoke
    acl = await blocking(request, change, req.to_command(), call.principal)
    done = "Granted" if grant else "Revoked"
    return envelope(200, f"{done} {req.permission} on {acl.cube_id} for {req.target_user_id}", acl.model_dump())


def _receipt_response(receipt: "Receipt") -> JSONResponse:
    """MemOS's `{"status": "success"}`, plus the receipt: counts per place, per cube."""
    data = {
        "status": "success",
        "deleted": receipt.memories,
        "cubes": [receipt_view(r) for r in receipt.cubes],
        "not_found": receipt.not_found,
        "messages_deleted": receipt.messages,
    }
    return envelope(200, f"Memories deleted successfully: {receipt.memories} removed", data)


def _add(c: Container, req: AddRequest, principal: Principal, idempotency_key: str | None) -> JSONResponse:
    cmd = to_command(req)
    sub = c.add.submit(cmd, principal, idempotency_key)
    if not sub.replay:  # the conversation's own messages, for get_message
        c.conversations.remember_add(cmd, sub.public_id, sub.record.task.created_at)
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
    items = {i.id: i for i in c.memories.get_memories([o.memory_id for o, _ in outcomes])}
    data = [added_view(items[o.memory_id], o.outcome, o.reason) for o, _ in outcomes if o.memory_id in items]
    counts: dict[str, int] = {}
    for o, _ in outcomes:
        counts[o.outcome] = counts.get(o.outcome, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    return envelope(200, f"Memory added successfully: {summary}{again}", data, task_id=task_id)


@router.post("/get_cube", summary="A knowledge-base cube's settings (default_ttl_days); its grants for the owner")
async def get_cube(request: Request, c: Services, call: Describing) -> JSONResponse:
    acl = await blocking(request, c.cubes.describe, call.input.cube_id, call.principal)
    return envelope(200, f"Cube {acl.cube_id} retrieved", cube_view(acl, call.principal))
