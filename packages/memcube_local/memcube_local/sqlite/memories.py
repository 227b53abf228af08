"""Memory items, content guards and LSH band keys in the store file (`MemoryStore`)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence

import numpy as np

from memcube.domain.model import MemoryItem
from memcube.domain.similarity import lsh_keys
from memcube.ports import PutResult
from memcube_local.sqlite.db import SqliteDb

log = logging.getLogger(__name__)

EXPIRES = "json_extract(body, '$.metadata.expires_at')"
"""An item's expiry (epoch seconds) as the `items_by_expiry` index has it."""


ITEM = "body, vector"
"""What a read selects to rebuild an item (`_item`)."""


def _row(item: MemoryItem) -> tuple[str, bytes | None]:
    """An item as its row holds it: the body JSON without the embedding, and the embedding apart,
    packed little-endian float64 (exact for any embedder's floats). Parsing 384 floats out of the
    JSON was four fifths of reading an item back (about 100 of 125 us), and a search reads each of
    its ~60 candidates."""
    embedding = item.metadata.embedding
    body = item.model_dump_json(exclude={"metadata": {"embedding"}})
    return body, None if embedding is None else np.asarray(embedding, dtype="<f8").tobytes()


def _item(row: sqlite3.Row) -> MemoryItem:
    """The item of a row read with `ITEM` (a row written before vectors were kept apart holds its
    embedding in the body, and `vector` NULL)."""
    item = MemoryItem.model_validate_json(row["body"])
    if row["vector"] is not None:
        item.metadata.embedding = np.frombuffer(row["vector"], dtype="<f8").tolist()
    return item


def _has_vector_column(cur: sqlite3.Cursor) -> bool:
    return any(r["name"] == "vector" for r in cur.execute("PRAGMA table_info(items)"))


class SqliteMemories:
    """Tables `items`, `content_guards` and `lsh_bands`."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db
        self._keep_vectors_apart()

    def _keep_vectors_apart(self) -> None:
        """A store written before items kept their embedding in the `vector` column: add the
        column and move every embedding out of its body, in one transaction (an interrupted move
        is redone on the next open). Once, about 0.2 s per 1,000 items (22 s for 100k here). The
        column is looked for in a read, so an open of a current store takes no write lock."""
        with self._db.read() as cur:
            if _has_vector_column(cur):
                return
        with self._db.tx() as cur:
            if _has_vector_column(cur):
                return  # another process moved them meanwhile
            (count,) = cur.execute("SELECT count(*) FROM items").fetchone()
            log.info("store upgrade: moving the embeddings of %d items to their own column (once)", count)
            cur.execute("ALTER TABLE items ADD COLUMN vector BLOB")
            after = ""
            while rows := cur.execute(
                f"SELECT id, {ITEM} FROM items WHERE id > ? ORDER BY id LIMIT 500", (after,)
            ).fetchall():
                cur.executemany(
                    "UPDATE items SET body = ?, vector = ? WHERE id = ?", [(*_row(_item(r)), r["id"]) for r in rows]
                )
                after = rows[-1]["id"]

    def backfill_bands(self) -> None:
        """Version 3 added LSH band keys: file them for items written by an older memcube."""
        for item in list(self.iter_memories()):
            with self._db.tx() as cur:
                self._file_bands(cur, item)

    def put_memory(self, item: MemoryItem) -> PutResult:
        meta = item.metadata
        with self._db.tx() as cur:
            row = cur.execute(
                "SELECT memory_id FROM content_guards WHERE cube_id = ? AND content_hash = ?",
                (meta.cube_id, meta.content_hash),
            ).fetchone()
            if row is not None and row["memory_id"] != item.id:
                return PutResult("duplicate", str(row["memory_id"]))
            if row is not None and cur.execute("SELECT 1 FROM items WHERE id = ?", (item.id,)).fetchone():
                return PutResult("exists", item.id)
            cur.execute(
                "INSERT OR REPLACE INTO content_guards (cube_id, content_hash, memory_id) VALUES (?, ?, ?)",
                (meta.cube_id, meta.content_hash, item.id),
            )
            cur.execute(
                "INSERT OR REPLACE INTO items (id, cube_id, status, created_at, body, vector) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (item.id, meta.cube_id, meta.status, meta.created_at, *_row(item)),
            )
            self._file_bands(cur, item)
            return PutResult("created")

    @staticmethod
    def _file_bands(cur: sqlite3.Cursor, item: MemoryItem) -> None:
        cur.executemany(
            "INSERT OR IGNORE INTO lsh_bands (cube_id, band_key, memory_id) VALUES (?, ?, ?)",
            [(item.metadata.cube_id, key, item.id) for key in lsh_keys(item.memory)],
        )

    def update_memory(self, item: MemoryItem, expected_version: int) -> bool:
        with self._db.tx() as cur:
            row = cur.execute("SELECT body FROM items WHERE id = ?", (item.id,)).fetchone()
            if row is None:
                return False
            stored = MemoryItem.model_validate_json(row["body"])  # its version and content: no vector needed
            if stored.metadata.version != expected_version:
                return False
            if not stored.same_content(item):
                raise ValueError(f"update_memory may not change the cube or the text of {item.id!r}")
            cur.execute(
                "UPDATE items SET status = ?, body = ?, vector = ? WHERE id = ?",
                (item.metadata.status, *_row(item), item.id),
            )
            return True

    def rewrite_memory(self, item: MemoryItem, expected_version: int) -> PutResult | None:
        meta = item.metadata
        with self._db.tx() as cur:
            row = cur.execute("SELECT body FROM items WHERE id = ?", (item.id,)).fetchone()
            if row is None:
                return None
            stored = MemoryItem.model_validate_json(row["body"])  # its version and content: no vector needed
            if stored.metadata.version != expected_version:
                return None
            if (stored.metadata.cube_id, stored.metadata.created_at) != (meta.cube_id, meta.created_at):
                raise ValueError(f"rewrite_memory may not move {item.id!r} to another cube or creation time")
            owner = cur.execute(
                "SELECT memory_id FROM content_guards WHERE cube_id = ? AND content_hash = ?",
                (meta.cube_id, meta.content_hash),
            ).fetchone()
            if owner is not None and owner["memory_id"] != item.id:
                return PutResult("duplicate", str(owner["memory_id"]))
            cur.execute(
                "DELETE FROM content_guards WHERE cube_id = ? AND content_hash = ? AND memory_id = ?",
                (meta.cube_id, stored.metadata.content_hash, item.id),
            )
            cur.execute(
                "INSERT OR REPLACE INTO content_guards (cube_id, content_hash, memory_id) VALUES (?, ?, ?)",
                (meta.cube_id, meta.content_hash, item.id),
            )
            cur.execute("DELETE FROM lsh_bands WHERE memory_id = ?", (item.id,))
            self._file_bands(cur, item)
            cur.execute(
                "UPDATE items SET status = ?, body = ?, vector = ? WHERE id = ?",
                (meta.status, *_row(item), item.id),
            )
            return PutResult("created")

    def similar_ids(self, cube_id: str, text: str, limit: int) -> list[str]:
        keys = lsh_keys(text)
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        with self._db.read() as cur:
            rows = cur.execute(
                f"SELECT memory_id, COUNT(*) AS shared FROM lsh_bands WHERE cube_id = ? AND band_key IN ({marks}) "
                "GROUP BY memory_id ORDER BY shared DESC, memory_id LIMIT ?",
                (cube_id, *keys, limit),
            ).fetchall()
        return [str(r["memory_id"]) for r in rows]

    def get_memory(self, memory_id: str) -> MemoryItem | None:
        with self._db.read() as cur:
            row = cur.execute(f"SELECT {ITEM} FROM items WHERE id = ?", (memory_id,)).fetchone()
        return _item(row) if row else None

    def get_memories(self, memory_ids: Sequence[str]) -> list[MemoryItem]:
        wanted = list(dict.fromkeys(memory_ids))
        found: dict[str, MemoryItem] = {}
        with self._db.read() as cur:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in cur.execute(f"SELECT id, {ITEM} FROM items WHERE id IN ({marks})", chunk):
                    found[row["id"]] = _item(row)
        return [found[i] for i in wanted if i in found]

    def list_memories(
        self, cube_id: str, offset: int, limit: int, live_at: int | None = None
    ) -> tuple[list[MemoryItem], int]:
        live = "" if live_at is None else f" AND ({EXPIRES} IS NULL OR {EXPIRES} > ?)"
        args: tuple[str | int, ...] = (cube_id,) if live_at is None else (cube_id, live_at)
        with self._db.read() as cur:
            (total,) = cur.execute(
                f"SELECT COUNT(*) FROM items WHERE cube_id = ? AND status = 'activated'{live}", args
            ).fetchone()
            rows = cur.execute(
                f"SELECT {ITEM} FROM items WHERE cube_id = ? AND status = 'activated'{live} "
                "ORDER BY created_at, id LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return [_item(r) for r in rows], int(total)

    def expired_memories(self, before: int, limit: int) -> list[MemoryItem]:
        """Through the partial index on the items' expiry (schema 7)."""
        with self._db.read() as cur:
            rows = cur.execute(
                f"SELECT {ITEM} FROM items WHERE {EXPIRES} IS NOT NULL AND {EXPIRES} <= ? AND status != 'deleted' "
                f"ORDER BY {EXPIRES}, id LIMIT ?",
                (before, limit),
            ).fetchall()
        return [_item(r) for r in rows]

    def iter_memories(self, cube_id: str | None = None) -> Iterator[MemoryItem]:
        """Pages by primary key, so the store stays writable while a reindex runs."""
        after = ""
        while True:
            with self._db.read() as cur:
                if cube_id is None:
                    rows = cur.execute(
                        f"SELECT id, {ITEM} FROM items WHERE id > ? ORDER BY id LIMIT 500", (after,)
                    ).fetchall()
                else:
                    rows = cur.execute(
                        f"SELECT id, {ITEM} FROM items WHERE cube_id = ? AND id > ? ORDER BY id LIMIT 500",
                        (cube_id, after),
                    ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _item(row)
            after = rows[-1]["id"]

    def export_page(self, cube_id: str, cursor: str | None, limit: int) -> tuple[list[MemoryItem], str | None]:
        with self._db.read() as cur:
            rows = cur.execute(
                f"SELECT id, {ITEM} FROM items WHERE cube_id = ? AND id > ? ORDER BY id LIMIT ?",
                (cube_id, cursor or "", limit + 1),
            ).fetchall()
        page = [_item(r) for r in rows[:limit]]
        return page, (page[-1].id if len(rows) > limit else None)

    def delete_memories(self, items: Sequence[MemoryItem]) -> int:
        removed = 0
        with self._db.tx() as cur:
            for item in items:
                cur.execute("DELETE FROM items WHERE id = ?", (item.id,))
                removed += cur.rowcount
                cur.execute("DELETE FROM lsh_bands WHERE memory_id = ?", (item.id,))
                cur.execute(
                    "DELETE FROM content_guards WHERE cube_id = ? AND content_hash = ? AND memory_id = ?",
                    (item.metadata.cube_id, item.metadata.content_hash, item.id),
                )
        self._db.scrub()
        return removed
