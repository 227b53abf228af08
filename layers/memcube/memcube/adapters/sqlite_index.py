"""The embedded default's search index: SQLite FTS5 for text, float32 vectors beside it.

It is derived data (rebuildable from the store) and every query is filtered by cube id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from memcube.adapters.sqlite_base import SqliteDb
from memcube.domain.model import MemoryItem

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
    model TEXT, vector BLOB);
CREATE INDEX IF NOT EXISTS docs_by_cube ON docs (cube_id, status);
CREATE VIRTUAL TABLE IF NOT EXISTS docs_text USING fts5 (memory, key, tags, tokenize = 'unicode61');
"""


class SqliteIndex:
    def __init__(self, path: Path) -> None:
        self._db = SqliteDb(path, SCHEMA, version=1)

    def close(self) -> None:
        self._db.close()

    def upsert(self, items: Sequence[MemoryItem]) -> None:
        with self._db.tx() as cur:
            for item in items:
                meta = item.metadata
                vector = np.asarray(meta.embedding, dtype=np.float32).tobytes() if meta.embedding else None
                cur.execute(
                    "INSERT INTO docs (id, cube_id, status, memory_type, session_id, updated_at, model, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET cube_id = excluded.cube_id, "
                    "status = excluded.status, memory_type = excluded.memory_type, "
                    "session_id = excluded.session_id, updated_at = excluded.updated_at, "
                    "model = excluded.model, vector = excluded.vector",
                    (item.id, meta.cube_id, meta.status, meta.memory_type, meta.session_id,
                     meta.updated_at, meta.embedding_model, vector),
                )  # fmt: skip
                (rid,) = cur.execute("SELECT rid FROM docs WHERE id = ?", (item.id,)).fetchone()
                cur.execute("DELETE FROM docs_text WHERE rowid = ?", (rid,))
                cur.execute(
                    "INSERT INTO docs_text (rowid, memory, key, tags) VALUES (?, ?, ?, ?)",
                    (rid, fts_text(item.memory), fts_text(meta.key), " ".join(meta.tags)),
                )

    def delete(self, memory_ids: Sequence[str]) -> None:
        with self._db.tx() as cur:
            for memory_id in memory_ids:
                row = cur.execute("SELECT rid FROM docs WHERE id = ?", (memory_id,)).fetchone()
                if row is None:
                    continue
                cur.execute("DELETE FROM docs_text WHERE rowid = ?", (row["rid"],))
                cur.execute("DELETE FROM docs WHERE rid = ?", (row["rid"],))

    def ids(self, cube_id: str) -> set[str]:
        """Indexed memory ids of a cube (for reconciling the index against the store)."""
        with self._db.read() as cur:
            return {r["id"] for r in cur.execute("SELECT id FROM docs WHERE cube_id = ?", (cube_id,))}

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
