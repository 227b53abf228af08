"""Dead-letter records in the store file (`DeadLetterStore`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from memcube.domain.model import DeadLetter
from memcube_local.sqlite.db import SqliteDb


class SqliteDeadLetters:
    """Table `dead_letters`, one row per `DeadLetter.key` (derived from the stored body, so the
    table keeps its shape), listed by the time they failed."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    def record_dead_letter(self, letter: DeadLetter) -> None:
        body = letter.model_dump_json()
        with self._db.tx() as cur:
            same = [seq for seq, old in self._rows(cur) if old.key == letter.key]
            if same:
                cur.execute("UPDATE dead_letters SET body = ? WHERE seq = ?", (body, same[0]))
                cur.executemany("DELETE FROM dead_letters WHERE seq = ?", [(seq,) for seq in same[1:]])
            else:
                cur.execute("INSERT INTO dead_letters (body) VALUES (?)", (body,))

    def list_dead_letters(self) -> list[DeadLetter]:
        with self._db.read() as cur:
            rows = cur.execute("SELECT body FROM dead_letters ORDER BY seq").fetchall()
        return sorted((DeadLetter.model_validate_json(r["body"]) for r in rows), key=lambda d: d.failed_at)

    def delete_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        gone = {d.key for d in letters}
        with self._db.tx() as cur:
            doomed = [(seq,) for seq, letter in self._rows(cur) if letter.key in gone]
            cur.executemany("DELETE FROM dead_letters WHERE seq = ?", doomed)
        self._db.scrub()
        return len(doomed)

    @staticmethod
    def _rows(cur: sqlite3.Cursor) -> list[tuple[int, DeadLetter]]:
        """Every record (dead letters are few: operators resolve them)."""
        rows = cur.execute("SELECT seq, body FROM dead_letters ORDER BY seq").fetchall()
        return [(row["seq"], DeadLetter.model_validate_json(row["body"])) for row in rows]
