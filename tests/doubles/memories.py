"""`MemoryStore` in dicts: a test double."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from memcube.domain.model import MemoryItem
from memcube.domain.similarity import lsh_keys
from memcube.ports import PutResult


class InMemoryMemories:
    """Items by id, content guards by (cube, hash) and LSH bands by (cube, key)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, MemoryItem] = {}
        self._guards: dict[tuple[str, str], str] = {}
        self._bands: dict[tuple[str, str], set[str]] = {}

    def put_memory(self, item: MemoryItem) -> PutResult:
        guard = (item.metadata.cube_id, item.metadata.content_hash)
        with self._lock:
            owner = self._guards.get(guard)
            if owner is not None and owner != item.id:
                return PutResult("duplicate", owner)
            if owner == item.id and item.id in self._items:
                return PutResult("exists", item.id)
            self._guards[guard] = item.id
            self._items[item.id] = item.model_copy(deep=True)
            for key in lsh_keys(item.memory):
                self._bands.setdefault((item.metadata.cube_id, key), set()).add(item.id)
            return PutResult("created")

    def update_memory(self, item: MemoryItem, expected_version: int) -> bool:
        with self._lock:
            stored = self._items.get(item.id)
            if stored is None or stored.metadata.version != expected_version:
                return False
            if not stored.same_content(item):
                raise ValueError(f"update_memory may not change the cube or the text of {item.id!r}")
            self._items[item.id] = item.model_copy(deep=True)
            return True

    def rewrite_memory(self, item: MemoryItem, expected_version: int) -> PutResult | None:
        meta = item.metadata
        with self._lock:
            stored = self._items.get(item.id)
            if stored is None or stored.metadata.version != expected_version:
                return None
            if (stored.metadata.cube_id, stored.metadata.created_at) != (meta.cube_id, meta.created_at):
                raise ValueError(f"rewrite_memory may not move {item.id!r} to another cube or creation time")
            owner = self._guards.get((meta.cube_id, meta.content_hash))
            if owner is not None and owner != item.id:
                return PutResult("duplicate", owner)
            old_guard = (stored.metadata.cube_id, stored.metadata.content_hash)
            if self._guards.get(old_guard) == item.id:
                del self._guards[old_guard]
            self._guards[(meta.cube_id, meta.content_hash)] = item.id
            for key in lsh_keys(stored.memory):
                self._bands.get((meta.cube_id, key), set()).discard(item.id)
            for key in lsh_keys(item.memory):
                self._bands.setdefault((meta.cube_id, key), set()).add(item.id)
            self._items[item.id] = item.model_copy(deep=True)
            return PutResult("created")

    def similar_ids(self, cube_id: str, text: str, limit: int) -> list[str]:
        counts: dict[str, int] = {}
        with self._lock:
            for key in lsh_keys(text):
                for memory_id in self._bands.get((cube_id, key), ()):
                    counts[memory_id] = counts.get(memory_id, 0) + 1
        return sorted(counts, key=lambda i: (-counts[i], i))[:limit]

    def get_memory(self, memory_id: str) -> MemoryItem | None:
        with self._lock:
            item = self._items.get(memory_id)
            return item.model_copy(deep=True) if item else None

    def get_memories(self, memory_ids: Sequence[str]) -> list[MemoryItem]:
        with self._lock:
            wanted = dict.fromkeys(memory_ids)
            return [self._items[i].model_copy(deep=True) for i in wanted if i in self._items]

    def list_memories(
        self, cube_id: str, offset: int, limit: int, live_at: int | None = None
    ) -> tuple[list[MemoryItem], int]:
        with self._lock:
            items = [
                i for i in self._items.values()
                if i.metadata.cube_id == cube_id and i.metadata.status == "activated" and _live(i, live_at)
            ]  # fmt: skip
        items.sort(key=lambda i: (i.metadata.created_at, i.id))
        return [i.model_copy(deep=True) for i in items[offset : offset + limit]], len(items)

    def iter_memories(self, cube_id: str | None = None) -> Iterator[MemoryItem]:
        with self._lock:
            items = [i for i in self._items.values() if cube_id is None or i.metadata.cube_id == cube_id]
        for item in items:
            yield item.model_copy(deep=True)

    def export_page(self, cube_id: str, cursor: str | None, limit: int) -> tuple[list[MemoryItem], str | None]:
        with self._lock:
            ids = sorted(i.id for i in self._items.values() if i.metadata.cube_id == cube_id and i.id > (cursor or ""))
            page = [self._items[i].model_copy(deep=True) for i in ids[:limit]]
        return page, (page[-1].id if len(ids) > limit else None)

    def delete_memories(self, items: Sequence[MemoryItem]) -> int:
        removed = 0
        with self._lock:
            for item in items:
                if self._items.pop(item.id, None) is None:
                    continue
                removed += 1
                for key in lsh_keys(item.memory):
                    self._bands.get((item.metadata.cube_id, key), set()).discard(item.id)
                guard = (item.metadata.cube_id, item.metadata.content_hash)
                if self._guards.get(guard) == item.id:
                    del self._guards[guard]
        return removed

    def expired_memories(self, before: int, limit: int) -> list[MemoryItem]:
        with self._lock:
            due = [i for i in self._items.values() if i.metadata.status != "deleted" and not _live(i, before)]
        due.sort(key=lambda i: (i.metadata.expires_at or 0, i.id))
        return [i.model_copy(deep=True) for i in due[:limit]]


def _live(item: MemoryItem, live_at: int | None) -> bool:
    expires = item.metadata.expires_at
    return live_at is None or expires is None or expires > live_at
