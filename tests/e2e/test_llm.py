"""`memcube serve` with `MEMCUBE_LLM=openai` against a local fake of the OpenAI API: settings,
wiring, the adapter and the domain together. Fine mode extracts, the LLM judge supersedes a
contradicted fact, undo restores it, and an LLM outage is retried with the reason in the status."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ServeFactory, Server
from tests.fakes import FakeOpenAI, Reply, Seen, running_fake_openai


def scripted(seen: Seen) -> Reply | None:
    """Extraction: one fact per city the conversation names; judge: a different city contradicts."""
    system, user = (m["content"] for m in seen.body["messages"])
    if "extract long-term memories" in system:
        cities = [c for c in ("Lisbon", "Porto") if c in user]
        items = [{"key": "home", "memory_type": "UserMemory", "value": f"The user lives in {c}.", "tags": ["home"]}
                 for c in cities]  # fmt: skip
        return _chat(json.dumps({"memory_list": items, "summary": "where the user lives"}))
    if "free of duplicates and stale facts" in system:
        ask = json.loads(user)
        relation = "redundant" if all(e["memory"] == ask["new"] for e in ask["existing"]) else "contradictory"
        judgements = [{"id": e["id"], "relation": relation, "reason": "the user moved"} for e in ask["existing"]]
        return _chat(json.dumps({"judgements": judgements}))
    return None


def _chat(content: str) -> Reply:
    body: dict[str, Any] = {
        "id": "chatcmpl-e2e",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "qwen2.5-7b-instruct",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    return Reply(body=body)


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    with running_fake_openai() as fake:
        fake.rule = scripted
        yield fake


@pytest.fixture
def llm_server(serve: ServeFactory, fake_llm: FakeOpenAI) -> Server:
    env = {
        "MEMCUBE_LLM": "openai",
        "MEMCUBE_LLM_BASE_URL": fake_llm.base_url,
        "MEMCUBE_LLM_MODEL": "qwen2.5-7b-instruct",
        "MEMCUBE_LLM_API_KEY": "sk-e2e",
        "MEMCUBE_LLM_MAX_RETRIES": "0",
        "MEMCUBE_MAX_RECEIVE_COUNT": "2",
    }
    return serve(env=env)


def outcomes(server: Server, task_id: str) -> list[dict[str, Any]]:
    [part] = server.wait("alice", task_id)["cubes"]
    assert part["mode"] == "fine"
    return list(part["outcomes"])


def test_fine_mode_and_the_llm_judge_supersede_a_moved_city_and_undo_restores_it(
    llm_server: Server, fake_llm: FakeOpenAI
) -> None:
    first = llm_server.add_ok({"user_id": "alice", "messages": "I live in Lisbon."})  # async: fine by default
    [lisbon] = outcomes(llm_server, first["task_id"])
    assert lisbon["outcome"] == "added"
    second = llm_server.add_ok({"user_id": "alice", "messages": "I moved to Porto last week."})
    moved = {o["outcome"]: o for o in outcomes(llm_server, second["task_id"])}
    assert set(moved) == {"updated", "archived"}
    assert moved["archived"]["memory_id"] == lisbon["memory_id"] and "the user moved" in moved["archived"]["reason"]
    chats = fake_llm.requests("/v1/chat/completions")
    assert chats[0].headers["authorization"] == "Bearer sk-e2e"
    assert chats[0].body["response_format"] == {"type": "json_object"}

    query = {"user_id": "alice", "query": "Where does the user live?", "relativity": 0.0}
    found = llm_server.http.post("/product/search", json=query).json()["data"]["text_mem"][0]["memories"]
    assert [m["memory"] for m in found] == ["The user lives in Porto."]
    assert found[0]["metadata"]["background"] == "where the user lives"

    undo = {"user_id": "alice", "memory_id": moved["updated"]["memory_id"]}
    assert llm_server.http.post("/product/undo_memory", json=undo).json()["data"]["restored"] == [lisbon["memory_id"]]
    found = llm_server.http.post("/product/search", json=query).json()["data"]["text_mem"][0]["memories"]
    assert [m["memory"] for m in found] == ["The user lives in Lisbon."]


def test_an_llm_outage_is_retried_with_the_reason_then_dead_lettered(llm_server: Server, fake_llm: FakeOpenAI) -> None:
    fake_llm.rule = lambda seen: Reply(503, {"error": {"message": "model overloaded", "type": "server_error"}})
    task_id = llm_server.add_ok({"user_id": "alice", "messages": "I live in Lisbon."})["task_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        [part] = llm_server.status("alice", task_id)["cubes"]
        if part["status"] == "failed":
            break
        time.sleep(0.2)
    assert part["status"] == "failed"
    assert "LLMUnavailable" in part["error"] and "503" in part["error"] and "model overloaded" in part["error"]
    assert "sk-e2e" not in part["error"]
