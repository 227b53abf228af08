"""POST /product/add through the Lambda entry: async and sync adds, idempotency, conflicts,
permissions (all or nothing) and a queue outage."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from memcube.domain.model import TaskState
from memcube.domain.tasks import scoped_task_id
from memcube.wiring import Container
from tests.api.conftest import (
    invoke,
    memory_container_with,
    post_add,
    queue_of,
    serve,
)
from tests.conftest import by_id_event, load_event


def async_event(**changes: Any) -> dict[str, Any]:
    """events/api_add_async.json with its body updated."""
    event = load_event("api_add_async.json")
    event["body"] = json.dumps(json.loads(event["body"]) | changes)
    return event


def test_async_add_is_200_with_one_entry_and_one_queued_message_per_cube(api: Container) -> None:
    reply = invoke(async_event(writable_cube_ids=["alice", "kb-travel"]))
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert set(reply.body) == {"code", "message", "data", "task_id"}
    assert (reply.body["code"], reply.message) == (200, "Memory add task accepted")
    task_id = reply.body["task_id"]
    assert reply.data == [
        {"cube_id": "alice", "task_id": task_id, "status": "waiting"},
        {"cube_id": "kb-travel", "task_id": task_id, "status": "waiting"},
    ]
    sent = queue_of(api).sent
    assert [(m.cube_id, m.group_id, m.task_id) for m in sent] == [
        ("alice", "alice", task_id),
        ("kb-travel", "kb-travel", task_id),
    ]
    for msg in sent:
        assert msg.dedup_id == hashlib.sha256(f"{task_id}\x1f{msg.cube_id}".encode()).hexdigest()
        assert (msg.v, msg.user_id, msg.session_id) == (1, "alice", "trip-planning")
        assert msg.custom_tags == ["relocation", "travel"]
        assert msg.info == {"app_id": "demo-app", "source_doc_id": "chat-42"}
        assert [(m.role, m.chat_time, m.message_id) for m in msg.messages] == [
            ("user", "2025-06-01T09:00:00Z", "m-1"),
            ("assistant", "2025-06-01T09:00:04Z", "m-2"),
            ("user", "2025-06-01T09:01:10Z", "m-3"),
        ]
    record = api.tasks.get_task(task_id)
    assert record is not None
    assert record.status is TaskState.WAITING
    assert [p.cube_id for p in record.parts] == ["alice", "kb-travel"]


def test_sample_async_event_targets_the_users_own_cube(api: Container) -> None:
    reply = invoke(load_event("api_add_async.json"))
    assert reply.status == 200
    assert [d["cube_id"] for d in reply.data] == ["alice"]
    assert [m.group_id for m in queue_of(api).sent] == ["alice"]


def test_repeated_cube_ids_are_one_cube_and_one_message(api: Container) -> None:
    reply = post_add({"user_id": "alice", "messages": "x", "writable_cube_ids": ["kb-1", "alice", "kb-1"]})
    assert [d["cube_id"] for d in reply.data] == ["kb-1", "alice"]
    assert [m.group_id for m in queue_of(api).sent] == ["kb-1", "alice"]


def test_sync_add_round_trip_returns_the_memories_with_their_outcome(embedded_api: Container) -> None:
    reply = invoke(load_event("api_add_sync.json"))
    assert reply.status == 200, reply.body
    assert reply.body["task_id"] == "sync-task-1"
    assert reply.message == "Memory added successfully: 1 added"
    [memory] = reply.data
    assert set(memory) == {"memory", "memory_id", "memory_type", "cube_id", "outcome", "reason"}
    assert (memory["cube_id"], memory["outcome"]) == ("alice", "added")
    assert "[2025-06-01 09:00]\nuser: I moved to Lisbon" in memory["memory"]
    fetched = invoke(by_id_event(memory["memory_id"]))
    assert fetched.status == 200
    assert fetched.data["memory"] == memory["memory"]


def test_sync_add_of_content_the_cube_holds_returns_the_existing_memory_as_duplicate(
    embedded_api: Container,
) -> None:
    first = post_add({"user_id": "alice", "messages": "I like green tea.", "async_mode": "sync", "task_id": "t-a"})
    second = post_add({"user_id": "alice", "messages": "I like  green tea.", "async_mode": "sync", "task_id": "t-b"})
    assert (first.status, second.status) == (200, 200)
    [original] = first.data
    [duplicate] = second.data
    assert duplicate["memory_id"] == original["memory_id"]
    assert duplicate["outcome"] == "duplicate"
    assert duplicate["reason"]
    assert "1 duplicate" in second.message


def test_sync_add_repeated_returns_the_same_memories_without_adding_any(embedded_api: Container) -> None:
    first = invoke(load_event("api_add_sync.json"))
    again = invoke(load_event("api_add_sync.json"))
    assert again.status == 200
    assert again.data == first.data
    assert "repeated request" in again.message
    assert embedded_api.memories.list_memories("alice", 0, 10)[1] == 1


def test_sync_add_that_outlasts_the_wait_is_202_with_the_task_to_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    container = serve(monkeypatch, memory_container_with(sync_timeout_seconds=0.05))  # no worker runs
    reply = invoke(load_event("api_add_sync.json"))
    assert (reply.status, reply.body["code"]) == (202, 202)
    assert reply.body["task_id"] == "sync-task-1"
    assert reply.data == [{"cube_id": "alice", "task_id": "sync-task-1", "status": "waiting"}]
    assert "/product/scheduler/status" in reply.message
    assert len(queue_of(container).sent) == 1


def test_forbidden_personal_cube_is_403_and_nothing_is_queued_for_the_allowed_cube_either(api: Container) -> None:
    assert post_add({"user_id": "alice", "messages": "alice's own note"}).status == 200
    queue_of(api).sent.clear()
    reply = post_add({"user_id": "bob", "messages": "x", "writable_cube_ids": ["kb-shared", "alice"]})
    assert (reply.status, reply.body["code"]) == (403, 403)
    assert reply.message.startswith("writable_cube_ids:")
    assert "'alice'" in reply.message
    assert reply.data is None
    assert queue_of(api).sent == []
    assert api.tasks.list_tasks("bob", 10) == []
    assert not api.directory.is_user("bob")


def test_task_id_reused_with_a_different_body_is_409_and_queues_nothing_new(api: Container) -> None:
    assert post_add({"user_id": "alice", "messages": "one", "task_id": "t-1"}).status == 200
    before = api.tasks.get_task("t-1")
    reply = post_add({"user_id": "alice", "messages": "two", "task_id": "t-1"})
    assert (reply.status, reply.body["code"]) == (409, 409)
    assert reply.message.startswith("task_id:")
    assert len(queue_of(api).sent) == 1
    assert queue_of(api).sent[0].messages[0].content == "one"
    assert api.tasks.get_task("t-1") == before


def test_task_id_resent_with_the_same_body_is_a_replay(api: Container) -> None:
    body = {"user_id": "alice", "messages": "one", "task_id": "t-1"}
    first = post_add(body)
    again = post_add(body)
    assert again.status == 200
    assert again.body["task_id"] == first.body["task_id"] == "t-1"
    assert "repeated request" in again.message
    assert len(queue_of(api).sent) == 1


def test_idempotency_key_replay_returns_the_same_task_id_and_queues_nothing_new(api: Container) -> None:
    body = {"user_id": "alice", "messages": "remember this"}
    first = post_add(body, {"idempotency-key": "req-77"})
    again = post_add(body, {"idempotency-key": "req-77"})
    assert (first.status, again.status) == (200, 200)
    assert again.body["task_id"] == first.body["task_id"]
    assert again.data == first.data
    assert "repeated request" in again.message
    assert len(queue_of(api).sent) == 1
    assert len(api.tasks.list_tasks("alice", 10)) == 1


def test_idempotency_key_reused_for_a_different_body_is_409(api: Container) -> None:
    assert post_add({"user_id": "alice", "messages": "one"}, {"idempotency-key": "req-1"}).status == 200
    reply = post_add({"user_id": "alice", "messages": "two"}, {"idempotency-key": "req-1"})
    assert reply.status == 409
    assert len(queue_of(api).sent) == 1


def test_idempotency_key_bound_to_another_task_id_is_409(api: Container) -> None:
    assert post_add({"user_id": "alice", "messages": "one", "task_id": "t-1"}, {"idempotency-key": "k"}).status == 200
    reply = post_add({"user_id": "alice", "messages": "one", "task_id": "t-2"}, {"idempotency-key": "k"})
    assert reply.status == 409
    assert reply.message.startswith("Idempotency-Key:")
    assert api.tasks.get_task("t-2") is None
    assert len(queue_of(api).sent) == 1


def test_the_same_idempotency_key_of_two_users_is_two_tasks(api: Container) -> None:
    alice = post_add({"user_id": "alice", "messages": "x"}, {"idempotency-key": "k"})
    bob = post_add({"user_id": "bob", "messages": "x"}, {"idempotency-key": "k"})
    assert (alice.status, bob.status) == (200, 200)
    assert alice.body["task_id"] != bob.body["task_id"]


def test_queue_outage_is_503_and_resending_the_same_request_enqueues_it(api: Container) -> None:
    body = {"user_id": "alice", "messages": "x", "task_id": "t-out"}
    queue_of(api).fail_next = 1
    down = post_add(body)
    assert (down.status, down.body["code"]) == (503, 503)
    assert "retry the same request" in down.message
    assert queue_of(api).sent == []
    record = api.tasks.get_task(scoped_task_id("alice", "t-out"))
    assert record is not None
    assert record.status is TaskState.WAITING
    retried = post_add(body)
    assert retried.status == 200
    assert [(m.task_id, m.cube_id) for m in queue_of(api).sent] == [(scoped_task_id("alice", "t-out"), "alice")]
