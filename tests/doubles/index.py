"""`SearchIndex` in a dict: a test double."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from memcube.domain.errors import EmbeddingMismatch
from memcube.domain.filters import Filter, matches
from memcube.domain.model import MemoryItem
from memcube.domain.search import filter_doc
from memcube.ports import Hit


class InMemoryIndex:
    """Thread-safe like the real indexes: writers and readers may run in parallel workers."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.docs: dict[str, MemoryItem] = {}
        self.embedding: tuple[str, int] | None = None
        """(model id, dimension) of the vectors held: set by the first upsert, cleared when empty."""

    def embedding_model(self) -> str | None:
        return self.embedding[0] if self.embedding else None

    def reset(self) -> None:
        with self._lock:
            self.docs.clear()
            self.embedding = None

    def upsert(self, items: Sequence[MemoryItem]) -> None:
        offered = [(i.metadata.embedding_model or "", len(i.metadata.embedding)) for i in items if i.metadata.embedding]
        with self._lock:
            self.embedding = EmbeddingMismatch.check(self.embedding, offered)
            for item in items:
                self.docs[item.id] = item.model_copy(deep=True)

    def delete(self, cube_id: str, memory_ids: Sequence[str]) -> int:
        with self._lock:
            removed = sum(self.docs.pop(memory_id, None) is not None for memory_id in set(memory_ids))
            if not self.docs:
                self.embedding = None
            return removed

    def _snapshot(self) -> list[MemoryItem]:
        with self._lock:
            return list(self.docs.values())

    def delete_where(self, cube_id: str, user_id: str | None) -> int:
        doomed = [
            d.id for d in self._snapshot()
            if d.metadata.cube_id == cube_id and user_id in (None, d.metadata.user_id)
        ]  # fmt: skip
        return self.delete(cube_id, doomed)

    def ids(self, cube_id: str) -> set[str]:
        return {d.id for d in self._snapshot() if d.metadata.cube_id == cube_id}

    def stamps(self, cube_id: str) -> dict[str, str]:
        return {d.id: d.metadata.updated_at for d in self._snapshot() if d.metadata.cube_id == cube_id}

    def search(
        self,
        cube_ids: Sequence[str],
        text: str,
        vector: Sequence[float],
        flt: Filter | None,
        limit: int,
        *,
        live_at: int | None = None,
    ) -> list[Hit]:
        if len(vector) and self.embedding and len(vector) != self.embedding[1]:
            raise EmbeddingMismatch(self.embedding, ("", len(vector)), query=True)
        words = [w for w in text.lower().split() if w]
        docs = [d for d in self._snapshot() if _candidate(d, cube_ids, flt) and _live(d, live_at)]
        return _best([_scored(doc, vector, words) for doc in docs], limit)

    def expired_documents(self, before: int, limit: int) -> list[tuple[str, str]]:
        due = [d for d in self._snapshot() if d.metadata.expires_at is not None and d.metadata.expires_at <= before]
        due.sort(key=lambda d: (d.metadata.expires_at or 0, d.id))
        return [(d.metadata.cube_id, d.id) for d in due[:limit]]

    def select(
        self, cube_id: str, flt: Filter, offset: int, limit: int, *, live_at: int | None = None
    ) -> tuple[list[str], int]:
        passing = [d for d in self._snapshot() if _candidate(d, [cube_id], flt) and _live(d, live_at)]
        passing.sort(key=lambda d: (d.metadata.created_at, d.id))
        return [d.id for d in passing[offset : offset + limit]], len(passing)


def _live(doc: MemoryItem, live_at: int | None) -> bool:
    expires = doc.metadata.expires_at
    return live_at is None or expires is None or expires > live_at


def _candidate(doc: MemoryItem, cube_ids: Sequence[str], flt: Filter | None) -> bool:
    """An activated document of one of the cubes that passes the filter."""
    meta = doc.metadata
    return meta.cube_id in cube_ids and meta.status == "activated" and matches(flt, filter_doc(doc))


def _scored(doc: MemoryItem, vector: Sequence[float], words: Sequence[str]) -> Hit:
    """The document's dot product with the query vector, and as its text score the count of the
    query's words in it when it holds every one of them (None for a half that does not match)."""
    meta = doc.metadata
    cosine = sum(a * b for a, b in zip(vector, meta.embedding, strict=False)) if meta.embedding else None
    lowered = doc.memory.lower()
    found = sum(lowered.count(w) for w in words) if words and all(w in lowered for w in words) else 0
    return Hit(doc.id, meta.cube_id, cosine, float(found) or None)


def _best(hits: Sequence[Hit], limit: int) -> list[Hit]:
    """The top `limit` by vector similarity and the top `limit` by text relevance, merged by id."""
    by_vector = sorted(hits, key=lambda h: -(h.cosine or -1.0))[:limit]
    by_text = sorted((h for h in hits if h.text), key=lambda h: -(h.text or 0.0))[:limit]
    return list({h.memory_id: h for h in by_vector + by_text}.values())
