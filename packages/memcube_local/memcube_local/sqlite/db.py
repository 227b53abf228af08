"""Shared SQLite plumbing for the embedded default: one connection per database file, WAL
journaling (readers never block the writer), and a lock so threads take turns writing."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SqliteDb:
    def __init__(self, path: Path, schema: str, version: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left in free pages
        (current,) = self._conn.execute("PRAGMA user_version").fetchone()
        self.upgraded_from: int | None = current if 0 < current < version else None
        """The schema version found on open when it was older (so the owner can backfill)."""
        if current > version:
            raise RuntimeError(f"{path} has schema version {current}; this memcube knows {version}")
        if current < version:
            # The schema uses IF NOT EXISTS throughout, so a half-applied script re-applies cleanly.
            self._conn.executescript(f"BEGIN IMMEDIATE;\n{schema}\nPRAGMA user_version={int(version)};\nCOMMIT;")

    @property
    def lock(self) -> threading.RLock:
        """The connection's lock (reentrant): hold it across a transaction and what must happen
        right after its commit, so no other thread sees one without the other."""
        return self._lock

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Cursor]:
        """One IMMEDIATE transaction: all of it or none of it, and no write interleaves."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def scrub(self) -> None:
        """Copy the write-ahead log into the database and truncate it: after a delete, no old
        page image holding the deleted rows stays behind in the WAL file (erasure)."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
