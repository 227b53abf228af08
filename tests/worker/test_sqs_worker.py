"""The worker Lambda entry (powertools SqsFifoPartialProcessor) with SQS FIFO events."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from memcube.adapters.inmemory import InMemoryIndex, InMemoryStore
from memcube.domain.model import MemoryItem, TaskState
from memcube.wiring import Container
from tests.conftest import load_event
from tests.lambda_support import invoke_worker, serving


@pytest.fixture
def worker(memory_container: Container) -> Iterator[Container]:
    with serving(memory_container) as container:
        yield container


def store_of(container: Container) -> InMemoryStore:
    store = container.store
    assert isinstance(store, InMemoryStore)
    return store


def failures(result: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


def test_good_batch_is_fully_processed_and_producer_tasks_are_created(worker: Container) -> None:
    result = invoke_worker(load_event("sqs_fifo_batch.json"))
    assert failures(result) == []
    store = store_of(worker)
    for task_id, cube in [("batch-t1", "carol"), ("batch-t2", "kb-recipes"), ("batch-t3", "carol")]:
        record = store.get_task(task_id)
        assert record is not None
        assert record.task.origin == "producer"
        assert record.status is TaskState.COMPLETED
        [part] = record.parts
        assert part.cube_id == cube
        assert [o.outcome for o in part.outcomes] == ["added"]
    assert store.list_memories("carol", 0, 10)[1] == 2


def test_poison_record_is_dead_lettered_and_blocks_nothing(worker: Container) -> None:
    result = invoke_worker(load_event("sqs_fifo_batch_with_poison_record.json"))
    assert failures(result) == []  # acknowledged: a malformed message can never succeed
    store = store_of(worker)
    [letter] = store.list_dead_letters()
    assert letter.message_id.endswith("000000000002")
    assert letter.reason.startswith("invalid queued message")
    assert store.list_memories("dave", 0, 10)[1] == 2
    assert store.list_memories("kb-running", 0, 10)[1] == 1


def test_transient_failure_fails_its_record_and_the_rest_of_its_group_only(
    worker: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = worker.index
    assert isinstance(index, InMemoryIndex)
    original = index.upsert

    def flaky(items: list[MemoryItem]) -> None:
        if items and items[0].metadata.cube_id == "carol":
            raise ConnectionError("index unavailable")
        original(items)

    monkeypatch.setattr(index, "upsert", flaky)
    result = invoke_worker(load_event("sqs_fifo_batch.json"))
    ids = [r["messageId"] for r in load_event("sqs_fifo_batch.json")["Records"]]
    assert failures(result) == [ids[0], ids[2]]  # carol's first record and carol's later one
    store = store_of(worker)
    kb = store.get_task("batch-t2")
    assert kb is not None
    assert kb.status is TaskState.COMPLETED
    first = store.get_task("batch-t1")
    assert first is not None
    assert first.status is TaskState.IN_PROGRESS
    assert "index unavailable" in (first.parts[0].error or "")


def test_last_allowed_delivery_marks_the_task_failed_with_the_reason(
    worker: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(_: list[MemoryItem]) -> None:
        raise ConnectionError("index unavailable")

    monkeypatch.setattr(worker.index, "upsert", down)
    event = load_event("sqs_fifo_batch.json")
    event["Records"] = event["Records"][1:2]
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(worker.settings.max_receive_count)
    assert failures(invoke_worker(event)) == []
    record = store_of(worker).get_task("batch-t2")
    assert record is not None
    assert record.status is TaskState.FAILED
    assert "gave up after 5 attempts: ConnectionError: index unavailable" in (record.parts[0].error or "")
    [letter] = store_of(worker).list_dead_letters()
    assert letter.task_id == "batch-t2"


def test_redelivered_batch_adds_no_duplicate(worker: Container) -> None:
    event = load_event("sqs_fifo_batch.json")
    invoke_worker(copy.deepcopy(event))
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = "2"
    assert failures(invoke_worker(event)) == []
    store = store_of(worker)
    assert store.list_memories("carol", 0, 10)[1] == 2
    assert store.list_memories("kb-recipes", 0, 10)[1] == 1
    task = store.get_task("batch-t1")
    assert task is not None
    assert [o.outcome for o in task.parts[0].outcomes] == ["added"]


def test_direct_producer_message_is_processed_like_an_api_add(worker: Container) -> None:
    event = load_event("sqs_fifo_batch.json")
    body = load_event("direct_producer_message.json")
    event["Records"] = [event["Records"][0] | {"body": json.dumps(body)}]
    event["Records"][0]["attributes"]["MessageGroupId"] = body["cube_id"]
    assert failures(invoke_worker(event)) == []
    record = store_of(worker).get_task(body["task_id"])
    assert record is not None
    assert record.status is TaskState.COMPLETED
    assert record.task.user_id == "etl-bot"


def test_a_batch_that_fails_entirely_is_reported_not_raised(worker: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(_: list[MemoryItem]) -> None:
        raise ConnectionError("index unavailable")

    monkeypatch.setattr(worker.index, "upsert", down)
    event = load_event("sqs_fifo_batch.json")
    result = invoke_worker(event)  # no BatchProcessingError: a function error would alarm for a retry
    assert failures(result) == [r["messageId"] for r in event["Records"]]
