"""The embedded index's vector snapshots (`sqlite/vector_snapshot.py`): a large cube's cached
vectors persisted beside the index, so a cold cube loads from one file, and still exact: the
writes made after a snapshot are replayed from the change log, a file that is not this index's
current one is ignored, and a hard delete leaves no vector of the cube in a file."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from memcube.domain.filters import Cond, Filter, matches
from memcube.domain.model import MemoryItem
from memcube.domain.search import filter_doc
from memcube_local.sqlite.index import SCHEMA, SqliteIndex
from memcube_local.sqlite.vector_snapshot import SnapshotFiles, Stamp, directory_of
from tests.contract.support import memory

DIM = 8
ROWS = 100
"""The snapshot threshold the tests open their indexes with (the default is 20,000)."""
TOPIC = Cond("info.topic", "eq", "travel")


def _unit(rng: np.random.Generator) -> list[float]:
    v = rng.standard_normal(DIM)
    return (v / np.linalg.norm(v)).tolist()  # type: ignore[no-any-return]


def _vec(item: MemoryItem) -> list[float]:
    assert item.metadata.embedding is not None
    return item.metadata.embedding


def _item(n: int, rng: np.random.Generator, cube: str = "cube-a", status: str = "activated") -> MemoryItem:
    item = memory(f"m{n:04d}", f"note {n}", cube=cube)
    item.metadata.embedding = _unit(rng)
    item.metadata.info = {"topic": ("travel", "food", "work")[n % 3]}
    item.metadata.status = status  # type: ignore[assignment]
    return item


def _corpus(seed: int = 5, count: int = 600) -> list[MemoryItem]:
    """Two cubes above the threshold (cube-a 480 rows, cube-b 120), some rows archived."""
    rng = np.random.default_rng(seed)
    return [
        _item(n, rng, "cube-a" if n % 5 else "cube-b", "archived" if n % 11 == 0 else "activated") for n in range(count)
    ]


def _textbook(items: dict[str, MemoryItem], cube: str, query: list[float], flt: Filter | None) -> list[str]:
    """The cube's activated documents passing the filter, by cosine, best first, ties by id."""
    q = np.asarray(query, dtype=np.float32)
    scored = [
        (i.id, float(np.asarray(_vec(i), dtype=np.float32) @ q))
        for i in items.values()
        if i.metadata.cube_id == cube
        and i.metadata.status == "activated"
        and (flt is None or matches(flt, filter_doc(i)))
    ]
    return [memory_id for memory_id, _ in sorted(scored, key=lambda p: (-p[1], p[0]))[:10]]


def _nearest(index: SqliteIndex, cube: str, query: list[float], flt: Filter | None) -> list[str]:
    return [h.memory_id for h in index.search([cube], "", query, flt, 10) if h.cosine is not None]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "index.db"


def _open(path: Path, rows: int = ROWS) -> SqliteIndex:
    return SqliteIndex(path, snapshot_rows=rows)


def _snapshot_files(path: Path) -> list[Path]:
    directory = directory_of(path)
    return sorted(directory.iterdir()) if directory.is_dir() else []


def _registry(path: Path) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """The registered snapshots' positions and the change log's (cube, rid) rows."""
    check = sqlite3.connect(path)
    try:
        registered = dict(check.execute("SELECT cube_id, seq FROM vector_snapshots").fetchall())
        logged = check.execute("SELECT cube_id, rid FROM vector_log ORDER BY seq").fetchall()
    finally:
        check.close()
    return registered, logged


@pytest.fixture
def from_snapshot_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Indexes opened in the test may not load a cube from the table (their cubes come from snapshots)."""

    def refuse(*_: object) -> None:
        raise AssertionError("a cube was loaded from the table")

    with monkeypatch.context() as m:
        m.setattr(SqliteIndex, "_from_table", refuse)
        yield


def _snapshotted(path: Path, items: list[MemoryItem]) -> None:
    """Index `items` and search both cubes once: each gets its snapshot file."""
    index = _open(path)
    try:
        index.upsert(items)
        for cube in ("cube-a", "cube-b"):
            index.search([cube], "", _vec(items[0]), None, 10)
    finally:
        index.close()
    assert len(_snapshot_files(path)) == 2


def _answers(path: Path, items: dict[str, MemoryItem], queries: list[list[float]]) -> None:
    """A freshly opened index answers every query as the textbook does, filtered or not."""
    index = _open(path)
    try:
        for query in queries:
            for cube in ("cube-a", "cube-b"):
                for flt in (None, TOPIC):
                    assert _nearest(index, cube, query, flt) == _textbook(items, cube, query, flt)
    finally:
        index.close()


def test_a_cube_loaded_from_its_snapshot_answers_as_the_table_does_with_and_without_a_filter(
    path: Path, request: pytest.FixtureRequest
) -> None:
    items = _corpus()
    _snapshotted(path, items)
    rng = np.random.default_rng(9)
    queries = [_unit(rng) for _ in range(5)]
    request.getfixturevalue("from_snapshot_only")
    _answers(path, {i.id: i for i in items}, queries)


def test_writes_after_the_snapshot_are_seen_by_an_index_opened_later(
    path: Path, request: pytest.FixtureRequest
) -> None:
    """Inserts, a move to the other cube, archival, a new vector, and a row deleted by another
    connection: each replayed from the change log over the snapshot."""
    items = _corpus()
    _snapshotted(path, items)
    rng = np.random.default_rng(13)
    current = {i.id: i for i in items}
    changed = [_item(n, rng) for n in range(600, 640)]  # new rows of cube-a
    moved, archived, revectored = current["m0001"], current["m0002"], current["m0003"]
    moved.metadata.cube_id = "cube-b"
    archived.metadata.status = "archived"
    revectored.metadata.embedding = _unit(rng)
    changed += [moved, archived, revectored]
    writer = _open(path)
    try:
        writer.upsert(changed)
    finally:
        writer.close()
    other = sqlite3.connect(path)
    other.execute("DELETE FROM docs WHERE id = 'm0004'")
    other.commit()
    other.close()
    current |= {i.id: i for i in changed}
    del current["m0004"]
    queries = [_unit(rng) for _ in range(4)]
    queries += [_vec(i) for i in (moved, revectored, changed[0], current["m0006"])]
    queries.append(_vec(items[4]))  # the deleted row's own vector
    request.getfixturevalue("from_snapshot_only")
    _answers(path, current, queries)


@pytest.mark.parametrize("damage", ["another_index", "garbage", "truncated", "appended"])
def test_a_snapshot_of_another_index_or_a_damaged_one_is_ignored_and_replaced(
    tmp_path: Path, path: Path, damage: str
) -> None:
    items = _corpus()
    _snapshotted(path, items)
    target = SnapshotFiles(directory_of(path)).path("cube-a", DIM)
    if damage == "another_index":  # the same cube and ids, other vectors, in an index recreated since
        elsewhere = tmp_path / "other" / "index.db"
        _snapshotted(elsewhere, _corpus(seed=77))
        target.write_bytes(SnapshotFiles(directory_of(elsewhere)).path("cube-a", DIM).read_bytes())
    elif damage == "garbage":
        target.write_bytes(b"not a snapshot" * 100)
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:-40])
    else:
        target.write_bytes(target.read_bytes() + b"\0" * 4)
    damaged = target.read_bytes()
    rng = np.random.default_rng(21)
    _answers(path, {i.id: i for i in items}, [_unit(rng) for _ in range(4)])
    assert target.read_bytes() != damaged  # rewritten by the load from the table


@pytest.mark.parametrize("erasure", ["delete", "delete_where", "delete_where_user", "reset"])
def test_a_hard_delete_removes_the_cubes_snapshot_file_and_log(path: Path, erasure: str) -> None:
    items = _corpus()
    _snapshotted(path, items)
    index = _open(path)
    try:
        index.upsert([_item(700, np.random.default_rng(1))])  # logged: the cube has a snapshot
        assert _registry(path)[1] == [("cube-a", 601)]
        if erasure == "delete":
            assert index.delete("cube-a", ["m0006"]) == 1
        elif erasure == "delete_where":
            index.delete_where("cube-a", None)
        elif erasure == "delete_where_user":
            index.delete_where("cube-a", "u1")
        else:
            index.reset()
    finally:
        index.close()
    names = {p.name for p in _snapshot_files(path)}
    cube_b = SnapshotFiles(directory_of(path)).path("cube-b", DIM).name
    assert names == (set() if erasure == "reset" else {cube_b})
    registered, logged = _registry(path)
    assert "cube-a" not in registered and logged == []
    if erasure == "delete":  # the rest of the cube is still found (from the table), the deleted row not
        rest = {i.id: i for i in items if i.id != "m0006"}
        rest["m0700"] = _item(700, np.random.default_rng(1))
        _answers(path, rest, [_vec(items[6]), _vec(items[7])])


def test_a_cube_below_the_threshold_writes_no_snapshot_and_logs_nothing(path: Path) -> None:
    items = _corpus()
    index = _open(path, rows=len(items))  # cube-a holds 480 rows
    try:
        index.upsert(items)
        for cube in ("cube-a", "cube-b"):
            index.search([cube], "", _vec(items[0]), None, 10)
        index.upsert([_item(800, np.random.default_rng(2))])
    finally:
        index.close()
    assert _snapshot_files(path) == []
    assert _registry(path) == ({}, [])


def test_an_unwritable_snapshot_directory_does_not_fail_the_search(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = _corpus()
    directory_of(path).write_text("a file where the directory would be")
    index = _open(path)
    try:
        index.upsert(items)
        query = _vec(items[7])
        with caplog.at_level(logging.WARNING):
            found = _nearest(index, "cube-a", query, TOPIC)
        assert found == _textbook({i.id: i for i in items}, "cube-a", query, TOPIC)
        assert "vector snapshot of cube cube-a not written" in caplog.text
    finally:
        index.close()
    assert _registry(path) == ({}, [])  # nothing registered: no file to match


@pytest.mark.parametrize("when", ["after_the_load", "while_staged"])
def test_a_write_by_another_connection_before_a_snapshot_is_registered_is_not_lost(
    path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """The other connection's write (after the search loaded the cube, or while its file was being
    written) is in neither the file nor the log (the cube had no snapshot yet): the snapshot is
    not registered, and a later index loads the table."""
    items = _corpus()
    server, other = _open(path), _open(path)
    late = _item(900, np.random.default_rng(4))
    owner, name = (SqliteIndex, "_write_snapshot") if when == "after_the_load" else (SnapshotFiles, "stage")
    inner = getattr(owner, name)

    def other_writes(self: object, *args: object) -> object:
        if when == "after_the_load":
            other.upsert([late])
        done = inner(self, *args)
        if when == "while_staged":
            other.upsert([late])
        return done

    try:
        server.upsert(items)
        monkeypatch.setattr(owner, name, other_writes)
        server.search(["cube-a"], "", _vec(late), None, 10)
        monkeypatch.undo()
    finally:
        server.close()
        other.close()
    assert _registry(path)[0] == {}
    current = {i.id: i for i in [*items, late]}
    _answers(path, current, [_vec(late)])


def test_a_snapshot_is_rewritten_and_its_log_pruned_once_the_log_outgrows_it(path: Path) -> None:
    items = _corpus()
    _snapshotted(path, items)
    rng = np.random.default_rng(8)
    index = _open(path)
    try:
        index.upsert([_item(n, rng) for n in range(1000, 1040)])  # 40 rows > 480 / 16
        assert len(_registry(path)[1]) == 40
        before = _registry(path)[0]["cube-a"]
        index.close()
        index = _open(path)
        index.search(["cube-a"], "", _vec(items[0]), None, 10)
    finally:
        index.close()
    registered, logged = _registry(path)
    assert registered["cube-a"] > before and logged == []


def test_a_cached_cube_taking_many_writes_rewrites_its_snapshot_without_a_cold_load(
    path: Path, request: pytest.FixtureRequest
) -> None:
    """A server keeping the cube cached: once the writes since the snapshot outgrow it, the
    snapshot is rewritten from the cache and the log pruned, and a later index loads it."""
    items = _corpus()
    _snapshotted(path, items)
    rng = np.random.default_rng(12)
    added = [_item(n, rng) for n in range(1000, 1040)]
    active = sum(i.metadata.cube_id == "cube-a" and i.metadata.status == "activated" for i in items)
    rewritten_at = active // 15 + 1  # the first w with w > (active + w) / 16
    index = _open(path)
    try:
        index.search(["cube-a"], "", _vec(items[0]), None, 10)  # cached, from the snapshot
        before = _registry(path)[0]["cube-a"]
        for written, item in enumerate(added, 1):
            index.upsert([item])
            registered, logged = _registry(path)
            if written < rewritten_at:
                assert (registered["cube-a"], len(logged)) == (before, written)
            elif written == rewritten_at:
                assert registered["cube-a"] > before and logged == []
    finally:
        index.close()
    assert len(_registry(path)[1]) == len(added) - rewritten_at
    request.getfixturevalue("from_snapshot_only")
    _answers(path, {i.id: i for i in [*items, *added]}, [_vec(added[5]), _vec(added[35]), _unit(rng)])


def test_a_server_whose_cube_came_from_a_snapshot_sees_another_connections_writes(path: Path) -> None:
    """`PRAGMA data_version` still drops the cache; the reload replays the other's logged writes."""
    items = _corpus()
    _snapshotted(path, items)
    rng = np.random.default_rng(17)
    server, other = _open(path), _open(path)
    try:
        query = _unit(rng)
        assert _nearest(server, "cube-a", query, None) == _textbook({i.id: i for i in items}, "cube-a", query, None)
        near = _item(950, rng)
        near.metadata.embedding = query
        other.upsert([near])
        other.delete("cube-b", ["m0005"])  # a hard delete: cube-b's snapshot is dropped
        assert _nearest(server, "cube-a", query, None)[0] == "m0950"
        current = {i.id: i for i in [*items, near] if i.id != "m0005"}
        assert _nearest(server, "cube-b", _vec(items[5]), None) == _textbook(current, "cube-b", _vec(items[5]), None)
    finally:
        server.close()
        other.close()


def test_an_index_file_without_the_snapshot_tables_opens_with_them(path: Path) -> None:
    old = sqlite3.connect(path)
    old.executescript(SCHEMA)
    old.execute("PRAGMA user_version=1")
    old.commit()
    old.close()
    items = _corpus()
    _snapshotted(path, items)
    registered, _ = _registry(path)
    assert set(registered) == {"cube-a", "cube-b"}
    check = sqlite3.connect(path)
    triggers = {r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    check.close()
    assert triggers == {"docs_vector_insert", "docs_vector_delete", "docs_vector_update"}


def test_a_snapshot_reaches_the_disk_before_it_is_renamed_into_place(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rename that outlives a power loss while the file's pages did not would leave a file of the
    # right name and size holding zeros: read as vectors, silently wrong answers.
    import os

    steps: list[str] = []
    fsync, replace = os.fsync, Path.replace

    def synced(fd: int) -> None:
        steps.append("fsync")
        fsync(fd)

    def renamed(self: Path, target: Path) -> Path:
        steps.append("rename")
        return replace(self, target)

    monkeypatch.setattr(os, "fsync", synced)
    monkeypatch.setattr(Path, "replace", renamed)
    _snapshotted(path, _corpus())
    assert steps == ["fsync", "rename", "fsync"] * 2  # the file, its rename, the directory: per cube


class _Killed(BaseException):
    """A hard crash (like `kill -9`): none of the index's own failure handling runs for it."""


def test_a_crash_after_a_rewritten_snapshot_is_renamed_but_before_it_is_registered_loses_nothing(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new file is in place but the registry (and the log it would prune) still name the old
    position: no later index trusts the file, and the cube's answers hold every write."""
    items = _corpus()
    _snapshotted(path, items)
    rng = np.random.default_rng(15)
    added = [_item(n, rng) for n in range(1000, 1040)]  # 40 rows > 480 / 16: a rewrite is planned
    inner = SnapshotFiles.publish

    def killed(self: SnapshotFiles, temp: Path, stamp: Stamp) -> None:
        inner(self, temp, stamp)
        raise _Killed

    index = _open(path)
    try:
        index.upsert(added)
        before = _registry(path)
        monkeypatch.setattr(SnapshotFiles, "publish", killed)
        crashed = _open(path)
        with pytest.raises(_Killed):
            crashed.search(["cube-a"], "", _vec(items[0]), None, 10)
        crashed.close()
        monkeypatch.undo()
    finally:
        index.close()
    assert _registry(path) == before  # rolled back: the old position and its whole log
    _answers(path, {i.id: i for i in [*items, *added]}, [_vec(added[7]), _unit(rng)])
    registered, logged = _registry(path)
    assert registered["cube-a"] > before[0]["cube-a"] and logged == []  # rewritten by the next load
