"""`IdempotencyKeys` in a dict: a test double."""

from __future__ import annotations

import threading


class InMemoryIdempotencyKeys:
    """Key -> task id; the first binding wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, str] = {}

    def claim_idempotency_key(self, key: str, task_id: str) -> str:
        with self._lock:
            return self._keys.setdefault(key, task_id)
