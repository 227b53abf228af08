"""Direct producers get no more than the API gives: the worker re-checks cube permissions, and a
message can neither join nor fail another user's task."""

from __future__ import annotations

import json

import pytest

from memcube.domain.messages import QueuedAdd
from memcube.domain.model import Principal, TaskState
from memcube.domain.tasks import scoped_task_id
from memcube.wiring import Container
from memcube_api.schemas.product import AddRequest, to_command
from tests.conftest import load_event
from tests.doubles import InMemoryQueue
from tests.worker.conftest import failures, invoke_worker, producer_body, sqs_event, sqs_record


def test_message_for_another_users_personal_cube_is_dead_lettered_and_writes_nothing(worker: Container) -> None:
    assert failures(invoke_worker(load_event("sqs_fifo_batch.json"))) == []  # carol is now a known user
    forged = sqs_record(producer_body("forged-1", "carol", "mallory", "Carol owes me money."), group="carol", seq=9)
    assert failures(invoke_worker(sqs_event(forged))) == []  # acknowledged: it can never succeed
    [letter] = worker.dead_letters.list_dead_letters()
    assert letter.message_id == forged["messageId"]
    assert "may not write ['carol']" in letter.reason
    assert worker.tasks.get_task("forged-1") is None
    assert not worker.directory.is_user("mallory")
    assert all("owes me money" not in i.memory for i in worker.memories.iter_memories())


def test_forbidden_message_in_a_batch_blocks_neither_its_group_nor_the_others(worker: Container) -> None:
    worker.directory.register_user("carol")
    event = load_event("sqs_fifo_batch.json")
    forged = sqs_record(producer_body("forged-1", "carol", "mallory", "x"), group="carol", seq=9)
    event["Records"].insert(1, forged)
    assert failures(invoke_worker(event)) == []
    assert len(worker.dead_letters.list_dead_letters()) == 1
    for task_id in ("batch-t1", "batch-t2", "batch-t3", "batch-t4"):
        task = worker.tasks.get_task(task_id)
        assert task is not None
        assert task.status is TaskState.COMPLETED


def test_message_joining_another_users_task_is_dead_lettered_and_the_task_is_untouched(worker: Container) -> None:
    invoke_worker(load_event("sqs_fifo_batch.json"))
    before = worker.tasks.get_task("batch-t1")
    hijack = sqs_record(producer_body("batch-t1", "kb-open", "erin", "Injected."), group="kb-open", seq=9)
    assert failures(invoke_worker(sqs_event(hijack))) == []
    [letter] = worker.dead_letters.list_dead_letters()
    assert "belongs to another user" in letter.reason
    assert worker.tasks.get_task("batch-t1") == before
    assert worker.memories.list_memories("kb-open", 0, 10)[1] == 0


def api_task(container: Container, task_id: str) -> QueuedAdd:
    """Accept an add the way the API does (task recorded, one message queued); return the message."""
    cmd = to_command(AddRequest(user_id="alice", messages="I moved to Lisbon.", task_id=task_id))
    container.add.submit(cmd, Principal(user_id="alice"))
    queue = container.queue
    assert isinstance(queue, InMemoryQueue)
    [msg] = queue.sent
    return msg


def test_invalid_message_for_its_users_waiting_task_fails_that_part_with_the_reason(worker: Container) -> None:
    msg = api_task(worker, "t-api")
    broken = json.loads(msg.model_dump_json()) | {"messages": "not a list"}
    assert failures(invoke_worker(sqs_event(sqs_record(json.dumps(broken), group="alice", seq=1)))) == []
    record = worker.tasks.get_task(scoped_task_id("alice", "t-api"))
    assert record is not None
    assert record.status is TaskState.FAILED
    assert (record.parts[0].error or "").startswith("invalid queued message: messages")


def test_invalid_message_from_another_user_cannot_fail_someone_elses_task(worker: Container) -> None:
    msg = api_task(worker, "t-api")
    forged = json.loads(msg.model_dump_json()) | {"user_id": "mallory", "messages": "not a list"}
    assert failures(invoke_worker(sqs_event(sqs_record(json.dumps(forged), group="alice", seq=1)))) == []
    assert len(worker.dead_letters.list_dead_letters()) == 1
    record = worker.tasks.get_task(scoped_task_id("alice", "t-api"))
    assert record is not None
    assert record.status is TaskState.WAITING
    assert record.parts[0].error is None


def test_a_producer_task_may_span_several_cubes(worker: Container) -> None:
    records = [
        sqs_record(producer_body("etl-9", cube, "etl-bot", f"Fact for {cube}."), group=cube, seq=n)
        for n, cube in enumerate(["kb-a", "kb-b"], start=1)
    ]
    assert failures(invoke_worker(sqs_event(*records))) == []
    task = worker.tasks.get_task("etl-9")
    assert task is not None
    assert task.status is TaskState.COMPLETED
    assert sorted(p.cube_id for p in task.parts) == ["kb-a", "kb-b"]


def test_a_message_in_the_wrong_fifo_group_is_dead_lettered_not_processed(worker: Container) -> None:
    event = load_event("sqs_fifo_batch.json")
    event["Records"] = [event["Records"][0]]
    event["Records"][0]["attributes"]["MessageGroupId"] = "some-other-cube"
    assert invoke_worker(event)["batchItemFailures"] == []
    [letter] = worker.dead_letters.list_dead_letters()
    assert "MessageGroupId 'some-other-cube' is not the message's cube_id" in letter.reason
    assert worker.memories.list_memories("carol", 0, 10)[1] == 0


def test_a_claim_check_that_cannot_be_resolved_is_dead_lettered_at_once(
    worker: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memcube.adapters.sqs_queue import ClaimCheckError

    def gone(_: str) -> str:
        raise ClaimCheckError("claim check claims/t/c/abc.json is gone")

    monkeypatch.setattr(worker, "resolve_body", gone)
    event = load_event("sqs_fifo_batch.json")
    event["Records"] = [event["Records"][0]]
    assert failures(invoke_worker(event)) == []  # never retried: it cannot succeed
    [letter] = worker.dead_letters.list_dead_letters()
    assert letter.reason == "claim check claims/t/c/abc.json is gone"
