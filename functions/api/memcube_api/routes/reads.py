"""MemOS's reads beyond search and a plain page: `/product/get_all`, `/product/get_memory_by_ids`,
and the scheduler's `wait` (one answer or a server-sent-events stream) and `allstatus`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from itertools import chain
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from memcube.domain.errors import InvalidRequest
from memcube.domain.model import Principal
from memcube.wiring import Container
from memcube_api.deps import Acting, Services, acting, blocking, documented, json_body_doc, query, read_json
from memcube_api.errors import envelope
from memcube_api.params import openapi_params, read_params
from memcube_api.routing import MemcubeRoute
from memcube_api.schemas.reads import (
    NO_SUCH_KIND,
    AllStatusParams,
    GetAllRequest,
    MemoryIds,
    ReaderParams,
    WaitParams,
)
from memcube_api.schemas.views import cube_memories, memory_view, scored_view

if TYPE_CHECKING:  # the scheduler's service loads on the first wait, not with the app (cold start)
    from memcube.domain.scheduler import TaskCounts, WaitState

router = APIRouter(prefix="/product", route_class=MemcubeRoute)


@dataclass(frozen=True)
class IdsRead:
    """`get_memory_by_ids`' input: the body's ids and the reader named in the query."""

    memory_ids: list[str]
    user_id: str | None
    show_expired: bool


async def _ids_read(request: Request) -> IdsRead:
    reader = read_params(request, ReaderParams)  # before the body: a bad query fails first
    body = await read_json(request, MemoryIds)
    return IdsRead(memory_ids=body.root, user_id=reader.user_id, show_expired=reader.show_expired)


_IDS_DOC = json_body_doc(MemoryIds) | openapi_params(ReaderParams)


def _waiter(value: WaitParams, _: Principal | None) -> str | None:
    return value.user


GettingAll = Annotated[Acting[GetAllRequest], Depends(acting(GetAllRequest))]
ReadingIds = Annotated[Acting[IdsRead], Depends(acting(documented(_ids_read, _IDS_DOC, (MemoryIds,))))]
Waiting = Annotated[Acting[WaitParams], Depends(acting(query(WaitParams), subject=_waiter))]
Counting = Annotated[Acting[AllStatusParams], Depends(acting(query(AllStatusParams)))]


@router.post("/get_all", summary="Pages of the user's cubes by memory type, or the memories related to a query")
async def get_all(request: Request, c: Services, call: GettingAll) -> JSONResponse:
    req = call.input
    if req.memory_type != "text_mem":
        await blocking(request, c.reads.authorize, req.cube_ids, call.principal)  # another's cube: 403 all the same
        kind, name = NO_SUCH_KIND[req.memory_type], req.memory_type
        return envelope(200, f"Memories retrieved successfully: memcube keeps no {kind}, {name} is empty", [])
    if req.search_query is not None:
        data = await blocking(request, _related, c, req, call.principal)
        return envelope(200, f"Memories related to the query retrieved ({req.search_type})", data)
    data = await blocking(request, _pages, c, req, call.principal)
    return envelope(200, "Memories retrieved successfully", data)


def _pages(c: Container, req: GetAllRequest, principal: Principal) -> list[dict[str, Any]]:
    blocks = []
    for cube_id in req.cube_ids:
        page = c.reads.page(cube_id, principal, req.page, req.page_size, None, show_expired=req.show_expired)
        block = cube_memories(cube_id, [memory_view(i) for i in page.items], page.total)
        blocks.append(block | {"page": page.page, "page_size": page.page_size, "total": page.total})
    return blocks


def _related(c: Container, req: GetAllRequest, principal: Principal) -> list[dict[str, Any]]:
    assert req.search_query is not None
    blocks = []
    for cube_id in req.cube_ids:
        found = c.reads.related(
            cube_id, principal, req.search_query, req.search_type, req.page_size, show_expired=req.show_expired
        )
        memories = [scored_view(item, score) for item, score in found.items]
        blocks.append(cube_memories(cube_id, memories, len(memories)) | {"search_type": req.search_type})
    return blocks


@router.post("/get_memory_by_ids", summary="Memories by id (a JSON list); says which ids were not found")
async def get_memory_by_ids(request: Request, c: Services, call: ReadingIds) -> JSONResponse:
    asked = call.input  # with keys off and no user: each read as its writer (as GET /get_memory/{id})
    reader = call.principal if asked.user_id or call.caller else None
    found = await blocking(request, c.reads.by_ids, asked.memory_ids, reader, asked.show_expired)
    data = {"memories": [memory_view(i) for i in found.items], "not_found": found.not_found}
    message = f"Memories retrieved successfully: {len(found.items)} of {len(found.items) + len(found.not_found)}"
    return envelope(200, message, data)


@router.post("/scheduler/wait", summary="Block until the user's tasks (or one task) end, or the timeout passes")
async def scheduler_wait(request: Request, c: Services, call: Waiting) -> JSONResponse:
    q, user = call.input, _user(call.principal)
    timeout, capped = _timeout(c, q.timeout_seconds)
    state = await blocking(request, c.scheduler.wait, user, q.task_id, timeout, q.poll_interval)
    data = {
        "running_tasks": state.active,
        "waited_seconds": state.elapsed,
        "timed_out": state.timed_out,
        "user_name": user,
        "tasks": [{"task_id": t, "status": s} for t, s in state.tasks.items()],
    } | capped
    return envelope(200, "timeout" if state.timed_out else "idle", data)


@router.get(
    "/scheduler/wait/stream",
    summary="Server-sent events: the user's task states as they change, until all end or the timeout passes",
)
async def scheduler_wait_stream(request: Request, c: Services, call: Waiting) -> StreamingResponse:
    q, user = call.input, _user(call.principal)
    timeout, capped = _timeout(c, q.timeout_seconds)
    states = c.scheduler.watch(user, q.task_id, timeout, q.poll_interval)
    first = await blocking(request, next, states)  # an unknown task is a 404, not an event
    frames = (_frame(s, user, capped) for s in chain([first], states))
    return StreamingResponse(frames, media_type="text/event-stream", headers={"cache-control": "no-cache"})


@router.get("/scheduler/allstatus", summary="The user's tasks counted by state")
async def scheduler_allstatus(request: Request, c: Services, call: Counting) -> JSONResponse:
    user = _user(call.principal)
    counts = await blocking(request, c.scheduler.summary, user)
    summary = _counts(counts)
    data = {"scheduler_summary": summary, "all_tasks_summary": summary, "user_id": user, "truncated": counts.truncated}
    return envelope(200, "Scheduler status summary retrieved successfully", data)


def _user(principal: Principal) -> str:
    if not principal.user_id:
        raise InvalidRequest("user_id: required (whose tasks); MemOS's wait names it user_name")
    return principal.user_id


def _timeout(c: Container, asked: float) -> tuple[float, dict[str, Any]]:
    """The timeout the deployment allows, and what the answer says when it cut the one asked for."""
    cap = c.settings.wait_cap_seconds
    if asked <= cap:
        return asked, {"timeout_seconds": asked}
    note = f"timeout_seconds: {asked:g} asked, this deployment waits at most {cap:g}; call again to wait longer"
    return cap, {"timeout_seconds": cap, "timeout_capped": True, "note": note}


def _frame(state: WaitState, user: str, capped: dict[str, Any]) -> str:
    status = "timeout" if state.timed_out else ("idle" if state.done else "running")
    payload = {
        "user_name": user,
        "active_tasks": state.active,
        "elapsed_seconds": state.elapsed,
        "status": status,
        "timed_out": state.timed_out,
        "tasks": [{"task_id": t, "status": s} for t, s in state.tasks.items()],
    } | capped
    return "data: " + json.dumps(payload, ensure_ascii=False) + "\n\n"


def _counts(counts: TaskCounts) -> dict[str, int]:
    return {k: v for k, v in asdict(counts).items() if k != "truncated"}
