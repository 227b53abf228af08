"""The reads MemOS has beyond one memory and a plain page: a page through a filter, many memories
by id, and `get_all` (pages of several cubes, or the memories most related to a query).

A filtered page asks the index (`SearchIndex.select`), which holds every filter field and
evaluates the search's filter language exactly (the same compiled tree, on SQLite and on
OpenSearch), for a page of ids and the total; the items themselves come from the store, the
system of record, and each is checked again against the filter and its status there, so a
document the index has not yet caught up with never shows a memory that no longer matches.
No read loads a cube whole: an unfiltered page walks the store's cube to its page, a filtered
one reads only its page of ids.

Every read leaves out memories past their expiry (`domain.expiry`; in the query, so pages and
totals agree) unless asked `show_expired`, and never returns an erased memory's tombstone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from memcube.domain import limits
from memcube.domain.errors import Forbidden, InvalidRequest
from memcube.domain.expiry import is_expired
from memcube.domain.filters import Filter, filter_doc, matches
from memcube.domain.memories import Page
from memcube.domain.model import MemoryItem, Principal
from memcube.domain.permissions import authorize_read
from memcube.ports import Embedder, MemoryStore, SearchIndex, UserDirectory

WINDOW = 10_000
"""How deep a filtered listing pages (`offset + page_size`): OpenSearch's default
`max_result_window`, applied on every backend so a request behaves the same everywhere."""
MAX_IDS = limits.MAX_READ_IDS
"""Memory ids in one `get_memory_by_ids`."""
MAX_CUBES = limits.MAX_READ_CUBES
"""Cubes in one `get_all`: each is read page by page."""


@dataclass(frozen=True)
class ByIds:
    """The readable memories among the asked ids (in the asked order), and the ids that are not:
    unknown, deleted or in a cube the reader may not read, all alike, so ids do not leak."""

    items: list[MemoryItem]
    not_found: list[str]


@dataclass(frozen=True)
class Related:
    """A cube's memories most related to a query, best first, with the score that ranked them."""

    cube_id: str
    items: list[tuple[MemoryItem, float]]


class MemoryReads:
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

    def _live_at(self, show_expired: bool) -> int | None:
        """The instant reads count expiry at; None (no expiry condition) with `show_expired`."""
        return None if show_expired else int(self._clock())

    def authorize(self, cube_ids: Sequence[str], principal: Principal) -> None:
        """Refuse (`Forbidden`) unless the principal may read every one of the cubes."""
        for cube_id in cube_ids:
            authorize_read(principal, cube_id, self._users)

    def page(
        self,
        cube_id: str,
        principal: Principal,
        page: int,
        page_size: int,
        flt: Filter | None,
        *,
        show_expired: bool = False,
    ) -> Page:
        """A page of the cube's activated memories (oldest first) that pass `flt`, with the total;
        expired ones only with `show_expired`."""
        authorize_read(principal, cube_id, self._users)
        offset = (page - 1) * page_size
        live_at = self._live_at(show_expired)
        if flt is None:
            items, total = self._memories.list_memories(cube_id, offset, page_size, live_at)
            return Page(cube_id=cube_id, items=items, total=total, page=page, page_size=page_size)
        if offset + page_size > WINDOW:
            raise InvalidRequest(
                f"page: a filtered listing reaches the first {WINDOW} matches (page {page} of size {page_size} "
                "goes past them); narrow the filter"
            )
        ids, total = self._index.select(cube_id, flt, offset, page_size, live_at=live_at)
        found = {i.id: i for i in self._memories.get_memories(ids)}
        items = [found[i] for i in ids if i in found and still_listed(found[i], cube_id, flt, live_at)]
        return Page(cube_id=cube_id, items=items, total=total, page=page, page_size=page_size)

    def by_ids(self, memory_ids: Sequence[str], principal: Principal | None, show_expired: bool = False) -> ByIds:
        """The asked memories the reader may read (an expired one only with `show_expired`; an
        erased one's tombstone never). `principal` None (keys off, no user named, as MemOS reads
        them) reads each memory as its writer, as `MemoryReader.get` does."""
        wanted = list(dict.fromkeys(memory_ids))
        live_at = self._live_at(show_expired)
        found = {i.id: i for i in self._memories.get_memories(wanted) if live_at is None or not is_expired(i, live_at)}
        readable: dict[str, bool] = {}
        items: list[MemoryItem] = []
        missing: list[str] = []
        for memory_id in wanted:
            item = found.get(memory_id)
            if item is not None and item.metadata.status != "deleted" and self._may_read(item, principal, readable):
                items.append(item)
            else:
                missing.append(memory_id)
        return ByIds(items=items, not_found=missing)

    def _may_read(self, item: MemoryItem, principal: Principal | None, known: dict[str, bool]) -> bool:
        """Whether the reader may read the item's cube (asked once per cube for a principal)."""
        reader = principal or Principal(user_id=item.metadata.user_id)
        key = item.metadata.cube_id if principal is not None else f"{item.metadata.user_id}\0{item.metadata.cube_id}"
        if key not in known:
            try:
                authorize_read(reader, item.metadata.cube_id, self._users)
                known[key] = True
            except Forbidden:
                known[key] = False
        return known[key]

    def related(
        self,
        cube_id: str,
        principal: Principal,
        query: str,
        how: Literal["fulltext", "embedding"],
        limit: int,
        *,
        show_expired: bool = False,
    ) -> Related:
        """The cube's activated memories most related to `query`: by text relevance (`fulltext`,
        every memory that holds a word of the query) or by vector similarity (`embedding`)."""
        authorize_read(principal, cube_id, self._users)
        live_at = self._live_at(show_expired)
        vector = self._embedder.embed([query])[0] if how == "embedding" else []
        hits = self._index.search([cube_id], query, vector, None, limit, live_at=live_at)
        scored = [(h.memory_id, h.text if how == "fulltext" else h.cosine) for h in hits]
        ranked = sorted(((i, s) for i, s in scored if s is not None), key=lambda p: -p[1])[:limit]
        found = {i.id: i for i in self._memories.get_memories([i for i, _ in ranked])}
        items = [(found[i], s) for i, s in ranked if i in found and still_listed(found[i], cube_id, None, live_at)]
        return Related(cube_id=cube_id, items=items)


def still_listed(
    item: MemoryItem,
    cube_id: str,
    flt: Filter | None,
    live_at: int | None,
    statuses: Collection[str] = ("activated",),
) -> bool:
    """The stored item still belongs in a listing of the cube: one of `statuses`, passing the
    filter, and (with `live_at`) not expired then. Every page a read returns is checked here
    against the store, the system of record, so an index that lags an edit (or a page read
    before a change) never shows an item that no longer fits."""

    meta = item.metadata
    live = live_at is None or not is_expired(item, live_at)
    passes = flt is None or matches(flt, filter_doc(item))
    return meta.cube_id == cube_id and meta.status in statuses and live and passes
