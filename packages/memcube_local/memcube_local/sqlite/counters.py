"""Rate-limit windows in the store file (`Counter`)."""

from __future__ import annotations

from memcube_local.sqlite.db import SqliteDb


class SqliteCounter:
    """Table `rate_windows`; finished windows are removed as new ones are counted."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    def hit(self, key: str, limit: int, window_start: int, window_seconds: int) -> bool:
        with self._db.tx() as cur:
            cur.execute("DELETE FROM rate_windows WHERE ends <= ?", (window_start,))  # finished windows
            cur.execute(
                "INSERT INTO rate_windows (key, window_start, used, ends) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (key, window_start) DO UPDATE SET used = used + 1 WHERE used < ?",
                (key, window_start, window_start + window_seconds, limit),
            )
            return cur.rowcount == 1
