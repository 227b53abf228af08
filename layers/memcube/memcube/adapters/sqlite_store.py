"""The embedded default's system of record: tasks, memory items, content-hash guards, users."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from memcube.adapters.sqlite_base import SqliteDb
from memcube.domain.auth import ApiKey
from memcube.domain.model import DeadLetter, MemoryItem, Task, TaskPart, TaskRecord
from memcube.domain.permissions import CubeAcl
from memcube.domain.similarity import lsh_keys
from memcube.ports import PutResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, created_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_user ON tasks (user_id, created_at);
CREATE TABLE IF NOT EXISTS task_parts (
    task_id TEXT NOT NULL REFERENCES tasks (task_id), cube_id TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (task_id, cube_id));
CREATE TABLE IF NOT EXISTS idempotency_keys (key TEXT PRIMARY KEY, task_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, cube_id TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS items_by_cube ON items (cube_id, status, created_at, id);
CREATE TABLE IF NOT EXISTS content_guards (
    cube_id TEXT NOT NULL, content_hash TEXT NOT NULL, memory_id TEXT NOT NULL,
    PRIMARY KEY (cube_id, content_hash));
CREATE TABLE IF NOT EXISTS lsh_bands (
    cube_id TEXT NOT NULL, band_key TEXT NOT NULL, memory_id TEXT NOT NULL,
    PRIMARY KEY (cube_id, band_key, memory_id));
CREATE INDEX IF NOT EXISTS lsh_bands_by_memory ON lsh_bands (memory_id);
CREATE TABLE IF NOT EXISTS users (user_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS rate_windows (
    key TEXT NOT NULL, window_start INTEGER NOT NULL, used INTEGER NOT NULL, ends INTEGER NOT NULL,
    PRIMARY KEY (key, window_start));
CREATE INDEX IF NOT EXISTS rate_windows_by_end ON rate_windows (ends);
CREATE TABLE IF NOT EXISTS cubes (cube_id TEXT PRIMARY KEY, version INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, created_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS api_keys_by_user ON api_keys (user_id, created_at);
CREATE TABLE IF NOT EXISTS erasures (
    cube_id TEXT NOT NULL, user_id TEXT NOT NULL, erased_at TEXT NOT NULL, PRIMARY KEY (cube_id, user_id));
"""
WHOLE_CUBE = ""
"""`erasures.user_id` of a mark that covers every user of the cube."""


class SqliteStore:
    """TaskStore + MemoryStore + UserDirectory on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self._db = SqliteDb(path, SCHEMA, version=5)
        if self._db.upgraded_from is not None and self._db.upgraded_from < 3:
            self._backfill_bands()

    def _backfill_bands(self) -> None:
        """Version 3 added LSH band keys: file them for items written by an older memcube."""
        for item in list(self.iter_memories()):
            with self._db.tx() as cur:
                self._file_bands(cur, item)

    def close(self) -> None:
        self._db.close()

    def create_task(self, task: Task, parts: Sequence[TaskPart]) -> bool:
        with self._db.tx() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO tasks (task_id, user_id, created_at, body) VALUES (?, ?, ?, ?)",
                (task.task_id, task.user_id, task.created_at, task.model_dump_json()),
            )
            if cur.rowcount == 0:
                return False
            cur.executemany(
                "INSERT INTO task_parts (task_id, cube_id, body) VALUES (?, ?, ?)",
                [(task.task_id, p.cube_id, p.model_dump_json()) for p in parts],
            )
            return True

    def get_task(self, task_id: str) -> TaskRecord | None:
        with self._db.read() as cur:
            row = cur.execute("SELECT body FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
            if row is None:
                return None
            parts = cur.execute("SELECT body FROM task_parts WHERE task_id = ? ORDER BY rowid", (task_id,)).fetchall()
        return TaskRecord(
            task=Task.model_validate_json(row["body"]),
            parts=[TaskPart.model_validate_json(p["body"]) for p in parts],
        )

    def list_tasks(self, user_id: str, limit: int) -> list[TaskRecord]:
        with self._db.read() as cur:
            rows = cur.execute(
                "SELECT task_id FROM tasks WHERE user_id = ? ORDER BY created_at DESC LIMIT ?",
                (user_id, limit),
            ).fetchall()
        records = [self.get_task(r["task_id"]) for r in rows]
        return [r for r in records if r is not None]

    def put_task_part(self, task_id: str, part: TaskPart) -> None:
        with self._db.tx() as cur:
            if cur.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone() is None:
                raise KeyError(task_id)
            cur.execute(
                "INSERT INTO task_parts (task_id, cube_id, body) VALUES (?, ?, ?) "
                "ON CONFLICT (task_id, cube_id) DO UPDATE SET body = excluded.body",
                (task_id, part.cube_id, part.model_dump_json()),
            )

    def claim_idempotency_key(self, key: str, task_id: str) -> str:
        with self._db.tx() as cur:
            cur.execute("INSERT OR IGNORE INTO idempotency_keys (key, task_id) VALUES (?, ?)", (key, task_id))
            row = cur.execute("SELECT task_id FROM idempotency_keys WHERE key = ?", (key,)).fetchone()
        return str(row["task_id"])

    def record_dead_letter(self, letter: DeadLetter) -> None:
        with self._db.tx() as cur:
            cur.execute("INSERT INTO dead_letters (body) VALUES (?)", (letter.model_dump_json(),))

    def list_dead_letters(self) -> list[DeadLetter]:
        with self._db.read() as cur:
            rows = cur.execute("SELECT body FROM dead_letters ORDER BY seq").fetchall()
        return [DeadLetter.model_validate_json(r["body"]) for r in rows]

    def delete_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        gone = {(d.message_id, d.failed_at) for d in letters}
        with self._db.tx() as cur:
            rows = cur.execute("SELECT seq, body FROM dead_letters").fetchall()
            doomed = []
            for row in rows:
                letter = DeadLetter.model_validate_json(row["body"])
                if (letter.message_id, letter.failed_at) in gone:
                    doomed.append((row["seq"],))
            cur.executemany("DELETE FROM dead_letters WHERE seq = ?", doomed)
        self._db.scrub()
        return len(doomed)

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
                "INSERT OR REPLACE INTO items (id, cube_id, status, created_at, body) VALUES (?, ?, ?, ?, ?)",
                (item.id, meta.cube_id, meta.status, meta.created_at, item.model_dump_json()),
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
            stored = MemoryItem.model_validate_json(row["body"])
            if stored.metadata.version != expected_version:
                return False
            if not stored.same_content(item):
                raise ValueError(f"update_memory may not change the cube or the text of {item.id!r}")
            cur.execute(
                "UPDATE items SET status = ?, body = ? WHERE id = ?",
                (item.metadata.status, item.model_dump_json(), item.id),
            )
            return True

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
            row = cur.execute("SELECT body FROM items WHERE id = ?", (memory_id,)).fetchone()
        return MemoryItem.model_validate_json(row["body"]) if row else None

    def get_memories(self, memory_ids: Sequence[str]) -> list[MemoryItem]:
        wanted = list(dict.fromkeys(memory_ids))
        found: dict[str, MemoryItem] = {}
        with self._db.read() as cur:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in cur.execute(f"SELECT id, body FROM items WHERE id IN ({marks})", chunk):
                    found[row["id"]] = MemoryItem.model_validate_json(row["body"])
        return [found[i] for i in wanted if i in found]

    def list_memories(self, cube_id: str, offset: int, limit: int) -> tuple[list[MemoryItem], int]:
        with self._db.read() as cur:
            (total,) = cur.execute(
                "SELECT COUNT(*) FROM items WHERE cube_id = ? AND status = 'activated'", (cube_id,)
            ).fetchone()
            rows = cur.execute(
                "SELECT body FROM items WHERE cube_id = ? AND status = 'activated' "
                "ORDER BY created_at, id LIMIT ? OFFSET ?",
                (cube_id, limit, offset),
            ).fetchall()
        return [MemoryItem.model_validate_json(r["body"]) for r in rows], int(total)

    def iter_memories(self, cube_id: str | None = None) -> Iterator[MemoryItem]:
        """Pages by primary key, so the store stays writable while a reindex runs."""
        after = ""
        while True:
            with self._db.read() as cur:
                if cube_id is None:
                    rows = cur.execute(
                        "SELECT id, body FROM items WHERE id > ? ORDER BY id LIMIT 500", (after,)
                    ).fetchall()
                else:
                    rows = cur.execute(
                        "SELECT id, body FROM items WHERE cube_id = ? AND id > ? ORDER BY id LIMIT 500",
                        (cube_id, after),
                    ).fetchall()
            if not rows:
                return
            for row in rows:
                yield MemoryItem.model_validate_json(row["body"])
            after = rows[-1]["id"]

    def export_page(self, cube_id: str, cursor: str | None, limit: int) -> tuple[list[MemoryItem], str | None]:
        with self._db.read() as cur:
            rows = cur.execute(
                "SELECT id, body FROM items WHERE cube_id = ? AND id > ? ORDER BY id LIMIT ?",
                (cube_id, cursor or "", limit + 1),
            ).fetchall()
        page = [MemoryItem.model_validate_json(r["body"]) for r in rows[:limit]]
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

    def hit(self, key: str, limit: int, window_start: int, window_seconds: int) -> bool:
        with self._db.tx() as cur:
            cur.execute("DELETE FROM rate_windows WHERE ends <= ?", (window_start,))  # finished windows
            cur.execute(
                "INSERT INTO rate_windows (key, window_start, used, ends) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (key, window_start) DO UPDATE SET used = used + 1 WHERE used < ?",
                (key, window_start, window_start + window_seconds, limit),
            )
            return cur.rowcount == 1

    def get_cube(self, cube_id: str) -> CubeAcl | None:
        with self._db.read() as cur:
            row = cur.execute("SELECT body FROM cubes WHERE cube_id = ?", (cube_id,)).fetchone()
        return CubeAcl.model_validate_json(row["body"]) if row else None

    def create_cube(self, acl: CubeAcl) -> bool:
        with self._db.tx() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO cubes (cube_id, version, body) VALUES (?, ?, ?)",
                (acl.cube_id, acl.version, acl.model_dump_json()),
            )
            return cur.rowcount == 1

    def update_cube(self, acl: CubeAcl, expected_version: int) -> bool:
        with self._db.tx() as cur:
            cur.execute(
                "UPDATE cubes SET version = ?, body = ? WHERE cube_id = ? AND version = ?",
                (acl.version, acl.model_dump_json(), acl.cube_id, expected_version),
            )
            return cur.rowcount == 1

    def delete_cube(self, cube_id: str) -> bool:
        with self._db.tx() as cur:
            cur.execute("DELETE FROM cubes WHERE cube_id = ?", (cube_id,))
            return cur.rowcount == 1

    def put_key(self, key: ApiKey) -> bool:
        with self._db.tx() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO api_keys (key_id, user_id, created_at, body) VALUES (?, ?, ?, ?)",
                (key.key_id, key.user_id, key.created_at, key.model_dump_json()),
            )
            return cur.rowcount == 1

    def get_key(self, key_id: str) -> ApiKey | None:
        with self._db.read() as cur:
            row = cur.execute("SELECT body FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return ApiKey.model_validate_json(row["body"]) if row else None

    def list_keys(self, user_id: str | None) -> list[ApiKey]:
        with self._db.read() as cur:
            if user_id is None:
                rows = cur.execute("SELECT body FROM api_keys ORDER BY created_at, key_id").fetchall()
            else:
                rows = cur.execute(
                    "SELECT body FROM api_keys WHERE user_id = ? ORDER BY created_at, key_id", (user_id,)
                ).fetchall()
        return [ApiKey.model_validate_json(r["body"]) for r in rows]

    def revoke_key(self, key_id: str, at: str) -> bool:
        with self._db.tx() as cur:
            row = cur.execute("SELECT body FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
            if row is None:
                return False
            key = ApiKey.model_validate_json(row["body"])
            if key.revoked_at is None:
                revoked = key.model_copy(update={"revoked_at": at})
                cur.execute("UPDATE api_keys SET body = ? WHERE key_id = ?", (revoked.model_dump_json(), key_id))
            return True

    def mark_erased(self, cube_id: str, user_id: str | None, at: str) -> None:
        with self._db.tx() as cur:
            cur.execute(
                "INSERT INTO erasures (cube_id, user_id, erased_at) VALUES (?, ?, ?) ON CONFLICT (cube_id, user_id) "
                "DO UPDATE SET erased_at = MAX(erased_at, excluded.erased_at)",
                (cube_id, user_id or WHOLE_CUBE, at),
            )

    def erased_at(self, cube_id: str, user_id: str) -> str | None:
        with self._db.read() as cur:
            row = cur.execute(
                "SELECT MAX(erased_at) AS at FROM erasures WHERE cube_id = ? AND user_id IN (?, ?)",
                (cube_id, WHOLE_CUBE, user_id),
            ).fetchone()
        return str(row["at"]) if row["at"] is not None else None

    def register_user(self, user_id: str) -> None:
        with self._db.tx() as cur:
            cur.execute("INSERT OR IGNORE INTO users (user_id) VALUES (?)", (user_id,))

    def is_user(self, user_id: str) -> bool:
        with self._db.read() as cur:
            return cur.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone() is not None
