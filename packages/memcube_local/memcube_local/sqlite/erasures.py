"""Erasure marks in the store file (`ErasureMarks`)."""

from __future__ import annotations

from memcube_local.sqlite.db import SqliteDb

WHOLE_CUBE = ""
"""`erasures.user_id` of a mark that covers every user of the cube."""


class SqliteErasureMarks:
    """Table `erasures`: the latest mark per cube and user (`WHOLE_CUBE` for every user)."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

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
