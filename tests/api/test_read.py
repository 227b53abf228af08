"""The read side through the Lambda entry: task status, one memory by id, a cube page by page."""

from __future__ import annotations

import json

import pytest

from memcube.domain.model import FeedbackStep
from memcube.domain.tasks import scoped_task_id
from memcube.wiring import Container
from tests.api.conftest import invoke, post_add, v2_event
from tests.conftest import by_id_event, load_event
from tests.lambda_support import call


def test_status_of_a_completed_sync_task_lists_each_cube_and_memory(embedded_api: Container) -> None:
    added = invoke(load_event("api_add_sync.json"))
    reply = invoke(load_event("api_status.json"))
    assert reply.status == 200
    assert (reply.body["code"], reply.message) == (200, "Task status retrieved")
    [task] = reply.data
    assert (task["task_id"], task["status"], task["user_id"]) == ("sync-task-1", "completed", "alice")
    [cube] = task["cubes"]
    assert (cube["cube_id"], cube["status"], cube["error"], cube["attempts"]) == ("alice", "completed", None, 1)
    [outcome] = cube["outcomes"]
    assert outcome["memory_id"] == added.data[0]["memory_id"]
    assert (outcome["outcome"], outcome["reason"]) == ("added", "new content")


def test_status_of_an_async_task_not_yet_processed_is_waiting(api: Container) -> None:
    task_id = post_add({"user_id": "alice", "messages": "x", "writable_cube_ids": ["alice", "kb-1"]}).body["task_id"]
    reply = invoke(v2_event("GET", "/product/scheduler/status", query=f"user_id=alice&task_id={task_id}"))
    assert reply.status == 200
    [task] = reply.data
    assert task["status"] == "waiting"
    assert [(c["cube_id"], c["status"], c["outcomes"]) for c in task["cubes"]] == [
        ("alice", "waiting", []),
        ("kb-1", "waiting", []),
    ]


def test_status_never_shows_a_feedback_plan_being_applied(api: Container) -> None:
    task_id = post_add({"user_id": "alice", "messages": "x", "is_feedback": True}).body["task_id"]
    [part] = api.tasks.get_task(task_id).parts  # type: ignore[union-attr]
    plan = [FeedbackStep(operation="ADD", memory="Alice has a dog called Rex.")]
    api.tasks.put_task_part(task_id, part.model_copy(update={"feedback_plan": plan}))
    reply = invoke(v2_event("GET", "/product/scheduler/status", query=f"user_id=alice&task_id={task_id}"))
    assert reply.status == 200 and "Rex" not in json.dumps(reply.body), reply.body
    code, hosted = call("POST", "/api/openmem/v1/get/status", body={"task_id": task_id})
    assert code == 200 and "Rex" not in json.dumps(hosted), hosted


@pytest.mark.parametrize(
    "query",
    ["user_id=alice&task_id=no-such-task", "user_id=mallory&task_id=sync-task-1"],
    ids=["unknown task", "another user's task"],
)
def test_status_is_404_for_an_unknown_task_and_for_another_users_task(embedded_api: Container, query: str) -> None:
    invoke(load_event("api_add_sync.json"))
    reply = invoke(v2_event("GET", "/product/scheduler/status", query=query))
    task_id = query.split("task_id=")[1]
    # Identical answers: a task id of someone else does not leak that it exists.
    assert reply.status == 404
    assert reply.body == {"code": 404, "message": f"task_id: {task_id!r} not found", "data": None}


def test_status_without_a_task_id_lists_only_the_users_tasks_newest_first(api: Container) -> None:
    for task_id in ("t-1", "t-2"):
        assert post_add({"user_id": "alice", "messages": task_id, "task_id": task_id}).status == 200
    assert post_add({"user_id": "bob", "messages": "x", "task_id": "t-bob"}).status == 200
    reply = invoke(v2_event("GET", "/product/scheduler/status", query="user_id=alice"))
    assert reply.status == 200
    assert [t["task_id"] for t in reply.data] == ["t-2", "t-1"]


def test_get_memory_by_id_returns_the_item_with_memos_fields_and_no_embedding(embedded_api: Container) -> None:
    [added] = invoke(load_event("api_add_sync.json")).data
    reply = invoke(by_id_event(added["memory_id"]))
    assert reply.status == 200
    assert reply.message == "Memory retrieved successfully"
    item = reply.data
    assert item["id"] == added["memory_id"]
    meta = item["metadata"]
    assert "embedding" not in meta
    assert (meta["user_id"], meta["cube_id"], meta["session_id"], meta["status"]) == (
        "alice",
        "alice",
        "trip-planning",
        "activated",
    )
    assert meta["custom_tags"] == ["relocation", "travel"]
    assert meta["info"] == {"app_id": "demo-app", "source_doc_id": "chat-42"}
    assert meta["task_id"] == scoped_task_id("alice", "sync-task-1")  # the stored id: scoped to its user
    assert [(s["role"], s["chat_time"], s["message_id"]) for s in meta["sources"]] == [
        ("user", "2025-06-01T09:00:00Z", "m-1"),
        ("assistant", "2025-06-01T09:00:04Z", "m-2"),
        ("user", "2025-06-01T09:01:10Z", "m-3"),
    ]


def test_get_memory_by_unknown_id_is_404(api: Container) -> None:
    reply = invoke(load_event("api_get_memory_by_id.json"))
    assert reply.status == 404
    assert reply.body["data"] is None
    assert reply.message.startswith("memory_id:")


def test_another_users_personal_memory_is_not_returned(embedded_api: Container) -> None:
    invoke(load_event("api_add_sync.json"))
    event = load_event("api_get_memory_by_id.json")
    event["rawQueryString"] = "user_id=mallory"
    event["queryStringParameters"] = {"user_id": "mallory"}
    reply = invoke(event)
    assert reply.status == 404  # like an unknown id: another cube's memory ids do not leak
    assert reply.data is None
    assert "Lisbon" not in reply.message


def test_get_memory_pages_through_a_cube(embedded_api: Container) -> None:
    texts = [f"Alice's fact number {n}: she owns {n} bicycles." for n in range(5)]
    for text in texts:
        assert post_add({"user_id": "alice", "messages": text, "async_mode": "sync"}).status == 200
    seen: list[str] = []
    for page, size in [(1, 2), (2, 2), (3, 1), (4, 0)]:
        event = load_event("api_get_memory.json")
        event["body"] = json.dumps(json.loads(event["body"]) | {"page": page, "page_size": 2})
        reply = invoke(event)
        assert reply.status == 200, reply.body
        data = reply.data
        no_prefs = [{"cube_id": "alice", "memories": [], "total_nodes": 0}]  # a fast-mode cube has none
        assert (data["page"], data["page_size"], data["total"], data["pref_mem"]) == (page, 2, 5, no_prefs)
        [cube] = data["text_mem"]
        assert (cube["cube_id"], cube["total_nodes"], len(cube["memories"])) == ("alice", 5, size)
        assert all("embedding" not in m["metadata"] for m in cube["memories"])
        seen += [m["memory"] for m in cube["memories"]]
    assert sorted(seen) == sorted(texts)


def test_get_memory_refuses_an_invalid_filter_naming_its_key_and_writes_nothing(embedded_api: Container) -> None:
    event = load_event("api_get_memory.json")
    event["body"] = json.dumps(json.loads(event["body"]) | {"filter": {"tags": {"near": "travel"}}})
    reply = invoke(event)
    assert reply.status == 422
    assert "filter.tags" in reply.message and "unknown operator 'near'" in reply.message
    assert list(embedded_api.memories.iter_memories()) == []
    event["body"] = json.dumps(json.loads(event["body"]) | {"filter": None})
    assert invoke(event).status == 200  # an absent filter (the SDK sends null) is no filter


def test_another_users_cube_page_is_403(embedded_api: Container) -> None:
    invoke(load_event("api_add_sync.json"))
    event = load_event("api_get_memory.json")
    event["body"] = json.dumps(json.loads(event["body"]) | {"user_id": "mallory"})
    reply = invoke(event)
    assert reply.status == 403
    assert reply.data is None
