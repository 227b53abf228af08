"""Versions of a memory item: every change keeps what it replaced, and the last change can be undone.

An item's `metadata.history` is a list of entries, oldest first, one per version it went through:

    {"version": 3, "action": "merged", "at": ..., "task_id": ..., "reason": ...,
     "related_ids": [...], "previous": <the item as it was, without embedding and history>,
     "merged": <the item folded in (merges only)>, "undoes": <version undone (undo entries)>}

Actions: `merged` (another item folded into this one), `archived` (this item was superseded by a
newer, contradicting or corrected one: `related_ids`), `supersedes` (this new item archived
`related_ids`), `edited` (a direct edit, `domain.edits`: `fields` names what changed, text
included), `restored` and `undone` (written by an undo). Nothing is hard-deleted: an undo
writes new versions that put the earlier state back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memcube.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound
from memcube.domain.model import MemoryItem, MemoryMetadata, Principal
from memcube.domain.permissions import authorize_read, authorize_write
from memcube.ports import Embedder, MemoryStore, SearchIndex, UserDirectory

UNDOABLE = ("merged", "archived", "supersedes", "edited")
ATTEMPTS = 5
"""Optimistic retries of one change when another writer updated the item in between."""
_RESTORED_FIELDS = (
    "status",
    "tags",
    "custom_tags",
    "info",
    "sources",
    "background",
    "covered_history",
    "merged_from",
    "key",
    "memory_type",
    "confidence",
)


def snapshot(item: MemoryItem) -> dict[str, Any]:
    """The item as a history entry keeps it: no embedding (recomputable) and no nested history."""
    return item.model_dump(mode="json", exclude={"metadata": {"embedding", "history"}})


def revise(
    item: MemoryItem,
    action: str,
    *,
    at: str,
    task_id: str | None,
    reason: str,
    related_ids: Sequence[str] = (),
    changes: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> MemoryItem:
    """The next version of `item`: `changes` applied to its metadata, and an entry recording the
    previous state."""
    meta = item.metadata
    version = meta.version + 1
    entry: dict[str, Any] = {
        "version": version,
        "action": action,
        "at": at,
        "task_id": task_id,
        "reason": reason,
        "related_ids": list(related_ids),
        "previous": snapshot(item),
        **(extra or {}),
    }
    # Validated, not copied: restored fields arrive as JSON (sources as dicts) from a snapshot.
    updated = MemoryMetadata.model_validate(
        {
            **meta.model_dump(),
            **(changes or {}),
            "version": version,
            "updated_at": at,
            "history": [*meta.history, entry],
        }
    )
    return item.model_copy(update={"metadata": updated})


def apply(
    store: MemoryStore,
    memory_id: str,
    change: Callable[[MemoryItem], MemoryItem | None],
) -> MemoryItem | None:
    """Read, change and write back one item with optimistic concurrency; `change` returns None to
    leave the item as it is. A change that replaces the item's text (a direct edit or its undo) is
    written with `rewrite_memory`, so the store moves the content guard and band keys with it in
    the same transaction: a text that another item of the cube holds is a Conflict naming that
    item, and nothing is written. Raises Conflict if other writers keep winning."""
    for _ in range(ATTEMPTS):
        current = store.get_memory(memory_id)
        if current is None:
            return None
        updated = change(current)
        if updated is None:
            return current
        if updated.memory == current.memory:
            if store.update_memory(updated, expected_version=current.metadata.version):
                return updated
            continue
        result = store.rewrite_memory(updated, current.metadata.version)
        if result is not None and result.status == "duplicate":
            raise Conflict(
                f"memory: memory {result.existing_id!r} of cube {current.metadata.cube_id!r} already holds this "
                "text; nothing was changed (edit or delete that one instead)"
            )
        if result is not None:
            return updated
    raise Conflict(f"memory {memory_id!r} kept changing while it was being updated; retry")


def last_undoable(item: MemoryItem) -> dict[str, Any] | None:
    """The newest entry an undo would revert (entries already undone are skipped)."""
    undone = {e.get("undoes") for e in item.metadata.history}
    for entry in reversed(item.metadata.history):
        if entry.get("action") in UNDOABLE and entry.get("version") not in undone:
            found: dict[str, Any] = entry
            return found
    return None


@dataclass
class UndoReceipt:
    undone: str
    """The action reverted: merged, archived or supersedes."""
    memory_id: str
    restored: list[str] = field(default_factory=list)
    """Items active again (a merged-in item recreated, a superseded item reactivated)."""
    archived: list[str] = field(default_factory=list)
    """Items archived by the undo (the correction that was undone)."""
    reverted: list[str] = field(default_factory=list)
    """Items put back to their previous version (a merge's survivor)."""


class HistoryService:
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

    def _item(self, memory_id: str, principal: Principal, *, write: bool, show_expired: bool = False) -> MemoryItem:
        item = self._memories.get_memory(memory_id)
        missing = NotFound(f"memory_id: {memory_id!r} not found")
        if item is None or (write and item.metadata.status == "deleted"):
            raise missing  # an erased memory's tombstone is a record to read, never to change
        expires = item.metadata.expires_at
        if expires is not None and not show_expired and expires <= datetime.fromisoformat(self._now()).timestamp():
            raise missing  # expired: gone for every read and change (`domain.expiry`)
        try:
            if write:
                authorize_write(principal, [item.metadata.cube_id], self._users)
            else:
                authorize_read(principal, item.metadata.cube_id, self._users)
        except Forbidden:
            raise missing from None  # as get_memory: another cube's ids do not leak
        return item

    def history(self, memory_id: str, principal: Principal, show_expired: bool = False) -> MemoryItem:
        """The item (any status) with its full history, for the history endpoint: an erased
        memory's tombstone too (its `expired` entry), an expired one only with `show_expired`."""
        return self._item(memory_id, principal, write=False, show_expired=show_expired)

    def undo(self, memory_id: str, principal: Principal) -> UndoReceipt:
        """Revert the item's newest change: a merge (the survivor goes back to its previous
        version and the merged item is written again on its own) or a supersession (the newer
        item is archived and the older one(s) active again), with the index following."""
        item = self._item(memory_id, principal, write=True)
        entry = last_undoable(item)
        if entry is None:
            raise InvalidRequest(f"memory_id: {memory_id!r} has no merge or correction to undo")
        now = self._now()
        if entry["action"] == "edited":
            receipt = self._undo_edit(item, entry, now)
        elif entry["action"] == "merged":
            receipt = self._undo_merge(item, entry, now)
        elif entry["action"] == "supersedes":
            receipt = self._undo_supersession(item.id, list(entry["related_ids"]), entry, now)
        else:  # archived: undo the supersession from the older item's side
            newer = list(entry["related_ids"])
            receipt = self._undo_from_archived(item, newer, now)
        changed = self._memories.get_memories([*receipt.restored, *receipt.archived, *receipt.reverted])
        self._index.upsert(changed)
        return receipt

    def _undo_edit(self, item: MemoryItem, entry: dict[str, Any], now: str) -> UndoReceipt:
        """Put the edited fields (text included: re-embedded) back as they were, in a new version."""
        previous = entry["previous"]
        fields = [f for f in entry.get("fields") or EDITABLE if f in EDITABLE]
        vectors: dict[str, list[float]] = {}

        def revert(current: MemoryItem) -> MemoryItem:
            changes = {f: previous["metadata"][f] for f in fields if f != "memory" and f in previous["metadata"]}
            reverted = revise(
                current,
                "undone",
                at=now,
                task_id=None,
                reason=f"undo of the edit of {', '.join(fields)}",
                changes=changes,
                extra={"undoes": entry["version"], "fields": fields},
            )
            text = str(previous["memory"])
            return retext(reverted, text, self._embedder, vectors) if text != current.memory else reverted

        apply(self._memories, item.id, revert)
        return UndoReceipt(undone="edited", memory_id=item.id, reverted=[item.id])

    def _undo_merge(self, survivor: MemoryItem, entry: dict[str, Any], now: str) -> UndoReceipt:
        previous = entry["previous"]["metadata"]
        merged = MemoryItem.model_validate(entry["merged"])

        def revert(current: MemoryItem) -> MemoryItem:
            changes = {name: previous[name] for name in _RESTORED_FIELDS if name in previous}
            return revise(
                current,
                "undone",
                at=now,
                task_id=None,
                reason=f"undo of the merge of {merged.id}",
                related_ids=[merged.id],
                changes=changes,
                extra={"undoes": entry["version"]},
            )

        apply(self._memories, survivor.id, revert)
        [vector] = self._embedder.embed([merged.memory])
        meta = merged.metadata.model_copy(
            update={"embedding": vector, "embedding_model": self._embedder.model_id, "status": "activated"}
        )
        result = self._memories.put_memory(merged.model_copy(update={"metadata": meta}))
        restored = [merged.id] if result.status in {"created", "exists"} else []
        return UndoReceipt(undone="merged", memory_id=survivor.id, restored=restored, reverted=[survivor.id])

    def _undo_supersession(self, newer_id: str, older_ids: list[str], entry: dict[str, Any], now: str) -> UndoReceipt:
        def archive(current: MemoryItem) -> MemoryItem:
            return revise(
                current,
                "undone",
                at=now,
                task_id=None,
                reason=f"undo: the correction of {older_ids} was undone",
                related_ids=older_ids,
                changes={"status": "archived"},
                extra={"undoes": entry["version"]},
            )

        apply(self._memories, newer_id, archive)
        restored = [i for i in older_ids if self._reactivate(i, newer_id, now)]
        return UndoReceipt(undone="supersedes", memory_id=newer_id, restored=restored, archived=[newer_id])

    def _undo_from_archived(self, older: MemoryItem, newer_ids: list[str], now: str) -> UndoReceipt:
        for newer_id in newer_ids:
            newer = self._memories.get_memory(newer_id)
            entry = last_undoable(newer) if newer is not None else None
            if newer is not None and entry is not None and entry["action"] == "supersedes":
                return self._undo_supersession(newer_id, list(entry["related_ids"]), entry, now)
        # The newer item is gone (deleted) or already changed back: reactivate this one alone.
        self._reactivate(older.id, newer_ids[0] if newer_ids else "", now)
        return UndoReceipt(undone="archived", memory_id=older.id, restored=[older.id])

    def _reactivate(self, memory_id: str, newer_id: str, now: str) -> bool:
        def restore(current: MemoryItem) -> MemoryItem | None:
            entry = last_undoable(current)
            if entry is None or entry["action"] != "archived":
                return None
            return revise(
                current,
                "restored",
                at=now,
                task_id=None,
                reason=f"undo: {newer_id} no longer supersedes this item",
                related_ids=[newer_id],
                changes={"status": "activated", "covered_history": None},
                extra={"undoes": entry["version"]},
            )

        item = apply(self._memories, memory_id, restore)
        return item is not None and item.metadata.status == "activated"


EDITABLE = ("memory", "key", "tags", "info", "status", "expires_at")
"""What a direct edit (`domain.edits`) may change, and its undo puts back."""


def retext(item: MemoryItem, text: str, embedder: Embedder, vectors: dict[str, list[float]]) -> MemoryItem:
    """`item` with new text: its content hash and embedding follow (`vectors` caches the
    embedding across the retries of one change)."""
    from memcube.domain.ingest import content_hash  # ingest imports this module

    if text not in vectors:
        [vectors[text]] = embedder.embed([text])
    meta = item.metadata.model_copy(
        update={"content_hash": content_hash(text), "embedding": vectors[text], "embedding_model": embedder.model_id}
    )
    return item.model_copy(update={"memory": text, "metadata": meta})
