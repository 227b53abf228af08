"""Behaviour only the embedded default's SQLite adapters have: persistence and the FIFO queue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memcube.adapters.sqlite_index import SqliteIndex
from memcube.adapters.sqlite_queue import SqliteQueue
from memcube.adapters.sqlite_store import SqliteStore
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import SourceMessage
from tests.contract.builders import memory, task


def msg(task_id: str, cube: str) -> QueuedAdd:
    return QueuedAdd(
        task_id=task_id, cube_id=cube, user_id="u1", messages=[SourceMessage(type="text", content=f"{task_id}")]
    )


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteQueue]:
    q = SqliteQueue(tmp_path / "queue.db")
    yield q
    q.close()


def test_store_survives_reopening(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    store.create_task(*task("t1"))
    store.put_memory(memory("m1", "kept"))
    store.close()
    again = SqliteStore(tmp_path / "s.db")
    assert again.get_task("t1") is not None
    assert again.get_memory("m1") is not None
    again.close()


def test_a_group_waits_while_its_head_is_leased_and_other_groups_go_on(queue: SqliteQueue) -> None:
    queue.send([msg("t1", "a"), msg("t2", "a"), msg("t3", "b")])
    first = queue.receive(10, lease_seconds=60)
    assert [(m.group_id, QueuedAdd.model_validate_json(m.body).task_id) for m in first] == [("a", "t1"), ("b", "t3")]
    assert queue.receive(10, lease_seconds=60) == []
    queue.ack(first[0].seq)
    [nxt] = queue.receive(10, lease_seconds=60)
    assert QueuedAdd.model_validate_json(nxt.body).task_id == "t2"


def test_retry_later_holds_back_the_whole_group(queue: SqliteQueue) -> None:
    queue.send([msg("t1", "a"), msg("t2", "a")])
    [head] = queue.receive(1, lease_seconds=60)
    queue.retry_later(head.seq, delay_seconds=60)
    assert queue.receive(10, lease_seconds=60) == []
    queue.retry_later(head.seq, delay_seconds=0)
    [again] = queue.receive(10, lease_seconds=60)
    assert (again.seq, again.attempts) == (head.seq, 2)


def test_same_task_and_cube_is_enqueued_once(queue: SqliteQueue) -> None:
    queue.send([msg("t1", "a")])
    queue.send([msg("t1", "a"), msg("t1", "b")])
    assert queue.depth() == 2


def test_leases_of_a_killed_process_are_released_on_restart(tmp_path: Path) -> None:
    q = SqliteQueue(tmp_path / "q.db")
    q.send([msg("t1", "a")])
    assert len(q.receive(1, lease_seconds=3600)) == 1
    q.close()  # the process dies holding the lease
    restarted = SqliteQueue(tmp_path / "q.db")
    assert restarted.receive(1, lease_seconds=60) == []
    assert restarted.release_all_leases() == 1
    [again] = restarted.receive(1, lease_seconds=60)
    assert again.attempts == 2
    restarted.close()


def test_text_search_is_confined_to_its_cube_and_forgets_deleted_items(tmp_path: Path) -> None:
    index = SqliteIndex(tmp_path / "i.db")
    index.upsert([memory("m1", "alice likes green tea"), memory("m2", "alice likes green tea", cube="cube-b")])
    assert index.text_search("cube-a", "green tea", 10) == ["m1"]
    index.delete(["m1"])
    assert index.text_search("cube-a", "green tea", 10) == []
    index.close()
