"""Dead letters for operators over the API (the web console's dead-letter page): list them with
their reasons, and redrive some or all of them. Only an admin may (an `admin` key or token
scope), or anyone with keys off (the loopback-only embedded default, where the operator CLI
reads the same store). The bodies are never shown: they hold users' messages.

A redrive sends each chosen letter back to its cube's queue through
`maintenance.redrive_dead_letters` (the CLI's own path, so the dedup ids match) and then removes
the letters it sent from the store: a message that fails again is dead-lettered again, with its
new reason. A letter whose body can never succeed stays listed and is reported as invalid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from memcube.domain.errors import Forbidden, Unavailable
from memcube.domain.model import DeadLetter, Principal
from memcube.ports import DeadLetterStore, RawQueue

ADMIN_ONLY = "dead letters: only an admin key (or an admin token scope) may see or redrive them"


@dataclass(frozen=True)
class RedriveResult:
    sent: list[str] = field(default_factory=list)
    """Message ids sent back to their queue (and removed from the dead letters)."""
    invalid: list[str] = field(default_factory=list)
    """Message ids that can never succeed (left in place)."""
    not_found: list[str] = field(default_factory=list)
    """Asked-for message ids that are not dead letters (any more)."""


class _Chosen:
    """The store's dead letters narrowed to the chosen ones (what `redrive_dead_letters` reads)."""

    def __init__(self, letters: list[DeadLetter]) -> None:
        self._letters = letters

    def record_dead_letter(self, letter: DeadLetter) -> None:
        raise NotImplementedError  # a redrive only reads

    def list_dead_letters(self) -> list[DeadLetter]:
        return list(self._letters)

    def delete_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        raise NotImplementedError


class DeadLetterDesk:
    def __init__(self, dead_letters: DeadLetterStore, queue: RawQueue | None) -> None:
        """`queue` None: a desk that lists (a redrive needs the queue)."""
        self._dead_letters = dead_letters
        self._queue = queue

    @staticmethod
    def authorize(caller: Principal | None) -> None:
        """An admin caller, or none at all (keys off); Forbidden otherwise."""
        if caller is not None and "admin" not in caller.scopes:
            raise Forbidden(ADMIN_ONLY)

    def list(self, caller: Principal | None) -> list[DeadLetter]:
        self.authorize(caller)
        return self._dead_letters.list_dead_letters()

    def redrive(self, caller: Principal | None, message_ids: Sequence[str] | None) -> RedriveResult:
        """Redrive the letters named (all of them with None)."""
        from memcube.domain.maintenance import redrive_dead_letters  # the reader's tokenizer: not on the API's start

        self.authorize(caller)
        if self._queue is None:
            raise Unavailable("dead letters: no queue to redrive to on this backend; use `memcube redrive`")
        letters = self._dead_letters.list_dead_letters()
        wanted = None if message_ids is None else set(message_ids)
        chosen = [letter for letter in letters if wanted is None or letter.message_id in wanted]
        report = redrive_dead_letters(_Chosen(chosen), self._queue)
        invalid = set(report.invalid)
        sent = [letter for letter in chosen if letter.message_id not in invalid]
        self._dead_letters.delete_dead_letters(sent)
        found = {letter.message_id for letter in letters}
        missing = sorted(wanted - found) if wanted is not None else []
        return RedriveResult([s.message_id for s in sent], report.invalid, missing)
