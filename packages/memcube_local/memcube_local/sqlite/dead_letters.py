"""Dead-letter records in the store file (`DeadLetterStore`)."""

from __future__ import annotations

from collections.abc import Sequence

from memcube.domain.model import DeadLetter
from memcube_local.sqlite.db import SqliteDb


class SqliteDeadLetters:
    """Table `dead_letters`, in the order they were recorded."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    def record_dead_letter(self, letter: DeadLetter) -> None:
        with self._db.tx() as cur:
            cur.execute("INSERT INTO dead_letters (body) VALUES (?)", (letter.model_dump_json(),))

    def list_dead_letters(self) -> list[DeadLetter]:
        with self._db.read() as cur:
            rows = cur.execute("SELECT body FROM dead_letters ORDER BY seq").fetchall()
        return [DeadLetter.model_validate_json(r["body"]) for r in rows]

    def delete_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        gone = {(d.message_id, d.failed_at) for d in letters}
        with self._db.tx() as cur:
            rows = cur.execute("SELECT seq, body FROM dead_letters").fetchall()
            doomed = []
            for row in rows:
                letter = DeadLetter.model_validate_json(row["body"])
                if (letter.message_id, letter.failed_at) in gone:
                    doomed.append((row["seq"],))
            cur.executemany("DELETE FROM dead_letters WHERE seq = ?", doomed)
        self._db.scrub()
        return len(doomed)
