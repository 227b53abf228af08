"""Users and knowledge-base cube grants in the store file (`UserDirectory`)."""

from __future__ import annotations

from memcube.domain.permissions import CubeAcl
from memcube_local.sqlite.db import SqliteDb


class SqliteDirectory:
    """Tables `users` and `cubes` (grants, versioned)."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    def register_user(self, user_id: str) -> None:
        with self._db.tx() as cur:
            cur.execute("INSERT OR IGNORE INTO users (user_id) VALUES (?)", (user_id,))

    def is_user(self, user_id: str) -> bool:
        with self._db.read() as cur:
            return cur.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone() is not None

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

    def cubes_of(self, user_id: str) -> list[CubeAcl]:
        # Knowledge bases are few next to memories: the grants are read whole and matched here.
        with self._db.read() as cur:
            rows = cur.execute("SELECT body FROM cubes ORDER BY cube_id").fetchall()
        acls = [CubeAcl.model_validate_json(row["body"]) for row in rows]
        return [a for a in acls if user_id == a.owner_id or user_id in a.readers or user_id in a.writers]
