"""The embedded default's durable queue, with SQS FIFO semantics: per-group order (a group's next
message is not handed out while an earlier one is in flight or waiting for a retry),
deduplication by id within a window, visibility leases, and receive counts.

Only one process may consume a data directory (the embedded runner holds a lock file), so on
start every lease left by a killed process is released: nothing accepted is lost by `kill -9`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from memcube.adapters.sqlite_base import SqliteDb
from memcube.domain.messages import QueuedAdd, peek

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, group_id TEXT NOT NULL,
    body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, visible_at REAL NOT NULL,
    leased_until REAL, enqueued_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_group ON messages (group_id, seq);
CREATE TABLE IF NOT EXISTS dedup (dedup_id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
"""

DEDUP_WINDOW_SECONDS = 300.0


@dataclass(frozen=True)
class Received:
    seq: int
    message_id: str
    group_id: str
    body: str
    attempts: int
    """Receive count including this one (SQS's ApproximateReceiveCount)."""


class SqliteQueue:
    def __init__(
        self,
        path: Path,
        *,
        on_send: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = SqliteDb(path, SCHEMA, version=1)
        self._on_send = on_send
        self._clock = clock

    def close(self) -> None:
        self._db.close()

    def send(self, messages: Sequence[QueuedAdd]) -> None:
        self.send_raw([(m.group_id, m.dedup_id, m.model_dump_json()) for m in messages])

    def send_raw(self, entries: Sequence[tuple[str, str, str]]) -> None:
        """Enqueue (group id, dedup id, body) triples; a dedup id seen in the window is dropped."""
        now = self._clock()
        with self._db.tx() as cur:
            cur.execute("DELETE FROM dedup WHERE expires_at < ?", (now,))
            for group_id, dedup_id, body in entries:
                cur.execute(
                    "INSERT OR IGNORE INTO dedup (dedup_id, expires_at) VALUES (?, ?)",
                    (dedup_id, now + DEDUP_WINDOW_SECONDS),
                )
                if cur.rowcount == 0:
                    continue
                cur.execute(
                    "INSERT INTO messages (message_id, group_id, body, visible_at, enqueued_at) VALUES (?, ?, ?, ?, ?)",
                    (str(uuid.uuid4()), group_id, body, now, now),
                )
        if self._on_send is not None:
            self._on_send()

    def receive(self, max_messages: int, lease_seconds: float) -> list[Received]:
        """Lease up to `max_messages` group heads that are visible and not already leased."""
        now = self._clock()
        with self._db.tx() as cur:
            rows = cur.execute(
                "SELECT m.seq, m.message_id, m.group_id, m.body, m.attempts FROM messages m "
                "JOIN (SELECT group_id, MIN(seq) AS head FROM messages GROUP BY group_id) h "
                "ON m.seq = h.head "
                "WHERE m.visible_at <= ? AND (m.leased_until IS NULL OR m.leased_until <= ?) "
                "ORDER BY m.seq LIMIT ?",
                (now, now, max_messages),
            ).fetchall()
            cur.executemany(
                "UPDATE messages SET attempts = attempts + 1, leased_until = ? WHERE seq = ?",
                [(now + lease_seconds, r["seq"]) for r in rows],
            )
        return [Received(r["seq"], r["message_id"], r["group_id"], r["body"], r["attempts"] + 1) for r in rows]

    def ack(self, seq: int) -> None:
        with self._db.tx() as cur:
            cur.execute("DELETE FROM messages WHERE seq = ?", (seq,))

    def retry_later(self, seq: int, delay_seconds: float) -> None:
        """Release the lease; the message (and so its group) waits `delay_seconds`."""
        with self._db.tx() as cur:
            cur.execute(
                "UPDATE messages SET leased_until = NULL, visible_at = ? WHERE seq = ?",
                (self._clock() + delay_seconds, seq),
            )

    def discard(self, cube_id: str, user_id: str | None) -> list[str] | None:
        """Remove the group's messages that are not in flight (only `user_id`'s, if given); a
        leased one is being processed and is stopped by the store's erasure mark instead."""
        now = self._clock()
        with self._db.tx() as cur:
            rows = cur.execute(
                "SELECT seq, body FROM messages WHERE group_id = ? AND (leased_until IS NULL OR leased_until <= ?)",
                (cube_id, now),
            ).fetchall()
            doomed = [r for r in rows if user_id is None or peek(r["body"], "user_id") == user_id]
            cur.executemany("DELETE FROM messages WHERE seq = ?", [(r["seq"],) for r in doomed])
        self._db.scrub()
        return [str(r["body"]) for r in doomed]

    def release_all_leases(self) -> int:
        """Make every leased message visible again (the only consumer restarted)."""
        with self._db.tx() as cur:
            cur.execute("UPDATE messages SET leased_until = NULL WHERE leased_until IS NOT NULL")
            return cur.rowcount

    def depth(self) -> int:
        with self._db.read() as cur:
            (count,) = cur.execute("SELECT COUNT(*) FROM messages").fetchone()
        return int(count)
