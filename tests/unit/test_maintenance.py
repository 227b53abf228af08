"""Operator use cases: reindex from the store, reconcile index and store (and the CLI on them)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from memcube.adapters.inmemory import InMemoryIndex, InMemoryStore
from memcube.cli import main
from memcube.domain.ingest import content_hash
from memcube.domain.maintenance import Maintenance
from memcube.domain.model import MemoryItem, MemoryMetadata
from memcube.settings import Settings
from memcube.wiring import Container


def item(n: int, cube: str = "c1") -> MemoryItem:
    text = f"memory number {n}"
    return MemoryItem(
        id=f"m{n}",
        memory=text,
        metadata=MemoryMetadata(
            user_id="u",
            session_id="s",
            cube_id=cube,
            memory_type="LongTermMemory",
            key=text,
            created_at="2025-01-01T00:00:00Z",
            updated_at="2025-01-01T00:00:00Z",
            content_hash=content_hash(text),
            task_id="t",
        ),
    )


def test_reindex_rebuilds_an_empty_index_from_the_store() -> None:
    store, index = InMemoryStore(), InMemoryIndex()
    for n in range(450):
        store.put_memory(item(n, "c1" if n % 2 else "c2"))
    seen: list[int] = []
    assert Maintenance(store, index).reindex(progress=seen.append) == 450
    assert sum(seen) == 450
    assert len(index.ids("c1")) == 225


def test_reconcile_reports_and_repairs_both_directions() -> None:
    store, index = InMemoryStore(), InMemoryIndex()
    for n in range(3):
        store.put_memory(item(n))
    index.upsert([item(0), item(99)])  # m1, m2 missing; m99 orphaned
    ops = Maintenance(store, index)
    report = ops.reconcile("c1")
    assert (report.missing_from_index, report.not_in_store, report.differences) == (["m1", "m2"], ["m99"], 3)
    assert ops.reconcile("c1", repair=True).repaired
    assert ops.reconcile("c1").differences == 0


def test_cli_reconcile_exits_nonzero_until_repaired(tmp_path: Path) -> None:
    container = Container(Settings(backend="embedded", data_dir=tmp_path))
    container.store.put_memory(item(1))
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
