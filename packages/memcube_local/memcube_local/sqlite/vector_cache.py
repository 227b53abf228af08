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
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from functools import cache

import numpy as np
import numpy.typing as npt

MAX_ROWS = 2_000_000
"""About 3 GB of 384-d float32 vectors across all cached cubes."""
FILTER_BATCH = 4096
"""The most rids a filtered search tests in one query (SQLite binds at most 32766 parameters)."""

Vector = npt.NDArray[np.float32]


@cache
def _one_blas_thread() -> None:
    """Run numpy's BLAS on one thread, once per process. Exact search is one matrix-vector
    product, bound by memory bandwidth: a second thread barely speeds it up (11 vs 11 ms at 100k
    here), but its pool's threads keep spinning after it and stall the embedding model that runs
    next on the same cores (a single query's encode went from 11 to 130 ms at p99 on 2 cores)."""
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
        self._matrix: Vector = np.zeros((capacity, dimension), dtype=np.float32)
        self._rids: npt.NDArray[np.int64] = np.zeros(capacity, dtype=np.int64)
        self._ids: list[str] = []
        self._slot: dict[int, int] = {}

    @classmethod
    def of(cls, dimension: int, rows: Sequence[tuple[int, str, bytes]]) -> CubeVectors:
        """Built in one go from (rid, id, vector bytes) rows: one copy of the joined bytes."""
        cube = cls(dimension, capacity=max(64, len(rows)))
        if rows:
            count = len(rows)
            cube._matrix[:count] = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(
                count, dimension
            )
            cube._rids[:count] = [r[0] for r in rows]
            cube._ids = [r[1] for r in rows]
            cube._slot = {r[0]: n for n, r in enumerate(rows)}
        return cube

    def __len__(self) -> int:
        return len(self._ids)

    def rids(self) -> list[int]:
        return list(self._slot)

    def put(self, rid: int, memory_id: str, vector: Vector) -> None:
        slot = self._slot.get(rid)
        if slot is None:
            slot = len(self._ids)
            if slot == len(self._matrix):
                size = max(64, 2 * slot)
                self._matrix = np.resize(self._matrix, (size, self.dimension))
                self._rids = np.resize(self._rids, size)
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

    def top(self, query: Vector, limit: int, passes: Passes | None = None) -> list[tuple[str, float]]:
        """The `limit` rows of highest inner product with `query` (cosines: vectors are unit
        length), best first, ties by id. With `passes` (a filter, asked about batches of rids),
        rows are tested best first, in growing batches, until `limit` have passed: exact, and a
        filter most rows pass costs one batch. Past a quarter of the rows, the filter is asked
        once about the whole cube (a rare match: one scan instead of many batches)."""
        count = len(self._ids)
        if count == 0 or limit <= 0:
            return []
        _one_blas_thread()
        scores = self._matrix[:count] @ query
        if passes is None:
            k = min(limit, count)
            best = np.argpartition(-scores, k - 1)[:k] if k < count else np.arange(count)
            return sorted(((self._ids[i], float(scores[i])) for i in best.tolist()), key=lambda p: (-p[1], p[0]))
        order = np.argsort(-scores, kind="stable").tolist()
        found: list[tuple[str, float]] = []
        start, batch = 0, max(limit * 8, 64)
        while start < count and len(found) < limit:
            if start >= count // 4:
                rows, allowed = order[start:], passes(None)
            else:
                rows = order[start : start + batch]
                allowed = passes([int(self._rids[i]) for i in rows])
            found += [(self._ids[i], float(scores[i])) for i in rows if int(self._rids[i]) in allowed]
            start += len(rows)
            batch = min(batch * 4, FILTER_BATCH)
        return sorted(found, key=lambda p: (-p[1], p[0]))[:limit]


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

    def load(self, cube_id: str, dimension: int, rows: Iterable[tuple[int, str, bytes | None]]) -> CubeVectors:
        """Cache a cube from its activated rows (rid, id, float32 vector bytes of `dimension`)."""
        kept = [
            (rid, memory_id, blob) for rid, memory_id, blob in rows if blob is not None and len(blob) == 4 * dimension
        ]
        cube = CubeVectors.of(dimension, kept)
        for rid, _, _ in kept:
            self._cube_of[rid] = cube_id
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
