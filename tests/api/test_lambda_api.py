"""The API Lambda entry (Mangum, API Gateway HTTP API v2 events): routes, envelope, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from memcube.adapters.inmemory import InMemoryQueue, InMemoryStore
from memcube.domain import limits
from memcube.domain.model import TaskState
from memcube.wiring import Container
from tests.conftest import load_event
from tests.lambda_support import http_event, invoke_api, serving


@pytest.fixture
def api(memory_container: Container) -> Iterator[Container]:
    with serving(memory_container) as container:
        yield container


@pytest.fixture
def embedded_api(embedded_container: Container) -> Iterator[Container]:
    with serving(embedded_container) as container:
        yield container


def queue_of(container: Container) -> InMemoryQueue:
    queue = container.queue
    assert isinstance(queue, InMemoryQueue)
    return queue


def store_of(container: Container) -> InMemoryStore:
    store = container.store
    assert isinstance(store, InMemoryStore)
    return store


def add(body: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    return invoke_api(http_event("POST", "/product/add", body=body, headers=headers))


def test_async_add_event_returns_the_envelope_with_one_entry_per_cube(api: Container) -> None:
    event = load_event("api_add_async.json")
    body = json.loads(event["body"]) | {"writable_cube_ids": ["alice", "kb-travel"]}
    event["body"] = json.dumps(body)
    status, payload = invoke_api(event)
    assert status == 200
    assert payload["code"] == 200
    task_id = payload["task_id"]
    assert payload["data"] == [
        {"cube_id": "alice", "task_id": task_id, "status": "waiting"},
        {"cube_id": "kb-travel", "task_id": task_id, "status": "waiting"},
    ]
    sent = queue_of(api).sent
    assert [(m.group_id, m.task_id) for m in sent] == [("alice", task_id), ("kb-travel", task_id)]
    assert sent[0].session_id == "trip-planning"
    assert sent[0].custom_tags == ["relocation", "travel"]


def test_sync_add_event_returns_the_stored_memories(embedded_api: Container) -> None:
    status, payload = invoke_api(load_event("api_add_sync.json"))
    assert status == 200, payload
    assert payload["task_id"] == "sync-task-1"
    [memory] = payload["data"]
    assert memory["outcome"] == "added"
    assert memory["cube_id"] == "alice"
    assert "I moved to Lisbon" in memory["memory"]
    status, again = invoke_api(load_event("api_add_sync.json"))
    assert status == 200
    assert again["data"][0]["memory_id"] == memory["memory_id"]
    assert "repeated request" in again["message"]


def test_status_event_reports_each_cube_and_memory(embedded_api: Container) -> None:
    invoke_api(load_event("api_add_sync.json"))
    status, payload = invoke_api(load_event("api_status.json"))
    assert status == 200
    [task] = payload["data"]
    assert (task["task_id"], task["status"]) == ("sync-task-1", "completed")
    [cube] = task["cubes"]
    assert cube["outcomes"][0]["outcome"] == "added"


@pytest.mark.parametrize("query", ["user_id=alice&task_id=nope", "user_id=mallory&task_id=sync-task-1"])
def test_unknown_or_foreign_task_is_404(embedded_api: Container, query: str) -> None:
    invoke_api(load_event("api_add_sync.json"))
    status, payload = invoke_api(http_event("GET", "/product/scheduler/status", query=query))
    assert status == 404
    assert payload == {
        "code": 404,
        "message": "task_id: " + repr(query.split("task_id=")[1]) + " not found",
        "data": None,
    }


def test_get_memory_by_id_and_by_cube_page(embedded_api: Container) -> None:
    _, added = invoke_api(load_event("api_add_sync.json"))
    memory_id = added["data"][0]["memory_id"]
    event = load_event("api_get_memory_by_id.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/product/get_memory/{memory_id}"
    status, one = invoke_api(event)
    assert status == 200
    assert one["data"]["id"] == memory_id
    assert "embedding" not in one["data"]["metadata"]
    assert [s["message_id"] for s in one["data"]["metadata"]["sources"]] == ["m-1", "m-2", "m-3"]
    status, page = invoke_api(load_event("api_get_memory.json"))
    assert status == 200
    [cube] = page["data"]["text_mem"]
    assert (cube["cube_id"], cube["total_nodes"], [m["id"] for m in cube["memories"]]) == ("alice", 1, [memory_id])


def test_invalid_event_is_422_naming_the_field(api: Container) -> None:
    status, payload = invoke_api(load_event("api_add_invalid.json"))
    assert status == 422
    assert payload["message"] == "messages[0].content: must be a string or a list"
    assert payload["data"] is None
    assert queue_of(api).sent == []


BAD_BODIES: list[tuple[str, dict[str, Any], int, str]] = [
    ("wrong type", {"user_id": "alice", "messages": "x", "custom_tags": "a"}, 422, "custom_tags"),
    ("unknown field", {"user_id": "alice", "messages": "x", "colour": "red"}, 422, "colour: unknown field"),
    ("missing user", {"messages": "x"}, 422, "user_id: required"),
    ("no text", {"user_id": "alice", "messages": []}, 422, "nothing to remember"),
    ("bad id", {"user_id": "alice/../bob", "messages": "x"}, 422, "user_id"),
    ("too many cubes", {"user_id": "a", "messages": "x", "writable_cube_ids": [f"c{i}" for i in range(17)]}, 422, "16"),
    (
        "too many tags",
        {"user_id": "a", "messages": "x", "custom_tags": [f"t{i}" for i in range(33)]},
        422,
        "custom_tags",
    ),
    ("deep info", {"user_id": "a", "messages": "x", "info": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, 422, "info"),
    (
        "too many messages",
        {"user_id": "a", "messages": [{"role": "user", "content": "x"}] * (limits.MAX_MESSAGES + 1)},
        422,
        "messages",
    ),
    ("not an object", [1, 2, 3], 422, "body"),
    ("bad role", {"user_id": "a", "messages": [{"role": "robot", "content": "x"}]}, 422, "messages[0].role"),
]


@pytest.mark.parametrize(("case", "body", "code", "needle"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_bodies_are_4xx_in_the_envelope_and_queue_nothing(
    api: Container, case: str, body: Any, code: int, needle: str
) -> None:
    status, payload = add(body)
    assert status == code, payload
    assert payload["code"] == code
    assert needle in payload["message"]
    assert payload["data"] is None
    assert queue_of(api).sent == []
    assert store_of(api).list_tasks("alice", 10) == []


def test_broken_json_is_400(api: Container) -> None:
    status, payload = invoke_api(http_event("POST", "/product/add", body='{"user_id": "alice", '))
    assert (status, payload["code"]) == (400, 400)
    assert payload["message"].startswith("body: not valid JSON")
    assert queue_of(api).sent == []


def test_invalid_utf8_is_400(api: Container) -> None:
    status, payload = invoke_api(
        http_event("POST", "/product/add", raw_body=b'{"user_id": "alice", "messages": "caf\xe9"}')
    )
    assert status == 400
    assert "not valid UTF-8" in payload["message"]
    assert queue_of(api).sent == []


def test_wrong_content_type_is_415_and_queues_nothing(api: Container) -> None:
    event = http_event("POST", "/product/add", body="user_id=alice", headers={"content-type": "text/plain"})
    status, payload = invoke_api(event)
    assert status == 415
    assert "content-type" in payload["message"]
    assert queue_of(api).sent == []


def test_empty_body_is_400(api: Container) -> None:
    status, payload = invoke_api(http_event("POST", "/product/add", body=""))
    assert status == 400
    assert payload["message"] == "body: empty; send a JSON object"


def test_body_over_the_limit_is_413_before_parsing(api: Container) -> None:
    huge = json.dumps({"user_id": "alice", "messages": "x" * (limits.MAX_BODY_BYTES + 10)})
    status, payload = invoke_api(http_event("POST", "/product/add", body=huge))
    assert status == 413
    assert "at most" in payload["message"]
    assert queue_of(api).sent == []


def test_forbidden_cube_writes_nothing_even_for_the_allowed_cube(api: Container) -> None:
    assert add({"user_id": "alice", "messages": "alice's note"})[0] == 200
    queue_of(api).sent.clear()
    status, payload = add({"user_id": "bob", "messages": "x", "writable_cube_ids": ["kb-shared", "alice"]})
    assert status == 403
    assert "'alice'" in payload["message"]
    assert queue_of(api).sent == []
    assert store_of(api).list_tasks("bob", 10) == []


def test_task_id_reused_for_another_body_is_409(api: Container) -> None:
    assert add({"user_id": "alice", "messages": "one", "task_id": "t-1"})[0] == 200
    status, payload = add({"user_id": "alice", "messages": "two", "task_id": "t-1"})
    assert status == 409
    assert "task_id" in payload["message"]
    assert len(queue_of(api).sent) == 1


def test_idempotency_key_replay_returns_the_same_task_and_queues_nothing_new(api: Container) -> None:
    body = {"user_id": "alice", "messages": "remember this"}
    _, first = add(body, **{"idempotency-key": "req-77"})
    status, second = add(body, **{"idempotency-key": "req-77"})
    assert status == 200
    assert second["task_id"] == first["task_id"]
    assert "repeated request" in second["message"]
    assert len(queue_of(api).sent) == 1
    record = store_of(api).get_task(first["task_id"])
    assert record is not None
    assert record.status is TaskState.WAITING


def test_unknown_route_is_404_in_the_envelope(api: Container) -> None:
    status, payload = invoke_api(http_event("GET", "/product/nothing-here"))
    assert status == 404
    assert payload["code"] == 404
