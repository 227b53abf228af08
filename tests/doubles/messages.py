"""`MessageLog` in a dict: a test double."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from memcube.domain.conversation import ConversationMessage


class InMemoryMessages:
    """Messages by (user, session), each session's kept by message id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str], dict[str, ConversationMessage]] = {}

    def clear(self) -> None:
        """Forget every session's messages (as a long benchmark needs)."""
        with self._lock:
            self._sessions.clear()

    def append_messages(self, messages: Sequence[ConversationMessage]) -> None:
        with self._lock:
            for m in messages:
                self._sessions.setdefault((m.user_id, m.session_id), {})[m.message_id] = m

    def recent_messages(self, user_id: str, session_id: str, limit: int) -> list[ConversationMessage]:
        with self._lock:
            kept = list(self._sessions.get((user_id, session_id), {}).values())
        ordered = sorted(kept, key=lambda m: (m.seq, m.message_id))
        return ordered[-limit:] if limit > 0 else []

    def recent_sessions(self, user_id: str, limit: int) -> list[str]:
        with self._lock:
            latest = {s: max(m.seq for m in kept.values()) for (u, s), kept in self._sessions.items() if u == user_id}
        return sorted(latest, key=lambda s: (latest[s], s), reverse=True)[:limit]

    def delete_messages(self, user_id: str, session_id: str | None) -> int:
        with self._lock:
            doomed = [k for k in self._sessions if k[0] == user_id and session_id in (None, k[1])]
            return sum(len(self._sessions.pop(k)) for k in doomed)
