"""Export a cube page by page and import it back: a backup, or a move to another deployment.

An export holds every item of the cube (any status, so history travels with it) exactly as
stored, except the embedding: vectors belong to one embedding model, so an import computes them
again with the importing server's embedder. Importing an export into the same cube id (after an
erasure, or on a new deployment) restores the items with their ids, so exporting again gives the
same lines. Into another cube, each item gets a new id derived from the old one and the target
cube (ids are global), and its `cube_id` is the target's. The importer is every imported item's
writer (`user_id`): an item the export names as another user's keeps that author as provenance
(`original_user_id`), so nobody can import items that show as, or count as, someone else's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from memcube.domain import limits
from memcube.domain.errors import InvalidRequest
from memcube.domain.expiry import iso_epoch, parse_expiration, resolve
from memcube.domain.filters import Filter
from memcube.domain.model import ItemStatus, MemoryItem, Principal
from memcube.domain.permissions import authorize_read, authorize_write
from memcube.domain.reads import still_listed
from memcube.ports import Embedder, MemoryStore, SearchIndex, UserDirectory

MAX_EXPORT_PAGE = limits.MAX_EXPORT_PAGE
MAX_IMPORT_ITEMS = limits.MAX_IMPORT_ITEMS
MOVED_NAMESPACE = uuid.UUID("0d6f1e9a-3c2b-4f5e-8a7d-2b1c0e9f8a61")
EXPORTED: tuple[ItemStatus, ...] = ("activated", "archived")
"""Every status but an erased memory's tombstone (`deleted`), which is never exported."""


@dataclass
class ImportResult:
    imported: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    """Items already stored under that id (an import repeated after a lost response)."""
    duplicates: list[dict[str, str]] = field(default_factory=list)
    """Items whose content the cube already holds under another id: `{id, existing_id}`."""


def exported(item: MemoryItem) -> dict[str, Any]:
    """One export line: the item as stored, without its embedding (an import computes it again)."""
    return item.model_dump(mode="json", exclude={"metadata": {"embedding"}})


class TransferService:
    def __init__(
        self,
        memories: MemoryStore,
        users: UserDirectory,
        index: SearchIndex,
        embedder: Embedder,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._memories = memories
        self._users = users
        self._index = index
        self._embedder = embedder
        self._clock = clock

    def export_page(
        self,
        cube_id: str,
        cursor: str | None,
        limit: int,
        principal: Principal,
        *,
        show_expired: bool = False,
        flt: Filter | None = None,
    ) -> tuple[list[MemoryItem], str | None]:
        """One page of the cube's items (any status) and the cursor of the next (None: the last).
        Erased memories' tombstones are never exported, and expired memories only with
        `show_expired` (`domain.expiry`). With `flt` (the search's filter language) only the
        page's items that pass it: the store's page is filtered, not the index (which holds
        activated memories only), so a page may hold fewer than `limit` items, or none before
        the last."""
        authorize_read(principal, cube_id, self._users)
        items, cursor = self._memories.export_page(cube_id, cursor, limit)
        live_at = None if show_expired else int(self._clock())
        return [i for i in items if still_listed(i, cube_id, flt, live_at, EXPORTED)], cursor

    def import_items(self, cube_id: str, rows: list[dict[str, Any]], principal: Principal) -> ImportResult:
        """Write exported rows (`exported`) into the cube, all or none of them validated first.
        An item's own expiry must lie ahead; an item without one gets the cube's default."""
        authorize_write(principal, [cube_id], self._users)
        now = self._clock()
        rows = [_with_expiry(raw, n, now) for n, raw in enumerate(rows)]  # all or none
        items = [self._placed(raw, n, cube_id, principal.user_id) for n, raw in enumerate(rows)]  # all or none
        default = resolve(None, self._users.get_cube(cube_id), now)
        for item in items:
            if item.metadata.expires_at is None and default is not None:
                item.metadata.expires_at = default
                item.metadata.expiration_date = iso_epoch(default)
        vectors = self._embedder.embed([i.memory for i in items])
        result = ImportResult()
        written: list[MemoryItem] = []
        for item, vector in zip(items, vectors, strict=True):
            item.metadata.embedding = vector
            item.metadata.embedding_model = self._embedder.model_id
            put = self._memories.put_memory(item)
            if put.status == "duplicate" and put.existing_id is not None:
                result.duplicates.append({"id": item.id, "existing_id": put.existing_id})
                continue
            if put.status == "created":
                result.imported.append(item.id)
                written.append(item)
            else:  # already stored by an earlier import: index what the store kept
                result.existing.append(item.id)
                written.append(self._memories.get_memory(item.id) or item)
        if written:
            self._index.upsert(written)
        return result

    @staticmethod
    def _placed(raw: dict[str, Any], n: int, cube_id: str, importer: str) -> MemoryItem:
        raw = {**raw, "metadata": {**(raw.get("metadata") or {})}}
        raw["metadata"].pop("embedding", None)
        raw["metadata"].pop("relativity", None)  # present when a search result is imported
        try:
            item = MemoryItem.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidRequest(f"items[{n}].{where}: {first['msg']}") from None
        if item.metadata.user_id != importer:  # the importer writes it; the author named is provenance
            item.metadata.original_user_id = item.metadata.original_user_id or item.metadata.user_id
            item.metadata.user_id = importer
        if item.metadata.cube_id != cube_id:  # links to other versions move with them
            meta = item.metadata
            item = item.model_copy(update={"id": _moved(cube_id, item.id)})
            meta.cube_id = cube_id
            meta.merged_from = [_moved(cube_id, i) for i in meta.merged_from]
            meta.covered_history = _moved(cube_id, meta.covered_history) if meta.covered_history else None
        return item


def _with_expiry(raw: dict[str, Any], n: int, now: float) -> dict[str, Any]:
    """The row with its expiry checked: `expires_at` (epoch seconds) or, without it, the ISO
    `expiration_date` read as an add's; either must lie ahead (an expired memory is not written
    back). An erased memory's tombstone is refused."""
    meta = raw.get("metadata")
    if not isinstance(meta, dict):
        return raw
    where = f"items[{n}].metadata"
    if meta.get("status") == "deleted":
        raise InvalidRequest(f"{where}.status: 'deleted' is an erased memory's record; it cannot be imported")
    expires, view = meta.get("expires_at"), meta.get("expiration_date")
    if expires is None and isinstance(view, str):
        expires = parse_expiration(view, now, f"{where}.expiration_date")
    elif expires is not None:
        if not isinstance(expires, int) or isinstance(expires, bool):
            raise InvalidRequest(f"{where}.expires_at: epoch seconds (an integer), or null")
        if expires <= now:
            raise InvalidRequest(
                f"{where}.expires_at: {expires} ({iso_epoch(max(expires, 0))}) is not in the future; "
                "an expired memory is not imported"
            )
    return {**raw, "metadata": {**meta, "expires_at": expires, "expiration_date": None}}


def _moved(cube_id: str, memory_id: str) -> str:
    return str(uuid.uuid5(MOVED_NAMESPACE, f"{cube_id}/{memory_id}"))
