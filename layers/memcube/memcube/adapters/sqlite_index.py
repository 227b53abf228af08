"""The embedded default's search index: SQLite FTS5 for text, float32 vectors beside it.

It is derived data (rebuildable from the store) and every query is filtered by cube id. The
`meta` table records the embedding model of its vectors; vectors of another are refused.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memcube.adapters.sqlite_base import SqliteDb
from memcube.domain.errors import EmbeddingMismatch
from memcube.domain.filters import And, Filter, Or
from memcube.domain.model import MemoryItem
from memcube.domain.search import filter_doc
from memcube.ports import Hit

_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])")


def fts_text(text: str) -> str:
    """FTS5's unicode61 tokenizer keeps a run of CJK characters as one token; spacing them out
    indexes CJK per character (as OpenSearch's standard analyzer does), and a query for a CJK
    word becomes a phrase of adjacent characters."""
    return _CJK.sub(r" \1 ", text)


SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    rid INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, cube_id TEXT NOT NULL,
    status TEXT NOT NULL, memory_type TEXT NOT NULL, session_id TEXT NOT NULL, updated_at TEXT NOT NULL,
    model TEXT, vector BLOB, doc TEXT);
CREATE INDEX IF NOT EXISTS docs_by_cube ON docs (cube_id, status);
CREATE VIRTUAL TABLE IF NOT EXISTS docs_text USING fts5 (memory, key, tags, tokenize = 'unicode61');
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqliteIndex:
    def __init__(self, path: Path) -> None:
        self._db = SqliteDb(path, SCHEMA, version=1)
        with self._db.tx() as cur:  # indexes made before filters (or model records) existed lack them
            columns = {r["name"] for r in cur.execute("PRAGMA table_info(docs)")}
            if "doc" not in columns:
                cur.execute("ALTER TABLE docs ADD COLUMN doc TEXT")
            cur.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def close(self) -> None:
        self._db.close()

    def embedding_model(self) -> str | None:
        with self._db.read() as cur:
            recorded = _recorded(cur)
        return recorded[0] if recorded else None

    def reset(self) -> None:
        with self._db.tx() as cur:
            cur.execute("DELETE FROM docs_text")
            cur.execute("DELETE FROM docs")
            cur.execute("DELETE FROM meta WHERE key = 'embedding'")
            cur.execute("INSERT INTO docs_text (docs_text) VALUES ('optimize')")
        self._db.scrub()

    def upsert(self, items: Sequence[MemoryItem]) -> None:
        """All or nothing, in one transaction: vectors of another model than the recorded one
        (`EmbeddingMismatch`) leave the index as it was."""
        offered = [(i.metadata.embedding_model or "", len(i.metadata.embedding)) for i in items if i.metadata.embedding]
        with self._db.tx() as cur:
            recorded = _recorded(cur)
            accepted = EmbeddingMismatch.check(recorded, offered)
            if accepted != recorded:
                cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('embedding', ?)", (json.dumps(accepted),))
            for item in items:
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

    def delete(self, cube_id: str, memory_ids: Sequence[str]) -> int:
        removed = 0
        with self._db.tx() as cur:
            for memory_id in set(memory_ids):
                row = cur.execute("SELECT rid FROM docs WHERE id = ?", (memory_id,)).fetchone()
                if row is None:
                    continue
                cur.execute("DELETE FROM docs_text WHERE rowid = ?", (row["rid"],))
                cur.execute("DELETE FROM docs WHERE rid = ?", (row["rid"],))
                removed += 1
            _forget_model_if_empty(cur)
        return removed

    def delete_where(self, cube_id: str, user_id: str | None) -> int:
        with self._db.tx() as cur:
            sql, args = "SELECT rid FROM docs WHERE cube_id = ?", [cube_id]
            if user_id is not None:
                sql += " AND json_extract(doc, '$.user_id') = ?"
                args.append(user_id)
            rids = [(r["rid"],) for r in cur.execute(sql, args).fetchall()]
            cur.executemany("DELETE FROM docs_text WHERE rowid = ?", rids)
            cur.executemany("DELETE FROM docs WHERE rid = ?", rids)
            _forget_model_if_empty(cur)
            # FTS5 keeps a deleted row's tokens in its segments until they merge: merge now (erasure).
            cur.execute("INSERT INTO docs_text (docs_text) VALUES ('optimize')")
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
        self, cube_ids: Sequence[str], text: str, vector: Sequence[float], flt: Filter | None, limit: int
    ) -> list[Hit]:
        """Vector candidates by exact cosine (numpy over the filtered cube docs) and text
        candidates by FTS5 BM25 (any query word), merged by id."""
        where, params = _scope(cube_ids, flt)
        with self._db.read() as cur:
            recorded = _recorded(cur)
            if len(vector) and recorded and len(vector) != recorded[1]:
                raise EmbeddingMismatch(recorded, ("", len(vector)), query=True)
            rows = cur.execute(f"SELECT d.rid, d.id, d.cube_id, d.vector FROM docs d WHERE {where}", params).fetchall()
            words = [w for w in (" ".join(fts_text(text).split())).split() if w]
            text_rows = []
            if words:
                match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
                text_rows = cur.execute(
                    "SELECT d.id, d.cube_id, -bm25(docs_text) AS score FROM docs_text t "
                    f"JOIN docs d ON d.rid = t.rowid WHERE docs_text MATCH ? AND {where} "
                    "ORDER BY bm25(docs_text) LIMIT ?",
                    [match, *params, limit],
                ).fetchall()
        hits: dict[str, Hit] = {}
        with_vectors = [r for r in rows if r["vector"] and len(r["vector"]) == 4 * len(vector)]
        if with_vectors and len(vector):
            query = np.asarray(vector, dtype=np.float32)
            matrix = np.stack([np.frombuffer(r["vector"], dtype=np.float32) for r in with_vectors])
            cosines = matrix @ query
            for n in np.argsort(-cosines)[:limit]:
                row = with_vectors[int(n)]
                hits[row["id"]] = Hit(row["id"], row["cube_id"], float(cosines[n]), None)
        for row in text_rows:
            known = hits.get(row["id"])
            hits[row["id"]] = Hit(row["id"], row["cube_id"], known.cosine if known else None, float(row["score"]))
        return list(hits.values())

    def text_search(self, cube_id: str, query: str, limit: int) -> list[str]:
        """Ids of a cube's activated docs matching all query words, best BM25 first."""
        words = [w for w in query.split() if w.strip()]
        if not words:
            return []
        match = " ".join('"' + " ".join(fts_text(w).split()).replace('"', '""') + '"' for w in words)
        with self._db.read() as cur:
            rows = cur.execute(
                "SELECT d.id FROM docs_text t JOIN docs d ON d.rid = t.rowid "
                "WHERE docs_text MATCH ? AND d.cube_id = ? AND d.status = 'activated' "
                "ORDER BY bm25(docs_text) LIMIT ?",
                (match, cube_id, limit),
            ).fetchall()
        return [r["id"] for r in rows]


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


def _filter_sql(flt: Filter) -> tuple[str, list[Any]]:
    if isinstance(flt, And | Or):
        parts = [_filter_sql(p) for p in flt.parts]
        joiner = " AND " if isinstance(flt, And) else " OR "
        return "(" + joiner.join(sql for sql, _ in parts) + ")", [v for _, ps in parts for v in ps]
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
