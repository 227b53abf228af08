"""API keys in the store file (`KeyStore`)."""

from __future__ import annotations

from memcube.domain.auth import ApiKey
from memcube_local.sqlite.db import SqliteDb


class SqliteKeys:
    """Table `api_keys`."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

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
