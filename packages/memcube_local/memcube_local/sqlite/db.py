"""Shared SQLite plumbing for the embedded default: one connection per database file, WAL
journaling (readers never block the writer), a lock so threads take turns writing, and a
background checkpointer so no commit pays for copying the log into the database."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 20_000
"""The writer's own automatic checkpoint, left on only as a backstop (80 MB of log) in case the
background checkpointer falls behind or dies; SQLite's default is 1000 pages."""


class Checkpointer:
    """Copies the write-ahead log into the database on its own thread and connection.

    SQLite's automatic checkpoint runs inside the commit that takes the log past 1000 pages,
    so one write in a few hundred also copied and synced those pages: in a 100k-item cube
    that add took 600-800 ms instead of 100 (issue 20). A PASSIVE checkpoint from another
    connection takes neither the write lock nor readers' locks, so commits go on meanwhile.
    It runs at most once per `interval` seconds while writes keep coming, and not at all when
    none do. The thread starts on the first commit, so a database only read starts none."""

    def __init__(self, path: Path, interval: float) -> None:
        self._path = path
        self._interval = interval
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.runs = 0
        """Checkpoints done (for tests and diagnostics)."""

    def poke(self) -> None:
        """A commit happened: checkpoint soon."""
        if self._thread is None:
            with self._start:
                if self._thread is None and not self._closing.is_set():
                    self._thread = threading.Thread(
                        target=self._run, name=f"memcube-checkpoint-{self._path.name}", daemon=True
                    )
                    self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, check_same_thread=False, timeout=30)
        try:
            while True:
                self._wake.wait()
                if self._closing.is_set():
                    return
                self._wake.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.runs += 1
                except sqlite3.Error as error:  # the next commit's poke retries; the backstop bounds the log
                    log.warning("background checkpoint of %s failed: %s", self._path, error)
                if self._closing.wait(self._interval):
                    return
        finally:
            conn.close()

    def close(self) -> None:
        with self._start:
            self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


class SqliteDb:
    def __init__(self, path: Path, schema: str, version: int, checkpoint_interval: float = 1.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left in free pages
        self._conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        self.checkpointer = Checkpointer(path, checkpoint_interval)
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
                self.checkpointer.poke()
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
        self.checkpointer.close()
        with self._lock:
            self._conn.close()  # the last connection to close checkpoints what is left
