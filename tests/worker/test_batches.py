"""SQS FIFO batches through the worker Lambda: partial failures per cube (FIFO group), poison
records, the last allowed delivery, and redelivery."""

from __future__ import annotations

import json
from typing import Any

import pytest

from memcube.domain.model import MemoryItem, TaskState
from memcube.wiring import Container
from tests.conftest import load_event
from tests.worker.conftest import (
    failures,
    index_of,
    invoke_worker,
    message_ids,
    producer_body,
    sqs_event,
    sqs_record,
)

STORED_NOT_INDEXED = (
    "index write failed (ConnectionError: index unavailable); the memories are stored but not yet searchable"
)
BATCH_TASKS = [("batch-t1", "carol"), ("batch-t2", "kb-recipes"), ("batch-t3", "carol"), ("batch-t4", "kb-recipes")]


def index_down_for(container: Container, monkeypatch: pytest.MonkeyPatch, cube_id: str | None) -> None:
    """Make the index's upsert raise for one cube (None: for every cube)."""
    index = index_of(container)
    upsert = index.upsert

    def flaky(items: list[MemoryItem]) -> None:
        if cube_id is None or any(i.metadata.cube_id == cube_id for i in items):
            raise ConnectionError("index unavailable")
        upsert(items)

    monkeypatch.setattr(index, "upsert", flaky)


def with_receive_count(event: dict[str, Any], count: int) -> dict[str, Any]:
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = str(count)
    return event


def test_good_batch_reports_no_failure_and_completes_every_task_part(worker: Container) -> None:
    event = load_event("sqs_fifo_batch.json")
    assert invoke_worker(event) == {"batchItemFailures": []}
    for (task_id, cube), record in zip(BATCH_TASKS, event["Records"], strict=True):
        task = worker.tasks.get_task(task_id)
        assert task is not None
        assert task.status is TaskState.COMPLETED
        [part] = task.parts
        assert (part.cube_id, part.attempts, part.error) == (cube, 1, None)
        [outcome] = part.outcomes
        assert outcome.outcome == "added"
        item = worker.memories.get_memory(outcome.memory_id)
        assert item is not None
        assert (item.metadata.cube_id, item.metadata.task_id) == (cube, task_id)
        assert outcome.memory_id in index_of(worker).ids(cube)  # searchable once the part completes
        assert record["attributes"]["MessageGroupId"] == cube
    assert worker.memories.list_memories("carol", 0, 10)[1] == 2
    assert worker.memories.list_memories("kb-recipes", 0, 10)[1] == 2
    assert worker.dead_letters.list_dead_letters() == []


def test_unknown_task_id_creates_the_task_with_origin_producer(worker: Container) -> None:
    invoke_worker(load_event("sqs_fifo_batch.json"))
    task = worker.tasks.get_task("batch-t1")
    assert task is not None
    assert (task.task.origin, task.task.user_id, task.task.cube_ids) == ("producer", "carol", ["carol"])
    assert task.task.created_at == "2026-11-25T04:59:58.000Z"  # the message's submitted_at


def test_poison_record_is_dead_lettered_acknowledged_and_blocks_nothing(worker: Container) -> None:
    event = load_event("sqs_fifo_batch_with_poison_record.json")
    poison = event["Records"][1]
    assert invoke_worker(event) == {"batchItemFailures": []}
    [letter] = worker.dead_letters.list_dead_letters()
    assert (letter.message_id, letter.body, letter.attempts) == (poison["messageId"], poison["body"], 1)
    assert letter.reason.startswith("invalid queued message: body: Invalid JSON")
    # the records after it in its own group, and the other group, were processed
    for task_id in ("poison-t1", "poison-t3", "poison-t4"):
        task = worker.tasks.get_task(task_id)
        assert task is not None
        assert task.status is TaskState.COMPLETED, task_id
    assert worker.memories.list_memories("dave", 0, 10)[1] == 2
    assert worker.memories.list_memories("kb-running", 0, 10)[1] == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"messages": "not a list"}, "messages"),
        ({"v": 2}, "v"),
        ({"priority": "high"}, "priority"),
        ({"cube_id": "kb/../dave"}, "cube_id"),
        ({"messages": [{"type": "chat", "role": "user", "content": "   "}]}, "messages"),
    ],
    ids=["wrong type", "unknown version", "unknown field", "bad id", "no text"],
)
def test_schema_invalid_record_is_dead_lettered_with_the_field_and_acknowledged(
    worker: Container, change: dict[str, Any], named: str
) -> None:
    event = load_event("sqs_fifo_batch_with_poison_record.json")
    good = json.loads(event["Records"][0]["body"])
    event["Records"][1] = sqs_record(json.dumps(good | {"task_id": "poison-t2"} | change), group="dave", seq=2)
    assert failures(invoke_worker(event)) == []
    [letter] = worker.dead_letters.list_dead_letters()
    assert letter.reason.startswith(f"invalid queued message: {named}"), letter.reason
    assert letter.message_id == event["Records"][1]["messageId"]
    assert worker.tasks.get_task("poison-t2") is None
    assert worker.memories.list_memories("dave", 0, 10)[1] == 2


def test_transient_failure_fails_its_record_and_the_later_ones_of_its_group_only(
    worker: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_down_for(worker, monkeypatch, "carol")
    event = load_event("sqs_fifo_batch.json")
    ids = message_ids(event)
    result = invoke_worker(event)
    assert failures(result) == [ids[0], ids[2]]  # carol's first record, then carol's later one, in order
    for task_id in ("batch-t2", "batch-t4"):  # the other group went on
        task = worker.tasks.get_task(task_id)
        assert task is not None
        assert task.status is TaskState.COMPLETED
    first = worker.tasks.get_task("batch-t1")
    assert first is not None
    assert first.status is TaskState.IN_PROGRESS
    [part] = first.parts
    assert part.attempts == 1
    assert part.error == f"retrying: {STORED_NOT_INDEXED}"
    [outcome] = part.outcomes  # stored: the status says so while the index write waits for its retry
    assert outcome.outcome == "added"
    assert worker.memories.get_memory(outcome.memory_id) is not None
    assert worker.tasks.get_task("batch-t3") is None  # never started: it waits behind batch-t1
    assert worker.dead_letters.list_dead_letters() == []


def test_redelivered_failures_complete_once_the_dependency_is_back(
    worker: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        index_down_for(worker, patch, "carol")
        event = load_event("sqs_fifo_batch.json")
        failed = set(failures(invoke_worker(event)))
    retry = with_receive_count(sqs_event(*(r for r in event["Records"] if r["messageId"] in failed)), 2)
    assert failures(invoke_worker(retry)) == []
    for task_id in ("batch-t1", "batch-t3"):
        task = worker.tasks.get_task(task_id)
        assert task is not None
        assert task.status is TaskState.COMPLETED
        assert task.parts[0].error is None
    first = worker.tasks.get_task("batch-t1")
    assert first is not None
    assert first.parts[0].attempts == 2
    assert worker.memories.list_memories("carol", 0, 10)[1] == 2
    assert index_of(worker).ids("carol") == {i.id for i in worker.memories.list_memories("carol", 0, 10)[0]}


def test_last_allowed_delivery_fails_the_task_part_with_the_reason_and_dead_letters_it(
    worker: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_down_for(worker, monkeypatch, "kb-recipes")
    last = worker.settings.max_receive_count
    event = load_event("sqs_fifo_batch.json")
    event["Records"] = [event["Records"][1]]
    for attempt in range(1, last):  # every attempt before the last one is retried
        with_receive_count(event, attempt)
        assert failures(invoke_worker(event)) == message_ids(event)
    with_receive_count(event, last)
    assert failures(invoke_worker(event)) == []  # acknowledged: SQS must not deliver it again
    record = worker.tasks.get_task("batch-t2")
    assert record is not None
    assert record.status is TaskState.FAILED
    [part] = record.parts
    reason = (
        f"gave up after {last} attempts: {STORED_NOT_INDEXED}; `memcube redrive` indexes them once the index is back"
    )
    assert part.error == reason
    assert part.finished_at is not None
    [letter] = worker.dead_letters.list_dead_letters()
    assert (letter.task_id, letter.cube_id, letter.attempts, letter.reason) == ("batch-t2", "kb-recipes", last, reason)
    assert letter.body == event["Records"][0]["body"]


def test_a_delivery_before_the_last_is_retried_not_dead_lettered(
    worker: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_down_for(worker, monkeypatch, "kb-recipes")
    event = load_event("sqs_fifo_batch.json")
    event["Records"] = [event["Records"][1]]
    with_receive_count(event, worker.settings.max_receive_count - 1)
    assert failures(invoke_worker(event)) == message_ids(event)
    assert worker.dead_letters.list_dead_letters() == []
    record = worker.tasks.get_task("batch-t2")
    assert record is not None
    assert record.status is TaskState.IN_PROGRESS


def test_the_same_batch_delivered_twice_adds_no_duplicate_and_keeps_the_outcomes(worker: Container) -> None:
    first = invoke_worker(load_event("sqs_fifo_batch.json"))
    outcomes = {t: worker.tasks.get_task(t) for t, _ in BATCH_TASKS}
    items = sorted(i.id for i in worker.memories.iter_memories())
    again = invoke_worker(with_receive_count(load_event("sqs_fifo_batch.json"), 2))
    assert first == again == {"batchItemFailures": []}
    assert sorted(i.id for i in worker.memories.iter_memories()) == items
    assert len(items) == 4
    assert {t: worker.tasks.get_task(t) for t, _ in BATCH_TASKS} == outcomes  # a completed part is not redone
    assert set(index_of(worker).docs) == set(items)


def test_the_same_content_in_a_later_message_is_a_duplicate_not_a_second_item(worker: Container) -> None:
    text = "The office moved to the fourth floor."
    records = [
        sqs_record(producer_body("dup-1", "kb-office", "erin", text), group="kb-office", seq=1),
        sqs_record(producer_body("dup-2", "kb-office", "erin", text), group="kb-office", seq=2),
    ]
    assert failures(invoke_worker(sqs_event(*records))) == []
    first, second = worker.tasks.get_task("dup-1"), worker.tasks.get_task("dup-2")
    assert first is not None
    assert second is not None
    [added] = first.parts[0].outcomes
    [duplicate] = second.parts[0].outcomes
    assert (duplicate.outcome, duplicate.memory_id) == ("duplicate", added.memory_id)
    assert worker.memories.list_memories("kb-office", 0, 10)[1] == 1


def test_direct_producer_message_is_processed_like_an_api_add(worker: Container) -> None:
    body = load_event("direct_producer_message.json")
    record = sqs_record(json.dumps(body), group=body["cube_id"], seq=1)
    assert failures(invoke_worker(sqs_event(record))) == []
    task = worker.tasks.get_task(body["task_id"])
    assert task is not None
    assert task.status is TaskState.COMPLETED
    assert (task.task.origin, task.task.user_id, task.task.created_at) == ("producer", "etl-bot", body["submitted_at"])
    [outcome] = task.parts[0].outcomes
    item = worker.memories.get_memory(outcome.memory_id)
    assert item is not None
    assert "priority support within 4 hours" in item.memory
    assert (item.metadata.custom_tags, item.metadata.info) == (body["custom_tags"], body["info"])


def test_a_batch_that_fails_entirely_is_reported_not_raised(worker: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    index_down_for(worker, monkeypatch, None)
    event = load_event("sqs_fifo_batch.json")
    # no BatchProcessingError: a function error would alarm for what is a routine retry
    assert failures(invoke_worker(event)) == message_ids(event)


def test_receipts_skipped_behind_a_failing_message_do_not_use_up_its_attempts(
    worker: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQS counts a FIFO message's receipts while it waits behind a failing one of its cube; only
    attempts that really processed it count toward giving up."""
    index_down_for(worker, monkeypatch, "kb-recipes")
    event = load_event("sqs_fifo_batch.json")
    event["Records"] = [event["Records"][1]]
    with_receive_count(event, worker.settings.max_receive_count + 3)  # inflated by skipped receipts
    assert failures(invoke_worker(event)) == message_ids(event)  # its first real attempt: retried
    assert worker.dead_letters.list_dead_letters() == []


def test_a_record_is_not_started_with_too_little_of_the_invocation_left(worker: Container) -> None:
    """Near the timeout the worker hands records back unstarted (no attempt recorded) instead
    of being cut off mid-LLM-call; the next invocation processes them."""
    from memcube_worker.handler import lambda_handler
    from tests.lambda_support import FakeLambdaContext

    event = load_event("sqs_fifo_batch.json")
    late = FakeLambdaContext(remaining_ms=int(worker.settings.record_budget_seconds * 1000) - 1)
    result = lambda_handler(event, late)
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(message_ids(event))
    assert all(worker.tasks.get_task(task_id) is None for task_id, _ in BATCH_TASKS)  # nothing was started
    assert invoke_worker(event) == {"batchItemFailures": []}
    for task_id, _ in BATCH_TASKS:
        record = worker.tasks.get_task(task_id)
        assert record is not None and record.parts[0].attempts == 1


def test_a_worker_that_cannot_get_ready_starts_no_record(worker: Container) -> None:
    """Readiness before the first record: a cold start that cannot load its model (or reach its
    stores) fails the invocation with every record unstarted, so SQS redelivers the batch and no
    part records an attempt that was never made; once ready, the batch runs once."""
    from memcube_worker.handler import lambda_handler
    from tests.lambda_support import FakeLambdaContext

    def not_ready() -> None:
        raise RuntimeError("model not loadable")

    event = load_event("sqs_fifo_batch.json")
    with pytest.MonkeyPatch.context() as cold:
        cold.setattr(worker, "warm_worker", not_ready)
        with pytest.raises(RuntimeError, match="model not loadable"):
            lambda_handler(event, FakeLambdaContext())
    assert all(worker.tasks.get_task(task_id) is None for task_id, _ in BATCH_TASKS)
    assert invoke_worker(event) == {"batchItemFailures": []}
    records = [worker.tasks.get_task(task_id) for task_id, _ in BATCH_TASKS]
    assert [r.parts[0].attempts if r else None for r in records] == [1] * len(BATCH_TASKS)
