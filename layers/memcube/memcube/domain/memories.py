"""Read-side use cases of the foundation: one memory by id, and a cube's memories page by page."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from memcube.domain.errors import Forbidden, NotFound
from memcube.domain.expiry import is_expired
from memcube.domain.model import MemoryItem, Principal
from memcube.domain.permissions import authorize_read
from memcube.ports import MemoryStore, UserDirectory

MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Page:
    cube_id: str
    items: list[MemoryItem]
    total: int
    page: int
    page_size: int


class MemoryReader:
    def __init__(self, memories: MemoryStore, users: UserDirectory, *, clock: Callable[[], float] = time.time) -> None:
        self._memories = memories
        self._users = users
        self._clock = clock

    def get(self, memory_id: str, principal: Principal | None, show_expired: bool = False) -> MemoryItem:
        """One memory, read as `principal`, or with None (keys off, no user named, as MemOS
        reads it) as the memory's writer. An expired one is gone unless `show_expired` asks for
        it (until the sweep erases it: `domain.expiry`)."""
        item = self._memories.get_memory(memory_id)
        missing = NotFound(f"memory_id: {memory_id!r} not found")
        if item is None or item.metadata.status == "deleted":
            raise missing
        if not show_expired and is_expired(item, self._clock()):
            raise missing
        try:
            authorize_read(principal or Principal(user_id=item.metadata.user_id), item.metadata.cube_id, self._users)
        except Forbidden:
            raise missing from None  # another cube's memory answers like an unknown id: ids do not leak
        return item

    def page(self, cube_id: str, principal: Principal, page: int, page_size: int, show_expired: bool = False) -> Page:
        """A page of the cube's activated memories; those past their expiry are left out of the
        page and the total (the store filters them at query time) unless `show_expired`."""
        authorize_read(principal, cube_id, self._users)
        live_at = None if show_expired else int(self._clock())
        items, total = self._memories.list_memories(cube_id, (page - 1) * page_size, page_size, live_at)
        return Page(cube_id=cube_id, items=items, total=total, page=page, page_size=page_size)
