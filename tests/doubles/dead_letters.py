"""`DeadLetterStore` in a list: a test double."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from memcube.domain.model import DeadLetter


class InMemoryDeadLetters:
    """Dead letters, one per `DeadLetter.key`, listed by the time they failed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dead: list[DeadLetter] = []

    def record_dead_letter(self, letter: DeadLetter) -> None:
        with self._lock:
            self._dead = [d if d.key != letter.key else letter.model_copy(deep=True) for d in self._dead]
            if all(d.key != letter.key for d in self._dead):
                self._dead.append(letter.model_copy(deep=True))

    def list_dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            return sorted((d.model_copy(deep=True) for d in self._dead), key=lambda d: d.failed_at)

    def delete_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        gone = {d.key for d in letters}
        with self._lock:
            kept = [d for d in self._dead if d.key not in gone]
            removed = len(self._dead) - len(kept)
            self._dead = kept
        return removed
