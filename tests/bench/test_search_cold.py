"""The search benchmark's cold first filtered search (bench/search.py): each round times a cube's
first load from the table (its snapshot files removed), then a load from the snapshot that search
wrote. Figures are never asserted here (BENCHMARKS.md has them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bench.search import cold_cases

from bench import seed
from memcube_local.sqlite.index import SqliteIndex


def test_each_cold_round_loads_the_cube_from_the_table_then_from_its_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memcube.settings import Settings
    from memcube_local.wiring import LocalContainer

    monkeypatch.setattr(seed, "CACHE", tmp_path / "cache")
    data_dir = seed.working_copy(60, tmp_path, "hash")
    embedder = LocalContainer(Settings(backend="embedded", data_dir=tmp_path / "model", embedder="hash")).embedder
    loads: list[str] = []
    from_table, from_snapshot = SqliteIndex._from_table, SqliteIndex._from_snapshot

    def table(self: SqliteIndex, *args: Any) -> Any:
        loads.append("table")
        return from_table(self, *args)

    def snapshot(self: SqliteIndex, *args: Any) -> Any:
        cube = from_snapshot(self, *args)
        if cube is not None:
            loads.append("snapshot")
        return cube

    monkeypatch.setattr(SqliteIndex, "_from_table", table)
    monkeypatch.setattr(SqliteIndex, "_from_snapshot", snapshot)
    cases = cold_cases(data_dir, embedder, "hash", ["where did I move to", "who is Bob"], snapshot_rows=10)
    assert loads == ["table", "snapshot", "table", "snapshot"]
    assert cases["snapshot_present"] == [True, True]
    assert len(cases["no_snapshot"]) == len(cases["snapshot"]) == 2
