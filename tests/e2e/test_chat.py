"""Chat on a real `memcube serve` with `MEMCUBE_LLM=openai` against the local OpenAI fake, which
streams its answers: `/product/chat/complete` and `/product/chat/stream` over HTTP, the exchange
added through the worker, the session's messages read back, and an LLM that stalls part-way
ending the stream with an error event within the configured timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ServeFactory, Server
from tests.fakes import FakeOpenAI, Reply, memory_llm, running_fake_openai


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    with running_fake_openai() as fake:
        fake.rule = memory_llm("You live ", "in Lisbon. ")
        yield fake


@pytest.fixture
def server(serve: ServeFactory, fake_llm: FakeOpenAI) -> Server:
    env = {
        "MEMCUBE_LLM": "openai",
        "MEMCUBE_LLM_BASE_URL": fake_llm.base_url,
        "MEMCUBE_LLM_MODEL": "qwen2.5-7b-instruct",
        "MEMCUBE_LLM_MAX_RETRIES": "0",
        "MEMCUBE_LLM_TIMEOUT_SECONDS": "1",
    }
    return serve(env=env)


def events(server: Server, body: dict[str, Any]) -> list[dict[str, Any]]:
    with server.http.stream("POST", "/product/chat/stream", json=body) as response:
        assert response.status_code == 200, response.read()
        return [json.loads(line.removeprefix("data: ")) for line in response.iter_lines() if line]


def test_chat_over_http_cites_the_memory_adds_the_exchange_and_keeps_the_messages(server: Server) -> None:
    added = server.add_ok({"user_id": "alice", "messages": "I moved to Lisbon last May.", "session_id": "s-1"})
    [outcome] = server.wait("alice", added["task_id"])["cubes"][0]["outcomes"]
    body = {"user_id": "alice", "query": "Where do I live?", "session_id": "s-1", "relativity": 0.05, "threshold": 0}
    answer = server.http.post("/product/chat/complete", json=body).json()
    assert answer["code"] == 200, answer
    assert answer["data"]["response"].startswith("You live in Lisbon.")
    assert answer["data"]["memory_ids"] == [outcome["memory_id"]]
    assert server.wait("alice", answer["data"]["task_id"])["status"] == "completed"

    streamed = events(server, body | {"add_message_on_answer": False})
    assert streamed[0]["type"] == "reference" and streamed[-1]["type"] == "end"
    assert "".join(e["data"] for e in streamed if e["type"] == "text").startswith("You live in Lisbon.")

    got = server.http.post("/product/get_message", json={"user_id": "alice", "session_id": "s-1"}).json()
    said = [(m["role"], m["content"][:19]) for m in got["data"]["messages"]]  # the add's text is no chat message
    assert said == [("user", "Where do I live?"), ("assistant", "You live in Lisbon.")] * 2


def test_an_llm_that_stalls_part_way_ends_the_stream_with_an_error_event_within_the_timeout(
    server: Server, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script["/v1/chat/completions"].append(Reply(chunks=["You ", "live"], chunk_delay=30.0))
    started = time.monotonic()
    streamed = events(server, {"user_id": "alice", "query": "Where do I live?", "session_id": "s-2"})
    assert time.monotonic() - started < 10
    assert streamed[-1]["type"] == "error" and streamed[-1]["code"] == 503, streamed
    assert [e["type"] for e in streamed[:-1]] == ["reference", "text"]
    got = server.http.post("/product/get_message", json={"user_id": "alice", "session_id": "s-2"}).json()
    assert got["data"]["messages"] == []  # nothing recorded, nothing added
    assert server.http.get("/product/scheduler/status", params={"user_id": "alice"}).json()["data"] == []


def test_without_an_llm_the_server_refuses_chat_naming_the_setting(serve: ServeFactory) -> None:
    plain = serve()
    answer = plain.http.post("/product/chat/stream", json={"user_id": "alice", "query": "hi"})
    assert answer.status_code == 409 and "MEMCUBE_LLM" in answer.json()["message"]
