"""The embedded default's search index: SQLite FTS5 for text, float32 vectors beside it.

It is derived data (rebuildable from the store) and every query is filtered by cube id. The
`meta` table records the embedding model of its vectors; vectors of another are refused.
Vector search is exact (cosine over every activated document of the cubes), on a per-cube
matrix kept in memory (`vector_cache`) instead of reading every vector from the table per query.
A large cube's matrix is also kept in a snapshot file beside the index (`vector_snapshot`), so a
cold cube loads with one sequential read; the changes made after a snapshot are replayed from a
change log the table's triggers fill, so the search stays exact.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import time
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from memcube.domain.errors import EmbeddingMismatch
from memcube.domain.filters import And, Filter, Or, filter_doc, matches
from memcube.domain.model import MemoryItem
from memcube.domain.similarity import CJK
from memcube.ports import Hit
from memcube_local.sqlite.db import SqliteDb
from memcube_local.sqlite.vector_cache import LOAD_CHUNK, CubeVectors, Passes, VectorCache, next_batch
from memcube_local.sqlite.vector_snapshot import SnapshotFiles, Stamp, directory_of

log = logging.getLogger(__name__)

_CJK = re.compile(rf"([{CJK}])")


def fts_text(text: str) -> str:
    """FTS5's unicode61 tokenizer keeps a run of CJK characters as one token; spacing them out
    indexes CJK per character (as OpenSearch's standard analyzer does), and a query for a CJK
    word becomes a phrase of adjacent characters."""
    return _CJK.sub(r" \1 ", text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def fts_phrase(word: str) -> str:
    """One word as an FTS5 phrase: quotes doubled, control characters (a NUL ends FTS5's query
    string early: "unterminated string") turned to spaces; '' when nothing is left."""
    cleaned = " ".join(_CONTROL.sub(" ", word).split())
    return '"' + cleaned.replace('"', '""') + '"' if cleaned else ""


def fts_match(words: Sequence[str], operator: str) -> str:
    """The words as FTS5 phrases joined by `operator` (' ' is AND); '' if none is left."""
    return operator.join(p for p in (fts_phrase(w) for w in words) if p)


SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    rid INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, cube_id TEXT NOT NULL,
    status TEXT NOT NULL, memory_type TEXT NOT NULL, session_id TEXT NOT NULL, updated_at TEXT NOT NULL,
    model TEXT, vector BLOB, doc TEXT);
CREATE INDEX IF NOT EXISTS docs_by_cube ON docs (cube_id, status);
CREATE VIRTUAL TABLE IF NOT EXISTS docs_text USING fts5 (memory, key, tags, tokenize = 'unicode61');
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


DOC_EXPIRES = "json_extract(doc, '$.expires_at')"
"""A document's expiry (epoch seconds, from `search.filter_doc`); NULL: never (documents written
before expiry existed have none either)."""

TEXT_POSTINGS_BUDGET = 10_000
"""The text half scores BM25 over the query's rarest words whose documents add up to at most
this many (about 10 ms of FTS5 here). BM25's cost is every document matching any query word,
and a common word matches most of a large index while adding almost nothing to any score (its
IDF is near zero; over half the documents, FTS5 clamps it to 1e-6): such words are left to the
vector half, as Elasticsearch's `common` terms query did. A word rarer than the budget is always
scored, so a name or a rare term still finds its documents; below a few thousand documents in
all, every word is scored."""


SNAPSHOT_ROWS = 20_000
"""A cube whose vectors number at least this many gets a snapshot file when it is loaded from the
table: its next cold load reads one file (about 50 ms for 100k 384-d vectors from the page cache)
instead of a row per vector (about 300 ms at 100k on a quiet machine, 450-720 ms under load).
Below it, the table load costs tens of milliseconds, and neither a file nor the change log a
snapshotted cube's writes fill is worth having."""
PRODUCT_THREADS = 4
"""At most this many threads (and no more than the machine's cores) compute a large cube's
vector product, a slice each (`CubeVectors.slices`)."""
SNAPSHOT_STALE = 1 / 16
"""A snapshot is rewritten (and its cube's change log pruned) when the log since it names more
than this fraction of the cube's rows: every logged row is read from the table again on each
cold load (about 30 ms for 6,000 rows at 100k)."""

SNAPSHOT_SCHEMA = (
    # Which cubes have a snapshot file, of which dimension, covering the change log up to `seq`.
    "CREATE TABLE IF NOT EXISTS vector_snapshots (cube_id TEXT PRIMARY KEY, dimension INTEGER NOT NULL, "
    "seq INTEGER NOT NULL)",
    # The rows of snapshotted cubes written since their snapshot (AUTOINCREMENT: a position is never reused).
    "CREATE TABLE IF NOT EXISTS vector_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, cube_id TEXT NOT NULL, "
    "rid INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS vector_log_by_cube ON vector_log (cube_id, seq)",
    # Only cubes with a snapshot log anything: a small cube's writes pay one primary-key probe.
    "CREATE TRIGGER IF NOT EXISTS docs_vector_insert AFTER INSERT ON docs "
    "WHEN EXISTS (SELECT 1 FROM vector_snapshots WHERE cube_id = NEW.cube_id) "
    "BEGIN INSERT INTO vector_log (cube_id, rid) VALUES (NEW.cube_id, NEW.rid); END",
    "CREATE TRIGGER IF NOT EXISTS docs_vector_delete AFTER DELETE ON docs "
    "WHEN EXISTS (SELECT 1 FROM vector_snapshots WHERE cube_id = OLD.cube_id) "
    "BEGIN INSERT INTO vector_log (cube_id, rid) VALUES (OLD.cube_id, OLD.rid); END",
    "CREATE TRIGGER IF NOT EXISTS docs_vector_update AFTER UPDATE OF id, cube_id, status, vector ON docs "
    "WHEN OLD.id IS NOT NEW.id OR OLD.cube_id IS NOT NEW.cube_id OR OLD.status IS NOT NEW.status "
    "OR OLD.vector IS NOT NEW.vector BEGIN "
    "INSERT INTO vector_log (cube_id, rid) SELECT OLD.cube_id, OLD.rid "
    "WHERE EXISTS (SELECT 1 FROM vector_snapshots WHERE cube_id = OLD.cube_id); "
    "INSERT INTO vector_log (cube_id, rid) SELECT NEW.cube_id, NEW.rid WHERE NEW.cube_id IS NOT OLD.cube_id "
    "AND EXISTS (SELECT 1 FROM vector_snapshots WHERE cube_id = NEW.cube_id); END",
)


class _Moved(Exception):
    """Another connection wrote while a snapshot was staged: it may not be current."""


class SqliteIndex:
    def __init__(self, path: Path, text_budget: int = TEXT_POSTINGS_BUDGET, snapshot_rows: int = SNAPSHOT_ROWS) -> None:
        self._db = SqliteDb(path, SCHEMA, version=1)
        self._threads = max(1, min(_cores(), PRODUCT_THREADS))
        self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="memcube-vectors")
        """Runs a search's vector products, a slice of a large cube's rows per thread, beside its
        text half (threads start on first use)."""
        self._vectors = VectorCache()
        self._snapshots = SnapshotFiles(directory_of(path))
        self._snapshot_rows = snapshot_rows
        self._planned: dict[str, int | None] = {}
        """Cubes whose snapshot to write (of this dimension) or drop (None) after the search."""
        self._logged: dict[str, int] = {}
        """Rows written to each snapshotted cube this index holds since its snapshot (about the
        change log's: a rewrite with the cube cached needs no cold load to be planned)."""
        with self._db.tx() as cur:  # indexes made before filters (or model records) existed lack them
            columns = {r["name"] for r in cur.execute("PRAGMA table_info(docs)")}
            if "doc" not in columns:
                cur.execute("ALTER TABLE docs ADD COLUMN doc TEXT")
            cur.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            cur.execute("CREATE VIRTUAL TABLE IF NOT EXISTS docs_vocab USING fts5vocab(docs_text, 'row')")
            expiring = f"ON docs ({DOC_EXPIRES}) WHERE {DOC_EXPIRES} IS NOT NULL"
            cur.execute(f"CREATE INDEX IF NOT EXISTS docs_by_expiry {expiring}")
            cur.execute("CREATE INDEX IF NOT EXISTS docs_by_kind ON docs (cube_id, status, memory_type)")
            for statement in SNAPSHOT_SCHEMA:
                cur.execute(statement)
            cur.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('instance', ?)", (uuid.uuid4().hex,))
            (self._instance,) = cur.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
        self._frequencies = TermFrequencies(text_budget)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._db.close()

    def embedding_model(self) -> str | None:
        with self._db.read() as cur:
            recorded = _recorded(cur)
        return recorded[0] if recorded else None

    def reset(self) -> None:
        with self._db.lock:
            with self._db.tx() as cur:
                cur.execute("DELETE FROM docs_text")
                cur.execute("DELETE FROM docs")
                cur.execute("DELETE FROM meta WHERE key = 'embedding'")
                cur.execute("INSERT INTO docs_text (docs_text) VALUES ('optimize')")
                cur.execute("DELETE FROM vector_snapshots")
                cur.execute("DELETE FROM vector_log")
            self._vectors.clear()
            self._planned.clear()
            self._logged.clear()
            self._snapshots.clear()  # committed: no file holds a vector of the reset index
        self._db.scrub()

    def upsert(self, items: Sequence[MemoryItem]) -> None:
        """All or nothing, in one transaction: vectors of another model than the recorded one
        (`EmbeddingMismatch`) leave the index (and its cached vectors) as they were."""
        offered = [(i.metadata.embedding_model or "", len(i.metadata.embedding)) for i in items if i.metadata.embedding]
        with self._db.lock:
            with self._db.tx() as cur:
                recorded = _recorded(cur)
                accepted = EmbeddingMismatch.check(recorded, offered)
                if accepted != recorded:
                    cur.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('embedding', ?)", (json.dumps(accepted),)
                    )
                written = [_write(cur, item) for item in items]
            for rid, item, vector in written:  # committed: the cached vectors follow
                self._vectors.write(rid, item.id, item.metadata.cube_id, vector, item.metadata.status == "activated")
            self._count_logged([item.metadata.cube_id for _, item, _ in written])
            if self._planned:  # after the commit, as after a search's read
                self._settle_snapshots()

    def delete(self, cube_id: str, memory_ids: Sequence[str]) -> int:
        removed: list[int] = []
        cubes: set[str] = set()
        with self._db.lock:
            with self._db.tx() as cur:
                for memory_id in set(memory_ids):
                    row = cur.execute("SELECT rid, cube_id FROM docs WHERE id = ?", (memory_id,)).fetchone()
                    if row is None:
                        continue
                    cur.execute("DELETE FROM docs_text WHERE rowid = ?", (row["rid"],))
                    cur.execute("DELETE FROM docs WHERE rid = ?", (row["rid"],))
                    removed.append(row["rid"])
                    cubes.add(row["cube_id"])
                _forget_model_if_empty(cur)
                _unregister_snapshots(cur, cubes)
            for rid in removed:
                self._vectors.forget(rid)
            self._drop_snapshot_files(cubes)
        return len(removed)

    def delete_where(self, cube_id: str, user_id: str | None) -> int:
        with self._db.lock:
            with self._db.tx() as cur:
                sql, args = "SELECT rid FROM docs WHERE cube_id = ?", [cube_id]
                if user_id is not None:
                    sql += " AND json_extract(doc, '$.user_id') = ?"
                    args.append(user_id)
                rids = [(r["rid"],) for r in cur.execute(sql, args).fetchall()]
                cur.executemany("DELETE FROM docs_text WHERE rowid = ?", rids)
                cur.executemany("DELETE FROM docs WHERE rid = ?", rids)
                _forget_model_if_empty(cur)
                _unregister_snapshots(cur, {cube_id})
                # FTS5 keeps a deleted row's tokens in its segments until they merge: merge now (erasure).
                cur.execute("INSERT INTO docs_text (docs_text) VALUES ('optimize')")
            for (rid,) in rids:
                self._vectors.forget(rid)
            self._drop_snapshot_files({cube_id})
        self._db.scrub()
        return len(rids)

    def ids(self, cube_id: str) -> set[str]:
        """Indexed memory ids of a cube (for reconciling the index against the store)."""
        with self._db.read() as cur:
            return {r["id"] for r in cur.execute("SELECT id FROM docs WHERE cube_id = ?", (cube_id,))}

    def stamps(self, cube_id: str) -> dict[str, str]:
        with self._db.read() as cur:
            rows = cur.execute("SELECT id, updated_at FROM docs WHERE cube_id = ?", (cube_id,))
            return {r["id"]: r["updated_at"] for r in rows}

    def search(
        self,
        cube_ids: Sequence[str],
        text: str,
        vector: Sequence[float],
        flt: Filter | None,
        limit: int,
        *,
        live_at: int | None = None,
    ) -> list[Hit]:
        """Vector candidates by exact cosine (over the cubes' cached vectors, see
        `vector_cache`) and text candidates by FTS5 BM25 (any query word), merged by id."""
        where, params = _scope(cube_ids, flt)
        if live_at is not None:  # expired documents are filtered like a filter's misses
            where += f" AND ({DOC_EXPIRES} IS NULL OR {DOC_EXPIRES} > ?)"
            params.append(live_at)
        hits: dict[str, Hit] = {}
        with self._db.read() as cur:
            recorded = _recorded(cur)
            if len(vector) and recorded and len(vector) != recorded[1]:
                raise EmbeddingMismatch(recorded, ("", len(vector)), query=True)
            probe = _column_part(flt)
            kinds = _kinds(cur, cube_ids) if probe is not None else set()
            if probe is not None and not any(_passes_kind(probe, kind) for kind in kinds):
                return []  # e.g. the preference and tool-memory searches of a cube holding none
            query = np.asarray(vector, dtype=np.float32)
            cubes = self._searched(cur, cube_ids, len(query)) if len(query) else []
            # The vector half's product runs on other cores while this thread runs the text half
            # (numpy and SQLite both release the GIL); the lock, held, keeps the matrices as they are.
            products = self._start_products(cubes, query)
            try:
                text_rows = self._text_half(cur, text, where, params, limit)
            finally:
                products.wait()
            if cubes:
                checked = not _every_kind_passes(flt, probe, kinds) or _any_expired(cur, cube_ids, live_at)
                passes = _passing(cur, where, params) if checked else None
                for memory_id, cube_id, cosine in self._nearest(cubes, query, products.scores(), limit, passes):
                    hits[memory_id] = Hit(memory_id, cube_id, cosine, None)
        if self._planned:  # after the read: writing a snapshot takes a write transaction
            self._settle_snapshots()
        for memory_id, cube_id, score in text_rows:
            known = hits.get(memory_id)
            hits[memory_id] = Hit(memory_id, cube_id, known.cosine if known else None, score)
        return list(hits.values())

    def select(
        self, cube_id: str, flt: Filter, offset: int, limit: int, *, live_at: int | None = None
    ) -> tuple[list[str], int]:
        """One query for the page (ordered by the stored `created_at`, then id) and one count,
        inside one read: the page and its total are one snapshot."""
        where, params = _scope([cube_id], flt)
        if live_at is not None:
            where += f" AND ({DOC_EXPIRES} IS NULL OR {DOC_EXPIRES} > ?)"
            params = [*params, live_at]
        with self._db.read() as cur:
            (total,) = cur.execute(f"SELECT count(*) FROM docs d WHERE {where}", params).fetchone()
            rows = cur.execute(
                f"SELECT d.id FROM docs d WHERE {where} "
                "ORDER BY json_extract(d.doc, '$.created_at'), d.id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [r["id"] for r in rows], int(total)

    def _searched(self, cur: sqlite3.Cursor, cube_ids: Sequence[str], dimension: int) -> list[tuple[str, CubeVectors]]:
        """The cubes' cached vectors, each loaded if it is not cached (the caller holds the
        connection's lock, so the cache cannot change until it lets go)."""
        (version,) = cur.execute("PRAGMA data_version").fetchone()
        if version != self._vectors.data_version:  # another connection wrote: reload what is searched
            self._vectors.clear()
            self._vectors.data_version = version
        return [(cube_id, self._cube_vectors(cur, cube_id, dimension)) for cube_id in dict.fromkeys(cube_ids)]

    def _start_products(self, cubes: list[tuple[str, CubeVectors]], query: npt.NDArray[np.float32]) -> _Products:
        """Each cube's product started on the index's threads, one per slice of its rows."""
        return _Products(
            [
                [self._pool.submit(self._products, cube, query, rows) for rows in cube.slices(self._threads)]
                for _, cube in cubes
            ]
        )

    @staticmethod
    def _products(cube: CubeVectors, query: npt.NDArray[np.float32], rows: tuple[int, int]) -> Any:
        """The cosines of a slice of the cube's rows with the query (numpy only: it runs on one
        of the pool's threads)."""
        return cube.products(query, rows)

    def _text_half(
        self, cur: sqlite3.Cursor, text: str, where: str, params: list[Any], limit: int
    ) -> list[tuple[str, str, float]]:
        words = self._frequencies.informative(cur, [w for w in fts_text(text).split() if w])
        return _best_text(cur, words, where, params, limit) if words else []

    @staticmethod
    def _nearest(
        cubes: list[tuple[str, CubeVectors]],
        query: npt.NDArray[np.float32],
        scores: list[Any],
        limit: int,
        passes: Passes | None,
    ) -> list[tuple[str, str, float]]:
        """The `limit` activated documents of the cubes nearest to the query, best first, from
        each cube's `scores` (the filter's checks, if any, read the table: this thread only)."""
        found: list[tuple[str, str, float]] = []
        for (cube_id, cube), cosines in zip(cubes, scores, strict=True):
            best = cube.top(query, limit, passes, scores=cosines)
            found += [(memory_id, cube_id, cosine) for memory_id, cosine in best]
        return sorted(found, key=lambda f: (-f[2], f[0]))[:limit]

    def _cube_vectors(self, cur: sqlite3.Cursor, cube_id: str, dimension: int) -> CubeVectors:
        cube = self._vectors.get(cube_id)
        if cube is None or cube.dimension != dimension:
            with _one_read(cur):  # the registry, the log and the rows it names: one state of the file
                registered = cur.execute(
                    "SELECT dimension, seq FROM vector_snapshots WHERE cube_id = ?", (cube_id,)
                ).fetchone()
                cube = self._from_snapshot(cur, cube_id, dimension, registered)
                if cube is None:
                    cube = self._from_table(cur, cube_id, dimension)
                    if len(cube) >= self._snapshot_rows:
                        self._planned[cube_id] = dimension
                    elif registered is not None:  # a cube that shrank: its writes need no log
                        self._planned[cube_id] = None
        return cube

    def _from_snapshot(
        self, cur: sqlite3.Cursor, cube_id: str, dimension: int, registered: sqlite3.Row | None
    ) -> CubeVectors | None:
        """The cube from its registered snapshot and the rows its change log names after it
        (each put back or removed as the table holds it now), or None without a usable file."""
        if registered is None or registered["dimension"] != dimension:
            return None
        cube = self._snapshots.read(Stamp(self._instance, cube_id, dimension, int(registered["seq"])))
        if cube is None:
            return None
        # each logged rid with its row as the table holds it now (none: gone, moved or not searched)
        logged = cur.execute(
            "SELECT l.rid, d.id, d.vector FROM vector_log l LEFT JOIN docs d ON d.rid = l.rid "
            "AND d.cube_id = ? AND d.status = 'activated' AND length(d.vector) = ? "
            "WHERE l.cube_id = ? AND l.seq > ? ORDER BY l.seq",
            (cube_id, 4 * dimension, cube_id, registered["seq"]),
        ).fetchall()
        if logged:
            for rid, memory_id, vector in {r[0]: (r[0], r[1], r[2]) for r in logged}.values():
                cube.remove(rid)
                if memory_id is not None:
                    cube.put(rid, memory_id, np.frombuffer(vector, dtype=np.float32))
            if len(logged) > len(cube) * SNAPSHOT_STALE:
                self._planned[cube_id] = dimension
        self._logged[cube_id] = len(logged)
        return self._vectors.keep(cube_id, cube)

    def _from_table(self, cur: sqlite3.Cursor, cube_id: str, dimension: int) -> CubeVectors:
        """The cube loaded from its rows in the table (the first load, or no usable snapshot)."""
        scope = "FROM docs WHERE cube_id = ? AND status = 'activated' AND length(vector) = ?"
        args = (cube_id, 4 * dimension)  # a vector of another length is never searched
        # Sizes the matrix: the index `docs_by_cube` alone gives a bound (rows of another
        # vector length are skipped below) where `length(vector)` read every row (~100 ms at 100k).
        (expected,) = cur.execute(
            "SELECT count(*) FROM docs WHERE cube_id = ? AND status = 'activated'", (cube_id,)
        ).fetchone()
        plain = cur.connection.cursor()
        plain.row_factory = None  # plain tuples: building 100k `sqlite3.Row`s slowed a load
        try:
            rows = plain.execute(f"SELECT rid, id, vector {scope}", args)
            chunks = iter(lambda: rows.fetchmany(LOAD_CHUNK), [])
            cube = self._vectors.load_chunks(cube_id, dimension, int(expected), chunks)
        finally:
            plain.close()
        return cube

    def _settle_snapshots(self) -> None:
        """Write (or drop) the snapshots the search's loads planned. A failure (a full disk, a
        read-only directory) is logged: the search has its answer, the next cold load reads the table."""
        with self._db.lock:
            planned, self._planned = self._planned, {}
            for cube_id, dimension in planned.items():
                try:
                    if dimension is None:
                        with self._db.tx() as cur:
                            _unregister_snapshots(cur, {cube_id})
                        self._drop_snapshot_files({cube_id})
                    else:
                        self._write_snapshot(cube_id, dimension)
                except (OSError, sqlite3.Error) as error:
                    log.warning("vector snapshot of cube %s not written: %s", cube_id, error)

    def _write_snapshot(self, cube_id: str, dimension: int) -> None:
        """Snapshot the cached cube at the change log's current position (under the lock).

        The cached cube is the table's state while no other connection has written since the
        cache was checked (`PRAGMA data_version`; this connection's writes update the cache as they
        commit, and wait for the lock). The file is staged outside the write transaction, then
        renamed into place and registered in it, only if still nothing was written meanwhile: a
        write in between would be in neither the file nor the log."""
        cube = self._vectors.get(cube_id)
        with self._db.read() as cur:
            (version,) = cur.execute("PRAGMA data_version").fetchone()
            row = cur.execute("SELECT seq FROM sqlite_sequence WHERE name = 'vector_log'").fetchone()
        if cube is None or cube.dimension != dimension or version != self._vectors.data_version:
            return
        stamp = Stamp(self._instance, cube_id, dimension, int(row[0]) if row else 0)
        staged = self._snapshots.stage(stamp, cube)
        try:
            with self._db.tx() as cur:
                (now,) = cur.execute("PRAGMA data_version").fetchone()
                if now != version:
                    raise _Moved
                self._snapshots.publish(staged, stamp)
                cur.execute(
                    "INSERT OR REPLACE INTO vector_snapshots (cube_id, dimension, seq) VALUES (?, ?, ?)",
                    (cube_id, dimension, stamp.seq),
                )
                cur.execute("DELETE FROM vector_log WHERE cube_id = ? AND seq <= ?", (cube_id, stamp.seq))
            self._logged[cube_id] = 0
        except _Moved:
            pass  # the next load from the table plans it again
        finally:
            staged.unlink(missing_ok=True)

    def _drop_snapshot_files(self, cubes: set[str]) -> None:
        """Remove the cubes' snapshot files (already unregistered: a hard delete's erasure)."""
        for cube_id in cubes:
            self._planned.pop(cube_id, None)
            self._logged.pop(cube_id, None)
            self._snapshots.remove(cube_id)

    def _count_logged(self, cubes: list[str]) -> None:
        """Count committed writes to snapshotted cubes; plan a rewrite of a cached one whose log
        outgrew its snapshot (a server that keeps a cube cached would otherwise grow its log
        until its next cold load)."""
        for cube_id in cubes:
            if cube_id in self._logged:
                self._logged[cube_id] += 1
                cube = self._vectors.peek(cube_id)
                if cube is not None and self._logged[cube_id] > len(cube) * SNAPSHOT_STALE:
                    self._planned[cube_id] = cube.dimension

    def expired_documents(self, before: int, limit: int) -> list[tuple[str, str]]:
        with self._db.read() as cur:
            rows = cur.execute(
                f"SELECT cube_id, id FROM docs WHERE {DOC_EXPIRES} IS NOT NULL AND {DOC_EXPIRES} <= ? "
                f"ORDER BY {DOC_EXPIRES}, id LIMIT ?",
                (before, limit),
            ).fetchall()
        return [(r["cube_id"], r["id"]) for r in rows]

    def text_search(self, cube_id: str, query: str, limit: int) -> list[str]:
        """Ids of a cube's activated docs matching all query words, best BM25 first."""
        words = [w for w in query.split() if w.strip()]
        if not words:
            return []
        match = fts_match([fts_text(w) for w in words], " ")
        if not match:
            return []
        with self._db.read() as cur:
            rows = cur.execute(
                "SELECT d.id FROM docs_text t JOIN docs d ON d.rid = t.rowid "
                "WHERE docs_text MATCH ? AND d.cube_id = ? AND d.status = 'activated' "
                "ORDER BY bm25(docs_text) LIMIT ?",
                (match, cube_id, limit),
            ).fetchall()
        return [r["id"] for r in rows]


@contextmanager
def _one_read(cur: sqlite3.Cursor) -> Iterator[None]:
    """Statements run in one read transaction (the caller holds the connection's lock), so they
    see one state of the file even if another connection commits meanwhile."""
    opened = not cur.connection.in_transaction
    if opened:
        cur.execute("BEGIN")
    try:
        yield
    finally:
        if opened and cur.connection.in_transaction:
            cur.execute("COMMIT")  # reads only: ends the snapshot


def _unregister_snapshots(cur: sqlite3.Cursor, cubes: set[str]) -> None:
    """Forget the cubes' snapshots and their change log (their files are removed after the commit)."""
    for cube_id in cubes:
        cur.execute("DELETE FROM vector_snapshots WHERE cube_id = ?", (cube_id,))
        cur.execute("DELETE FROM vector_log WHERE cube_id = ?", (cube_id,))


def _passing(cur: sqlite3.Cursor, where: str, params: list[Any]) -> Passes:
    """The filter as a question about a batch of rids (asked best first by the vector search)."""

    everything: set[int] | None = None  # the same for every cube of the search: asked once

    def passes(rids: Sequence[int] | None) -> set[int]:
        nonlocal everything
        if rids is None:
            if everything is None:
                everything = {int(r["rid"]) for r in cur.execute(f"SELECT d.rid FROM docs d WHERE {where}", params)}
            return everything
        marks = ",".join("?" * len(rids))
        sql = f"SELECT d.rid FROM docs d WHERE d.rid IN ({marks}) AND {where}"
        return {int(r["rid"]) for r in cur.execute(sql, [*rids, *params])}

    return passes


TERM_CACHE_SECONDS = 300.0
TERM_CACHE_SIZE = 50_000
_TOKEN = re.compile(r"[^\W_]+")


class TermFrequencies:
    """How many documents hold each query word (FTS5's `fts5vocab`, which counts by reading the
    word's posting list: milliseconds for a common word), cached for a few minutes: a frequency
    only decides which words the text half scores, so a slightly stale one is harmless."""

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._known: dict[str, tuple[int, float]] = {}

    def informative(self, cur: sqlite3.Cursor, words: Sequence[str]) -> list[str]:
        """`words` (query words as typed) within the budget of postings, rarest first."""
        unique = list(dict.fromkeys(words))
        counts = {w: self._documents(cur, w) for w in unique}
        kept: list[str] = []
        total = 0
        for word in sorted(unique, key=lambda w: counts[w]):
            if total + counts[word] > self._budget:
                break
            kept.append(word)
            total += counts[word]
        return kept

    def _documents(self, cur: sqlite3.Cursor, word: str) -> int:
        """Documents holding `word` (for a word the tokenizer splits, its rarest part: a bound)."""
        tokens = _TOKEN.findall(_fold(word)) or [word]
        return min(self._term(cur, t) for t in tokens)

    def _term(self, cur: sqlite3.Cursor, term: str) -> int:
        now = time.monotonic()
        known = self._known.get(term)
        if known is not None and now - known[1] < TERM_CACHE_SECONDS:
            return known[0]
        row = cur.execute("SELECT doc FROM docs_vocab WHERE term = ?", (term,)).fetchone()
        if len(self._known) >= TERM_CACHE_SIZE:
            self._known.clear()
        self._known[term] = (int(row["doc"]) if row else 0, now)
        return self._known[term][0]


def _fold(word: str) -> str:
    """A word as FTS5's unicode61 tokenizer stores it: lower case, Latin diacritics removed. An
    imperfect fold only finds no count, and the word is then scored (never wrongly dropped)."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


TEXT_OVERSAMPLE = 8
"""`_best_text` ranks the whole index first and keeps the best `limit * TEXT_OVERSAMPLE`."""


def _best_text(
    cur: sqlite3.Cursor, words: list[str], where: str, params: list[Any], limit: int
) -> list[tuple[str, str, float]]:
    """The `limit` documents of best BM25 for any of `words` among those `where` selects.

    BM25 is computed for every document matching a word, which is the cost; joining each one
    to `docs` to test its cube and filter doubled it. So the FTS table is ranked alone first,
    and only its best rows are tested: when at least `limit` of the best `8 x limit` pass, they
    are the answer (a passing document outside the best rows scores no higher than every row
    inside them). Otherwise (a filter, or cubes holding few of the best matches) the next rows
    of the same ranking are tested, in batches sized by the pass rate so far (`next_batch`),
    until `limit` pass: a filter passed by one document in eight fell short in about half the
    searches, and ranking every match again joined to `docs` (the filter tested on thousands of
    JSON documents) made their p99."""
    match = fts_match(words, " OR ")
    if not match:
        return []
    ranked = cur.connection.cursor()  # its own cursor: the ranking streams while batches are tested
    try:
        ranked.execute(
            "SELECT rowid, -bm25(docs_text) AS score FROM docs_text WHERE docs_text MATCH ? "
            "ORDER BY bm25(docs_text), rowid",  # BM25 is computed for every match once, here
            (match,),
        )
        found: list[tuple[str, str, float]] = []
        batch, tested = limit * TEXT_OVERSAMPLE, 0
        while len(found) < limit and (rows := ranked.fetchmany(batch)):
            found += _text_passing(cur, rows, where, params)
            tested += len(rows)
            batch = next_batch(limit - len(found), len(found), tested, batch)
    finally:
        ranked.close()
    return found[:limit]


def _text_passing(
    cur: sqlite3.Cursor, ranked: Sequence[sqlite3.Row], where: str, params: list[Any]
) -> list[tuple[str, str, float]]:
    """Of these ranked text rows, the documents `where` selects (id, cube, score), in rank order."""
    if not ranked:
        return []
    marks = ",".join("?" * len(ranked))
    passing = {
        r["rid"]: r
        for r in cur.execute(
            f"SELECT d.rid, d.id, d.cube_id FROM docs d WHERE d.rid IN ({marks}) AND {where}",
            [r["rowid"] for r in ranked] + params,
        )
    }
    return [
        (passing[r["rowid"]]["id"], passing[r["rowid"]]["cube_id"], float(r["score"]))
        for r in ranked
        if r["rowid"] in passing
    ]


def _write(cur: sqlite3.Cursor, item: MemoryItem) -> tuple[int, MemoryItem, bytes | None]:
    """Upsert one document and its text row; its rid and vector bytes."""
    meta = item.metadata
    vector = np.asarray(meta.embedding, dtype=np.float32).tobytes() if meta.embedding else None
    cur.execute(
        "INSERT INTO docs (id, cube_id, status, memory_type, session_id, updated_at, model, vector, doc) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET cube_id = excluded.cube_id, "
        "status = excluded.status, memory_type = excluded.memory_type, "
        "session_id = excluded.session_id, updated_at = excluded.updated_at, "
        "model = excluded.model, vector = excluded.vector, doc = excluded.doc",
        (item.id, meta.cube_id, meta.status, meta.memory_type, meta.session_id,
         meta.updated_at, meta.embedding_model, vector, json.dumps(filter_doc(item))),
    )  # fmt: skip
    (rid,) = cur.execute("SELECT rid FROM docs WHERE id = ?", (item.id,)).fetchone()
    cur.execute("DELETE FROM docs_text WHERE rowid = ?", (rid,))
    cur.execute(
        "INSERT INTO docs_text (rowid, memory, key, tags) VALUES (?, ?, ?, ?)",
        (rid, fts_text(item.memory), fts_text(meta.key), " ".join(meta.tags)),
    )
    return int(rid), item, vector


def _recorded(cur: sqlite3.Cursor) -> tuple[str, int] | None:
    """The (model id, dimension) of the indexed vectors: the `meta` record, or for an index
    written before records existed, read off one of its vectors (float32: 4 bytes each)."""
    row = cur.execute("SELECT value FROM meta WHERE key = 'embedding'").fetchone()
    if row is not None:
        model, dimension = json.loads(row["value"])
        return str(model), int(dimension)
    row = cur.execute("SELECT model, length(vector) AS size FROM docs WHERE vector IS NOT NULL LIMIT 1").fetchone()
    return (row["model"] or "", row["size"] // 4) if row is not None else None


def _forget_model_if_empty(cur: sqlite3.Cursor) -> None:
    """An index left without any document may take vectors of any model again."""
    if cur.execute("SELECT 1 FROM docs LIMIT 1").fetchone() is None:
        cur.execute("DELETE FROM meta WHERE key = 'embedding'")


def _scope(cube_ids: Sequence[str], flt: Filter | None) -> tuple[str, list[Any]]:
    """The WHERE clause every query carries: its cubes, activated docs, and the compiled filter.
    Only placeholders carry user input (field paths included), so nothing can be injected."""
    if not cube_ids:
        raise ValueError("a search must name at least one cube")
    marks = ",".join("?" * len(cube_ids))
    clause = f"d.cube_id IN ({marks}) AND d.status = 'activated'"
    params: list[Any] = list(cube_ids)
    if flt is not None:
        sql, more = _filter_sql(flt)
        clause += f" AND {sql}"
        params += more
    return clause, params


_SQL_OPS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


COLUMN_FIELDS = frozenset({"memory_type"})
"""Fields a document keeps in a column of its own (one value, never a list): equality tests on
them read the column, in the `docs_by_kind` index, not the JSON document."""
_COLUMN_OPS = frozenset({"eq", "ne", "in", "nin"})


def _by_columns(flt: Filter) -> bool:
    """Whether every test of the filter reads a column (so `docs_by_kind` answers it alone)."""
    if isinstance(flt, And | Or):
        return all(_by_columns(p) for p in flt.parts)
    return flt.field in COLUMN_FIELDS and flt.op in _COLUMN_OPS


def _column_part(flt: Filter | None) -> Filter | None:
    """What of the filter `docs_by_kind` answers alone and every passing document must pass: the
    whole filter, or the conjuncts of an `and` that read only columns (a kind under a request's
    own filter). None when there is no such part."""
    if flt is None:
        return None
    if _by_columns(flt):
        return flt
    if isinstance(flt, And):
        parts = [p for p in flt.parts if _by_columns(p)]
        return (parts[0] if len(parts) == 1 else And(tuple(parts))) if parts else None
    return None


def _passes_kind(flt: Filter, kind: str) -> bool:
    """A document of this memory type passes `flt`, a filter of columns only (`_column_part`):
    `memory_type` is the only column a filter reads, so the type alone decides it."""
    return matches(flt, {"memory_type": kind})


def _every_kind_passes(flt: Filter | None, probe: Filter | None, kinds: set[str]) -> bool:
    """Every document of these memory types passes `flt`: no filter, or one of columns only
    (`probe`, its column part, is the whole of it) that each kind passes."""
    return flt is None or (flt is probe and all(_passes_kind(flt, kind) for kind in kinds))


def _kinds(cur: sqlite3.Cursor, cube_ids: Sequence[str]) -> set[str]:
    """The memory types of the cubes' activated documents: one seek of `docs_by_kind` per type
    and cube (each the next type after the last found), never a scan of the cube. A filter of
    columns only is decided by them: none passes it (the preference and tool-memory searches of a
    cube holding none are answered empty), or all do (the default kind filter on a cube holding
    none of the kinds it leaves out: the vector half then need not ask the table about its best
    rows, which cost about 3 ms of every search at 100k items)."""
    kinds: set[str] = set()
    scope = "SELECT memory_type FROM docs INDEXED BY docs_by_kind WHERE cube_id = ? AND status = 'activated'"
    for cube_id in dict.fromkeys(cube_ids):
        row = cur.execute(f"{scope} ORDER BY memory_type LIMIT 1", (cube_id,)).fetchone()
        while row is not None:
            kinds.add(row[0])
            row = cur.execute(f"{scope} AND memory_type > ? ORDER BY memory_type LIMIT 1", (cube_id, row[0])).fetchone()
    return kinds


def _cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS tells; else all)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


class _Products:
    """A search's vector products in flight: per cube, one future per slice of its rows."""

    def __init__(self, parts: list[list[Future[Any]]]) -> None:
        self._parts = parts

    def wait(self) -> None:
        wait([part for parts in self._parts for part in parts])

    def scores(self) -> list[Any]:
        """Each cube's rows' cosines, its slices joined in row order."""
        return [_joined([part.result() for part in parts]) for parts in self._parts]


def _joined(parts: list[Any]) -> Any:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _any_expired(cur: sqlite3.Cursor, cube_ids: Sequence[str], live_at: int | None) -> bool:
    """Some activated document of the cubes has expired by `live_at` (a probe of the expiry
    index, which holds only documents that expire: by the cube's index instead, the planner's
    choice, it read every document of a 100k cube). When none has, the vector half need not ask
    the table about each best row: checking every search's best rows this way cost about 5 ms
    at 100k items, though a cube rarely holds an expired document for long."""
    if live_at is None:  # expired documents are searched too
        return False
    marks = ",".join("?" * len(cube_ids))
    row = cur.execute(
        f"SELECT 1 FROM docs INDEXED BY docs_by_expiry WHERE {DOC_EXPIRES} IS NOT NULL AND {DOC_EXPIRES} <= ? "
        f"AND cube_id IN ({marks}) AND status = 'activated' LIMIT 1",
        (live_at, *cube_ids),
    ).fetchone()
    return row is not None


def _filter_sql(flt: Filter) -> tuple[str, list[Any]]:
    if isinstance(flt, And | Or):
        parts = [_filter_sql(p) for p in flt.parts]
        joiner = " AND " if isinstance(flt, And) else " OR "
        return "(" + joiner.join(sql for sql, _ in parts) + ")", [v for _, ps in parts for v in ps]
    if flt.field in COLUMN_FIELDS and flt.op in _COLUMN_OPS:
        values = list(flt.value) if isinstance(flt.value, tuple) else [flt.value]
        negated = "NOT " if flt.op in {"ne", "nin"} else ""
        return f"d.{flt.field} {negated}IN ({','.join('?' * len(values))})", values
    path = f'$.info."{flt.info_key}"' if flt.info_key else f"$.{flt.field}"
    # json_each over a path yields the scalar itself or each element of a list: positive operators
    # match if any value does, negative ones if none does (the same rule as filters.matches).
    each = "SELECT 1 FROM json_each(d.doc, ?) WHERE "
    if flt.op in {"in", "nin"}:
        values = list(flt.value) if isinstance(flt.value, tuple) else [flt.value]
        test = f"value IN ({','.join('?' * len(values))})"
        sql = f"{'NOT ' if flt.op == 'nin' else ''}EXISTS ({each}{test})"
        return sql, [path, *values]
    if flt.op == "ne":
        return f"NOT EXISTS ({each}value = ?)", [path, flt.value]
    if flt.op == "contains":
        return f"EXISTS ({each}instr(value, ?) > 0)", [path, flt.value]
    return f"EXISTS ({each}value {_SQL_OPS[flt.op]} ?)", [path, flt.value]
