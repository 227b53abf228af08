"""The embedded index's in-memory vectors (`adapters/vector_cache.py`): exact top-k over a
growable per-cube matrix, kept in step with writes from this connection and dropped when
another connection writes the file."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from memcube.domain.filters import And, Cond, matches
from memcube.domain.model import MemoryItem
from memcube.domain.search import filter_doc
from memcube_local.sqlite.index import SqliteIndex
from memcube_local.sqlite.vector_cache import CubeVectors, VectorCache, _best_first, next_batch
from tests.contract.support import memory


def _unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_top_is_exact_best_first_with_ties_by_id_after_growth_and_removals() -> None:
    cube = CubeVectors(dimension=2, capacity=1)
    rng = np.random.default_rng(1)
    vectors = {rid: _unit(*rng.standard_normal(2)) for rid in range(200)}
    for rid, v in vectors.items():
        cube.put(rid, f"m{rid:03d}", v)
    for rid in range(0, 200, 3):  # swap-removals all over the matrix
        cube.remove(rid)
        del vectors[rid]
    cube.remove(9999)  # unknown: nothing happens
    query = _unit(1.0, 0.5)
    expected = sorted(((f"m{r:03d}", float(v @ query)) for r, v in vectors.items()), key=lambda p: (-p[1], p[0]))
    assert len(cube) == len(vectors)
    top = cube.top(query, 7, None)
    assert [i for i, _ in top] == [i for i, _ in expected[:7]]
    assert [s for _, s in top] == pytest.approx([s for _, s in expected[:7]])
    assert [i for i, _ in cube.top(query, 1000, None)] == [i for i, _ in expected]
    cube.put(1, "m001", _unit(1.0, 0.5))  # rewriting a row replaces its vector
    assert cube.top(query, 1, None)[0][0] == "m001"
    ties = CubeVectors(dimension=2)
    for rid, name in enumerate(["b", "a", "c"]):
        ties.put(rid, name, _unit(1.0, 0.0))
    assert [i for i, _ in ties.top(_unit(1.0, 0.0), 3, None)] == ["a", "b", "c"]


def test_a_filter_is_applied_before_the_limit_asking_about_ever_larger_batches() -> None:
    cube = CubeVectors(dimension=2)
    for rid in range(5000):
        cube.put(rid, f"m{rid:04d}", _unit(1.0, rid / 5000))  # rid 0 nearest to (1, 0), 4999 farthest
    asked: list[int] = []

    def only(*wanted: int) -> Callable[[Sequence[int] | None], set[int]]:
        def passes(rids: Sequence[int] | None) -> set[int]:
            asked.append(-1 if rids is None else len(rids))  # -1: asked about the whole cube
            return set(wanted) if rids is None else set(rids) & set(wanted)

        return passes

    query = _unit(1.0, 0.0)
    assert [i for i, _ in cube.top(query, 2, only(*range(5000)))] == ["m0000", "m0001"]
    assert asked == [64]  # most rows pass: one batch
    asked.clear()
    assert [i for i, _ in cube.top(query, 2, only(4999, 4000, 7))] == ["m0007", "m4000"]
    assert asked == [64, 256, 1024, -1]  # rare: batches grow, then one question about every row
    assert cube.top(query, 2, only()) == []
    assert CubeVectors(dimension=2).top(query, 3, only(1)) == []


def test_a_filtered_search_that_fell_a_few_rows_short_asks_about_a_few_more_not_four_times_as_many() -> None:
    """The next batch follows the pass rate seen so far: a filter passed by one row in nine finds
    36 of the 40 it needs in the best 320 rows, then asks about 72 more (it asked about 1,280)."""
    cube = CubeVectors(dimension=2)
    for rid in range(5000):
        cube.put(rid, f"m{rid:04d}", _unit(1.0, rid / 5000))
    asked: list[int] = []

    def ninth(rids: Sequence[int] | None) -> set[int]:
        assert rids is not None
        asked.append(len(rids))
        return {r for r in rids if r % 9 == 0}

    top = cube.top(_unit(1.0, 0.0), 40, ninth)
    assert [i for i, _ in top] == [f"m{r:04d}" for r in range(0, 360, 9)]  # still the exact answer
    assert asked == [320, 72]


@pytest.mark.parametrize(
    ("missing", "passed", "tested", "last", "expected"),
    [
        (4, 36, 320, 320, 72),  # twice what the rate says
        (1, 300, 320, 320, 64),  # at least 64
        (30, 31, 320, 64, 256),  # at most four times the last batch
        (3, 2, 320, 320, 1280),  # fewer passed than are missing: fourfold
        (5000, 6000, 30_000, 4096, 4096),  # never past FILTER_BATCH
    ],
)
def test_next_batch_follows_the_pass_rate_within_its_bounds(
    missing: int, passed: int, tested: int, last: int, expected: int
) -> None:
    assert next_batch(missing, passed, tested, last) == expected


def test_the_least_recently_searched_cubes_are_dropped_over_the_row_budget() -> None:
    cache = VectorCache(max_rows=5)
    blob = _unit(1.0, 0.0).tobytes()
    cache.load("a", 2, [(n, f"a{n}", blob) for n in range(3)])
    cache.load("b", 2, [(10 + n, f"b{n}", blob) for n in range(2)])
    assert cache.get("a") is not None  # a is now the most recent
    cache.load("c", 2, [(20, "c0", blob)])
    assert (cache.get("b"), cache.get("a") is not None, cache.get("c") is not None) == (None, True, True)
    cache.write(10, "b0", "b", blob, activated=True)  # writes to a cube not cached are not kept
    assert cache.get("b") is None
    big = cache.load("d", 2, [(30 + n, f"d{n}", blob) for n in range(9)])  # over budget alone: kept
    assert cache.get("d") is big and len(big) == 9


def test_rows_of_another_length_are_not_cached() -> None:
    cache = VectorCache()
    cube = cache.load("a", 2, [(1, "ok", _unit(1.0, 0.0).tobytes()), (2, "short", b"\x00" * 4), (3, "none", None)])
    assert [i for i, _ in cube.top(_unit(1.0, 0.0), 5, None)] == ["ok"]


def _vec(item_id: str, vector: list[float]) -> MemoryItem:
    item = memory(item_id, f"note {item_id}")
    item.metadata.embedding = vector
    return item


def _nearest(index: SqliteIndex, vector: list[float]) -> list[str]:
    return [h.memory_id for h in index.search(["cube-a"], "", vector, None, 10) if h.cosine is not None]


def test_a_write_by_another_connection_is_seen_by_the_next_search(tmp_path: Path) -> None:
    """`memcube reindex` or `import` in another process writes the file a server has cached."""
    server, other = SqliteIndex(tmp_path / "index.db"), SqliteIndex(tmp_path / "index.db")
    try:
        server.upsert([_vec("a", [0.0, 1.0, 0.0])])
        assert _nearest(server, [1.0, 0.0, 0.0]) == ["a"]  # cached now
        other.upsert([_vec("b", [1.0, 0.0, 0.0])])
        assert _nearest(server, [1.0, 0.0, 0.0]) == ["b", "a"]
        other.delete("cube-a", ["b"])
        assert _nearest(server, [1.0, 0.0, 0.0]) == ["a"]
        server.upsert([_vec("c", [1.0, 0.0, 0.0])])  # its own write, then the other's: both seen
        other.upsert([_vec("d", [0.0, 0.0, 1.0])])
        assert sorted(_nearest(server, [1.0, 0.0, 0.0])) == ["a", "c", "d"]
    finally:
        server.close()
        other.close()


def test_a_failed_upsert_leaves_the_cached_vectors_as_they_were(tmp_path: Path) -> None:
    from memcube.domain.errors import EmbeddingMismatch

    index = SqliteIndex(tmp_path / "index.db")
    try:
        index.upsert([_vec("a", [1.0, 0.0, 0.0])])
        assert _nearest(index, [1.0, 0.0, 0.0]) == ["a"]
        stranger = _vec("b", [1.0, 0.0, 0.0])
        stranger.metadata.embedding_model = "another-model"
        with pytest.raises(EmbeddingMismatch):
            index.upsert([_vec("c", [1.0, 0.0, 0.0]), stranger])
        assert _nearest(index, [1.0, 0.0, 0.0]) == ["a"]
    finally:
        index.close()


def test_best_first_is_the_stable_sorts_prefix_ties_included() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 50, 3000).astype(np.float32)  # many ties
    full = np.argsort(-scores, kind="stable").tolist()
    for wanted in (1, 64, 320, 2999, 3000, 5000):
        prefix = _best_first(scores, wanted)
        assert len(prefix) >= min(wanted, len(scores))
        assert prefix == full[: len(prefix)]


def test_a_loaded_cube_takes_its_next_adds_without_copying_its_matrix() -> None:
    cache = VectorCache()
    blob = _unit(1.0, 0.0).tobytes()
    cube = cache.load_chunks("a", 2, 1000, [[(n, f"a{n}", blob) for n in range(600)], [(600, "a600", blob)]])
    matrix = cube._matrix
    for rid in range(1000, 1100):
        cache.write(rid, f"b{rid}", "a", _unit(0.0, 1.0).tobytes(), activated=True)
    assert cube._matrix is matrix  # room was left at load: no 150 MB copy at 100k items
    assert len(cube) == 701
    assert {i for i, _ in cube.top(_unit(0.0, 1.0), 100, None)} == {f"b{rid}" for rid in range(1000, 1100)}
    for rid in range(2000, 4000):  # past the room, it grows, keeping every row
        cache.write(rid, f"c{rid}", "a", blob, activated=True)
    assert len(cube) == 2701 and cube._matrix is not matrix
    assert {i for i, _ in cube.top(_unit(0.0, 1.0), 100, None)} == {f"b{rid}" for rid in range(1000, 1100)}


def test_filtered_vector_search_is_the_textbook_answer_on_a_cold_and_a_warm_index(tmp_path: Path) -> None:
    """Exact: among the cube's activated documents that pass the filter, the `limit` of highest
    cosine, best first (ties by id), whether the cube's vectors were loaded before or not."""
    rng = np.random.default_rng(5)
    items = []
    for n in range(3000):
        item = memory(f"m{n:04d}", f"note {n}", cube="cube-a" if n % 5 else "cube-b")
        item.metadata.embedding = _unit(*rng.standard_normal(8)).tolist()
        item.metadata.info = {"topic": ("travel", "food", "work")[n % 3]}
        item.metadata.status = "archived" if n % 11 == 0 else "activated"
        items.append(item)
    SqliteIndex(tmp_path / "index.db").upsert(items)
    flt = And((Cond("info.topic", "eq", "travel"), Cond("memory_type", "nin", ("PreferenceMemory",))))
    queries = [_unit(*rng.standard_normal(8)) for _ in range(5)]

    def textbook(query: np.ndarray, limit: int) -> list[str]:
        passing = [
            i
            for i in items
            if i.metadata.cube_id == "cube-a" and i.metadata.status == "activated" and matches(flt, filter_doc(i))
        ]
        scored = [(i.id, float(np.asarray(i.metadata.embedding, dtype=np.float32) @ query)) for i in passing]
        return [i for i, _ in sorted(scored, key=lambda p: (-p[1], p[0]))[:limit]]

    warm = SqliteIndex(tmp_path / "index.db")
    try:
        for query in queries:
            for limit in (1, 40, 700):
                cold = SqliteIndex(tmp_path / "index.db")
                try:
                    found = [h.memory_id for h in cold.search(["cube-a"], "", query.tolist(), flt, limit)]
                finally:
                    cold.close()
                again = [h.memory_id for h in warm.search(["cube-a"], "", query.tolist(), flt, limit)]
                assert found == again == textbook(query, limit)
    finally:
        warm.close()


def test_the_vector_product_runs_on_the_indexs_thread_and_gives_the_inline_answer(tmp_path: Path) -> None:
    """The product runs beside the text half (another core), not on the caller's thread."""
    import threading

    index = SqliteIndex(tmp_path / "index.db")
    try:
        index.upsert([_vec(f"m{n}", _unit(1.0, n / 10, 0.5).tolist()) for n in range(30)])
        threads: list[str] = []
        products = index._products

        def spy(*args: object) -> object:
            threads.append(threading.current_thread().name)
            return products(*args)  # type: ignore[arg-type]

        index._products = spy  # type: ignore[method-assign,assignment]
        query = _unit(1.0, 0.3, 0.5)
        found = [h.memory_id for h in index.search(["cube-a"], "note", query.tolist(), None, 5) if h.cosine is not None]
        cube = CubeVectors(3)
        for n in range(30):
            cube.put(n, f"m{n}", _unit(1.0, n / 10, 0.5))
        assert found == [i for i, _ in cube.top(query, 5)]
        assert len(threads) == 1 and threads[0].startswith("memcube-vectors")
    finally:
        index.close()


def test_a_large_cubes_product_in_slices_is_bit_for_bit_the_whole_matrixs_product() -> None:
    """The index joins the slices' products (each on its own thread): the scores, and so the
    answer, must be exactly what one product over the whole matrix gives."""
    rng = np.random.default_rng(7)
    cube = CubeVectors(dimension=384)
    count = 40_003  # not a multiple of the alignment: the last slice is short
    cube.extend([(rid, f"m{rid}", _unit(*rng.standard_normal(384)).tobytes()) for rid in range(count)])
    for parts in (1, 2, 3, 4):
        slices = cube.slices(parts)
        assert len(slices) == min(parts, count // 16_384)
        assert slices[0][0] == 0 and slices[-1][1] == count
        assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))
        assert all(start % 64 == 0 for start, _ in slices)
        for _ in range(3):
            query = _unit(*rng.standard_normal(384))
            joined = np.concatenate([cube.products(query, rows) for rows in slices])
            assert np.array_equal(joined, cube.products(query))
    small = CubeVectors(dimension=2)
    small.put(1, "m1", _unit(1.0, 0.0))
    assert small.slices(4) == [(0, 1)] and CubeVectors(dimension=2).slices(4) == [(0, 0)]


def test_a_large_cubes_product_runs_in_slices_on_the_indexs_threads_and_gives_the_inline_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two cores each take half of a large cube's rows (one core's pass over 100k vectors was
    twice as long): the search calls the product once per slice, on the index's threads."""
    import threading

    from memcube_local.sqlite import vector_cache

    monkeypatch.setattr(vector_cache, "SPLIT_ROWS", 64)  # a "large" cube of 300 rows
    index = SqliteIndex(tmp_path / "index.db")
    try:
        index._threads = 2
        rng = np.random.default_rng(3)
        vectors = {f"m{n:03d}": _unit(*rng.standard_normal(8)) for n in range(300)}
        index.upsert([_vec(i, v.tolist()) for i, v in vectors.items()])
        calls: list[tuple[str, tuple[int, int]]] = []
        products = index._products

        def spy(cube: CubeVectors, query: np.ndarray, rows: tuple[int, int]) -> object:
            calls.append((threading.current_thread().name, rows))
            return products(cube, query, rows)

        index._products = spy  # type: ignore[method-assign]
        query = _unit(*rng.standard_normal(8))
        found = [h.memory_id for h in index.search(["cube-a"], "", query.tolist(), None, 20) if h.cosine is not None]
        textbook = sorted(vectors, key=lambda i: (-float(vectors[i] @ query), i))[:20]
        assert found == textbook
        assert sorted(rows for _, rows in calls) == [(0, 192), (192, 300)]
        assert all(name.startswith("memcube-vectors") for name, _ in calls)
    finally:
        index.close()


def test_the_index_computes_products_on_no_more_threads_than_the_cores_it_may_run_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process pinned to one core (`taskset`) gains nothing from a second slice."""
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    pinned = SqliteIndex(tmp_path / "pinned.db")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    many = SqliteIndex(tmp_path / "many.db")
    try:
        assert (pinned._threads, many._threads) == (1, 4)
    finally:
        pinned.close()
        many.close()


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The filters the index asked the table about a vector search's best rows."""
    import memcube_local.sqlite.index as index_module

    questions: list[str] = []
    passing = index_module._passing

    def spy(cur: object, where: str, params: list[object]) -> object:
        questions.append(where)
        return passing(cur, where, params)  # type: ignore[arg-type]

    monkeypatch.setattr(index_module, "_passing", spy)
    return questions


def test_a_search_of_cubes_holding_nothing_expired_asks_the_table_nothing_about_its_best_rows(
    tmp_path: Path, asked: list[str]
) -> None:
    index = SqliteIndex(tmp_path / "index.db")
    try:
        later = _vec("later", [1.0, 0.0, 0.0])
        later.metadata.expires_at = 2_000
        elsewhere = memory("elsewhere", "note elsewhere", cube="cube-b")
        elsewhere.metadata.embedding = [1.0, 0.0, 0.0]
        elsewhere.metadata.expires_at = 500  # expired, but in a cube not searched
        index.upsert([later, _vec("a", [0.9, 0.1, 0.0]), elsewhere])
        hits = index.search(["cube-a"], "", [1.0, 0.0, 0.0], None, 10, live_at=1_000)
        assert [h.memory_id for h in hits] == ["later", "a"] and asked == []
        hits = index.search(["cube-a"], "", [1.0, 0.0, 0.0], None, 10, live_at=3_000)  # "later" has expired
        assert [h.memory_id for h in hits] == ["a"] and len(asked) == 1
    finally:
        index.close()


def test_a_kind_filter_every_memory_type_of_the_cube_passes_asks_the_table_nothing(
    tmp_path: Path, asked: list[str]
) -> None:
    """The search's default filter leaves out preferences and tool memories: a cube holding
    none passes it whole; once it holds one, the best rows are checked and it is left out."""
    index = SqliteIndex(tmp_path / "index.db")
    not_special = Cond("memory_type", "nin", ("PreferenceMemory", "ToolTrajectoryMemory"))
    try:
        user = _vec("user", [0.9, 0.1, 0.0])
        user.metadata.memory_type = "UserMemory"
        index.upsert([_vec("a", [1.0, 0.0, 0.0]), user])
        hits = index.search(["cube-a"], "", [1.0, 0.0, 0.0], not_special, 10)
        assert [h.memory_id for h in hits] == ["a", "user"] and asked == []
        liked = _vec("liked", [1.0, 0.05, 0.0])
        liked.metadata.memory_type = "PreferenceMemory"
        index.upsert([liked])
        hits = index.search(["cube-a"], "", [1.0, 0.0, 0.0], not_special, 10)
        assert [h.memory_id for h in hits] == ["a", "user"] and len(asked) == 1
        only = Cond("memory_type", "eq", "PreferenceMemory")
        assert [h.memory_id for h in index.search(["cube-a"], "", [1.0, 0.0, 0.0], only, 10)] == ["liked"]
    finally:
        index.close()
