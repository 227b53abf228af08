"""Erasure against work in flight, on in-memory ports: an add submitted before an erasure never
writes after it, whether its message still waits in a queue that cannot discard it (SQS), arrives
mid-erasure, or is redriven from the dead-letter queue; an add submitted after it is stored."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from memcube.adapters.hash_embedder import HashEmbedder
from memcube.domain.commands import DeleteMemories
from memcube.domain.ingest import Delivery, Verdict
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import DeadLetter, MemoryItem, Principal, TaskState
from memcube.ports import PutResult
from memcube_api.schemas.product import AddRequest, to_command
from tests.doubles import InMemoryIndex, InMemoryQueue
from tests.doubles import open_stores as memory_stores
from tests.doubles.memories import InMemoryMemories
from tests.services import add_service, deletion_service, ingest_service
from tests.unit.world import Clock


class SqsLikeQueue(InMemoryQueue):
    """A queue that, like SQS, cannot remove a group's waiting messages."""

    def discard(self, cube_id: str, user_id: str | None) -> list[str] | None:
        return None


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.stores = memory_stores()
        self.queue = SqsLikeQueue()
        self.index = InMemoryIndex()
        self.wire()

    def wire(self) -> None:
        self.add = add_service(self.stores, self.queue, now=self.clock)
        self.ingest = ingest_service(self.stores, self.index, HashEmbedder(64), now=self.clock)
        self.deleter = deletion_service(self.stores, self.index, self.queue, now=self.clock)

    def submit(self, text: str = "Alice likes tea.", user: str = "alice", **body: Any) -> str:
        cmd = to_command(AddRequest.model_validate({"user_id": user, "messages": text, **body}))
        return self.add.submit(cmd, Principal(user_id=user), None).task_id

    def deliver(self) -> list[Verdict]:
        sent, self.queue.sent = self.queue.sent, []
        return [self.ingest.handle(Delivery(m.model_dump_json(), f"m{i}", 1, 5)) for i, m in enumerate(sent)]

    def erase(self, user: str = "alice", **body: Any) -> None:
        self.deleter.delete(DeleteMemories(user_id=user, **body), Principal(user_id=user))

    def status(self, task_id: str) -> TaskState:
        record = self.stores.tasks.get_task(task_id)
        assert record is not None
        return record.status


@pytest.fixture
def world() -> World:
    return World()


def test_an_add_queued_before_an_erasure_is_dropped_on_delivery_and_its_task_cancelled(world: World) -> None:
    task_id = world.submit()
    world.erase()
    assert world.deliver() == [Verdict.DONE]
    assert world.status(task_id) is TaskState.CANCELLED
    assert list(world.stores.memories.iter_memories()) == [] and world.index.docs == {}


def test_an_add_submitted_after_an_erasure_is_stored(world: World) -> None:
    world.erase()
    task_id = world.submit()
    world.deliver()
    assert world.status(task_id) is TaskState.COMPLETED
    assert len(list(world.stores.memories.iter_memories("alice"))) == 1


def test_a_user_erasure_drops_only_that_users_queued_adds_in_a_shared_cube(world: World) -> None:
    alices = world.submit(writable_cube_ids=["team"])
    bobs = world.submit("Bob likes coffee.", user="bob", writable_cube_ids=["team"])
    world.erase(cube_ids=["team"])
    world.deliver()
    assert (world.status(alices), world.status(bobs)) == (TaskState.CANCELLED, TaskState.COMPLETED)
    assert [i.metadata.user_id for i in world.stores.memories.iter_memories("team")] == ["bob"]


def test_a_redriven_message_of_an_erased_cube_is_dropped(world: World) -> None:
    """A redrive re-sends the body as a new message: the task's submission time still decides."""
    task_id = world.submit()
    [message] = world.queue.sent
    world.erase()
    world.queue.sent = []
    world.clock.tick += 30  # the redrive happens well after the erasure
    world.queue.sent = [message]
    world.deliver()
    assert world.status(task_id) is TaskState.CANCELLED
    assert list(world.stores.memories.iter_memories()) == []


class EraseDuringWrite(InMemoryMemories):
    """Runs an erasure right after the worker's first item write: the race the re-check closes."""

    def __init__(self) -> None:
        super().__init__()
        self.during_write: list[Any] = []

    def put_memory(self, item: MemoryItem) -> PutResult:
        result = super().put_memory(item)
        while self.during_write:
            self.during_write.pop()()
        return result


def test_a_worker_mid_write_when_the_cube_is_erased_removes_what_it_wrote(world: World) -> None:
    store = EraseDuringWrite()
    world.stores = dataclasses.replace(world.stores, memories=store)
    world.wire()
    task_id = world.submit()
    store.during_write.append(world.erase)
    world.deliver()
    assert world.status(task_id) is TaskState.CANCELLED
    assert list(store.iter_memories()) == [] and world.index.docs == {}


def test_a_direct_producer_message_dated_before_the_erasure_is_dropped(world: World) -> None:
    world.erase()
    body = {
        "task_id": "etl-1", "cube_id": "alice", "user_id": "alice", "submitted_at": "2026-11-25T09:59:59Z",
        "messages": [{"type": "text", "content": "Alice likes tea."}],
    }  # fmt: skip
    world.stores.directory.register_user("alice")
    world.queue.sent = [QueuedAdd.model_validate(body)]
    world.deliver()
    assert world.status("etl-1") is TaskState.CANCELLED


def test_deleting_an_item_deletes_the_archived_versions_it_replaced(world: World) -> None:
    task_id = world.submit("Alice lives in Porto.")
    world.deliver()
    [old] = list(world.stores.memories.iter_memories("alice"))
    record = world.stores.tasks.get_task(task_id)
    assert record is not None
    # The organizer (fine mode) archives a replaced fact and links the new one to it.
    world.stores.memories.delete_memories([old])
    archived = old.model_copy(deep=True)
    archived.metadata.status = "archived"
    world.stores.memories.put_memory(archived)
    newer = old.model_copy(deep=True, update={"id": "newer", "memory": "Alice lives in Lisbon."})
    newer.metadata.content_hash = "other"
    newer.metadata.covered_history = old.id
    newer.metadata.history = [{"version": 1, "memory": "Alice lives in Porto."}]
    world.stores.memories.put_memory(newer)
    receipt = world.deleter.delete(DeleteMemories(user_id="alice", memory_ids=["newer"]), Principal(user_id="alice"))
    [cube] = receipt.cubes
    assert (cube.memories, cube.history) == (2, 2)  # the archived version and the history entry
    assert list(world.stores.memories.iter_memories()) == []


def _letter(n: int, user: str, cube: str = "team") -> DeadLetter:
    body = f'{{"task_id": "t{n}", "cube_id": "{cube}", "user_id": "{user}", "messages": []}}'
    return DeadLetter(
        message_id=f"q{n}", body=body, reason="poison", task_id=f"t{n}", cube_id=cube, attempts=5,
        failed_at=f"2026-11-25T09:00:0{n}.000Z",
    )  # fmt: skip


def _ids(letters: Sequence[DeadLetter]) -> list[str]:
    return [d.message_id for d in letters]


def test_a_user_erasure_removes_that_users_dead_letters_in_the_cube_only(world: World) -> None:
    for letter in (_letter(1, "alice"), _letter(2, "bob"), _letter(3, "alice", cube="elsewhere")):
        world.stores.dead_letters.record_dead_letter(letter)
    world.erase(cube_ids=["team"])
    assert _ids(world.stores.dead_letters.list_dead_letters()) == ["q2", "q3"]
