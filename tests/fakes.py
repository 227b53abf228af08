"""A local HTTP fake of the OpenAI API (chat completions and embeddings, with the request and
response shapes OpenAI documents), for the adapter tests and for `memcube serve` end to end."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer; `body` None means the fake's normal success for the route."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunks: list[str] | None = None
    """A streamed chat's content pieces (default: `chat_content` cut in words)."""
    chunk_delay: float = 0.0
    """Seconds before each streamed piece after the first (a stalled server)."""
    stream_error: str | None = None
    """After the pieces, an error event with this message instead of the end (a failure part-way)."""
    unfinished: bool = False
    """End the stream after the pieces without a finish reason or `[DONE]` (a server cut off)."""


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def fake_vector(text: str, dimension: int) -> list[float]:
    """Distinct per text (by length and first letter), never unit length: the adapter normalizes."""
    head = float(ord(text[0])) if text else 0.0
    return [float(len(text)), head, *([2.0] * (dimension - 2))]


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


class FakeOpenAI:
    """`POST /v1/chat/completions` and `POST /v1/embeddings` with OpenAI's documented shapes.

    Each request is recorded in `seen`. Scripted `Reply`s per route are used first (in order),
    then `rule` (a function of the request that may return a Reply), then the normal answer:
    `chat_content` for chat, `fake_vector` of each input (`dimension` entries) for embeddings,
    listed in reverse order when `shuffle` is set (clients must sort by `index`).
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.script: dict[str, list[Reply]] = {"/v1/chat/completions": [], "/v1/embeddings": []}
        self.rule: Callable[[Seen], Reply | None] | None = None
        self.chat_content: str | None = '{"ok": true}'
        self.dimension = 4
        self.shuffle = False
        self.released = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.answer(self, Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body))

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def requests(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]

    def answer(self, handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)
            pending = self.script.get(seen.path)
            reply = pending.pop(0) if pending else None
        if reply is None and self.rule is not None:
            reply = self.rule(seen)
        reply = reply or Reply()
        if reply.delay:
            self.released.wait(reply.delay)  # set at teardown, so no handler outlives the test
        if seen.path not in self.script:
            reply = Reply(404, {"error": {"message": f"no route {seen.path}", "type": "invalid_request_error"}})
        if seen.body.get("stream") and seen.path == "/v1/chat/completions" and reply.status == 200:
            self.stream(handler, seen, reply)
            return
        body = reply.body if reply.body is not None else self.success(seen)
        raw = json.dumps(body).encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(raw)))
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def stream(self, handler: BaseHTTPRequestHandler, seen: Seen, reply: Reply) -> None:
        """`stream: true`: OpenAI's `chat.completion.chunk` events, `data: [DONE]` last."""
        content = self.chat_content or ""
        pieces = reply.chunks if reply.chunks is not None else [w + " " for w in content.split(" ")]

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            created = int(time.time())
            model = seen.body.get("model")
            return {
                "id": "chatcmpl-s",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
            }

        events: list[Any] = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in pieces]
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.end_headers()
            for n, event in enumerate(events):
                if n > 1 and reply.chunk_delay:
                    self.released.wait(reply.chunk_delay)
                handler.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                handler.wfile.flush()
            if reply.stream_error is not None:
                error = {"error": {"message": reply.stream_error, "type": "server_error"}}
                handler.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
            elif not reply.unfinished:
                handler.wfile.write(f"data: {json.dumps(chunk({}, 'stop'))}\n\ndata: [DONE]\n\n".encode())
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def success(self, seen: Seen) -> dict[str, Any]:
        if seen.path == "/v1/chat/completions":
            return {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": seen.body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.chat_content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        texts = seen.body["input"]
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(text, self.dimension)}
            for i, text in enumerate(texts)
        ]
        if self.shuffle:
            data.reverse()
        return {
            "object": "list",
            "data": data,
            "model": seen.body.get("model"),
            "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
        }


def completion(content: str) -> dict[str, Any]:
    """A non-streamed chat completion answering `content`."""
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    return {"id": "chatcmpl-r", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]}


def memory_llm(*pieces: str) -> Callable[[Seen], Reply | None]:
    """A `FakeOpenAI.rule` for a deployment with an LLM: a streamed chat answers `pieces`, then
    cites the first memory its system prompt offers (`[n:<id>]`); fine extraction keeps the first
    user line as one memory; the organizer's judge finds every pair independent."""

    def rule(seen: Seen) -> Reply | None:
        system, user = seen.body["messages"][0]["content"], seen.body["messages"][-1]["content"]
        if seen.body.get("stream"):
            marker = re.search(r"^\[\d+:[^\]]+\]", system, re.M)
            return Reply(chunks=[*pieces, marker.group(0) if marker else ""])
        if "extract long-term memories" in system:
            lines = [line for line in user.splitlines() if "user" in line.lower()] or [user]
            items = [{"key": "chat", "memory_type": "UserMemory", "value": lines[0][-200:], "tags": []}]
            return Reply(body=completion(json.dumps({"memory_list": items, "summary": "a chat"})))
        if "free of duplicates and stale facts" in system:
            offered = json.loads(user)["existing"]
            judgements = [{"id": e["id"], "relation": "independent", "reason": "different"} for e in offered]
            return Reply(body=completion(json.dumps({"judgements": judgements})))
        return None

    return rule


@contextmanager
def running_fake_openai() -> Iterator[FakeOpenAI]:
    """A FakeOpenAI serving on 127.0.0.1 until the block ends."""
    server = FakeOpenAI()
    thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.released.set()
        server.server.shutdown()
        server.server.server_close()
        thread.join(timeout=5)
