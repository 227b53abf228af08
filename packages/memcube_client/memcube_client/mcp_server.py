"""memcube as a Model Context Protocol server: tools an agent calls to add, search, read, update
and delete memories and to watch an add's task, built on the official `mcp` SDK (FastMCP).

Every tool is one call of memcube's HTTP API with the configured identity (a user id and the
`Authorization` the API expects), so every check is the API's own: the server has none of its
own, and a refusal comes back as a tool error carrying the API's message. `memcube mcp` serves
it over stdio against a server URL; `memcube serve` mounts it at `/mcp` (streamable HTTP), where
each MCP request's own `Authorization` is passed through (`memcube_local.mcp_http`).

`mcp` is imported here, so import this module only where MCP is served (it is not light).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import quote

import anyio
import httpx
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from memcube_client.client import RETRYABLE, ApiError, _backoff, envelope_of

INSTRUCTIONS = """\
memcube is a long-term memory for this conversation's user. Search it (search_memories) before
answering questions that may depend on what the user said before; add what is worth remembering
(add_memory): facts, preferences, plans, corrections. Adds are processed in the background: the
answer has a task_id to check with task_status (or pass wait=true). Memories live in cubes: the
user's own cube has the user's id; others (knowledge bases) are readable or writable when shared."""

MEMORY_FIELDS = (
    "cube_id",
    "memory_type",
    "status",
    "tags",
    "custom_tags",
    "info",
    "session_id",
    "event_time",
    "created_at",
    "updated_at",
    "version",
    "relativity",
)
"""What a listed or found memory shows (get_memory shows everything the API returns)."""


@dataclass(frozen=True)
class Identity:
    """Who the tools act as: the user id put in every request, and the `Authorization` header
    value sent with it (None with keys off). The credential never shows in a repr or a log."""

    user_id: str
    authorization: str | None = field(default=None, repr=False)


Resolve = Callable[["Context[Any, Any, Any]"], Identity]
"""The identity of one tool call (fixed for stdio; from the MCP request for HTTP)."""


class MemcubeApi:
    """memcube's HTTP API for the tools: the envelope's JSON, or `ApiError` with its message.
    429 and 5xx answers are retried with backoff (honouring `Retry-After`), as the client SDK does."""

    def __init__(self, http: httpx.AsyncClient, retries: int = 3) -> None:
        self._http = http
        self._retries = retries

    async def call(
        self,
        who: Identity,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": who.authorization} if who.authorization else {}
        for attempt in range(self._retries + 1):
            response = await self._http.request(method, path, json=body, params=params, headers=headers)
            if response.status_code in RETRYABLE and attempt < self._retries:
                await anyio.sleep(_backoff(attempt, response.headers.get("retry-after")))
                continue
            return envelope_of(response)
        raise AssertionError("unreachable: the last attempt returns or raises")


class ChatMessage(BaseModel):
    """One message of a conversation to remember."""

    role: Literal["user", "assistant", "system", "tool"] = Field(description="Who said it.")
    content: str = Field(description="What was said.")
    chat_time: str | None = Field(
        default=None, description="When it was said (ISO 8601, e.g. 2025-06-01T09:00:00Z); dates the memory."
    )


CubeId = Annotated[
    str | None,
    Field(description="The cube (memory space) to use; default: the user's own cube (the user's id)."),
]


def build_server(
    api: MemcubeApi,
    resolve: Resolve,
    *,
    host: str = "127.0.0.1",
    transport_security: TransportSecuritySettings | None = None,
) -> FastMCP:
    """The MCP server with memcube's tools, each acting as `resolve(ctx)` through `api`."""
    server = FastMCP(
        "memcube",
        instructions=INSTRUCTIONS,
        host=host,
        stateless_http=True,
        json_response=True,
        streamable_http_path="/mcp",
        transport_security=transport_security,
    )
    tools = MemoryTools(api, resolve)
    reads = ToolAnnotations(readOnlyHint=True)
    writes = ToolAnnotations(readOnlyHint=False, destructiveHint=False)
    server.add_tool(tools.add_memory, title="Remember", annotations=writes)
    server.add_tool(tools.search_memories, title="Search memories", annotations=reads)
    server.add_tool(tools.get_memory, title="Get a memory", annotations=reads)
    server.add_tool(tools.list_memories, title="List a cube's memories", annotations=reads)
    server.add_tool(tools.update_memory, title="Edit a memory", annotations=writes)
    server.add_tool(tools.delete_memories, title="Forget memories", annotations=ToolAnnotations(destructiveHint=True))
    server.add_tool(tools.task_status, title="Check an add", annotations=reads)
    return server


class MemoryTools:
    """The tools: each is one API call as the caller `resolve` gives (its docstring and typed,
    described parameters are what the agent sees)."""

    def __init__(self, api: MemcubeApi, resolve: Resolve) -> None:
        self._api = api
        self._resolve = resolve

    async def _call(self, who: Identity, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return await self._api.call(who, method, path, **kwargs)
        except ApiError as exc:
            raise ToolError(f"memcube refused ({exc.status}): {exc.message}") from exc
        except httpx.HTTPError as exc:
            raise ToolError(f"memcube is unreachable: {type(exc).__name__}: {exc}") from exc

    async def add_memory(
        self,
        ctx: Context[Any, Any, Any],
        *,
        text: Annotated[str | None, Field(description="Text to remember (give this or messages).")] = None,
        messages: Annotated[
            list[ChatMessage] | None, Field(description="A conversation to remember (give this or text).")
        ] = None,
        cube_id: CubeId = None,
        session_id: Annotated[str | None, Field(description="The conversation's id, to group memories.")] = None,
        tags: Annotated[list[str] | None, Field(description="Your own tags for the new memories.")] = None,
        info: Annotated[dict[str, Any] | None, Field(description="Free key-value data kept with them.")] = None,
        mode: Annotated[
            Literal["fast", "fine"] | None,
            Field(description="fast: store text windows; fine: extract facts with the server's LLM (if it has one)."),
        ] = None,
        wait: Annotated[
            bool, Field(description="true: wait until stored and return the memories; false: return a task_id.")
        ] = False,
    ) -> dict[str, Any]:
        """Remember text or a conversation for the user. memcube extracts memories from it,
        merges near-duplicates and lets corrections supersede older facts. Returns the task_id
        (check it with task_status) or, with wait=true, the memories and what happened to each
        (added, duplicate, merged, updated)."""
        if (text is None) == (messages is None):
            raise ToolError("give exactly one of text and messages")
        content: Any = text if messages is None else [m.model_dump(exclude_none=True) for m in messages]
        given = {
            "writable_cube_ids": [cube_id] if cube_id else None,
            "session_id": session_id,
            "custom_tags": tags,
            "info": info,
            "mode": mode,
        }
        who = self._resolve(ctx)
        body = {"user_id": who.user_id, "messages": content, "async_mode": "sync" if wait else "async"}
        body |= {"task_id": f"task-{uuid.uuid4().hex}"}  # a retried request is the same add, never a second one
        body |= {k: v for k, v in given.items() if v is not None}
        answer = await self._call(who, "POST", "/product/add", body=body)
        return {"task_id": answer.get("task_id"), "message": answer.get("message"), "results": answer.get("data")}

    async def search_memories(
        self,
        ctx: Context[Any, Any, Any],
        *,
        query: Annotated[str, Field(description="What to look for, in natural language.")],
        cube_ids: Annotated[
            list[str] | None, Field(description="Cubes to search; default: the user's own cube.")
        ] = None,
        top_k: Annotated[int, Field(ge=1, le=100, description="At most this many memories per cube.")] = 10,
        filter: Annotated[
            dict[str, Any] | None,
            Field(
                description='MemOS filter on metadata, e.g. {"and": [{"tags": {"contains": "work"}}, '
                '{"created_at": {"gte": "2025-01-01"}}]}.'
            ),
        ] = None,
        session_id: Annotated[str | None, Field(description="Rank this conversation's memories higher.")] = None,
    ) -> dict[str, Any]:
        """Find the user's memories relevant to a query, best first, with their relativity
        (0-1) and ids (for get_memory, update_memory, delete_memories)."""
        given = {"readable_cube_ids": cube_ids, "filter": filter, "session_id": session_id}
        who = self._resolve(ctx)
        body = {"query": query, "user_id": who.user_id, "top_k": top_k} | {
            k: v for k, v in given.items() if v is not None
        }
        answer = await self._call(who, "POST", "/product/search", body=body)
        data = answer.get("data") or {}
        hits = [_brief(m) for cube in data.get("text_mem", []) for m in cube.get("memories", [])]
        hits.sort(key=lambda m: -float(m.get("relativity") or 0.0))
        return {"memories": hits, "notes": data.get("notes", [])}

    async def get_memory(
        self,
        ctx: Context[Any, Any, Any],
        *,
        memory_id: Annotated[str, Field(description="The memory's id (from search_memories or list_memories).")],
    ) -> dict[str, Any]:
        """One memory with all its metadata (tags, info, sources, history of versions, times)."""
        who = self._resolve(ctx)
        answer = await self._call(
            who, "GET", f"/product/get_memory/{quote(memory_id, safe='')}", params={"user_id": who.user_id}
        )
        data: dict[str, Any] = answer.get("data") or {}
        return data

    async def list_memories(
        self,
        ctx: Context[Any, Any, Any],
        *,
        cube_id: CubeId = None,
        page: Annotated[int, Field(ge=1, description="The page, from 1.")] = 1,
        page_size: Annotated[int, Field(ge=1, le=100, description="Memories per page.")] = 20,
    ) -> dict[str, Any]:
        """A page of a cube's active memories, oldest first, with the cube's total count."""
        who = self._resolve(ctx)
        body = {"user_id": who.user_id, "mem_cube_id": cube_id or who.user_id, "page": page, "page_size": page_size}
        answer = await self._call(who, "POST", "/product/get_memory", body=body)
        data = answer.get("data") or {}
        cubes = data.get("text_mem") or [{}]
        return {
            "cube_id": cubes[0].get("cube_id", body["mem_cube_id"]),
            "total": cubes[0].get("total_nodes", 0),
            "page": page,
            "page_size": page_size,
            "memories": [_brief(m) for m in cubes[0].get("memories", [])],
        }

    async def update_memory(
        self,
        ctx: Context[Any, Any, Any],
        *,
        memory_id: Annotated[str, Field(description="The memory to edit.")],
        memory: Annotated[str | None, Field(description="Its new text.")] = None,
        tags: Annotated[list[str] | None, Field(description="Its new tags (replace the old ones).")] = None,
        info: Annotated[dict[str, Any] | None, Field(description="Its new info (replaces the old).")] = None,
        cube_id: Annotated[str | None, Field(description="The memory's cube, if you know it.")] = None,
        expiration_date: Annotated[
            str | None, Field(description="When it expires (ISO 8601 date or time, in the future).")
        ] = None,
    ) -> dict[str, Any]:
        """Correct or retag one memory, or set when it expires. The edit is a new version in the
        memory's history (the old text is kept and can be restored); give at least one of memory,
        tags, info, expiration_date."""
        if memory is None and tags is None and info is None and expiration_date is None:
            raise ToolError("give at least one of memory, tags, info and expiration_date")
        given = {
            "mem_cube_id": cube_id,
            "memory": memory,
            "tags": tags,
            "info": info,
            "expiration_date": expiration_date,
        }
        who = self._resolve(ctx)
        body = {"user_id": who.user_id, "memory_id": memory_id} | {k: v for k, v in given.items() if v is not None}
        answer = await self._call(who, "POST", "/product/update_memory", body=body)
        data: dict[str, Any] = answer.get("data") or {}
        return data

    async def delete_memories(
        self,
        ctx: Context[Any, Any, Any],
        *,
        memory_ids: Annotated[list[str], Field(min_length=1, description="The memories to erase, by id.")],
        cube_ids: Annotated[
            list[str] | None, Field(description="Cubes they are in; default: the user's own cube.")
        ] = None,
    ) -> dict[str, Any]:
        """Erase memories for good (store, search index and history). Returns how many were
        deleted and the ids that were not found."""
        who = self._resolve(ctx)
        body: dict[str, Any] = {"user_id": who.user_id, "memory_ids": memory_ids}
        if cube_ids is not None:
            body["writable_cube_ids"] = cube_ids
        answer = await self._call(who, "POST", "/product/delete_memory", body=body)
        data = answer.get("data") or {}
        return {"deleted": data.get("deleted", 0), "not_found": data.get("not_found", [])}

    async def task_status(
        self,
        ctx: Context[Any, Any, Any],
        *,
        task_id: Annotated[str, Field(description="The task_id add_memory returned.")],
    ) -> dict[str, Any]:
        """An add's progress: status (waiting, in_progress, completed, failed, cancelled) and,
        per cube, what happened to each memory (added, duplicate, merged, updated) with its id."""
        who = self._resolve(ctx)
        params = {"user_id": who.user_id, "task_id": task_id}
        answer = await self._call(who, "GET", "/product/scheduler/status", params=params)
        [task] = answer.get("data") or [{}]
        result: dict[str, Any] = task
        return result


def _brief(item: dict[str, Any]) -> dict[str, Any]:
    """A memory as a list shows it: its id and text, and the metadata an agent reasons with."""
    meta = item.get("metadata") or {}
    return {"id": item.get("id"), "memory": item.get("memory")} | {k: meta[k] for k in MEMORY_FIELDS if k in meta}


def serve_stdio(url: str, user_id: str, api_key: str | None) -> None:
    """`memcube mcp`: the tools over stdio, acting as `user_id` with `api_key` against `url`.
    stdout carries the protocol: nothing else is written to it."""
    identity = Identity(user_id, f"Token {api_key}" if api_key else None)

    async def run() -> None:
        async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=35.0) as http:
            await build_server(MemcubeApi(http), lambda _: identity).run_stdio_async()

    anyio.run(run)
