"""The add use case on in-memory ports: task, one message per cube, worker outcomes, idempotency."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pydantic import ValidationError

from memcube.adapters.hash_embedder import HashEmbedder
from memcube.domain.errors import Conflict, Forbidden, InvalidRequest, Unavailable
from memcube.domain.ingest import Delivery, Verdict, item_id
from memcube.domain.model import Principal, TaskState
from memcube.domain.tasks import Submission, fingerprint
from memcube_api.schemas.product import AddRequest, to_command
from tests.doubles import InMemoryIndex, InMemoryQueue
from tests.doubles import open_stores as memory_stores
from tests.services import add_service, ingest_service


class World:
    def __init__(self) -> None:
        self.stores = memory_stores()
        self.queue = InMemoryQueue()
        self.index = InMemoryIndex()
        self.add = add_service(self.stores, self.queue)
        self.ingest = ingest_service(self.stores, self.index, HashEmbedder(64))

    def submit(self, key: str | None = None, **body: Any) -> str:
        return self.send(key, **body).public_id

    def send(self, key: str | None = None, **body: Any) -> Submission:
        cmd = to_command(AddRequest.model_validate({"user_id": "alice", "messages": "I like tea", **body}))
        return self.add.submit(cmd, Principal(user_id=cmd.user_id), key)

    def drain(self, attempt: int = 1) -> list[Verdict]:
        sent, self.queue.sent = self.queue.sent, []
        return [self.ingest.handle(Delivery(m.model_dump_json(), f"m{i}", attempt, 5)) for i, m in enumerate(sent)]


@pytest.fixture
def world() -> World:
    return World()


def test_one_message_per_target_cube_grouped_by_cube(world: World) -> None:
    task_id = world.submit(writable_cube_ids=["alice", "kb-1"])
    assert [(m.task_id, m.group_id) for m in world.queue.sent] == [(task_id, "alice"), (task_id, "kb-1")]
    record = world.stores.tasks.get_task(task_id)
    assert record is not None
    assert record.status is TaskState.WAITING


def test_worker_completes_every_cube_and_records_each_memory(world: World) -> None:
    task_id = world.submit(writable_cube_ids=["alice", "kb-1"], custom_tags=["drinks"], info={"app": "x"})
    assert world.drain() == [Verdict.DONE, Verdict.DONE]
    record = world.stores.tasks.get_task(task_id)
    assert record is not None
    assert record.status is TaskState.COMPLETED
    for part in record.parts:
        [outcome] = part.outcomes
        assert outcome.outcome == "added"
        item = world.stores.memories.get_memory(outcome.memory_id)
        assert item is not None
        assert item.metadata.cube_id == part.cube_id
        assert item.metadata.custom_tags == ["drinks"]
        assert item.metadata.info == {"app": "x"}
        assert outcome.memory_id in world.index.docs


def test_redelivered_message_adds_no_duplicate(world: World) -> None:
    task_id = world.submit()
    [msg] = world.queue.sent
    for attempt in (1, 2, 3):
        assert world.ingest.handle(Delivery(msg.model_dump_json(), "m", attempt, 5)) is Verdict.DONE
    assert world.stores.memories.list_memories("alice", 0, 10)[1] == 1
    record = world.stores.tasks.get_task(task_id)
    assert record is not None
    assert [o.outcome for o in record.parts[0].outcomes] == ["added"]


def test_a_redelivery_indexes_the_stored_item_not_its_own_copy(world: World) -> None:
    world.submit()
    [msg] = world.queue.sent
    world.ingest.handle(Delivery(msg.model_dump_json(), "m", 1, 5))
    [stored] = world.stores.memories.list_memories("alice", 0, 10)[0]
    later = ingest_service(world.stores, world.index, HashEmbedder(64), now=lambda: "2099-01-01T00:00:00.000Z")
    record = world.stores.tasks.get_task(msg.task_id)
    assert record is not None
    world.stores.tasks.put_task_part(msg.task_id, record.parts[0].model_copy(update={"status": TaskState.FAILED}))
    later.handle(Delivery(msg.model_dump_json(), "m", 2, 5))
    assert world.index.docs[stored.id].metadata.created_at == stored.metadata.created_at


def test_same_content_in_a_later_task_is_reported_duplicate(world: World) -> None:
    first = world.submit()
    world.drain()
    second = world.submit()
    world.drain()
    rec1, rec2 = world.stores.tasks.get_task(first), world.stores.tasks.get_task(second)
    assert rec1 is not None and rec2 is not None
    [added], [dup] = rec1.parts[0].outcomes, rec2.parts[0].outcomes
    assert dup.outcome == "duplicate"
    assert dup.memory_id == added.memory_id
    assert world.stores.memories.list_memories("alice", 0, 10)[1] == 1


def test_repeating_a_task_id_returns_the_same_task_and_stores_nothing_new(world: World) -> None:
    assert world.submit(task_id="biz-1") == "biz-1"
    world.drain()
    assert world.submit(task_id="biz-1") == "biz-1"
    assert world.queue.sent == []  # completed parts are not enqueued again
    assert world.stores.memories.list_memories("alice", 0, 10)[1] == 1


def fail_the_index(world: World) -> None:
    def broken(_: object) -> None:
        raise TimeoutError("index down")

    world.index.upsert = broken  # type: ignore[method-assign, assignment]


@pytest.mark.parametrize("resend", [{"task_id": "biz-1"}, {"key": "req-1"}], ids=["task_id", "idempotency_key"])
def test_a_failed_add_resent_runs_again_as_a_new_run_of_the_same_task(world: World, resend: dict[str, Any]) -> None:
    first = world.send(**resend)
    task_id = first.task_id  # as stored (a business task_id is kept per user)
    fail_the_index(world)
    [msg] = world.queue.sent
    world.queue.sent = []
    assert world.ingest.handle(Delivery(msg.model_dump_json(), "m1", 1, 1)) is Verdict.DONE  # given up at once
    failed = world.stores.tasks.get_task(task_id)
    assert failed is not None and failed.status is TaskState.FAILED
    assert len(world.stores.dead_letters.list_dead_letters()) == 1
    del world.index.upsert  # the index is back

    sub = world.send(**resend)
    assert (sub.task_id, sub.replay, sub.retried) == (task_id, True, True)
    [again] = world.queue.sent
    assert (again.run, again.dedup_id != msg.dedup_id) == (1, True)  # a new message, not a duplicate of the first
    assert world.stores.dead_letters.list_dead_letters() == []  # the caller took the retry over from the operator
    assert world.drain() == [Verdict.DONE]
    record = world.stores.tasks.get_task(task_id)
    assert record is not None and record.status is TaskState.COMPLETED
    [part] = record.parts
    assert [(r.status, r.attempts) for r in part.runs] == [(TaskState.FAILED, 1)]
    assert part.runs[0].error is not None and "index down" in part.runs[0].error
    assert (part.attempts, [o.outcome for o in part.outcomes]) == (1, ["added"])
    assert world.stores.memories.list_memories("alice", 0, 10)[1] == 1  # what the failed run stored is not doubled

    assert world.submit(**resend) == first.public_id  # completed: returned as it is
    assert world.queue.sent == []


def test_resending_an_add_still_running_returns_it_as_it_is(world: World) -> None:
    world.submit(task_id="biz-1")
    fail_the_index(world)
    assert world.drain() == [Verdict.RETRY]  # in progress, waiting for its retry
    sub = world.send(task_id="biz-1")
    assert (sub.replay, sub.retried, sub.record.status) == (True, False, TaskState.IN_PROGRESS)
    assert (sub.record.parts[0].attempts, sub.record.parts[0].runs) == (1, [])
    assert world.queue.sent == []


def test_reusing_a_task_id_for_a_different_add_is_a_conflict(world: World) -> None:
    world.submit(task_id="biz-1")
    with pytest.raises(Conflict, match="task_id"):
        world.submit(task_id="biz-1", messages="something else")


def test_a_task_fingerprint_keeps_its_stored_format() -> None:
    # Fingerprints are stored with tasks: a resend after a deploy must still match its task's.
    body = {"user_id": "alice", "messages": [{"role": "user", "content": "thé à 5h"}], "info": {"b": 1, "a": [2]}}
    cmd = to_command(AddRequest.model_validate(body))
    unset = {"task_id", "retrieved_memory_ids"}  # a field added later is left out while unset
    canonical = json.dumps(cmd.model_dump(mode="json", exclude=unset), sort_keys=True, ensure_ascii=False)
    assert fingerprint(cmd) == hashlib.sha256(canonical.encode()).hexdigest()
    assert '"info": {"a": [2], "b": 1}' in canonical and "thé à 5h" in canonical


def test_idempotency_key_without_task_id_maps_to_one_task(world: World) -> None:
    first = world.submit(key="k-1")
    second = world.submit(key="k-1")
    assert first == second
    assert len(world.queue.sent) == 1


def test_idempotency_key_bound_to_another_task_id_is_a_conflict(world: World) -> None:
    world.submit(key="k-1", task_id="t-1")
    with pytest.raises(Conflict, match="Idempotency-Key"):
        world.submit(key="k-1", task_id="t-2")


def test_queue_outage_is_unavailable_and_a_retry_enqueues_the_waiting_task(world: World) -> None:
    world.queue.fail_next = 1
    with pytest.raises(Unavailable, match="retry the same request"):
        world.submit(task_id="t-1")
    assert world.queue.sent == []
    assert world.submit(task_id="t-1") == "t-1"
    assert len(world.queue.sent) == 1


def test_a_queue_outage_fails_a_task_whose_id_the_caller_never_learned(world: World) -> None:
    world.queue.fail_next = 1
    with pytest.raises(Unavailable, match="the add was not accepted: send it again"):
        world.submit()
    [task_id] = [t.task.task_id for t in world.stores.tasks.list_tasks("alice", 10)]
    record = world.stores.tasks.get_task(task_id)
    assert record is not None and record.status is TaskState.FAILED
    assert "not queued" in (record.parts[0].error or ""), record
    assert world.queue.sent == []


def test_a_command_the_queue_schema_refuses_writes_no_task_and_no_user(world: World) -> None:
    cmd = to_command(AddRequest.model_validate({"user_id": "carol", "messages": "I like tea", "task_id": "t-9"}))
    over_full = cmd.model_copy(update={"info": {f"k{i}": i for i in range(65)}})
    with pytest.raises(ValidationError, match="info"):
        world.add.submit(over_full, Principal(user_id="carol"), "k-9")
    assert world.stores.tasks.get_task("t-9") is None
    assert not world.stores.directory.is_user("carol")
    assert world.queue.sent == []
    assert world.stores.idempotency.claim_idempotency_key("carol\x1fk-9", "t-10") == "t-10"  # the key was not bound


def test_a_personal_cube_is_writable_only_by_its_user_and_all_or_nothing(world: World) -> None:
    world.submit()  # alice now exists, so cube "alice" is personal
    world.drain()
    cmd = to_command(
        AddRequest.model_validate({"user_id": "bob", "messages": "x", "writable_cube_ids": ["kb-1", "alice"]})
    )
    with pytest.raises(Forbidden, match="'alice'"):
        world.add.submit(cmd, Principal(user_id="bob"))
    assert world.queue.sent == []


def test_sync_fine_mode_without_an_llm_is_refused(world: World) -> None:
    with pytest.raises(InvalidRequest, match="fine mode needs an LLM"):
        world.submit(async_mode="sync", mode="fine")


def test_transient_failure_retries_then_dead_letters_with_the_reason(world: World) -> None:
    task_id = world.submit()
    [msg] = world.queue.sent

    def broken(_: object) -> None:
        raise TimeoutError("index down")

    world.index.upsert = broken  # type: ignore[method-assign, assignment]
    body = msg.model_dump_json()
    assert world.ingest.handle(Delivery(body, "m", 1, 3)) is Verdict.RETRY
    record = world.stores.tasks.get_task(task_id)
    assert record is not None
    assert record.status is TaskState.IN_PROGRESS
    assert "index down" in (record.parts[0].error or "")
    assert world.ingest.handle(Delivery(body, "m", 2, 3)) is Verdict.RETRY
    assert world.ingest.handle(Delivery(body, "m", 3, 3)) is Verdict.DONE
    record = world.stores.tasks.get_task(task_id)
    assert record is not None
    assert record.status is TaskState.FAILED
    assert "gave up after 3 attempts" in (record.parts[0].error or "")
    [letter] = world.stores.dead_letters.list_dead_letters()
    assert letter.task_id == task_id
    assert "index down" in letter.reason


def test_invalid_queued_message_is_dead_lettered_without_retry(world: World) -> None:
    assert world.ingest.handle(Delivery('{"v": 1, "task_id": "t"}', "m", 1, 5)) is Verdict.DONE
    [letter] = world.stores.dead_letters.list_dead_letters()
    assert "invalid queued message" in letter.reason
    assert "cube_id" in letter.reason


def test_a_queued_message_for_a_forbidden_cube_is_rejected_by_the_worker(world: World) -> None:
    world.submit()
    world.drain()
    forged = (
        '{"v":1,"task_id":"t-x","cube_id":"alice","user_id":"mallory","messages":[{"type":"text","content":"pwned"}]}'
    )
    assert world.ingest.handle(Delivery(forged, "m", 1, 5)) is Verdict.DONE
    assert world.stores.memories.list_memories("alice", 0, 10)[1] == 1
    [letter] = world.stores.dead_letters.list_dead_letters()
    assert "may not write" in letter.reason


def test_a_redelivered_message_rewrites_the_same_memory_ids_of_its_salted_task(world: World) -> None:
    world.submit(task_id="biz-1")
    [message] = world.queue.sent
    assert message.id_salt  # the API's tasks derive their memory ids from a random salt too
    world.queue.sent = [message, message]  # a redelivery repeats the message whole
    world.drain()
    items = list(world.stores.memories.iter_memories("alice"))
    assert len(items) == 1
    assert items[0].id == item_id(message.item_seed, "alice", 0)
