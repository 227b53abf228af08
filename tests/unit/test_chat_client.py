"""The client's chat: the streamed events parsed as they arrive, a refusal before the stream as
`ApiError`, a complete chat not retried on a 5xx, and `memcube chat` printing the answer with
the memories it cites."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from memcube_client import cli
from memcube_client.client import ApiError, MemcubeClient, MemOSClient

END = {
    "response": "Lisbon. [1:mem-a]",
    "memory_ids": ["mem-a"],
    "references": [{"reference_number": 1, "memory_id": "mem-a", "memory": "Alice lives in Lisbon."}],
    "session_id": "s1",
    "task_id": "task-1",
}


def sse(*events: dict[str, Any]) -> httpx.Response:
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


def client(*responses: httpx.Response, seen: list[httpx.Request] | None = None) -> MemcubeClient:
    pending = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        (seen if seen is not None else []).append(request)
        return pending.pop(0)

    return MemcubeClient("http://memcube.test", transport=httpx.MockTransport(handler), sleep=lambda _: None)


def test_chat_stream_yields_each_event_in_order() -> None:
    events: list[dict[str, Any]] = [
        {"type": "reference", "data": []},
        {"type": "text", "data": "Lisbon."},
        {"type": "end", "data": END},
    ]
    got = list(client(sse(*events)).chat_stream({"user_id": "alice", "query": "Where?"}))
    assert [e["type"] for e in got] == ["reference", "text", "end"]


def test_a_refused_stream_raises_api_error_with_the_servers_message() -> None:
    refused = httpx.Response(409, json={"code": 409, "message": "chat needs an LLM", "data": None})
    with pytest.raises(ApiError, match="chat needs an LLM"):
        list(client(refused).chat_stream({"user_id": "alice", "query": "Where?"}))


def test_a_complete_chat_is_not_retried_after_a_5xx_because_it_may_have_added_its_exchange() -> None:
    seen: list[httpx.Request] = []
    down = httpx.Response(503, json={"code": 503, "message": "LLM unavailable"})
    with pytest.raises(ApiError, match="LLM unavailable"):
        client(down, seen=seen).chat({"user_id": "alice", "query": "Where?"})
    assert len(seen) == 1


def test_memos_client_chat_returns_the_answer_and_its_citations() -> None:
    ok = httpx.Response(200, json={"code": 200, "message": "ok", "data": END})
    memos = MemOSClient(base_url="http://memcube.test", transport=httpx.MockTransport(lambda _: ok))
    answer = memos.chat("Where do I live?", user_id="alice", session_id="s1")
    assert (answer.response, answer.memory_ids, answer.task_id) == ("Lisbon. [1:mem-a]", ["mem-a"], "task-1")


def test_memcube_chat_prints_the_streamed_answer_then_the_cited_memories(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []
    events: list[dict[str, Any]] = [
        {"type": "text", "data": "Lisbon. "},
        {"type": "text", "data": "[1:mem-a]"},
        {"type": "end", "data": END},
    ]
    monkeypatch.setattr(cli, "_client", lambda url, key: client(sse(*events), seen=seen))
    done = CliRunner().invoke(cli.chat, ["Where do I live?", "--user", "alice", "--session", "s1", "--no-remember"])
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("Lisbon. [1:mem-a]")
    assert "[1] mem-a: Alice lives in Lisbon." in done.stderr
    sent = json.loads(seen[0].content)
    assert sent == {"user_id": "alice", "query": "Where do I live?", "add_message_on_answer": False, "session_id": "s1"}


def test_memcube_chat_reports_an_answer_that_broke_off(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[dict[str, Any]] = [
        {"type": "text", "data": "Lis"},
        {"type": "error", "code": 503, "content": "timed out"},
    ]
    monkeypatch.setattr(cli, "_client", lambda url, key: client(sse(*events)))
    done = CliRunner().invoke(cli.chat, ["Where?", "--user", "alice"])
    assert done.exit_code == 1 and "the answer broke off: timed out" in done.output
