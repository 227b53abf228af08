"""A conversation's messages in the store file (`MessageLog`)."""

from __future__ import annotations

from collections.abc import Sequence

from memcube.domain.conversation import ConversationMessage
from memcube_local.sqlite.db import SqliteDb


class SqliteMessages:
    """Table `conversation_messages`, read by (user, session, seq)."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    def append_messages(self, messages: Sequence[ConversationMessage]) -> None:
        with self._db.tx() as cur:
            cur.executemany(
                "INSERT OR REPLACE INTO conversation_messages (message_id, user_id, session_id, seq, body) "
                "VALUES (?, ?, ?, ?, ?)",
                [(m.message_id, m.user_id, m.session_id, m.seq, m.model_dump_json()) for m in messages],
            )

    def recent_messages(self, user_id: str, session_id: str, limit: int) -> list[ConversationMessage]:
        with self._db.read() as cur:
            rows = cur.execute(
                "SELECT body FROM conversation_messages WHERE user_id = ? AND session_id = ? "
                "ORDER BY seq DESC, message_id DESC LIMIT ?",
                (user_id, session_id, max(limit, 0)),
            ).fetchall()
        return [ConversationMessage.model_validate_json(r["body"]) for r in reversed(rows)]

    def recent_sessions(self, user_id: str, limit: int) -> list[str]:
        with self._db.read() as cur:
            rows = cur.execute(
                "SELECT session_id, MAX(seq) AS latest FROM conversation_messages WHERE user_id = ? "
                "GROUP BY session_id ORDER BY latest DESC, session_id DESC LIMIT ?",
                (user_id, max(limit, 0)),
            ).fetchall()
        return [str(r["session_id"]) for r in rows]

    def delete_messages(self, user_id: str, session_id: str | None) -> int:
        with self._db.tx() as cur:
            if session_id is None:
                cur.execute("DELETE FROM conversation_messages WHERE user_id = ?", (user_id,))
            else:
                cur.execute(
                    "DELETE FROM conversation_messages WHERE user_id = ? AND session_id = ?", (user_id, session_id)
                )
            removed = cur.rowcount
        self._db.scrub()  # erased words leave no page image behind in the WAL
        return removed
