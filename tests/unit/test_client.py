"""The HTTP client the CLI uses: retries on 429/5xx honouring Retry-After, clean errors on 4xx."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from memcube_client.client import ApiError, CubeTask, MemcubeClient, MemOSClient, TaskTimeout


def answering(*responses: httpx.Response) -> tuple[httpx.MockTransport, list[float], list[httpx.Request]]:
    """A transport answering these responses in turn, the requests it saw, and the sleeps asked for."""
    pending = list(responses)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return pending.pop(0)

    return httpx.MockTransport(handler), [], seen


def client_answering(*responses: httpx.Response) -> tuple[MemcubeClient, list[float], list[httpx.Request]]:
    transport, slept, seen = answering(*responses)
    return MemcubeClient("http://memcube.test/", api_key="k1", transport=transport, sleep=slept.append), slept, seen


def test_a_429_is_retried_after_the_servers_retry_after() -> None:
    ok = httpx.Response(200, json={"code": 200, "message": "ok", "data": {"text_mem": []}})
    client, slept, seen = client_answering(httpx.Response(429, headers={"Retry-After": "3"}, json={}), ok)
    assert client.search({"user_id": "a", "query": "q"}) == {"text_mem": []}
    assert slept == [3.0]
    assert len(seen) == 2
    assert seen[0].headers["authorization"] == "Token k1"


def test_5xx_is_retried_with_backoff_until_the_attempts_run_out() -> None:
    client, slept, seen = client_answering(*[httpx.Response(503, json={"code": 503, "message": "down"})] * 5)
    with pytest.raises(ApiError) as raised:
        client.get("m1", "alice")
    assert (raised.value.status, raised.value.message) == (503, "down")
    assert len(seen) == 5 and len(slept) == 4
    assert all(0 <= s <= 8 for s in slept)


def test_a_4xx_is_not_retried_and_carries_the_envelope_message() -> None:
    client, slept, _ = client_answering(httpx.Response(422, json={"code": 422, "message": "filter: bad", "data": None}))
    with pytest.raises(ApiError, match="422: filter: bad"):
        client.delete({"user_id": "a", "filter": {}})
    assert slept == []


# --- MemOSClient: the MemOS documentation's calls, typed ---------------------------------------


def memos_client(*responses: httpx.Response) -> tuple[MemOSClient, list[float], list[httpx.Request]]:
    transport, slept, seen = answering(*responses)
    return (
        MemOSClient(api_key="k1", base_url="http://memcube.test", transport=transport, sleep=slept.append),
        slept,
        seen,
    )


ACCEPTED = {
    "code": 200,
    "message": "Memory add task accepted",
    "data": [{"cube_id": "kb-r", "task_id": "t1", "status": "waiting"}],
    "task_id": "t1",
}


def status_body(state: str) -> dict[str, Any]:
    outcome = {"memory_id": "m1", "outcome": "added", "memory_type": "UserMemory", "reason": "new content"}
    cube = {"cube_id": "alice", "status": state, "mode": "fast", "outcomes": [outcome], "notes": [], "attempts": 1}
    task = {"task_id": "t1", "status": state, "user_id": "alice", "created_at": "2026-01-01T00:00:00Z", "cubes": [cube]}
    return {"code": 200, "message": "Task status retrieved", "data": [task]}


def test_add_message_sends_the_documented_call_as_a_product_add() -> None:
    client, _, seen = memos_client(httpx.Response(200, json=ACCEPTED))
    res = client.add_message(
        user_id="dev_1",
        writable_cube_ids=["kb-r"],
        messages="The audit process changed.",
        async_mode="async",
        custom_tags=["audit"],
        is_feedback=True,
        info={"source": "portal"},
    )
    [request] = seen
    assert (request.method, request.url.path, request.headers["authorization"]) == ("POST", "/product/add", "Token k1")
    sent = json.loads(request.content)
    assert sent.pop("task_id").startswith("task-")  # made by the client: a retry is the same add
    assert sent == {
        "user_id": "dev_1",
        "messages": "The audit process changed.",
        "async_mode": "async",
        "is_feedback": True,
        "writable_cube_ids": ["kb-r"],
        "custom_tags": ["audit"],
        "info": {"source": "portal"},
    }
    assert res.task_id == "t1" and res.tasks == [CubeTask("kb-r", "t1", "waiting")] and res.memories == []
    assert res["task_id"] == "t1"  # fields read by key too, as MemOS's examples do


def test_a_sync_add_returns_the_memories_it_made() -> None:
    memory = {
        "memory": "m",
        "memory_id": "m1",
        "memory_type": "UserMemory",
        "cube_id": "a",
        "outcome": "added",
        "reason": "new",
    }
    client, _, _ = memos_client(
        httpx.Response(200, json={"code": 200, "message": "ok", "data": [memory], "task_id": "t"})
    )
    [made] = client.add_message(user_id="a", messages="m", async_mode="sync").memories
    assert (made.memory_id, made.outcome) == ("m1", "added")


def test_an_add_retried_after_a_lost_answer_resends_the_same_task_id() -> None:
    client, _, seen = memos_client(httpx.Response(504, json={"code": 504, "message": "timeout"}),
                                   httpx.Response(200, json=ACCEPTED), httpx.Response(200, json=ACCEPTED))  # fmt: skip
    client.add_message(user_id="a", messages="m")
    first, second = (json.loads(r.content)["task_id"] for r in seen)
    assert first == second
    client.add_message(user_id="a", messages="m")
    assert json.loads(seen[-1].content)["task_id"] != first  # another call is another add


def test_add_message_waits_out_a_429_as_the_server_asks() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "2"}, json={"code": 429, "message": "slow down"})
    client, slept, seen = memos_client(limited, httpx.Response(200, json=ACCEPTED))
    assert client.add_message(user_id="a", messages="m").task_id == "t1"
    assert slept == [2.0] and len(seen) == 2


def test_wait_polls_until_the_task_is_finished_and_the_status_reads_as_documented() -> None:
    client, slept, seen = memos_client(
        httpx.Response(200, json=status_body("waiting")),
        httpx.Response(200, json=status_body("in_progress")),
        httpx.Response(200, json=status_body("completed")),
    )
    done = client.wait("t1", user_id="alice")
    assert done.done and done.memory_ids == ["m1"] and done.cubes[0].outcomes[0].outcome == "added"
    assert len(seen) == 3 and len(slept) == 2
    assert seen[0].url.params["task_id"] == "t1" and seen[0].url.params["user_id"] == "alice"
    client, _, _ = memos_client(httpx.Response(200, json=status_body("completed")))
    res = client.get_task_status(user_id="alice", task_id="t1")
    assert res.data[0]["status"] == "completed"


def test_wait_gives_up_after_its_timeout_with_the_last_status() -> None:
    client, _, _ = memos_client(httpx.Response(200, json=status_body("in_progress")))
    with pytest.raises(TaskTimeout, match="task t1 still in_progress after 0s") as raised:
        client.wait("t1", user_id="alice", timeout=0)
    assert raised.value.status.status == "in_progress"


def test_search_results_are_typed_and_best_first() -> None:
    def item(memory_id: str, cube: str, relativity: float) -> dict[str, Any]:
        meta = {"user_id": "a", "session_id": "s", "cube_id": cube, "memory_type": "UserMemory", "key": "k",
                "created_at": "c", "updated_at": "u", "relativity": relativity}  # fmt: skip
        return {"id": memory_id, "memory": f"text {memory_id}", "metadata": meta}

    text_mem = [
        {"cube_id": "a", "memories": [item("m1", "a", 0.5)], "total_nodes": 1},
        {"cube_id": "kb", "memories": [item("m2", "kb", 0.9)], "total_nodes": 1},
    ]
    client, _, seen = memos_client(
        httpx.Response(200, json={"code": 200, "message": "ok", "data": {"text_mem": text_mem}})
    )
    res = client.search("q", user_id="a", readable_cube_ids=["a", "kb"], relativity=0.2, dedup="no")
    assert [(m.id, m.cube_id, m.relativity) for m in res.memories] == [("m2", "kb", 0.9), ("m1", "a", 0.5)]
    sent = json.loads(seen[0].content)
    assert sent == {"query": "q", "user_id": "a", "top_k": 10, "dedup": "no", "readable_cube_ids": ["a", "kb"],
                    "relativity": 0.2}  # fmt: skip


def test_search_results_carry_the_preference_and_tool_memories_apart_from_the_hits() -> None:
    def item(memory_id: str, memory_type: str, **extra: Any) -> dict[str, Any]:
        meta = {"user_id": "a", "session_id": "s", "cube_id": "a", "memory_type": memory_type, "key": "k",
                "created_at": "c", "updated_at": "u", "relativity": 0.5, **extra}  # fmt: skip
        return {"id": memory_id, "memory": f"text {memory_id}", "metadata": meta}

    data = {
        "text_mem": [{"cube_id": "a", "memories": [item("m1", "UserMemory")], "total_nodes": 1}],
        "pref_mem": [{"cube_id": "a", "memories": [item("p1", "PreferenceMemory",
                                                         preference_type="implicit_preference")], "total_nodes": 1}],
        "tool_mem": [{"cube_id": "a", "memories": [item("t1", "ToolTrajectoryMemory")], "total_nodes": 1}],
    }  # fmt: skip
    client, _, _ = memos_client(httpx.Response(200, json={"code": 200, "message": "ok", "data": data}))
    res = client.search("q", user_id="a")
    assert [m.id for m in res.memories] == ["m1"]
    [prefs] = res.preferences
    assert [(m.id, m.metadata["preference_type"]) for m in prefs.memories] == [("p1", "implicit_preference")]
    assert [m.id for c in res.tool_memories for m in c.memories] == ["t1"]


def test_add_file_sends_the_file_inline_under_its_content_id(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# Notes")
    client, _, seen = memos_client(httpx.Response(200, json=ACCEPTED))
    client.add_file(path, user_id="alice", cube_id="kb-r")
    [part] = json.loads(seen[0].content)["messages"]
    digest = hashlib.sha256(b"# Notes").hexdigest()[:24]
    assert part == {
        "type": "file",
        "file": {
            "file_data": "data:text/markdown;base64,IyBOb3Rlcw==",
            "file_id": f"kb-r:{digest}",
            "filename": "notes.md",
        },
    }
    with pytest.raises(ValueError, match=r"upload \.txt, \.md"):
        client.add_file(tmp_path / "a.docx", user_id="alice", cube_id="kb-r")


def test_the_read_routes_send_memos_shapes() -> None:
    ok = {"code": 200, "message": "ok", "data": {"memories": [], "not_found": ["m9"]}}
    client, _, seen = client_answering(
        httpx.Response(200, json=ok),
        httpx.Response(200, json=ok | {"data": [{"cube_id": "alice", "memories": []}]}),
        httpx.Response(200, json=ok | {"data": {"all_tasks_summary": {"total": 3}}}),
    )
    assert client.get_by_ids(["m9"], user_id="alice")["not_found"] == ["m9"]
    assert client.get_all({"user_id": "alice", "memory_type": "text_mem"})[0]["cube_id"] == "alice"
    assert client.all_status("alice")["all_tasks_summary"]["total"] == 3
    assert (seen[0].url.path, json.loads(seen[0].content), seen[0].url.params["user_id"]) == (
        "/product/get_memory_by_ids",
        ["m9"],
        "alice",
    )
    assert (seen[2].method, seen[2].url.path, seen[2].url.params["user_id"]) == (
        "GET",
        "/product/scheduler/allstatus",
        "alice",
    )


def test_wait_idle_sends_memos_query_and_waits_longer_than_the_server() -> None:
    idle = {"code": 200, "message": "idle", "data": {"running_tasks": 0, "timed_out": False}}
    client, _, seen = client_answering(httpx.Response(200, json=idle))
    assert client.wait_idle("alice", task_id="t1", timeout=60, poll=1)["message"] == "idle"
    params = seen[0].url.params
    assert (seen[0].method, params["user_name"], params["task_id"], params["timeout_seconds"]) == (
        "POST",
        "alice",
        "t1",
        "60",
    )
    assert seen[0].extensions["timeout"]["read"] == 70


def test_wait_events_yields_each_server_sent_event_and_a_refusal_raises() -> None:
    frames = 'data: {"status": "running"}\n\n: a comment\n\ndata: {"status": "idle"}\n\n'
    client, _, _ = client_answering(httpx.Response(200, text=frames, headers={"content-type": "text/event-stream"}))
    assert [e["status"] for e in client.wait_events("alice")] == ["running", "idle"]
    refusal = {"code": 404, "message": "task_id: 'x' not found", "data": None}
    client, _, _ = client_answering(httpx.Response(404, json=refusal))
    with pytest.raises(ApiError, match="task_id: 'x' not found"):
        list(client.wait_events("alice", task_id="x"))


def test_get_memory_sends_the_filter() -> None:
    page = {"text_mem": [{"cube_id": "alice", "memories": [], "total_nodes": 0}], "total": 0, "page": 1}
    client, _, seen = memos_client(
        httpx.Response(200, json={"code": 200, "message": "ok", "data": page | {"page_size": 5}})
    )
    client.get_memory(user_id="alice", page_size=5, filter={"custom_tags": "travel"})
    assert json.loads(seen[0].content)["filter"] == {"custom_tags": "travel"}


def test_update_memory_sends_only_the_fields_given_and_returns_the_stored_memory() -> None:
    meta = {
        "memory_type": "UserMemory", "cube_id": "alice", "user_id": "alice", "session_id": "s", "key": "k",
        "tags": ["home"], "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z", "version": 2,
    }  # fmt: skip
    view = {"id": "m1", "memory": "I live in Porto.", "metadata": meta}
    client, _, seen = memos_client(httpx.Response(200, json={"code": 200, "message": "Memory updated", "data": view}))
    memory = client.update_memory("m1", user_id="alice", memory="I live in Porto.", tags=["home"])
    assert (memory.id, memory.memory, memory.tags, memory.metadata["version"]) == (
        "m1",
        "I live in Porto.",
        ["home"],
        2,
    )
    [request] = seen
    assert request.url.path == "/product/update_memory"
    assert json.loads(request.content) == {
        "user_id": "alice", "memory_id": "m1", "memory": "I live in Porto.", "tags": ["home"]
    }  # fmt: skip
