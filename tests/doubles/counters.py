"""`Counter` in a dict: a test double."""

from __future__ import annotations

import threading


class InMemoryCounter:
    """Uses by (key, window start)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int], int] = {}

    def hit(self, key: str, limit: int, window_start: int, window_seconds: int) -> bool:
        with self._lock:
            for old in [w for w in self._windows if w[1] + window_seconds <= window_start and w[0] == key]:
                del self._windows[old]  # finished windows of this key
            used = self._windows.get((key, window_start), 0)
            if used >= limit:
                return False
            self._windows[(key, window_start)] = used + 1
            return True
