"""In-memory adapters: the test doubles of every port, and the fakes the add-overhead benchmark
uses. They keep the same invariants as the real adapters (they pass the same contract suite)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from memcube.domain.auth import ApiKey
from memcube.domain.errors import EmbeddingMismatch
from memcube.domain.filters import Filter, matches
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import DeadLetter, MemoryItem, Task, TaskPart, TaskRecord
from memcube.domain.permissions import CubeAcl
from memcube.domain.search import filter_doc
from memcube.domain.similarity import lsh_keys
from memcube.ports import Hit, PutResult


class InMemoryStore:
    """TaskStore + MemoryStore + UserDirectory in dicts, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._parts: dict[str, dict[str, TaskPart]] = {}
        self._keys: dict[str, str] = {}
        self._dead: list[DeadLetter] = []
        self._items: dict[str, MemoryItem] = {}
        self._guards: dict[tuple[str, str], str] = {}
        self._users: set[str] = set()
        self._erasures: dict[tuple[str, str | None], str] = {}
        self._bands: dict[tuple[str, str], set[str]] = {}
        self._api_keys: dict[str, ApiKey] = {}
        self._cubes: dict[str, CubeAcl] = {}
        self._windows: dict[tuple[str, int], int] = {}

    def create_task(self, task: Task, parts: Sequence[TaskPart]) -> bool:
        cubes = [p.cube_id for p in parts]
        if len(set(cubes)) != len(cubes):
            raise ValueError(f"task {task.task_id!r} names a cube twice: {cubes}")
        with self._lock:
            if task.task_id in self._tasks:
                return False
            self._tasks[task.task_id] = task.model_copy(deep=True)
            self._parts[task.task_id] = {p.cube_id: p.model_copy(deep=True) for p in parts}
            return True

    def get_task(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return None
            parts = [p.model_copy(deep=True) for p in self._parts[task_id].values()]
            return TaskRecord(task=task.model_copy(deep=True), parts=parts)

    def list_tasks(self, user_id: str, limit: int) -> list[TaskRecord]:
        with self._lock:
            mine = sorted((t for t in self._tasks.values() if t.user_id == user_id), key=lambda t: t.created_at)
            ids = [t.task_id for t in reversed(mine)][:limit]
        records = [self.get_task(i) for i in ids]
        return [r for r in records if r is not None]

    def put_task_part(self, task_id: str, part: TaskPart) -> None:
        with self._lock:
            if task_id not in self._tasks:
                raise KeyError(task_id)
            self._parts[task_id][part.cube_id] = part.model_copy(deep=True)

    def claim_idempotency_key(self, key: str, task_id: str) -> str:
        with self._lock:
            return self._keys.setdefault(key, task_id)

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

    def list_memories(self, cube_id: str, offset: int, limit: int) -> tuple[list[MemoryItem], int]:
        with self._lock:
            items = [
                i for i in self._items.values()
                if i.metadata.cube_id == cube_id and i.metadata.status == "activated"
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

    def hit(self, key: str, limit: int, window_start: int, window_seconds: int) -> bool:
        with self._lock:
            for old in [w for w in self._windows if w[1] + window_seconds <= window_start and w[0] == key]:
                del self._windows[old]  # finished windows of this key
            used = self._windows.get((key, window_start), 0)
            if used >= limit:
                return False
            self._windows[(key, window_start)] = used + 1
            return True

    def get_cube(self, cube_id: str) -> CubeAcl | None:
        with self._lock:
            return self._cubes.get(cube_id)

    def create_cube(self, acl: CubeAcl) -> bool:
        with self._lock:
            if acl.cube_id in self._cubes:
                return False
            self._cubes[acl.cube_id] = acl
            return True

    def update_cube(self, acl: CubeAcl, expected_version: int) -> bool:
        with self._lock:
            stored = self._cubes.get(acl.cube_id)
            if stored is None or stored.version != expected_version:
                return False
            self._cubes[acl.cube_id] = acl
            return True

    def delete_cube(self, cube_id: str) -> bool:
        with self._lock:
            return self._cubes.pop(cube_id, None) is not None

    def put_key(self, key: ApiKey) -> bool:
        with self._lock:
            if key.key_id in self._api_keys:
                return False
            self._api_keys[key.key_id] = key
            return True

    def get_key(self, key_id: str) -> ApiKey | None:
        with self._lock:
            return self._api_keys.get(key_id)

    def list_keys(self, user_id: str | None) -> list[ApiKey]:
        with self._lock:
            keys = [k for k in self._api_keys.values() if user_id is None or k.user_id == user_id]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def revoke_key(self, key_id: str, at: str) -> bool:
        with self._lock:
            key = self._api_keys.get(key_id)
            if key is None:
                return False
            if key.revoked_at is None:
                self._api_keys[key_id] = key.model_copy(update={"revoked_at": at})
            return True

    def mark_erased(self, cube_id: str, user_id: str | None, at: str) -> None:
        with self._lock:
            self._erasures[(cube_id, user_id)] = max(at, self._erasures.get((cube_id, user_id), ""))

    def erased_at(self, cube_id: str, user_id: str) -> str | None:
        with self._lock:
            marks = [m for m in (self._erasures.get((cube_id, None)), self._erasures.get((cube_id, user_id))) if m]
        return max(marks) if marks else None

    def register_user(self, user_id: str) -> None:
        with self._lock:
            self._users.add(user_id)

    def is_user(self, user_id: str) -> bool:
        with self._lock:
            return user_id in self._users


class InMemoryQueue:
    """Records sent messages; FIFO dedup by (task, cube) like SQS within its window."""

    def __init__(self) -> None:
        self.sent: list[QueuedAdd] = []
        self._seen: set[str] = set()
        self.fail_next = 0
        """Set >0 to make the next sends raise: a queue outage."""

    def send(self, messages: Sequence[QueuedAdd]) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("queue unavailable")
        for msg in messages:
            if msg.dedup_id in self._seen:
                continue
            self._seen.add(msg.dedup_id)
            self.sent.append(msg)

    def discard(self, cube_id: str, user_id: str | None) -> list[str] | None:
        gone = [m for m in self.sent if m.cube_id == cube_id and user_id in (None, m.user_id)]
        self.sent = [m for m in self.sent if m not in gone]
        return [m.model_dump_json() for m in gone]


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
        self, cube_ids: Sequence[str], text: str, vector: Sequence[float], flt: Filter | None, limit: int
    ) -> list[Hit]:
        if len(vector) and self.embedding and len(vector) != self.embedding[1]:
            raise EmbeddingMismatch(self.embedding, ("", len(vector)), query=True)
        words = [w for w in text.lower().split() if w]
        scored: list[Hit] = []
        for doc in self._snapshot():
            meta = doc.metadata
            if meta.cube_id not in cube_ids or meta.status != "activated" or not matches(flt, filter_doc(doc)):
                continue
            cosine = sum(a * b for a, b in zip(vector, meta.embedding, strict=False)) if meta.embedding else None
            lowered = doc.memory.lower()
            found = sum(lowered.count(w) for w in words) if words and all(w in lowered for w in words) else 0
            scored.append(Hit(doc.id, meta.cube_id, cosine, float(found) or None))
        by_vector = sorted(scored, key=lambda h: -(h.cosine or -1.0))[:limit]
        by_text = sorted((h for h in scored if h.text), key=lambda h: -(h.text or 0.0))[:limit]
        return list({h.memory_id: h for h in by_vector + by_text}.values())
