"""Client idempotency keys in the store file (`IdempotencyKeys`)."""

from __future__ import annotations

from memcube_local.sqlite.db import SqliteDb


class SqliteIdempotencyKeys:
    """Table `idempotency_keys`: the first binding of a key wins."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    def claim_idempotency_key(self, key: str, task_id: str) -> str:
        with self._db.tx() as cur:
            cur.execute("INSERT OR IGNORE INTO idempotency_keys (key, task_id) VALUES (?, ?)", (key, task_id))
            row = cur.execute("SELECT task_id FROM idempotency_keys WHERE key = ?", (key,)).fetchone()
        return str(row["task_id"])
