"""Direct edits of one memory (`/product/update_memory`, the hosted `update/memory`): new text,
key, tags, info, status or expiry (`domain.expiry`), written as a new version of the same item.
An expired memory, like an erased one, is gone: it cannot be edited.

The previous state goes into the item's history (action `edited`, with the fields changed), so
`get_memory_history` shows it and `undo_memory` puts it back. A new text is re-embedded and the
store moves the content guard and band keys with it in the same transaction as the item
(`MemoryStore.rewrite_memory`): a text another item of the cube holds is refused (409), and a
version conflict with a concurrent writer is retried. The store is the system of record and is
written first; then the index. If the index write fails the new version stands (as after an
undo) and the answer says so: resending the same edit changes nothing in the store (no new
version) and indexes the item again, as `memcube reconcile --repair` would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memcube.domain.commands import MemoryEdit
from memcube.domain.errors import Forbidden, InvalidRequest, NotFound, Unavailable
from memcube.domain.expiry import is_expired
from memcube.domain.history import EDITABLE, apply, retext, revise
from memcube.domain.model import MemoryItem, Principal
from memcube.domain.permissions import allowed
from memcube.domain.reader import KEY_CHARS, Sizes, count_tokens
from memcube.ports import Embedder, MemoryStore, SearchIndex, UserDirectory


@dataclass(frozen=True)
class Edited:
    item: MemoryItem
    """The memory as stored now."""
    fields: list[str]
    """What this edit changed (empty: the memory already said so; no version was written)."""


def changed_fields(item: MemoryItem, edit: MemoryEdit) -> list[str]:
    """The editable fields whose asked-for value differs from the stored one, in `EDITABLE` order."""
    meta = item.metadata
    current: dict[str, Any] = {
        "memory": item.memory,
        "key": meta.key,
        "tags": meta.tags,
        "info": meta.info,
        "status": meta.status,
        "expires_at": meta.expires_at,
    }
    asked = {f: getattr(edit, f) for f in EDITABLE if f != "expires_at" and getattr(edit, f) is not None}
    if edit.sets_expiry:  # None clears it, so "given" is its own flag
        asked["expires_at"] = edit.expires_at
    return [f for f in EDITABLE if f in asked and asked[f] != current[f]]


def followed_key(key: str, old_text: str, new_text: str) -> str:
    """The key after a text edit: kept while the new text still says it; a key taken from the old
    text's words that the new text no longer has becomes the start of the new text (as the reader
    keys a memory by its first words)."""
    if not key or key in " ".join(new_text.split()) or key not in " ".join(old_text.split()):
        return key
    return " ".join(new_text.split())[:KEY_CHARS]


class EditService:
    def __init__(
        self,
        memories: MemoryStore,
        users: UserDirectory,
        index: SearchIndex,
        embedder: Embedder,
        now: Callable[[], str],
    ) -> None:
        self._memories = memories
        self._users = users
        self._index = index
        self._embedder = embedder
        self._now = now

    def edit(self, edit: MemoryEdit, principal: Principal | None) -> Edited:
        """Write `edit` as the memory's next version, as `principal` (None: keys off and no user
        named, as the memory's writer, as the hosted API reads and deletes by id)."""
        self._check_text(edit.memory)
        item = self._writable(edit, principal)
        now = self._now()
        vectors: dict[str, list[float]] = {}
        fields: list[str] = []

        def change(current: MemoryItem) -> MemoryItem | None:
            if is_expired(current, datetime.fromisoformat(now).timestamp()):
                raise NotFound(f"memory_id: {edit.memory_id!r} not found")  # expired meanwhile
            fields[:] = changed_fields(current, edit)
            if not fields:
                return None
            changes = {f: getattr(edit, f) for f in fields if f != "memory"}
            if "memory" in fields and edit.memory and "key" not in fields:
                key = followed_key(current.metadata.key, current.memory, edit.memory)
                if key != current.metadata.key:
                    fields.insert(1, "key")
                    changes["key"] = key
            updated = revise(
                current,
                "edited",
                at=now,
                task_id=None,
                reason=f"direct edit of {', '.join(fields)}",
                changes=changes,
                extra={"fields": list(fields)},
            )
            if "memory" in fields and edit.memory:
                return retext(updated, edit.memory, self._embedder, vectors)
            return updated

        stored = apply(self._memories, item.id, change)
        if stored is None:
            raise NotFound(f"memory_id: {edit.memory_id!r} not found")
        try:
            self._index.upsert([stored])
        except Exception as exc:
            raise Unavailable(
                f"index: version {stored.metadata.version} of {stored.id!r} is stored, but the search index could "
                f"not be updated ({type(exc).__name__}); send the same update again to index it (no new version "
                "is written), or run `memcube reconcile --repair`"
            ) from exc
        return Edited(stored, list(fields))

    def _check_text(self, text: str | None) -> None:
        if text is None:
            return
        limit = Sizes.for_embedder(self._embedder.max_tokens).window
        tokens = count_tokens(text)
        if tokens > limit:
            raise InvalidRequest(
                f"memory: at most {limit} tokens (what one memory's embedding reads), got {tokens}; "
                "split it into several memories with /product/add"
            )

    def _writable(self, edit: MemoryEdit, principal: Principal | None) -> MemoryItem:
        """The memory, if `principal` may write it: an unknown, deleted or unreadable one is a 404
        (ids of cubes the caller cannot read do not leak), a readable one it may not write a 403."""
        item = self._memories.get_memory(edit.memory_id)
        missing = NotFound(f"memory_id: {edit.memory_id!r} not found")
        if item is None or item.metadata.status == "deleted":
            raise missing
        if is_expired(item, datetime.fromisoformat(self._now()).timestamp()):
            raise missing  # expired: gone for every read and change, as an erased one
        cube = item.metadata.cube_id
        who = principal or Principal(user_id=item.metadata.user_id)
        if not allowed(who, cube, self._users, "read"):
            raise missing
        if edit.cube_id is not None and edit.cube_id != cube:
            raise NotFound(f"memory_id: {edit.memory_id!r} not found in cube {edit.cube_id!r} (mem_cube_id)")
        if not allowed(who, cube, self._users, "write"):
            raise Forbidden(
                f"memory_id: user {who.user_id!r} may read but not write cube {cube!r}, which holds {edit.memory_id!r}"
            )
        return item
