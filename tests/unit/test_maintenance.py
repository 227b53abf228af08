"""Operator use cases: reindex from the store, reconcile index and store (and the CLI on them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from click.testing import CliRunner

from memcube.domain.maintenance import Maintenance
from memcube.domain.model import MemoryItem
from memcube.settings import Settings
from memcube_local.cli import main
from memcube_local.wiring import LocalContainer
from tests.contract.support import memory
from tests.doubles import InMemoryIndex
from tests.doubles.memories import InMemoryMemories


def item(n: int, cube: str = "c1") -> MemoryItem:
    return memory(f"m{n}", f"memory number {n}", cube=cube)


def test_reindex_rebuilds_an_empty_index_from_the_store() -> None:
    store, index = InMemoryMemories(), InMemoryIndex()
    for n in range(450):
        store.put_memory(item(n, "c1" if n % 2 else "c2"))
    seen: list[int] = []
    assert Maintenance(store, index).reindex(progress=seen.append) == 450
    assert sum(seen) == 450
    assert len(index.ids("c1")) == 225


def test_reconcile_reports_and_repairs_both_directions() -> None:
    store, index = InMemoryMemories(), InMemoryIndex()
    for n in range(3):
        store.put_memory(item(n))
    index.upsert([item(0), item(99)])  # m1, m2 missing; m99 orphaned
    ops = Maintenance(store, index)
    report = ops.reconcile("c1")
    assert (report.missing_from_index, report.not_in_store, report.differences) == (["m1", "m2"], ["m99"], 3)
    assert ops.reconcile("c1", repair=True).repaired
    assert ops.reconcile("c1").differences == 0


def test_reconcile_finds_and_repairs_a_stale_document() -> None:
    """A merge or archival whose index write never happened leaves the id indexed as an older
    version: comparing ids alone would call that consistent."""
    store, index = InMemoryMemories(), InMemoryIndex()
    stale = item(1)
    store.put_memory(stale)
    index.upsert([stale])
    newer = stale.model_copy(deep=True)
    newer.metadata.status, newer.metadata.version, newer.metadata.updated_at = "archived", 2, "2030-01-01T00:00:00.000Z"
    assert store.update_memory(newer, expected_version=1)
    ops = Maintenance(store, index)
    report = ops.reconcile("c1")
    assert (report.missing_from_index, report.not_in_store, report.stale_in_index) == ([], [], ["m1"])
    assert ops.reconcile("c1", repair=True).repaired
    assert index.docs["m1"].metadata.status == "archived"
    assert ops.reconcile("c1").differences == 0


def test_cli_reconcile_exits_nonzero_until_repaired(tmp_path: Path) -> None:
    container = LocalContainer(Settings(backend="embedded", data_dir=tmp_path))
    container.memories.put_memory(item(1))
    container.close()
    runner = CliRunner()
    check = runner.invoke(main, ["reconcile", "--data-dir", str(tmp_path), "--cube", "c1"])
    assert check.exit_code == 1
    assert "1 missing from the index" in check.output
    fix = runner.invoke(main, ["reconcile", "--data-dir", str(tmp_path), "--cube", "c1", "--repair"])
    assert fix.exit_code == 0, fix.output
    again = runner.invoke(main, ["reindex", "--data-dir", str(tmp_path)])
    assert "reindexed 1 memories" in again.output
    assert runner.invoke(main, ["reconcile", "--data-dir", str(tmp_path), "--cube", "c1"]).exit_code == 0


def test_redrive_replays_dead_letters_once_fixed_and_is_safe_to_repeat(tmp_path: Path) -> None:
    from memcube.domain.ingest import Delivery
    from memcube.domain.maintenance import redrive_dead_letters
    from memcube.domain.model import Principal, TaskState
    from memcube_api.schemas.product import AddRequest, to_command

    container = LocalContainer(Settings(backend="embedded", data_dir=tmp_path, max_receive_count=1))
    cmd = to_command(AddRequest.model_validate({"user_id": "u1", "messages": "a fact worth keeping"}))
    task_id = container.add.submit(cmd, Principal(user_id="u1")).task_id
    container.local_queue.send_raw([("u1", "poison", '{"v": 1, "task_id": "bad"}')])

    def drain() -> None:
        while got := container.local_queue.receive(10, 60):
            for m in got:
                container.ingest.handle(Delivery(m.body, m.message_id, m.attempts, 1))
                container.local_queue.ack(m.seq)

    real_upsert = container.index.upsert
    container.index.upsert = lambda items: (_ for _ in ()).throw(TimeoutError("index down"))  # type: ignore[method-assign]
    drain()
    record = container.tasks.get_task(task_id)
    assert record is not None
    assert record.status is TaskState.FAILED
    container.index.upsert = real_upsert  # type: ignore[method-assign]
    first = redrive_dead_letters(container.dead_letters, container.local_queue)
    assert (first.sent, len(first.invalid)) == (1, 1)
    drain()
    record = container.tasks.get_task(task_id)
    assert record is not None
    assert record.status is TaskState.COMPLETED
    # The redriven part completed, so its dead letter is resolved: only the poison one is left.
    assert [d.task_id for d in container.dead_letters.list_dead_letters()] == ["bad"]
    again = redrive_dead_letters(container.dead_letters, container.local_queue)
    assert again.sent == 0
    drain()
    assert container.memories.list_memories("u1", 0, 10)[1] == 1
    runner = CliRunner().invoke(main, ["redrive", "--data-dir", str(tmp_path)])
    assert "re-enqueued 0 dead letters; 1 can never succeed" in runner.output
    container.close()


class ShortReader:
    """An embedder that reads 8 tokens at once and counts what it is asked to embed."""

    model_id = "short-reader"
    dimension = 3
    max_tokens = 8

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded += texts
        return [[1.0, 0.0, 0.0] for _ in texts]


def test_reindex_re_embeds_memories_longer_than_the_model_reads_at_once() -> None:
    """Stored before embedders read long texts in parts, such a memory's vector may stand for its
    start only: reindex embeds it again whole, and leaves short ones of the same model alone."""
    store, index = InMemoryMemories(), InMemoryIndex()
    short, long = item(1), memory("m2", "a window of many words " * 10, cube="c1")
    for stored in (short, long):
        stored.metadata.embedding_model = "short-reader"
        store.put_memory(stored)
    embedder = ShortReader()
    assert Maintenance(store, index, embedder).reindex() == 2
    assert embedder.embedded == [long.memory]
    assert store.get_memory("m2").metadata.embedding == [1.0, 0.0, 0.0]  # type: ignore[union-attr]
