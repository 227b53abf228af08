"""Routes that change memories other than by adding: MemOS's `/product/feedback` (the
feedback path an `is_feedback` add takes, as a task), `/product/update_memory` (a new version of
one memory), and the hosted `update/memory` the SDK's `update_memory` calls (served under the
SDK's path and at the root, like `routes.hosted`). Thin, as the other routes."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from memcube.domain.model import Principal, TaskState
from memcube.wiring import Container
from memcube_api.deps import Acting, IdempotencyKey, Services, acting, blocking
from memcube_api.errors import envelope
from memcube_api.routes.hosted import TAG, ok
from memcube_api.routes.product import _sync_response
from memcube_api.routing import MemcubeRoute
from memcube_api.schemas.edits import (
    FeedbackRequest,
    UpdateMemoryBody,
    UpdateMemoryRequest,
    feedback_command,
    feedback_record,
)
from memcube_api.schemas.hosted import PREFIX, detail
from memcube_api.schemas.views import memory_view

router = APIRouter(prefix="/product", route_class=MemcubeRoute)
hosted_router = APIRouter(prefix=PREFIX, tags=[TAG], route_class=MemcubeRoute)

Feedback = Annotated[Acting[FeedbackRequest], Depends(acting(FeedbackRequest, adding=True))]
Updating = Annotated[Acting[UpdateMemoryRequest], Depends(acting(UpdateMemoryRequest))]
HostedUpdating = Annotated[Acting[UpdateMemoryBody], Depends(acting(UpdateMemoryBody, subject=lambda _, __: None))]


@router.post(
    "/feedback",
    summary="Feedback on what the cubes know: corrected memories are new versions, the old ones archived",
)
async def feedback(request: Request, c: Services, key: IdempotencyKey, call: Feedback) -> JSONResponse:
    return await blocking(request, _feedback, c, call.input, call.principal, key)


@router.post("/update_memory", summary="Edit one memory (text, tags, info, expiry) as a new version in its history")
async def update_memory(request: Request, c: Services, call: Updating) -> JSONResponse:
    edited = await blocking(request, c.editor.edit, call.input.to_command(), call.principal)
    version = edited.item.metadata.version
    what = f"updated ({', '.join(edited.fields)}): version {version}" if edited.fields else "unchanged (indexed again)"
    return envelope(200, f"Memory {what}", memory_view(edited.item))


@hosted_router.post("/update/memory", summary="Edit one memory (hosted API): content, title or status")
async def hosted_update_memory(request: Request, c: Services, call: HostedUpdating) -> JSONResponse:
    # With keys off no user is named: the memory's writer edits it, as the hosted reads and deletes by id act.
    edited = await blocking(request, c.editor.edit, call.input.to_command(), call.principal if call.caller else None)
    item = edited.item
    return ok(f"Memory {item.id} at version {item.metadata.version}", {"success": True, **detail(item)})


def _feedback(c: Container, req: FeedbackRequest, principal: Principal, key: str | None) -> JSONResponse:
    cmd = feedback_command(req)
    sub = c.feedback.submit(cmd, principal, key, corrected_answer=req.corrected_answer)
    again = " (repeated request: the existing task is returned)" if sub.replay else ""
    if cmd.async_mode == "async":
        parts = [{"cube_id": p.cube_id, "task_id": sub.public_id, "status": p.status.value} for p in sub.record.parts]
        return envelope(200, f"Memory feedback task accepted{again}", parts, task_id=sub.public_id)
    record = c.add.wait(sub.task_id, c.settings.sync_timeout_seconds)
    if record.status is not TaskState.COMPLETED:
        return _sync_response(c, record, again)
    answer = c.feedback.answer(cmd) if req.corrected_answer else ""
    ids = {i for p in record.parts for o in p.outcomes for i in (o.memory_id, *o.related_ids)}
    items = {i.id: i for i in c.memories.get_memories(sorted(ids))}
    data: list[dict[str, Any]] = [
        {"cube_id": p.cube_id, "task_id": record.task.public_id, **feedback_record(p.outcomes, items, answer)}
        | {"outcomes": [o.model_dump(mode="json") for o in p.outcomes], "notes": p.notes}
        for p in record.parts
    ]
    return envelope(200, f"Memory feedback successfully{again}", data, task_id=record.task.public_id)
