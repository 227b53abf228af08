"""Small HTTP clients for a running memcube (local or on AWS). httpx only: nothing of the server.

- `MemcubeClient` speaks the `/product/*` API route by route and returns the envelopes' JSON; the
  `memcube` CLI uses it.
- `MemOSClient` has the call shapes of the MemOS documentation (`add_message(user_id=...,
  writable_cube_ids=[...], messages=..., async_mode="async", custom_tags=[...], ...)` against
  `/product/add`), plus `get_task_status`, `wait`, `search`, `get_memory`, `delete_memory` and
  `add_file`, with typed results.

Both retry 429 and 5xx answers with exponential backoff (honouring `Retry-After`) and raise
`ApiError` with the server's MemOS envelope message on a 4xx.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import httpx

RETRYABLE = frozenset({429, 500, 502, 503, 504})


class ApiError(Exception):
    """The server refused the request (its envelope's code and message)."""

    def __init__(self, status: int, message: str, data: Any = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.data = data


class _Closes:
    """`with client:` closes its connections on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class MemcubeClient(_Closes):
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 35.0,
        retries: int = 4,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Authorization": f"Token {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers, transport=transport)
        self._retries = retries
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None) -> Any:
        """The envelope's `data` (`envelope` returns the whole envelope, with `task_id`)."""
        return self.envelope(method, path, body=body, params=params).get("data")

    def envelope(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """The whole envelope; `timeout` (seconds) replaces the client's for a call the server holds open."""
        per_call: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        for attempt in range(self._retries + 1):
            try:
                response = self._http.request(method, path, json=body, params=params, **per_call)
            except httpx.TransportError:
                if attempt == self._retries:
                    raise
                self._sleep(_backoff(attempt, None))
                continue
            if response.status_code in RETRYABLE and attempt < self._retries:
                self._sleep(_backoff(attempt, response.headers.get("retry-after")))
                continue
            return envelope_of(response)
        raise AssertionError("unreachable: the last attempt returns or raises")

    # --- the API, one method per route -----------------------------------------------------

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.envelope("POST", "/product/add", body=body)

    def status(self, user_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        params = {"user_id": user_id} | ({"task_id": task_id} if task_id else {})
        data: list[dict[str, Any]] = self.request("GET", "/product/scheduler/status", params=params)
        return data

    def wait(self, user_id: str, task_id: str, timeout: float = 120.0, poll: float = 0.2) -> dict[str, Any]:
        """Poll a task until it is finished (completed, failed or cancelled) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            [task] = self.status(user_id, task_id)
            if task["status"] in FINISHED or time.monotonic() >= deadline:
                return task
            self._sleep(poll)
            poll = min(poll * 1.5, 2.0)

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self.request("POST", "/product/search", body=body)
        return data

    def get(self, memory_id: str, user_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", f"/product/get_memory/{memory_id}", params={"user_id": user_id})
        return data

    def history(self, memory_id: str, user_id: str) -> dict[str, Any]:
        path = f"/product/get_memory_history/{memory_id}"
        data: dict[str, Any] = self.request("GET", path, params={"user_id": user_id})
        return data

    def undo(self, memory_id: str, user_id: str) -> dict[str, Any]:
        body = {"user_id": user_id, "memory_id": memory_id}
        data: dict[str, Any] = self.request("POST", "/product/undo_memory", body=body)
        return data

    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self.request("POST", "/product/delete_memory", body=body)
        return data

    def delete_cube(self, user_id: str, cube_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.request(
            "POST", "/product/delete_cube", body={"user_id": user_id, "cube_id": cube_id}
        )
        return data

    def export(self, user_id: str, cube_id: str, page_size: int = 200) -> Iterator[dict[str, Any]]:
        """Every item of the cube, page by page."""
        cursor: str | None = None
        while True:
            body = {"user_id": user_id, "cube_id": cube_id, "limit": page_size, "cursor": cursor}
            data = self.request("POST", "/product/export_memory", body=body)
            yield from data["items"]
            cursor = data["next_cursor"]
            if cursor is None:
                return

    def import_items(self, user_id: str, cube_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        body = {"user_id": user_id, "cube_id": cube_id, "items": items}
        data: dict[str, Any] = self.request("POST", "/product/import_memory", body=body)
        return data

    def get_all(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """`POST /product/get_all`: a page per cube by memory type, or the memories related to a query."""
        data: list[dict[str, Any]] = self.request("POST", "/product/get_all", body=body)
        return data

    def get_by_ids(self, memory_ids: list[str], user_id: str | None = None) -> dict[str, Any]:
        """`POST /product/get_memory_by_ids`: `{memories, not_found}`."""
        params = {"user_id": user_id} if user_id else None
        data: dict[str, Any] = self.request("POST", "/product/get_memory_by_ids", body=memory_ids, params=params)
        return data

    def wait_idle(
        self, user_id: str, task_id: str | None = None, timeout: float = 20.0, poll: float = 0.5
    ) -> dict[str, Any]:
        """`POST /product/scheduler/wait`: the server blocks until the user's tasks (or that one)
        end; the envelope, whose message is `idle` or `timeout` (the deployment may cut a long
        `timeout`: the answer says so)."""
        params = {"user_name": user_id, "timeout_seconds": str(timeout), "poll_interval": str(poll)}
        params |= {"task_id": task_id} if task_id else {}
        return self.envelope("POST", "/product/scheduler/wait", params=params, timeout=timeout + 10)

    def wait_events(
        self, user_id: str, task_id: str | None = None, timeout: float = 20.0, poll: float = 0.5
    ) -> Iterator[dict[str, Any]]:
        """`GET /product/scheduler/wait/stream`: each server-sent event (task states as they
        change), the last one `idle` or `timeout`. Not retried: a stream is not replayed."""
        params = {"user_name": user_id, "timeout_seconds": str(timeout), "poll_interval": str(poll)}
        params |= {"task_id": task_id} if task_id else {}
        stream = self._http.stream("GET", "/product/scheduler/wait/stream", params=params, timeout=timeout + 10)
        with stream as response:
            if response.status_code >= 400:
                response.read()
                payload = response.json() if response.content else {}
                raise ApiError(response.status_code, str(payload.get("message", "")), payload.get("data"))
            for line in response.iter_lines():
                if line.startswith("data:"):
                    yield json.loads(line.removeprefix("data:").strip())

    def all_status(self, user_id: str) -> dict[str, Any]:
        """`GET /product/scheduler/allstatus`: the user's tasks counted by state."""
        data: dict[str, Any] = self.request("GET", "/product/scheduler/allstatus", params={"user_id": user_id})
        return data

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /product/chat/complete`: the answer, its citations and the exchange's add task.
        Not retried on a 5xx: a chat that failed after answering may have added its exchange."""
        data: dict[str, Any] = self._once("POST", "/product/chat/complete", body)
        return data

    def chat_stream(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """`POST /product/chat/stream`: each server-sent event as it arrives (`reference`, `text`
        pieces, then `end` or `error`); a refusal before the stream starts raises `ApiError`."""
        with self._http.stream("POST", "/product/chat/stream", json=body) as response:
            if response.status_code >= 400:
                response.read()
                payload = _json_or_text(response)
                raise ApiError(response.status_code, str(payload.get("message", "")), payload.get("data"))
            for line in response.iter_lines():
                if line.startswith("data:"):
                    event: dict[str, Any] = json.loads(line.removeprefix("data:").strip())
                    yield event

    def get_message(self, user_id: str, session_id: str | None = None, limit: int = 20) -> dict[str, Any]:
        body = {"user_id": user_id, "session_id": session_id, "limit": limit}
        data: dict[str, Any] = self.request("POST", "/product/get_message", body=body)
        return data

    def _once(self, method: str, path: str, body: Any) -> Any:
        response = self._http.request(method, path, json=body)
        payload = _json_or_text(response)
        if response.status_code >= 400:
            raise ApiError(response.status_code, str(payload.get("message", "")), payload.get("data"))
        return payload.get("data")

    def update_memory(
        self,
        memory_id: str,
        user_id: str,
        *,
        memory: str | None = None,
        tags: list[str] | None = None,
        info: dict[str, Any] | None = None,
        mem_cube_id: str | None = None,
    ) -> dict[str, Any]:
        """`POST /product/update_memory`: the memory's next version (a field left None is kept).
        Safe to retry: resending the same edit writes no second version."""
        given = {"mem_cube_id": mem_cube_id, "memory": memory, "tags": tags, "info": info}
        body = {"user_id": user_id, "memory_id": memory_id} | {k: v for k, v in given.items() if v is not None}
        data: dict[str, Any] = self.request("POST", "/product/update_memory", body=body)
        return data

    def feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /product/feedback` (MemOS's APIFeedbackRequest): the whole envelope, with `task_id`."""
        return self.envelope("POST", "/product/feedback", body=body)


def envelope_of(response: httpx.Response) -> dict[str, Any]:
    """The answer's MemOS envelope; `ApiError` with its message for a 4xx or 5xx."""
    payload = _json_or_text(response)
    if response.status_code >= 400:
        raise ApiError(response.status_code, str(payload.get("message", "")), payload.get("data"))
    return payload


def _json_or_text(response: httpx.Response) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = response.json()
    except ValueError:
        payload = {"message": response.text[:200]}
    return payload


def _backoff(attempt: int, retry_after: str | None) -> float:
    """The server's Retry-After when it gives one (seconds), else full-jitter exponential."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), 60.0)
        except ValueError:
            pass
    return random.uniform(0, min(8.0, 0.25 * 2**attempt))


# --- MemOSClient: the MemOS documentation's calls, typed -------------------------------------


class TaskTimeout(TimeoutError):
    """`wait` ran out of time; `status` is the task as last seen."""

    def __init__(self, status: TaskStatus, timeout: float) -> None:
        super().__init__(f"task {status.task_id} still {status.status} after {timeout:g}s")
        self.status = status


class _Record:
    """Results are dataclasses; their fields also read by key (`res.data[0]["status"]`), as the
    MemOS documentation's examples read them."""

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


@dataclass(frozen=True)
class CubeTask(_Record):
    """An async add's task for one target cube."""

    cube_id: str
    task_id: str
    status: str


@dataclass(frozen=True)
class AddedMemory(_Record):
    """What a sync add did with one memory (`outcome`: added, duplicate, merged, updated, archived)."""

    memory_id: str
    memory: str
    memory_type: str
    cube_id: str
    outcome: str
    reason: str | None


@dataclass(frozen=True)
class AddResult(_Record):
    code: int
    message: str
    task_id: str
    tasks: list[CubeTask] = field(default_factory=list)
    """Async: one entry per target cube."""
    memories: list[AddedMemory] = field(default_factory=list)
    """Sync: the resulting memories."""


@dataclass(frozen=True)
class Outcome(_Record):
    memory_id: str
    outcome: str
    memory_type: str
    reason: str
    related_ids: list[str]


@dataclass(frozen=True)
class CubeStatus(_Record):
    cube_id: str
    status: str
    mode: str
    outcomes: list[Outcome]
    notes: list[str]
    error: str | None
    attempts: int


@dataclass(frozen=True)
class TaskStatus(_Record):
    task_id: str
    status: str
    """waiting, in_progress, completed, failed or cancelled (MemOS's states)."""
    user_id: str
    created_at: str
    cubes: list[CubeStatus]

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    @property
    def memory_ids(self) -> list[str]:
        """Every memory the task touched (added, merged into, duplicate of, ...), in order."""
        return list(dict.fromkeys(o.memory_id for c in self.cubes for o in c.outcomes))


FINISHED = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class TaskStatusResult(_Record):
    code: int
    message: str
    data: list[TaskStatus]


@dataclass(frozen=True)
class Memory(_Record):
    id: str
    memory: str
    memory_type: str
    cube_id: str
    user_id: str
    session_id: str
    key: str
    tags: list[str]
    custom_tags: list[str]
    info: dict[str, Any]
    sources: list[dict[str, Any]]
    created_at: str
    updated_at: str
    relativity: float | None
    """A search hit's score; None outside search."""
    metadata: dict[str, Any]
    """Every metadata field, as the server sent it."""


@dataclass(frozen=True)
class CubeMemories(_Record):
    cube_id: str
    memories: list[Memory]
    total_nodes: int


@dataclass(frozen=True)
class SearchResult(_Record):
    code: int
    message: str
    cubes: list[CubeMemories]
    preferences: list[CubeMemories] = field(default_factory=list)
    """`pref_mem`: the preference memories found, per cube (fine mode extracts them)."""
    tool_memories: list[CubeMemories] = field(default_factory=list)
    """`tool_mem`: the tool-call memories found, per cube."""

    @property
    def memories(self) -> list[Memory]:
        """Every hit, best first."""
        hits = [m for c in self.cubes for m in c.memories]
        return sorted(hits, key=lambda m: -(m.relativity or 0.0))


@dataclass(frozen=True)
class MemoryPage(_Record):
    cube_id: str
    memories: list[Memory]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class DeleteResult(_Record):
    code: int
    message: str
    deleted: int
    not_found: list[str]
    cubes: list[dict[str, Any]]


FILE_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".json": "application/json",
    ".csv": "text/csv",
    ".pdf": "application/pdf",
}


class MemOSClient(_Closes):
    """The MemOS product API with the MemOS documentation's call shapes, against memcube.

        from memcube_client import MemOSClient

        client = MemOSClient(api_key="mck_...", base_url="http://127.0.0.1:8000")
        res = client.add_message(user_id="alice", writable_cube_ids=["alice"],
                                 messages=[{"role": "user", "content": "I moved to Lisbon."}],
                                 async_mode="async", custom_tags=["travel"])
        client.wait(res.task_id, user_id="alice")
        hits = client.search("Where do I live?", user_id="alice").memories

    `base_url` and `api_key` default to `$MEMCUBE_URL` (else `http://127.0.0.1:8000`) and
    `$MEMCUBE_API_KEY`; the key is sent as `Authorization: Token <key>`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 35.0,
        retries: int = 4,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        url = base_url or os.environ.get("MEMCUBE_URL") or "http://127.0.0.1:8000"
        key = api_key or os.environ.get("MEMCUBE_API_KEY") or None
        self._http = MemcubeClient(url, api_key=key, timeout=timeout, retries=retries, transport=transport, sleep=sleep)

    def close(self) -> None:
        self._http.close()

    def add_message(
        self,
        *,
        user_id: str,
        messages: str | list[dict[str, Any]],
        writable_cube_ids: list[str] | None = None,
        session_id: str | None = None,
        task_id: str | None = None,
        async_mode: Literal["async", "sync"] = "async",
        mode: Literal["fast", "fine"] | None = None,
        custom_tags: list[str] | None = None,
        info: dict[str, Any] | None = None,
        is_feedback: bool = False,
        chat_history: list[dict[str, Any]] | None = None,
        **fields: Any,
    ) -> AddResult:
        """`POST /product/add` (MemOS's APIADDRequest; other fields of it go in `fields`). Without
        a `task_id` the client makes one, so a retry after a lost answer (a timeout, a 5xx) is
        the same add, answered from its task, never a second one."""
        given = {
            "session_id": session_id,
            "task_id": task_id or f"task-{uuid.uuid4().hex}",
            "writable_cube_ids": writable_cube_ids,
            "mode": mode,
            "custom_tags": custom_tags,
            "info": info,
            "chat_history": chat_history,
            **fields,
        }
        body = {"user_id": user_id, "messages": messages, "async_mode": async_mode, "is_feedback": is_feedback}
        body |= {k: v for k, v in given.items() if v is not None}
        answer = self._http.add(body)
        data: list[dict[str, Any]] = answer.get("data") or []
        head = (int(answer["code"]), str(answer["message"]), str(answer["task_id"]))
        if async_mode == "async":
            return AddResult(*head, tasks=[CubeTask(d["cube_id"], d["task_id"], d["status"]) for d in data])
        return AddResult(*head, memories=[_added(d) for d in data if "memory_id" in d])

    def add_file(
        self,
        path: str | os.PathLike[str],
        *,
        user_id: str,
        cube_id: str,
        file_id: str | None = None,
        custom_tags: list[str] | None = None,
        info: dict[str, Any] | None = None,
        async_mode: Literal["async", "sync"] = "async",
    ) -> AddResult:
        """Add a local file (text, markdown, JSON, CSV or PDF) to a cube (a knowledge base), read in
        document mode. Its id is `file_id`, or `<cube_id>:<24 hex of its SHA-256>` (the id the
        hosted API's knowledge-base routes use), by which `delete_memory(file_ids=[...])` removes it."""
        source = Path(path)
        mime = FILE_TYPES.get(source.suffix.lower())
        if mime is None:
            raise ValueError(f"{source.name}: upload {', '.join(FILE_TYPES)} files")
        data = source.read_bytes()
        file = {
            "file_data": f"data:{mime};base64,{base64.b64encode(data).decode()}",
            "file_id": file_id or f"{cube_id}:{hashlib.sha256(data).hexdigest()[:24]}",
            "filename": source.name,
        }
        return self.add_message(
            user_id=user_id,
            writable_cube_ids=[cube_id],
            messages=[{"type": "file", "file": file}],
            async_mode=async_mode,
            custom_tags=custom_tags,
            info=info,
        )

    def get_task_status(self, task_id: str, *, user_id: str) -> TaskStatusResult:
        """`GET /product/scheduler/status`: the task, per cube and per memory."""
        answer = self._http.envelope(
            "GET", "/product/scheduler/status", params={"user_id": user_id, "task_id": task_id}
        )
        return TaskStatusResult(int(answer["code"]), str(answer["message"]), [_status(t) for t in answer["data"]])

    def wait(self, task_id: str, *, user_id: str, timeout: float = 120.0, poll: float = 0.2) -> TaskStatus:
        """Poll until the task is completed, failed or cancelled; `TaskTimeout` after `timeout` seconds."""
        status = _status(self._http.wait(user_id, task_id, timeout, poll))
        if not status.done:
            raise TaskTimeout(status, timeout)
        return status

    def search(
        self,
        query: str,
        *,
        user_id: str,
        readable_cube_ids: list[str] | None = None,
        top_k: int = 10,
        relativity: float | None = None,
        filter: dict[str, Any] | None = None,
        session_id: str | None = None,
        **options: Any,
    ) -> SearchResult:
        """`POST /product/search` (MemOS's APISearchRequest; other fields of it go in `options`)."""
        given = {
            "readable_cube_ids": readable_cube_ids,
            "relativity": relativity,
            "filter": filter,
            "session_id": session_id,
        }
        body = {"query": query, "user_id": user_id, "top_k": top_k, **options}
        body |= {k: v for k, v in given.items() if v is not None}
        answer = self._http.envelope("POST", "/product/search", body=body)
        data = answer["data"]
        cubes = [_cube_memories(c) for c in data["text_mem"]]
        preferences = [_cube_memories(c) for c in data.get("pref_mem", [])]
        tools = [_cube_memories(c) for c in data.get("tool_mem", [])]
        return SearchResult(int(answer["code"]), str(answer["message"]), cubes, preferences, tools)

    search_memory = search

    def get_memory(
        self,
        *,
        user_id: str,
        mem_cube_id: str | None = None,
        page: int = 1,
        page_size: int = 20,
        filter: dict[str, Any] | None = None,
    ) -> MemoryPage:
        """`POST /product/get_memory`: one page of a cube (by default the user's own), of its
        memories that pass `filter` (the search's filter language) when one is given."""
        body = {"mem_cube_id": mem_cube_id or user_id, "user_id": user_id, "page": page, "page_size": page_size}
        if filter is not None:
            body["filter"] = filter
        data = self._http.request("POST", "/product/get_memory", body=body)
        [cube] = data["text_mem"]
        memories = [_memory(m) for m in cube["memories"]]
        return MemoryPage(cube["cube_id"], memories, int(data["total"]), int(data["page"]), int(data["page_size"]))

    def get_memory_by_id(self, memory_id: str, *, user_id: str) -> Memory:
        return _memory(self._http.get(memory_id, user_id))

    def update_memory(
        self,
        memory_id: str,
        *,
        user_id: str,
        memory: str | None = None,
        tags: list[str] | None = None,
        info: dict[str, Any] | None = None,
        mem_cube_id: str | None = None,
    ) -> Memory:
        """`POST /product/update_memory`: new text (re-embedded), tags or info for one memory, as a
        new version in its history (`undo_memory` reverts it); returns the memory as stored now."""
        edited = self._http.update_memory(
            memory_id, user_id, memory=memory, tags=tags, info=info, mem_cube_id=mem_cube_id
        )
        return _memory(edited)

    def delete_memory(
        self,
        *,
        user_id: str,
        writable_cube_ids: list[str] | None = None,
        memory_ids: list[str] | None = None,
        file_ids: list[str] | None = None,
        filter: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> DeleteResult:
        """`POST /product/delete_memory`: by ids, file ids, filter or session; with none of them, every
        memory `user_id` wrote in the cubes is erased."""
        given = {
            "writable_cube_ids": writable_cube_ids,
            "memory_ids": memory_ids,
            "file_ids": file_ids,
            "filter": filter,
            "session_id": session_id,
        }
        body = {"user_id": user_id} | {k: v for k, v in given.items() if v is not None}
        answer = self._http.envelope("POST", "/product/delete_memory", body=body)
        data = answer["data"]
        return DeleteResult(
            int(answer["code"]), str(answer["message"]), int(data["deleted"]), data["not_found"], data["cubes"]
        )

    def chat(
        self,
        query: str,
        *,
        user_id: str,
        session_id: str | None = None,
        readable_cube_ids: list[str] | None = None,
        writable_cube_ids: list[str] | None = None,
        add_message_on_answer: bool = True,
        **options: Any,
    ) -> ChatResult:
        """`POST /product/chat/complete` (MemOS's APIChatCompleteRequest; other fields go in `options`)."""
        given = {
            "session_id": session_id,
            "readable_cube_ids": readable_cube_ids,
            "writable_cube_ids": writable_cube_ids,
        }
        body = {"query": query, "user_id": user_id, "add_message_on_answer": add_message_on_answer, **options}
        body |= {k: v for k, v in given.items() if v is not None}
        d = self._http.chat(body)
        return ChatResult(d["response"], list(d["memory_ids"]), list(d["references"]), d["session_id"], d["task_id"])


@dataclass(frozen=True)
class ChatResult(_Record):
    """A chat answer: `response` with its citation markers, the cited memory ids, and the add task
    of the exchange (None when it was not added)."""

    response: str
    memory_ids: list[str]
    references: list[dict[str, Any]]
    session_id: str
    task_id: str | None


def _added(d: dict[str, Any]) -> AddedMemory:
    return AddedMemory(d["memory_id"], d["memory"], d["memory_type"], d["cube_id"], d["outcome"], d.get("reason"))


def _status(t: dict[str, Any]) -> TaskStatus:
    cubes = [
        CubeStatus(
            cube_id=c["cube_id"],
            status=c["status"],
            mode=c.get("mode", "fast"),
            outcomes=[
                Outcome(o["memory_id"], o["outcome"], o["memory_type"], o["reason"], list(o.get("related_ids", [])))
                for o in c.get("outcomes", [])
            ],
            notes=list(c.get("notes", [])),
            error=c.get("error"),
            attempts=int(c.get("attempts", 0)),
        )
        for c in t.get("cubes", [])
    ]
    return TaskStatus(t["task_id"], t["status"], t["user_id"], t["created_at"], cubes)


def _memory(m: dict[str, Any]) -> Memory:
    meta: dict[str, Any] = m["metadata"]
    return Memory(
        id=m["id"],
        memory=m["memory"],
        memory_type=meta["memory_type"],
        cube_id=meta["cube_id"],
        user_id=meta["user_id"],
        session_id=meta["session_id"],
        key=meta.get("key", ""),
        tags=list(meta.get("tags", [])),
        custom_tags=list(meta.get("custom_tags", [])),
        info=dict(meta.get("info", {})),
        sources=list(meta.get("sources", [])),
        created_at=meta["created_at"],
        updated_at=meta["updated_at"],
        relativity=meta.get("relativity"),
        metadata=meta,
    )


def _cube_memories(c: dict[str, Any]) -> CubeMemories:
    return CubeMemories(c["cube_id"], [_memory(m) for m in c["memories"]], int(c["total_nodes"]))
