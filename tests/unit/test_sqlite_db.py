"""The embedded default's SQLite plumbing: the write-ahead log is copied into the database by a
background checkpointer, never inside a writer's commit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from memcube_local.sqlite.db import BACKSTOP_PAGES, SqliteDb

SCHEMA = "CREATE TABLE IF NOT EXISTS t (x BLOB);"


def _write_pages(db: SqliteDb, commits: int) -> None:
    for _ in range(commits):
        with db.tx() as cur:
            cur.execute("INSERT INTO t VALUES (randomblob(4000))")  # about one page each


def _wait_for(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_commits_are_checkpointed_in_the_background(tmp_path: Path) -> None:
    """Far fewer pages than SQLite's own automatic checkpoint waits for (1000) still reach the
    database file, copied by the checkpointer thread while the writer only appends to the log."""
    path = tmp_path / "x.db"
    db = SqliteDb(path, SCHEMA, version=1, checkpoint_interval=0.01)
    try:
        empty = path.stat().st_size
        _write_pages(db, 50)
        assert _wait_for(lambda: path.stat().st_size >= empty + 50 * 4000)
        assert db.checkpointer.runs >= 1
    finally:
        db.close()


def test_writer_leaves_the_checkpoint_to_the_thread_but_keeps_a_backstop(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "x.db", SCHEMA, version=1)
    try:
        with db.read() as cur:
            (pages,) = cur.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert pages == BACKSTOP_PAGES > 1000
    finally:
        db.close()


def test_a_database_only_read_starts_no_checkpointer(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    db = SqliteDb(tmp_path / "quiet.db", SCHEMA, version=1)
    with db.read() as cur:
        cur.execute("SELECT count(*) FROM t").fetchone()
    started = {t.name for t in threading.enumerate()} - before
    db.close()
    assert not any("quiet.db" in name for name in started)


def test_close_stops_the_checkpointer_and_leaves_no_log(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = SqliteDb(path, SCHEMA, version=1, checkpoint_interval=0.01)
    _write_pages(db, 20)
    db.close()
    assert not any(t.name == "memcube-checkpoint-x.db" and t.is_alive() for t in threading.enumerate())
    assert not (tmp_path / "x.db-wal").exists()  # the last connection closed checkpointed and removed it
