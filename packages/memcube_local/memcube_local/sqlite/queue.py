"""The embedded default's durable queue, with SQS FIFO semantics: per-group order (a group's next
message is not handed out while an earlier one is in flight or waiting for a retry),
deduplication by id within a window, visibility leases, and receive counts.

Only one process may consume a data directory (the embedded runner holds a lock file), so on
start every lease left by a killed process is released: nothing accepted is lost by `kill -9`.

A message leased when its process died is a *suspect*: it may have killed it. A suspect is then
run alone (nothing else is handed out while it is leased, and it waits until nothing else is),
so a death during that run can only be its own or an outside one, and is reported to the worker
as `blamed`. A death with several messages in flight, or a lease handed back at a stop, blames
none of them. A suspect that survives its run (acknowledged or handed back) is cleared.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from memcube.domain.messages import QueuedAdd, peek
from memcube_local.sqlite.db import SqliteDb

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, group_id TEXT NOT NULL,
    body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, visible_at REAL NOT NULL,
    leased_until REAL, enqueued_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_group ON messages (group_id, seq);
CREATE TABLE IF NOT EXISTS dedup (dedup_id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS suspects (seq INTEGER PRIMARY KEY, blamed INTEGER NOT NULL DEFAULT 0);
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
    blamed: bool | None = None
    """Set when the previous receipt ended with its process dying: True if the message ran alone
    then (a suspect's isolated run), False if other messages were in flight or it was handed back
    at a stop. None when the previous receipt ended normally (or there was none)."""


class SqliteQueue:
    def __init__(
        self,
        path: Path,
        *,
        on_send: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = SqliteDb(path, SCHEMA, version=2)
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

    def receive(self, max_messages: int, lease_seconds: float, *, suspects: bool = True) -> list[Received]:
        """Lease up to `max_messages` group heads that are visible and not already leased; a
        suspect only alone (see the module's docstring), before any other message. With
        `suspects=False` suspects are not handed out yet (their cubes wait) and the rest are."""
        now = self._clock()
        only_clean = "" if suspects else "AND s.seq IS NULL "
        with self._db.tx() as cur:
            rows = cur.execute(
                "SELECT m.seq, m.message_id, m.group_id, m.body, m.attempts, s.blamed FROM messages m "
                "JOIN (SELECT group_id, MIN(seq) AS head FROM messages GROUP BY group_id) h "
                "ON m.seq = h.head LEFT JOIN suspects s ON s.seq = m.seq "
                "WHERE m.visible_at <= ? AND (m.leased_until IS NULL OR m.leased_until <= ?) "
                f"{only_clean}ORDER BY s.seq IS NULL, m.seq LIMIT ?",
                (now, now, max_messages),
            ).fetchall()
            if rows and rows[0]["blamed"] is not None:  # a suspect is waiting: it runs alone, first
                rows = [] if self._leased(cur, now) else rows[:1]
            elif rows and self._leased(cur, now, suspects_only=True):
                rows = []  # a suspect is running alone
            cur.executemany(
                "UPDATE messages SET attempts = attempts + 1, leased_until = ? WHERE seq = ?",
                [(now + lease_seconds, r["seq"]) for r in rows],
            )
        return [
            Received(
                r["seq"], r["message_id"], r["group_id"], r["body"], r["attempts"] + 1,
                None if r["blamed"] is None else bool(r["blamed"]),
            )
            for r in rows
        ]  # fmt: skip

    @staticmethod
    def _leased(cur: sqlite3.Cursor, now: float, suspects_only: bool = False) -> bool:
        join = "JOIN suspects s ON s.seq = m.seq " if suspects_only else ""
        row = cur.execute(
            f"SELECT 1 FROM messages m {join}WHERE m.leased_until IS NOT NULL AND m.leased_until > ? LIMIT 1",
            (now,),
        ).fetchone()
        return row is not None

    def ack(self, seq: int) -> None:
        with self._db.tx() as cur:
            cur.execute("DELETE FROM messages WHERE seq = ?", (seq,))
            cur.execute("DELETE FROM suspects WHERE seq = ?", (seq,))

    def retry_later(self, seq: int, delay_seconds: float) -> None:
        """Release the lease; the message (and so its group) waits `delay_seconds`. It ran to an
        end without killing its worker, so it is no longer a suspect."""
        with self._db.tx() as cur:
            cur.execute(
                "UPDATE messages SET leased_until = NULL, visible_at = ? WHERE seq = ?",
                (self._clock() + delay_seconds, seq),
            )
            cur.execute("DELETE FROM suspects WHERE seq = ?", (seq,))

    def release(self, seqs: Sequence[int]) -> None:
        """Hand leases back at a stop (a deploy, Ctrl-C) without blaming their messages: they
        are received again at once by the next consumer, as interrupted, not as crashes."""
        with self._db.tx() as cur:
            cur.executemany("UPDATE messages SET leased_until = NULL WHERE seq = ?", [(s,) for s in seqs])
            cur.executemany(
                "INSERT INTO suspects (seq, blamed) VALUES (?, 0) ON CONFLICT (seq) DO UPDATE SET blamed = 0",
                [(s,) for s in seqs],
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
        """Make every leased message visible again (the only consumer restarted, its process
        died): each becomes a suspect, blamed if it was one already (so it ran alone)."""
        with self._db.tx() as cur:
            leased = [r["seq"] for r in cur.execute("SELECT seq FROM messages WHERE leased_until IS NOT NULL")]
            cur.execute("UPDATE messages SET leased_until = NULL WHERE leased_until IS NOT NULL")
            cur.executemany(
                "INSERT INTO suspects (seq, blamed) VALUES (?, 0) ON CONFLICT (seq) DO UPDATE SET blamed = 1",
                [(s,) for s in leased],
            )
            return len(leased)

    def depth(self) -> int:
        with self._db.read() as cur:
            (count,) = cur.execute("SELECT COUNT(*) FROM messages").fetchone()
        return int(count)
