"""`DeadLetterStore` in a list: a test double."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from memcube.domain.model import DeadLetter


class InMemoryDeadLetters:
    """Dead letters in the order they were recorded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dead: list[DeadLetter] = []

    def record_dead_letter(self, letter: DeadLetter) -> None:
        with self._lock:
            self._dead.append(letter.model_copy(deep=True))

    def list_dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            return [d.model_copy(deep=True) for d in self._dead]

    def delete_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        gone = {(d.message_id, d.failed_at) for d in letters}
        with self._lock:
            kept = [d for d in self._dead if (d.message_id, d.failed_at) not in gone]
            removed = len(self._dead) - len(kept)
            self._dead = kept
        return removed
