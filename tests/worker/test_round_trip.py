"""Both Lambdas in-process, as deployed: the API Lambda accepts an add, the messages it queued are
delivered to the worker Lambda by a FIFO queue that behaves like SQS with the event source
mapping (failures stay, successes are deleted), and the API Lambda reads the result back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from memcube.domain.model import MemoryItem
from memcube.domain.tasks import scoped_task_id
from memcube.wiring import Container
from tests.api.conftest import invoke, post_add, v2_event
from tests.conftest import load_event
from tests.doubles import InMemoryQueue
from tests.worker.conftest import FifoQueue, index_of


def forward(container: Container, fifo: FifoQueue) -> None:
    """What the API queued, sent on to the FIFO queue."""
    queue = container.queue
    assert isinstance(queue, InMemoryQueue)
    fifo.send_queued(queue.sent)
    queue.sent.clear()


def status(task_id: str, user_id: str = "alice") -> dict[str, Any]:
    reply = invoke(v2_event("GET", "/product/scheduler/status", query=f"user_id={user_id}&task_id={task_id}"))
    assert reply.status == 200, reply.body
    task: dict[str, Any] = reply.data[0]
    assert len(reply.data) == 1
    return task


def test_async_add_is_processed_by_the_worker_and_read_back_through_the_api(worker: Container) -> None:
    event = load_event("api_add_async.json")
    event["body"] = json.dumps(json.loads(event["body"]) | {"writable_cube_ids": ["alice", "kb-travel"]})
    accepted = invoke(event)
    task_id = accepted.body["task_id"]
    fifo = FifoQueue(worker.settings.max_receive_count)
    forward(worker, fifo)
    assert [w.group for w in fifo.waiting] == ["alice", "kb-travel"]
    assert fifo.drain() == 1
    task = status(task_id)
    assert task["status"] == "completed"
    cubes = task["cubes"]
    assert [(c["cube_id"], c["status"], [o["outcome"] for o in c["outcomes"]]) for c in cubes] == [
        ("alice", "completed", ["added"]),
        ("kb-travel", "completed", ["added"]),
    ]
    page = invoke(load_event("api_get_memory.json"))
    [cube] = page.data["text_mem"]
    assert [m["id"] for m in cube["memories"]] == [cubes[0]["outcomes"][0]["memory_id"]]


def test_a_cube_whose_index_is_down_is_retried_to_the_limit_then_failed_while_the_other_completes(
    worker: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = index_of(worker)
    upsert = index.upsert

    def down_for_kb(items: list[MemoryItem]) -> None:
        if any(i.metadata.cube_id == "kb-travel" for i in items):
            raise ConnectionError("index unavailable")
        upsert(items)

    monkeypatch.setattr(index, "upsert", down_for_kb)
    reply = post_add(
        {"user_id": "alice", "messages": "Trip to Porto in May.", "writable_cube_ids": ["alice", "kb-travel"]}
    )
    fifo = FifoQueue(worker.settings.max_receive_count)
    forward(worker, fifo)
    assert fifo.drain() == worker.settings.max_receive_count
    assert fifo.redriven == []  # the worker acknowledged it on its last delivery, with the reason recorded
    task = status(reply.body["task_id"])
    assert task["status"] == "failed"
    cubes = {c["cube_id"]: c for c in task["cubes"]}
    assert cubes["alice"]["status"] == "completed"
    assert cubes["kb-travel"]["status"] == "failed"
    reason = (
        f"gave up after {worker.settings.max_receive_count} attempts: index write failed "
        "(ConnectionError: index unavailable); the memories are stored but not yet searchable; "
        "`memcube redrive` indexes them once the index is back"
    )
    assert cubes["kb-travel"]["error"] == reason
    assert cubes["kb-travel"]["attempts"] == worker.settings.max_receive_count
    assert [o["outcome"] for o in cubes["kb-travel"]["outcomes"]] == ["added"]  # stored, though not indexed
    [letter] = worker.dead_letters.list_dead_letters()
    assert (letter.cube_id, letter.reason) == ("kb-travel", reason)


def test_a_cubes_adds_are_applied_in_order_across_a_retry(worker: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    index = index_of(worker)
    upsert = index.upsert
    applied: list[str] = []
    failures_left = [1]

    def fails_once(items: list[MemoryItem]) -> None:
        if failures_left[0]:
            failures_left[0] -= 1
            raise ConnectionError("index unavailable")
        upsert(items)
        applied.extend(i.metadata.task_id for i in items)

    monkeypatch.setattr(index, "upsert", fails_once)
    for n in (1, 2, 3):
        assert post_add({"user_id": "alice", "messages": f"Update {n}.", "task_id": f"t-{n}"}).status == 200
    fifo = FifoQueue(worker.settings.max_receive_count)
    forward(worker, fifo)
    assert fifo.drain() == 2
    assert applied == [scoped_task_id("alice", f"t-{n}") for n in (1, 2, 3)]
    assert all(status(f"t-{n}")["status"] == "completed" for n in (1, 2, 3))
