"""Operator use cases: rebuild the index from the store, and reconcile the two.

The store is the system of record and the index is derived: any difference is repaired by
re-upserting the store's version (or dropping documents the store does not have). With the
configured embedder given, what is written carries that model's vectors: an item embedded by
another model is embedded again (and rewritten so in the store), and an index built with another
model is rebuilt from empty, so switching `MEMCUBE_EMBEDDER` takes one `memcube reindex`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from memcube.domain.errors import Conflict
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import MemoryItem
from memcube.domain.reader import count_tokens
from memcube.ports import DeadLetterStore, Embedder, MemoryStore, RawQueue, SearchIndex


@dataclass
class RedriveReport:
    sent: int = 0
    invalid: list[str] = field(default_factory=list)
    """Message ids whose body can never succeed (schema errors): left in the dead letters."""


BATCH = 200


@dataclass
class ReconcileReport:
    cube_id: str
    missing_from_index: list[str] = field(default_factory=list)
    not_in_store: list[str] = field(default_factory=list)
    stale_in_index: list[str] = field(default_factory=list)
    """Indexed, but as another version than the store's (its `updated_at` differs)."""
    repaired: bool = False

    @property
    def differences(self) -> int:
        return len(self.missing_from_index) + len(self.not_in_store) + len(self.stale_in_index)


class Maintenance:
    def __init__(self, memories: MemoryStore, index: SearchIndex, embedder: Embedder | None = None) -> None:
        self._memories = memories
        self._index = index
        self._embedder = embedder
        """None: items are indexed with the vectors they were stored with."""

    def reindex(self, cube_id: str | None = None, progress: Callable[[int], None] | None = None) -> int:
        """Upsert every stored item into the index (by id, so it is safe to repeat). An index
        built with another model than the embedder's is emptied first: then every cube is
        rebuilt, so naming one cube is refused."""
        embedder = self._embedder
        built_with = self._index.embedding_model() if embedder is not None else None
        if embedder is not None and built_with is not None and built_with != embedder.model_id:
            if cube_id is not None:
                raise Conflict(
                    f"the index holds embeddings of {built_with or 'an unnamed model'}; switching it to "
                    f"{embedder.model_id} rebuilds every cube: run `memcube reindex` without --cube"
                )
            self._index.reset()
        batch: list[MemoryItem] = []
        done = 0
        for item in self._memories.iter_memories(cube_id):
            if item.metadata.status == "deleted":
                continue  # an erased memory's tombstone (`domain.expiry`): a record, never searched
            batch.append(item)
            if len(batch) >= BATCH:
                done += self._flush(batch, progress)
        return done + self._flush(batch, progress)

    def _flush(self, batch: list[MemoryItem], progress: Callable[[int], None] | None) -> int:
        if not batch:
            return 0
        self._index.upsert(self._current(batch))
        n = len(batch)
        batch.clear()
        if progress is not None:
            progress(n)
        return n

    def reconcile(self, cube_id: str, repair: bool = False) -> ReconcileReport:
        stored = {i.id: i for i in self._memories.iter_memories(cube_id) if i.metadata.status != "deleted"}
        indexed = self._index.stamps(cube_id)
        report = ReconcileReport(
            cube_id=cube_id,
            missing_from_index=sorted(set(stored) - set(indexed)),
            not_in_store=sorted(set(indexed) - set(stored)),
            stale_in_index=sorted(
                i for i, at in indexed.items() if i in stored and at != stored[i].metadata.updated_at
            ),
        )
        if repair and report.differences:
            missing = [stored[i] for i in report.missing_from_index + report.stale_in_index]
            for start in range(0, len(missing), BATCH):
                self._index.upsert(self._current(missing[start : start + BATCH]))
            self._index.delete(cube_id, report.not_in_store)
            report.repaired = True
        return report

    def _current(self, items: list[MemoryItem]) -> list[MemoryItem]:
        """The items with the embedder's vectors: those of another model embedded again in one
        batch and rewritten in the store (same version: the memory itself did not change), so
        search's reranking and dedup compare vectors of one model. So are items longer than the
        model reads at once (`Embedder.max_tokens`): stored before embedders read a long text in
        parts, their vectors may stand for its beginning only. An item another writer changed
        meanwhile keeps the store's version; the next reindex embeds it again."""
        embedder = self._embedder
        if embedder is None:
            return items
        limit = embedder.max_tokens

        def stale_vector(item: MemoryItem) -> bool:
            meta = item.metadata
            long = limit is not None and count_tokens(item.memory) > limit
            return meta.embedding_model != embedder.model_id or not meta.embedding or long

        stale = [i for i in items if stale_vector(i)]
        if not stale:
            return items
        fresh: dict[str, MemoryItem] = {}
        for item, vector in zip(stale, embedder.embed([i.memory for i in stale]), strict=True):
            again = item.model_copy(deep=True)
            again.metadata.embedding = vector
            again.metadata.embedding_model = embedder.model_id
            self._memories.update_memory(again, expected_version=item.metadata.version)
            fresh[item.id] = again
        return [fresh.get(i.id, i) for i in items]


def redrive_dead_letters(dead_letters: DeadLetterStore, queue: RawQueue) -> RedriveReport:
    """Send every dead-lettered message that could still succeed back to its cube's queue.

    Safe to repeat: a part already completed is skipped by the worker and items are guarded, so
    a message redriven twice never adds anything twice. The dedup id is new per dead letter, so
    a redrive within the queue's dedup window is not swallowed as a duplicate of the original.
    """
    report = RedriveReport()
    entries: list[tuple[str, str, str]] = []
    for letter in dead_letters.list_dead_letters():
        try:
            msg = QueuedAdd.model_validate_json(letter.body)
        except ValidationError:
            report.invalid.append(letter.message_id)
            continue
        dedup = hashlib.sha256(f"redrive\x1f{letter.message_id}\x1f{letter.failed_at}".encode()).hexdigest()
        entries.append((msg.group_id, dedup, letter.body))
    queue.send_raw(entries)
    report.sent = len(entries)
    return report
