"""The MCP tools in-process: the official SDK's client in memory, the tools calling the app
through an httpx ASGI transport. Input the tool's schema refuses never reaches the API; input
the API refuses comes back as a tool error with its message; either way nothing is written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
from mcp import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.types import TextContent

from memcube.wiring import Container
from memcube_api.app import create_app
from memcube_client.mcp_server import Identity, MemcubeApi, build_server
from tests.api.conftest import assert_nothing_written, memory_container_with, queue_of

Scenario = Callable[[ClientSession], Awaitable[None]]


def run_tools(container: Container, scenario: Scenario, identity: Identity | None = None) -> None:
    """Run `scenario` against the tools acting as `identity` (alice, keys off) over `container`."""
    who = identity or Identity("alice")

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(lambda: container))
        async with httpx.AsyncClient(transport=transport, base_url="http://memcube") as http:
            server = build_server(MemcubeApi(http), lambda _: who)
            async with create_connected_server_and_client_session(server) as session:
                await scenario(session)

    anyio.run(main)


async def error_of(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.isError, result
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def test_input_the_tool_schema_refuses_is_a_tool_error_naming_the_parameter_and_writes_nothing(
    api: Container,
) -> None:
    async def scenario(session: ClientSession) -> None:
        assert "top_k" in await error_of(session, "search_memories", query="tea", top_k=500)
        assert "page_size" in await error_of(session, "list_memories", page_size=0)
        assert "role" in await error_of(session, "add_memory", messages=[{"role": "robot", "content": "hi"}])
        assert "memory_ids" in await error_of(session, "delete_memories", memory_ids=[])
        assert "exactly one of text and messages" in await error_of(session, "add_memory")
        assert "at least one of memory, tags, info and expiration_date" in await error_of(
            session, "update_memory", memory_id="m1"
        )
        error = await error_of(session, "update_memory", memory_id="m1", expiration_date="2001-01-01")
        assert "memcube refused (422)" in error and "expiration_date" in error, error

    run_tools(api, scenario)
    assert_nothing_written(api)


def test_a_refusal_of_the_api_is_a_tool_error_with_its_status_and_message_and_writes_nothing() -> None:
    container = memory_container_with(auth="keys")
    _, alice = container.keys.create("alice")
    container.keys.create("bob")

    async def as_alice(session: ClientSession) -> None:
        error = await error_of(session, "add_memory", text="hi", tags=["x" * 500])
        assert "memcube refused (422)" in error and "custom_tags" in error, error
        error = await error_of(session, "add_memory", text="hi", cube_id="bob")
        assert "memcube refused (403)" in error and "bob" in error, error
        error = await error_of(session, "list_memories", cube_id="bob")
        assert "memcube refused (403)" in error, error

    async def without_key(session: ClientSession) -> None:
        error = await error_of(session, "search_memories", query="tea")
        assert "memcube refused (401): Authorization: missing" in error, error

    run_tools(container, as_alice, Identity("alice", f"Token {alice}"))
    run_tools(container, without_key, Identity("alice"))
    assert_nothing_written(container)


def test_an_async_add_is_queued_as_the_configured_user_with_its_fields_and_a_task_to_watch(api: Container) -> None:
    async def scenario(session: ClientSession) -> None:
        messages = [{"role": "user", "content": "I moved to Lisbon.", "chat_time": "2025-06-01T09:00:00Z"}]
        result = await session.call_tool(
            "add_memory", {"messages": messages, "session_id": "s1", "tags": ["move"], "info": {"app": "x"}}
        )
        assert not result.isError and result.structuredContent is not None, result
        added = result.structuredContent
        [part] = added["results"]
        assert (part["cube_id"], part["status"]) == ("alice", "waiting")
        status = await session.call_tool("task_status", {"task_id": added["task_id"]})
        assert status.structuredContent and status.structuredContent["status"] == "waiting"
        assert "404" in await error_of(session, "task_status", task_id="task-unknown")

    run_tools(api, scenario)
    [sent] = queue_of(api).sent
    assert (sent.user_id, sent.cube_id, sent.session_id, sent.custom_tags, sent.info) == (
        "alice",
        "alice",
        "s1",
        ["move"],
        {"app": "x"},
    )
    assert [(m.role, m.content) for m in sent.messages] == [("user", "I moved to Lisbon.")]
