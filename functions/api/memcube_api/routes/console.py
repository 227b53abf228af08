"""Routes the web console (`/console`) needs that MemOS has no counterpart for: the caller's
cubes with counts and grants, and, for operators, the dead letters and their redrive. Thin, like
`routes.product`: `deps.acting` authenticates and resolves the principal; one service answers."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from memcube.domain.errors import InvalidRequest, Unavailable
from memcube.domain.model import Principal
from memcube.ports import RawQueue
from memcube.wiring import Container
from memcube_api.deps import Acting, Services, acting, blocking, query
from memcube_api.errors import envelope
from memcube_api.routing import MemcubeRoute
from memcube_api.schemas.console import DeadLettersParams, ListCubesParams, RedriveRequest

if TYPE_CHECKING:  # the console's services load on its first request, not with the app (cold start)
    from memcube.domain.dead_letter_desk import DeadLetterDesk

router = APIRouter(prefix="/product", route_class=MemcubeRoute)


def _caller_itself(_: Any, __: Principal | None) -> None:
    return None


Listing = Annotated[Acting[ListCubesParams], Depends(acting(query(ListCubesParams)))]
Letters = Annotated[Acting[DeadLettersParams], Depends(acting(query(DeadLettersParams), subject=_caller_itself))]
Redriving = Annotated[Acting[RedriveRequest], Depends(acting(RedriveRequest, subject=_caller_itself))]


@router.get("/list_cubes", summary="The caller's personal cube and the knowledge bases they may read, with counts")
async def list_cubes(request: Request, c: Services, call: Listing) -> JSONResponse:
    if not call.principal.user_id:
        raise InvalidRequest("user_id: required with API keys off (the user whose cubes to list)")
    from memcube.domain.cube_list import CubeLister

    listing = await blocking(request, CubeLister(c.directory, c.memories).list, call.principal)
    return envelope(200, f"{len(listing.cubes)} cube(s) readable by {listing.user_id}", asdict(listing))


@router.get("/dead_letters", summary="Operators: messages given up on, with their reasons (admin only)")
async def dead_letters(request: Request, c: Services, call: Letters) -> JSONResponse:
    from memcube.domain.dead_letter_desk import DeadLetterDesk

    letters = await blocking(request, DeadLetterDesk(c.dead_letters, None).list, call.caller)
    data = [letter.model_dump(mode="json", exclude={"body"}) for letter in letters]
    return envelope(200, f"{len(data)} dead letter(s)", data)


@router.post("/redrive_dead_letters", summary="Operators: send dead letters back to their queue (admin only)")
async def redrive_dead_letters(request: Request, c: Services, call: Redriving) -> JSONResponse:
    result = await blocking(request, _desk(c).redrive, call.caller, call.input.message_ids)
    message = f"Redrove {len(result.sent)} dead letter(s); {len(result.invalid)} can never succeed"
    return envelope(200, message, asdict(result))


def _desk(c: Container) -> DeadLetterDesk:
    from memcube.domain.dead_letter_desk import DeadLetterDesk

    queue = c.queue
    if not hasattr(queue, "send_raw"):
        raise Unavailable("dead letters: this backend's queue cannot take a redrive; use `memcube redrive`")
    return DeadLetterDesk(c.dead_letters, cast(RawQueue, queue))
