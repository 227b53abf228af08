"""`ErasureMarks` in a dict: a test double."""

from __future__ import annotations

import threading


class InMemoryErasureMarks:
    """The latest mark by (cube, user), user None for the whole cube."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._erasures: dict[tuple[str, str | None], str] = {}

    def mark_erased(self, cube_id: str, user_id: str | None, at: str) -> None:
        with self._lock:
            self._erasures[(cube_id, user_id)] = max(at, self._erasures.get((cube_id, user_id), ""))

    def erased_at(self, cube_id: str, user_id: str) -> str | None:
        with self._lock:
            marks = [m for m in (self._erasures.get((cube_id, None)), self._erasures.get((cube_id, user_id))) if m]
        return max(marks) if marks else None
