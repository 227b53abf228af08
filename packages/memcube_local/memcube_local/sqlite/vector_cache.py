"""The embedded index's vectors in memory, per cube: exact cosine search without reading the
table on every query.

Reading a cube's vectors from SQLite costs about 1.5 KB per item per query (150 MB at 100k
items, hundreds of milliseconds); kept as one float32 matrix per cube, the same exact search is
one matrix-vector product. The index keeps the cache in step with its own writes (under its
lock, after they commit) and drops it when another connection has written the file (SQLite's
`PRAGMA data_version`), so a query never sees less than the table holds.

Only activated documents with a vector are cached (searches see nothing else). A cube is loaded
on its first search; when the cached cubes hold more than `max_rows` vectors in all, the least
recently searched other cubes are dropped (and loaded again when searched).

A large cube is loaded from its snapshot file when it has a current one (`vector_snapshot`: read
straight into the matrix through `CubeVectors.room`, then the index replays the rows written
since), otherwise from the table, after which the index writes its snapshot.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from functools import cache

import numpy as np
import numpy.typing as npt

MAX_ROWS = 2_000_000
"""About 3 GB of 384-d float32 vectors across all cached cubes."""
GROWTH_HEADROOM = 8
"""A loaded cube's matrix has room for 1/8 more rows: the first add after a load does not copy it
(150 MB at 100k items; `np.resize` then also filled the doubled matrix)."""
LOAD_CHUNK = 8192
"""Rows read at a time when a cube is loaded (their bytes joined per chunk, not all at once)."""
FILTER_BATCH = 4096
"""The most rids a filtered search tests in one query (SQLite binds at most 32766 parameters)."""
SPLIT_ROWS = 16_384
"""A cube's product is cut into one row slice per this many rows, at most one per index thread
(a 100k cube: two slices on 2 cores): one core's pass over a 100k cube's matrix took 12 ms here,
two cores' halves 6 ms each at once."""
SLICE_ALIGN = 64
"""Slices start at a multiple of this many rows: with numpy's bundled OpenBLAS every row's product
is then bit for bit what the whole matrix's product gives (cut at other rows, its kernel rounded
some rows otherwise); `test_a_large_cubes_product_in_slices_is_bit_for_bit_the_whole_matrixs_product`
checks the BLAS installed."""

Vector = npt.NDArray[np.float32]


def next_batch(missing: int, passed: int, tested: int, last: int) -> int:
    """How many more best rows a filtered search tests, having found `passed` of `tested` rows
    passing and `missing` still to find: once more have passed than are missing, twice what the
    pass rate seen so far says it needs (at least 64); always at most four times the last batch
    and `FILTER_BATCH`. A batch that fell a few rows
    short then asks for about a hundred more rows, not four times as many (a filter passed by one
    row in eight fell short by a few in about half the searches, and the next batch of 1,280
    rows was most of its time)."""
    ceiling = min(last * 4, FILTER_BATCH)
    if passed <= missing:  # a rare filter (or too few passes to tell): batches grow fourfold
        return ceiling
    return max(64, min(ceiling, -(-2 * missing * tested // passed)))


@cache
def _one_blas_thread() -> None:
    """Run numpy's BLAS on one thread, once per process. Exact search is one matrix-vector
    product. A second BLAS thread sped it up alone on some days (11 vs 11 ms at 100k, later 17 vs
    9), but its pool's threads keep spinning after it and stall the
    embedding model and the text half that run on the same cores (a single query's encode went
    from 11 to 130 ms at p99 on 2 cores). The index runs the product on threads of its own
    instead (a slice each, `CubeVectors.slices`), beside the text half. torch's pool, shared
    with the model, stalled the encode too (its p99 25 to 140 ms in `bench.search`)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with the embedded default
        return
    threadpool_limits(limits=1, user_api="blas")


Passes = Callable[[Sequence[int] | None], set[int]]
"""Which of these rids (None: of all the cube's rows) pass the search's filter."""


class CubeVectors:
    """One cube's cached vectors: a growable matrix whose rows are addressed by `docs.rid`."""

    def __init__(self, dimension: int, capacity: int = 64) -> None:
        self.dimension = dimension
        self._matrix: Vector = np.empty((capacity, dimension), dtype=np.float32)
        self._rids: npt.NDArray[np.int64] = np.empty(capacity, dtype=np.int64)
        self._ids: list[str] = []
        self._slot: dict[int, int] = {}

    @classmethod
    def of(cls, dimension: int, rows: Sequence[tuple[int, str, bytes]]) -> CubeVectors:
        """Built in one go from (rid, id, vector bytes) rows: one copy of the joined bytes."""
        cube = cls.empty(dimension, len(rows))
        cube.extend(rows)
        return cube

    @classmethod
    def empty(cls, dimension: int, expected: int) -> CubeVectors:
        """Room for `expected` rows and some growth: the next adds do not copy the whole matrix."""
        return cls(dimension, capacity=max(64, expected + expected // GROWTH_HEADROOM))

    def extend(self, rows: Sequence[tuple[int, str, bytes]]) -> None:
        """Append rows of rids not held yet (a bulk load, chunk by chunk), each vector of `dimension`."""
        if not rows:
            return
        start, count = len(self._ids), len(rows)
        self._reserve(start + count)
        block = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(count, self.dimension)
        self._matrix[start : start + count] = block
        rids = [r[0] for r in rows]
        self._rids[start : start + count] = rids
        self._ids += [r[1] for r in rows]
        self._slot.update(zip(rids, range(start, start + count), strict=True))

    def _reserve(self, rows: int) -> None:
        """Grow the matrix (by half again, copying each row once) to hold `rows` rows."""
        if rows <= len(self._matrix):
            return
        size = max(64, rows, len(self._matrix) + len(self._matrix) // 2)
        matrix = np.empty((size, self.dimension), dtype=np.float32)
        matrix[: len(self._ids)] = self._matrix[: len(self._ids)]
        rids = np.empty(size, dtype=np.int64)
        rids[: len(self._ids)] = self._rids[: len(self._ids)]
        self._matrix, self._rids = matrix, rids

    def __len__(self) -> int:
        return len(self._ids)

    def held(self) -> tuple[npt.NDArray[np.int64], Vector, list[str]]:
        """The held rows' rids, matrix and ids, as views (a snapshot writes them out)."""
        count = len(self._ids)
        return self._rids[:count], self._matrix[:count], self._ids

    def room(self, rows: int) -> tuple[npt.NDArray[np.int64], Vector]:
        """Views of the first `rows` rows' rids and matrix to be filled in place (a snapshot is
        read straight into them), then taken with `adopt`."""
        self._reserve(rows)
        return self._rids[:rows], self._matrix[:rows]

    def adopt(self, ids: list[str]) -> None:
        """Hold the first `len(ids)` rows filled through `room` (an empty cube only)."""
        if self._ids:
            raise ValueError("only an empty cube adopts rows")
        self._ids = ids
        self._slot = dict(zip(self._rids[: len(ids)].tolist(), range(len(ids)), strict=True))

    def rids(self) -> list[int]:
        return list(self._slot)

    def put(self, rid: int, memory_id: str, vector: Vector) -> None:
        slot = self._slot.get(rid)
        if slot is None:
            slot = len(self._ids)
            self._reserve(slot + 1)
            self._ids.append(memory_id)
            self._rids[slot] = rid
            self._slot[rid] = slot
        self._ids[slot] = memory_id
        self._matrix[slot] = vector

    def remove(self, rid: int) -> None:
        """Swap the last row into the removed one (order does not matter to a search)."""
        slot = self._slot.pop(rid, None)
        if slot is None:
            return
        last = len(self._ids) - 1
        if slot != last:
            moved = int(self._rids[last])
            self._matrix[slot] = self._matrix[last]
            self._rids[slot] = moved
            self._ids[slot] = self._ids[last]
            self._slot[moved] = slot
        self._ids.pop()

    def slices(self, parts: int) -> list[tuple[int, int]]:
        """The held rows as up to `parts` ranges of about equal size, one per `SPLIT_ROWS` rows
        held (one range below `2 * SPLIT_ROWS`), each starting at a multiple of `SLICE_ALIGN`:
        their `products`, computed on as many threads and joined in order, are the whole
        matrix's."""
        count = len(self._ids)
        if count == 0:
            return [(0, 0)]
        parts = max(1, min(parts, count // SPLIT_ROWS))
        step = -(-count // parts // SLICE_ALIGN) * SLICE_ALIGN
        return list(itertools.pairwise([*range(0, count, step), count]))

    def products(self, query: Vector, rows: tuple[int, int] | None = None) -> Vector:
        """Each row's inner product with `query` (of the rows `rows`, a range from `slices`; all
        by default): the whole cost of a search over a large cube (one pass over the matrix).
        numpy releases the GIL for it, so other threads may run it, each on its own slice, while
        the caller does other work; it only reads the matrix."""
        _one_blas_thread()
        start, stop = (0, len(self._ids)) if rows is None else rows
        return self._matrix[start:stop] @ query

    def top(
        self, query: Vector, limit: int, passes: Passes | None = None, *, scores: Vector | None = None
    ) -> list[tuple[str, float]]:
        """The `limit` rows of highest inner product with `query` (cosines: vectors are unit
        length), best first, ties by id; `scores`, when given, are `products(query)` of the
        cube as it is now. With `passes` (a filter, asked about batches of rids),
        rows are tested best first, in batches sized by the pass rate so far (`next_batch`), until
        `limit` have passed: exact, and a
        filter most rows pass costs one batch. Past a quarter of the rows, the filter is asked
        once about the whole cube (a rare match: one scan instead of many batches)."""
        count = len(self._ids)
        if count == 0 or limit <= 0:
            return []
        if scores is None:
            scores = self.products(query)
        if len(scores) != count:
            raise ValueError(f"{len(scores)} scores for a cube of {count} rows")
        if passes is None:
            k = min(limit, count)
            best = np.argpartition(-scores, k - 1)[:k] if k < count else np.arange(count)
            return sorted(((self._ids[i], float(scores[i])) for i in best.tolist()), key=lambda p: (-p[1], p[0]))
        order: list[int] = []
        found: list[tuple[str, float]] = []
        start, batch = 0, max(limit * 8, 64)
        while start < count and len(found) < limit:
            if start >= count // 4:
                order = _best_first(scores, count)
                rows, allowed = order[start:], passes(None)
            else:
                if start + batch > len(order):
                    order = _best_first(scores, min(count, 4 * (start + batch)))
                rows = order[start : start + batch]
                allowed = passes([int(self._rids[i]) for i in rows])
            found += [(self._ids[i], float(scores[i])) for i in rows if int(self._rids[i]) in allowed]
            start += len(rows)
            batch = next_batch(limit - len(found), len(found), start, batch)
        return sorted(found, key=lambda p: (-p[1], p[0]))[:limit]


def _best_first(scores: Vector, wanted: int) -> list[int]:
    """The first `wanted` (and any tied with the last) of `np.argsort(-scores, kind="stable")`:
    the same rows in the same order, by a partition and a sort of those rows only (a filtered
    search tests a few hundred best rows; sorting all 100k scores was most of its vector half)."""
    count = len(scores)
    if wanted >= count:
        return np.argsort(-scores, kind="stable").tolist()  # type: ignore[no-any-return]
    kth = np.partition(scores, count - wanted)[count - wanted]
    rows = np.flatnonzero(scores >= kth)  # ascending: a stable sort keeps ties in row order
    return rows[np.argsort(-scores[rows], kind="stable")].tolist()  # type: ignore[no-any-return]


class VectorCache:
    """`CubeVectors` for the cubes searched lately, with the connection's data version they match."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self._cubes: OrderedDict[str, CubeVectors] = OrderedDict()
        self._cube_of: dict[int, str] = {}
        self._max_rows = max_rows
        self.data_version: int | None = None

    def clear(self) -> None:
        self._cubes.clear()
        self._cube_of.clear()

    def get(self, cube_id: str) -> CubeVectors | None:
        cube = self._cubes.get(cube_id)
        if cube is not None:
            self._cubes.move_to_end(cube_id)
        return cube

    def peek(self, cube_id: str) -> CubeVectors | None:
        """The cube if cached, without counting as a search (a write's bookkeeping)."""
        return self._cubes.get(cube_id)

    def load(self, cube_id: str, dimension: int, rows: Iterable[tuple[int, str, bytes | None]]) -> CubeVectors:
        """Cache a cube from its activated rows (rid, id, float32 vector bytes of `dimension`)."""
        kept = [
            (rid, memory_id, blob) for rid, memory_id, blob in rows if blob is not None and len(blob) == 4 * dimension
        ]
        return self.load_chunks(cube_id, dimension, len(kept), [kept])

    def load_chunks(
        self, cube_id: str, dimension: int, expected: int, chunks: Iterable[Sequence[tuple[int, str, bytes]]]
    ) -> CubeVectors:
        """Cache a cube from chunks of its activated rows, every vector of `dimension` (about
        `expected` rows in all: the matrix is sized once)."""
        cube = CubeVectors.empty(dimension, expected)
        for chunk in chunks:
            cube.extend(chunk)
        return self.keep(cube_id, cube)

    def keep(self, cube_id: str, cube: CubeVectors) -> CubeVectors:
        """Cache a cube built elsewhere (from a snapshot file) as the cube's current vectors."""
        self._cube_of.update(dict.fromkeys(cube.rids(), cube_id))
        self._cubes[cube_id] = cube
        self._evict(keep=cube_id)
        return cube

    def write(self, rid: int, memory_id: str, cube_id: str, vector: bytes | None, activated: bool) -> None:
        """Follow one committed upsert: the row may have moved cube, changed status or vector."""
        self.forget(rid)
        cube = self._cubes.get(cube_id)
        if cube is None or not activated or vector is None or len(vector) != 4 * cube.dimension:
            return
        cube.put(rid, memory_id, np.frombuffer(vector, dtype=np.float32))
        self._cube_of[rid] = cube_id

    def forget(self, rid: int) -> None:
        cube_id = self._cube_of.pop(rid, None)
        if cube_id is not None and cube_id in self._cubes:
            self._cubes[cube_id].remove(rid)

    def _evict(self, keep: str) -> None:
        total = sum(len(c) for c in self._cubes.values())
        for cube_id in list(self._cubes):
            if total <= self._max_rows:
                return
            if cube_id == keep:
                continue
            evicted = self._cubes.pop(cube_id)
            total -= len(evicted)
            for rid in evicted.rids():  # a rid left behind by an earlier load is ignored by `forget`
                if self._cube_of.get(rid) == cube_id:
                    del self._cube_of[rid]
