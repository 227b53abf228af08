"""memcube's MCP server driven by the official `mcp` SDK's own client, end to end: `memcube mcp`
spawned over stdio against a real `memcube serve`, and the server's own `/mcp` over streamable
HTTP. Keys are on, so every refusal is the API's own, carried back as a tool error."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from click.testing import CliRunner
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import get_default_environment, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from memcube_local.cli import main
from tests.e2e.conftest import MEMCUBE, ServeFactory, Server

TOOLS = {
    "add_memory",
    "search_memories",
    "get_memory",
    "list_memories",
    "update_memory",
    "delete_memories",
    "task_status",
}
Session = Callable[[ClientSession], Awaitable[None]]


def create_key(data: Path, user_id: str) -> str:
    env = {"MEMCUBE_DATA_DIR": str(data), "MEMCUBE_EMBEDDER": "hash"}
    created = CliRunner().invoke(main, ["keys", "create", "--user", user_id], env=env, catch_exceptions=False)
    assert created.exit_code == 0, created.output
    return created.stdout.strip()


@pytest.fixture
def keyed(serve: ServeFactory, tmp_path: Path) -> tuple[Server, dict[str, str]]:
    """A server with keys required, and a key each for alice and bob."""
    data = tmp_path / "data"
    keys = {user: create_key(data, user) for user in ("alice", "bob")}
    return serve(data_dir=data, env={"MEMCUBE_AUTH": "keys"}), keys


def headers(keys: dict[str, str], user_id: str) -> dict[str, str]:
    """An MCP HTTP client's headers: the user's own key, and the user the tools act as."""
    return {"Authorization": f"Token {keys[user_id]}", "X-Memcube-User-Id": user_id}


@asynccontextmanager
async def stdio_session(url: str, user_id: str, key: str, errlog: Path) -> AsyncIterator[ClientSession]:
    env = get_default_environment() | {"MEMCUBE_USER_ID": user_id, "MEMCUBE_API_KEY": key}
    params = StdioServerParameters(command=str(MEMCUBE), args=["mcp", "--url", url], env=env)
    with errlog.open("w") as err:
        async with stdio_client(params, errlog=err) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def http_session(url: str, headers: dict[str, str], path: str = "/mcp") -> AsyncIterator[ClientSession]:
    async with (
        httpx.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(f"{url}{path}", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def ok(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool expecting success; its structured result."""
    result = await session.call_tool(tool, arguments)
    assert not result.isError, f"{tool}: {text_of(result)}"
    assert result.structuredContent is not None, result
    data: dict[str, Any] = result.structuredContent.get("result", result.structuredContent)
    return data


async def refused(session: ClientSession, tool: str, **arguments: Any) -> str:
    """Call a tool expecting a tool error; its text."""
    result = await session.call_tool(tool, arguments)
    assert result.isError, f"{tool} was not refused: {result}"
    return text_of(result)


def text_of(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


async def completed(session: ClientSession, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = await ok(session, "task_status", task_id=task_id)
        if task["status"] in {"completed", "failed"}:
            return task
        assert time.monotonic() < deadline, f"task {task_id} still {task['status']}"
        await anyio.sleep(0.1)


def api_message(server: Server, key: str, path: str, body: dict[str, Any]) -> str:
    """What the HTTP API itself answers to a refused request (the tool error must carry it)."""
    response = server.http.post(path, json=body, headers={"Authorization": f"Token {key}"})
    assert 400 <= response.status_code < 500, response.text
    message: str = response.json()["message"]
    return message


def test_stdio_tools_add_watch_search_get_and_delete_as_the_configured_key(
    keyed: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, keys = keyed
    errlog = tmp_path / "mcp-stderr.log"

    async def run() -> None:
        async with stdio_session(server.url, "alice", keys["alice"], errlog) as session:
            listed = {tool.name: tool for tool in (await session.list_tools()).tools}
            assert set(listed) == TOOLS
            for tool in listed.values():  # an agent is told what each tool and each parameter is
                assert tool.description and len(tool.description) > 40, tool.name
                for name, schema in tool.inputSchema["properties"].items():
                    assert schema.get("description"), f"{tool.name}.{name} has no description"
            assert listed["search_memories"].inputSchema["required"] == ["query"]
            assert listed["delete_memories"].annotations and listed["delete_memories"].annotations.destructiveHint

            added = await ok(session, "add_memory", text="I moved to Lisbon last May.", tags=["relocation"])
            task = await completed(session, added["task_id"])
            assert task["status"] == "completed", task
            [outcome] = [o for cube in task["cubes"] for o in cube["outcomes"]]
            memory_id = outcome["memory_id"]

            found = await ok(session, "search_memories", query="Where did I move? Lisbon")
            assert memory_id in [m["id"] for m in found["memories"]], found
            hit = next(m for m in found["memories"] if m["id"] == memory_id)
            assert hit["cube_id"] == "alice" and "relocation" in hit["custom_tags"] and hit["relativity"] > 0

            got = await ok(session, "get_memory", memory_id=memory_id)
            assert got["id"] == memory_id and "Lisbon" in got["memory"]
            page = await ok(session, "list_memories")
            assert (page["cube_id"], page["total"]) == ("alice", 1) and page["memories"][0]["id"] == memory_id

            # bob's cube: the API refuses alice, and the tool error carries its message
            body = {"user_id": "alice", "mem_cube_id": "bob", "page": 1, "page_size": 20}
            message = api_message(server, keys["alice"], "/product/get_memory", body)
            error = await refused(session, "list_memories", cube_id="bob")
            assert "403" in error and message in error, (error, message)
            error = await refused(session, "search_memories", query="anything", cube_ids=["bob"])
            assert "403" in error

            deleted = await ok(session, "delete_memories", memory_ids=[memory_id])
            assert deleted == {"deleted": 1, "not_found": []}
            gone = await refused(session, "get_memory", memory_id=memory_id)
            assert "404" in gone

    anyio.run(run)
    assert keys["alice"][-16:] not in errlog.read_text()  # the key (its secret end) is never printed


def test_stdio_server_with_a_revoked_or_wrong_key_reports_the_apis_401(
    keyed: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, keys = keyed
    wrong = keys["alice"][:-4] + "0000"

    async def run() -> None:
        async with stdio_session(server.url, "alice", wrong, tmp_path / "err.log") as session:
            error = await refused(session, "search_memories", query="tea")
            assert "401" in error and "invalid or revoked" in error, error
            error = await refused(session, "add_memory", text="x", messages=[{"role": "user", "content": "y"}])
            assert "exactly one of text and messages" in error

    anyio.run(run)
    assert wrong[-16:] not in (tmp_path / "err.log").read_text()


def test_streamable_http_on_the_embedded_server_acts_as_each_requests_own_key(
    keyed: tuple[Server, dict[str, str]],
) -> None:
    server, keys = keyed
    alice = headers(keys, "alice")

    async def run() -> None:
        async with http_session(server.url, alice) as session:
            assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
            messages = [
                {"role": "user", "content": "My sister Ana is a nurse in Porto.", "chat_time": "2025-06-01T09:00:00Z"},
                {"role": "assistant", "content": "Nice, Porto is lovely."},
            ]
            added = await ok(session, "add_memory", messages=messages, session_id="s1", wait=True)
            [result] = [r for r in added["results"] if r["outcome"] == "added"]
            assert result["cube_id"] == "alice"
            found = await ok(session, "search_memories", query="Ana nurse Porto", top_k=3)
            assert result["memory_id"] in [m["id"] for m in found["memories"]]
            status = await ok(session, "task_status", task_id=added["task_id"])
            assert status["status"] == "completed"

        # no key: the API's 401; a key acting for another user: the API's 403, and nothing is written
        async with http_session(server.url, {"X-Memcube-User-Id": "alice"}) as session:
            error = await refused(session, "search_memories", query="Ana")
            assert "401" in error and "Authorization: missing" in error, error
        as_bob = alice | {"X-Memcube-User-Id": "bob"}
        message = api_message(server, keys["alice"], "/product/add", {"user_id": "bob", "messages": "hi"})
        async with http_session(server.url, as_bob) as session:
            error = await refused(session, "add_memory", text="Bob likes tea.", wait=True)
            assert "403" in error and message in error, (error, message)
        async with http_session(server.url, {"Authorization": alice["Authorization"]}) as session:
            error = await refused(session, "list_memories")
            assert "X-Memcube-User-Id" in error.replace("x-memcube-user-id", "X-Memcube-User-Id")

    anyio.run(run)
    response = server.http.post(
        "/product/get_memory",
        json={"user_id": "bob", "mem_cube_id": "bob", "page": 1, "page_size": 5},
        headers={"Authorization": f"Token {keys['bob']}"},
    )
    assert response.json()["data"]["text_mem"][0]["total_nodes"] == 0, response.text


def test_streamable_http_names_the_user_in_the_url_when_keys_are_off(server: Server) -> None:
    async def run() -> None:
        async with http_session(server.url, {}, "/mcp?user_id=carol") as session:
            added = await ok(session, "add_memory", text="Carol plays the cello.", wait=True)
            assert [r["cube_id"] for r in added["results"]] == ["carol"]
            page = await ok(session, "list_memories", page_size=5)
            assert page["total"] == 1 and "cello" in page["memories"][0]["memory"]
            error = await refused(session, "list_memories", page_size=500)
            assert "page_size" in error

    anyio.run(run)


def test_update_tool_writes_a_new_version_through_the_apis_update_memory(
    keyed: tuple[Server, dict[str, str]],
) -> None:
    server, keys = keyed
    alice = headers(keys, "alice")

    async def run() -> None:
        async with http_session(server.url, alice) as session:
            added = await ok(session, "add_memory", text="My favourite colour is green.", wait=True)
            [memory_id] = [r["memory_id"] for r in added["results"]]
            await ok(session, "update_memory", memory_id=memory_id, memory="My favourite colour is blue.", tags=["c"])
            got = await ok(session, "get_memory", memory_id=memory_id)
            assert "blue" in got["memory"] and "c" in got["metadata"]["tags"] + got["metadata"]["custom_tags"]
            assert "give at least one of memory, tags, info and expiration_date" in await refused(
                session, "update_memory", memory_id=memory_id
            )
            dated = await ok(session, "update_memory", memory_id=memory_id, expiration_date="2099-01-01")
            assert dated["metadata"]["expiration_date"] == "2099-01-02T00:00:00.000Z"

        as_bob = headers(keys, "bob")
        async with http_session(server.url, as_bob) as session:
            error = await refused(session, "update_memory", memory_id=memory_id, memory="hijacked")
            assert "403" in error or "404" in error
        async with http_session(server.url, alice) as session:
            assert "blue" in (await ok(session, "get_memory", memory_id=memory_id))["memory"]

    anyio.run(run)


def test_the_mcp_endpoint_on_loopback_refuses_a_foreign_host_or_origin(server: Server) -> None:
    """A web page reaching 127.0.0.1 through a rebound DNS name sends its own Host and Origin."""
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    accept = {"Accept": "application/json, text/event-stream"}
    rebound = server.http.post("/mcp?user_id=carol", json=hello, headers=accept | {"Host": "evil.example:8000"})
    assert rebound.status_code == 421, rebound.text
    foreign = server.http.post("/mcp?user_id=carol", json=hello, headers=accept | {"Origin": "http://evil.example"})
    assert foreign.status_code == 403, foreign.text
    local = server.http.post("/mcp?user_id=carol", json=hello, headers=accept)
    assert local.status_code == 200 and local.json()["result"]["serverInfo"]["name"] == "memcube", local.text
