"""Chat routes: MemOS's `/product/chat/complete` and `/product/chat/stream`, the hosted API's
`POST /chat` (`MemOSClient.chat`, streamed with `stream=true`), and the conversation's messages
(`/product/get_message`, the hosted `POST /get/message`).

Thin, like the other routes. A stream is refused before it starts (no LLM, a cube the caller may
not read or write, a model not served: the usual JSON error and status); once started it is
`text/event-stream` of `data: {json}` events: `reference` (the memories handed to the model),
`text` (each piece of the answer; `reasoning` for a reasoning model's `<think>` part), then `end`
(the answer's data, as the complete route returns it) or `error` (the provider failed or timed out
part-way: nothing was written, and the stream ends rather than hangs).
"""

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from memcube.domain.errors import DomainError
from memcube.wiring import Container
from memcube_api.deps import Acting, Services, acting, blocking
from memcube_api.errors import envelope
from memcube_api.routes.hosted import TAG, ok
from memcube_api.routing import MemcubeRoute
from memcube_api.schemas.chat import (
    ChatBody,
    ChatRequest,
    GetMessageBody,
    GetMessageRequest,
    answer_view,
    chat_command,
    reference_view,
    session_views,
    sse,
)
from memcube_api.schemas.hosted import PREFIX

if TYPE_CHECKING:  # the chat service loads on the first chat, not with the app (cold start)
    from memcube.domain.chat import Prepared

product_router = APIRouter(prefix="/product", route_class=MemcubeRoute)
hosted_router = APIRouter(prefix=PREFIX, tags=[TAG], route_class=MemcubeRoute)
log = logging.getLogger(__name__)

# A chat counts against the daily add quota: it adds its exchange by default, and asks the LLM.
Chatting = Annotated[Acting[ChatRequest], Depends(acting(ChatRequest, adding=True))]
Messages = Annotated[Acting[GetMessageRequest], Depends(acting(GetMessageRequest))]
HostedChat = Annotated[Acting[ChatBody], Depends(acting(ChatBody, adding=True))]
HostedMessages = Annotated[Acting[GetMessageBody], Depends(acting(GetMessageBody))]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""No caching, and no buffering by a proxy in front (nginx): each event reaches the client at once."""


@product_router.post(
    "/chat/complete", summary="Answer from the readable cubes' memories with the LLM, citing them; add the exchange"
)
async def chat_complete(request: Request, c: Services, call: Chatting) -> JSONResponse:
    answer = await blocking(request, c.chat.complete, call.input.to_command(), call.principal)
    return envelope(200, "Chat completed successfully", answer_view(answer))


@product_router.post("/chat/stream", summary="The chat answer as server-sent events (reference, text..., end)")
async def chat_stream(request: Request, c: Services, call: Chatting) -> StreamingResponse:
    prepared = await blocking(request, c.chat.prepare, call.input.to_command(), call.principal)
    return StreamingResponse(events(c, prepared, "session_id"), media_type="text/event-stream", headers=SSE_HEADERS)


@product_router.post("/get_message", summary="The last messages of a session (or of the most recent sessions)")
async def get_message(request: Request, c: Services, call: Messages) -> JSONResponse:
    q = call.input
    sessions = await blocking(request, c.conversations.recent, call.principal, q.session_id, q.session_limit, q.limit)
    messages = session_views(sessions)
    data = {"sessions": [s.session_id for s in sessions], "messages": messages}
    return envelope(200, f"{len(messages)} message(s) of {len(sessions)} session(s)", data)


@hosted_router.post("/chat", summary="Chat with memory (hosted API); stream=true answers with server-sent events")
async def hosted_chat(request: Request, c: Services, call: HostedChat) -> Response:
    cmd = chat_command(call.input)
    if call.input.stream:
        prepared = await blocking(request, c.chat.prepare, cmd, call.principal)
        stream = events(c, prepared, "conversation_id")
        return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
    answer = await blocking(request, c.chat.complete, cmd, call.principal)
    return ok("Chat completed", answer_view(answer, session_field="conversation_id"))


@hosted_router.post("/get/message", summary="A conversation's messages (hosted API)")
async def hosted_get_message(request: Request, c: Services, call: HostedMessages) -> JSONResponse:
    q = call.input
    sessions_asked = q.conversation_limit_number or 1
    per_session = q.message_limit_number or 20
    got = (call.principal, q.conversation_id, sessions_asked, per_session)
    sessions = await blocking(request, c.conversations.recent, *got)
    messages = session_views(sessions)
    return ok(f"{len(messages)} message(s)", {"message_detail_list": messages})


def events(c: Container, prepared: "Prepared", session_field: str) -> Iterator[str]:
    """The answer's server-sent events; a failure part-way ends them with an `error` event."""
    from memcube.domain.chat import ThinkSplitter  # loaded with the chat service, not with the app

    yield sse({"type": "reference", "data": [reference_view(r) for r in prepared.offered]})
    pieces: list[str] = []
    split = ThinkSplitter()  # a reasoning model's <think> part goes out as `reasoning` events
    try:
        for piece in c.chat.pieces(prepared):
            pieces.append(piece)
            for kind, text in split.feed(piece):
                yield sse({"type": kind, "data": text})
        for kind, text in split.flush():
            yield sse({"type": kind, "data": text})
        answer = c.chat.finish(prepared, "".join(pieces))
    except DomainError as exc:
        yield sse({"type": "error", "code": exc.http_status, "content": exc.message})
        return
    except Exception:
        log.exception("chat stream failed")
        yield sse({"type": "error", "code": 500, "content": "internal error while answering; nothing was written"})
        return
    yield sse({"type": "end", "data": answer_view(answer, session_field=session_field)})
