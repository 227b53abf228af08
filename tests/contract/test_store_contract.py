"""The store contract: TaskStore + MemoryStore + UserDirectory, for every store adapter."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from memcube.domain.model import DeadLetter, TaskState
from tests.contract.builders import memory, task


def test_create_task_is_atomic_and_refuses_an_existing_id(store: Any) -> None:
    t, parts = task("t1", cubes=("c1", "c2"))
    assert store.create_task(t, parts) is True
    other, other_parts = task("t1", cubes=("zz",))
    assert store.create_task(other, other_parts) is False
    record = store.get_task("t1")
    assert [p.cube_id for p in record.parts] == ["c1", "c2"]
    assert record.status is TaskState.WAITING


def test_unknown_task_is_none(store: Any) -> None:
    assert store.get_task("missing") is None


def test_put_task_part_replaces_one_part(store: Any) -> None:
    t, parts = task("t1", cubes=("c1", "c2"))
    store.create_task(t, parts)
    store.put_task_part("t1", parts[1].model_copy(update={"status": TaskState.COMPLETED}))
    record = store.get_task("t1")
    assert [(p.cube_id, p.status) for p in record.parts] == [("c1", TaskState.WAITING), ("c2", TaskState.COMPLETED)]
    assert record.status is TaskState.IN_PROGRESS


def test_put_task_part_of_an_unknown_task_raises(store: Any) -> None:
    _, parts = task("t1")
    with pytest.raises(KeyError):
        store.put_task_part("nope", parts[0])


def test_list_tasks_is_newest_first_and_per_user(store: Any) -> None:
    for n, user in enumerate(["u1", "u2", "u1", "u1"]):
        t, parts = task(f"t{n}", user=user, created_at=f"2025-01-0{n + 1}T00:00:00.000Z")
        store.create_task(t, parts)
    assert [r.task.task_id for r in store.list_tasks("u1", 10)] == ["t3", "t2", "t0"]
    assert [r.task.task_id for r in store.list_tasks("u1", 2)] == ["t3", "t2"]


def test_first_idempotency_key_claim_wins(store: Any) -> None:
    assert store.claim_idempotency_key("u1\x1fk", "t1") == "t1"
    assert store.claim_idempotency_key("u1\x1fk", "t2") == "t1"


def test_new_item_is_created_and_read_back(store: Any) -> None:
    item = memory("m1", "alice likes tea")
    assert store.put_memory(item).status == "created"
    assert store.get_memory("m1") == item
    assert store.get_memory("nope") is None


def test_redelivered_item_is_reported_as_existing(store: Any) -> None:
    item = memory("m1", "alice likes tea")
    store.put_memory(item)
    assert store.put_memory(item).status == "exists"


def test_second_item_with_same_content_in_a_cube_is_a_duplicate(store: Any) -> None:
    store.put_memory(memory("m1", "alice likes tea"))
    result = store.put_memory(memory("m2", "alice  likes\\ttea".replace("\\t", "\t")))
    assert (result.status, result.existing_id) == ("duplicate", "m1")
    assert store.get_memory("m2") is None


def test_same_content_in_another_cube_is_not_a_duplicate(store: Any) -> None:
    store.put_memory(memory("m1", "alice likes tea", cube="cube-a"))
    assert store.put_memory(memory("m2", "alice likes tea", cube="cube-b")).status == "created"


def test_get_memories_keeps_the_requested_order_and_skips_missing(store: Any) -> None:
    for n in range(3):
        store.put_memory(memory(f"m{n}", f"fact {n}"))
    assert [i.id for i in store.get_memories(["m2", "zz", "m0"])] == ["m2", "m0"]


def test_list_memories_pages_activated_items_oldest_first(store: Any) -> None:
    for n in range(5):
        store.put_memory(memory(f"m{n}", f"fact {n}", created_at=f"2025-01-0{5 - n}T00:00:00.000Z"))
    archived = memory("mx", "old fact").model_copy(deep=True)
    archived.metadata.status = "archived"
    store.put_memory(archived)
    store.put_memory(memory("other", "fact in another cube", cube="cube-b"))
    page, total = store.list_memories("cube-a", 1, 2)
    assert total == 5
    assert [i.id for i in page] == ["m3", "m2"]


def test_iter_memories_yields_every_item_of_a_cube_or_of_all(store: Any) -> None:
    for n in range(7):
        store.put_memory(memory(f"m{n}", f"fact {n}", cube="cube-a" if n < 5 else "cube-b"))
    assert sorted(i.id for i in store.iter_memories("cube-a")) == [f"m{n}" for n in range(5)]
    assert len(list(store.iter_memories())) == 7


def test_racing_writers_of_one_content_leave_exactly_one_item(store: Any) -> None:
    if not getattr(store, "thread_safe", True):
        pytest.skip("this backend's emulator is not thread-safe; the race runs against the real server tier")
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def write(n: int) -> None:
        barrier.wait()
        try:
            results.append(store.put_memory(memory(f"m{n}", "the very same fact")))
        except BaseException as exc:  # a writer must never fail, only win or lose
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    created = [r for r in results if r.status == "created"]
    assert len(created) == 1
    winner = next(f"m{n}" for n in range(20) if store.get_memory(f"m{n}") is not None)
    assert {r.existing_id for r in results if r.status == "duplicate"} == {winner}
    assert store.list_memories("cube-a", 0, 50)[1] == 1


def test_dead_letters_are_kept_in_order(store: Any) -> None:
    for n in range(3):
        store.record_dead_letter(
            DeadLetter(message_id=f"q{n}", body="{}", reason=f"r{n}", attempts=n, failed_at=f"2025-01-0{n + 1}T00:00Z")
        )
    assert [d.message_id for d in store.list_dead_letters()] == ["q0", "q1", "q2"]


def test_users_are_registered_once(store: Any) -> None:
    assert store.is_user("alice") is False
    store.register_user("alice")
    store.register_user("alice")
    assert store.is_user("alice") is True
