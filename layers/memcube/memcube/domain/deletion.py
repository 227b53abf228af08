"""Delete and erasure: MemOS's `delete_memory` modes plus erasing a whole cube.

Two kinds of delete, with different reach:
- **Selective** (by `memory_ids`, `file_ids`, or `filter` with an optional `session_id`): the
  items stored now, with their history (the archived versions they replaced or absorbed), from
  the store and the index.
- **Erasure** (a user's data in the cubes: `user_id` and no other selector, as MemOS's quick
  constraint; or a whole cube): also the work queued before it, and the dead letters. An erasure
  mark is written first, so an add submitted earlier can never write afterwards: queued messages
  are discarded where the queue allows it (embedded) and dropped on delivery where it does not
  (SQS), and a worker that is mid-write when the mark appears deletes what it wrote.

Every delete answers with a receipt of counts per place, per cube.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from pydantic import ValidationError

from memcube.domain.commands import DeleteMemories
from memcube.domain.errors import Forbidden, InvalidRequest
from memcube.domain.filters import Filter, compile_filter, filter_doc, matches
from memcube.domain.messages import QueuedAdd, peek
from memcube.domain.model import ERASED_NOTE, MemoryItem, Principal, TaskState, iso, utcnow
from memcube.domain.permissions import authorize_owner, authorize_write
from memcube.ports import (
    DeadLetterStore,
    ErasureMarks,
    MemoryStore,
    MessageLog,
    SearchIndex,
    TaskQueue,
    TaskStore,
    UserDirectory,
)

PAGE = 500


@dataclass
class CubeReceipt:
    """What one delete removed from one cube, per place. `queued` is None where the queue cannot
    count a cube's waiting messages (SQS): those are dropped on delivery instead."""

    cube_id: str
    memories: int = 0
    """Items removed from the store (active ones and the archived versions they replaced)."""
    history: int = 0
    """Of those, archived versions, plus the history entries the removed items carried."""
    index: int = 0
    """Documents removed from the search index."""
    queued: int | None = 0
    """Queued adds discarded before they ran (erasures only)."""
    dead_letters: int = 0
    """Dead-letter records removed with their bodies (erasures only)."""
    erased: bool = False
    """True for an erasure: work submitted before it will never write to the cube."""


@dataclass(frozen=True)
class Receipt:
    cubes: list[CubeReceipt]
    not_found: list[str]
    """Requested memory ids that are not in any cube the caller may write (unknown ids and other
    users' ids look the same)."""
    messages: int = 0
    """The conversation's own messages erased with it (a user's erasure, or a session's delete)."""

    @property
    def memories(self) -> int:
        return sum(c.memories for c in self.cubes)


@dataclass(frozen=True)
class _Selection:
    """A selective delete: which stored items of a cube go."""

    predicate: Callable[[MemoryItem], bool]


class DeletionService:
    def __init__(
        self,
        *,
        memories: MemoryStore,
        erasures: ErasureMarks,
        tasks: TaskStore,
        dead_letters: DeadLetterStore,
        users: UserDirectory,
        index: SearchIndex,
        queue: TaskQueue,
        now: Callable[[], str] = lambda: iso(utcnow()),
        messages: MessageLog | None = None,
    ) -> None:
        self._memories = memories
        self._erasures = erasures
        self._tasks = tasks
        self._dead_letters = dead_letters
        self._users = users
        self._index = index
        self._queue = queue
        self._now = now
        self._messages = messages

    def delete(self, req: DeleteMemories, principal: Principal) -> Receipt:
        session = req.session_id
        chosen = [name for name in ("memory_ids", "file_ids", "filter") if getattr(req, name) is not None]
        if len(chosen) > 1:
            raise InvalidRequest(f"{' and '.join(chosen)}: give exactly one of memory_ids, file_ids, filter")
        if chosen and chosen[0] != "filter" and session is not None:
            raise InvalidRequest(f"session_id: narrows a filter delete only, not a delete by {chosen[0]}")
        if req.memory_ids is not None:
            return self._by_ids(req.memory_ids, req.cube_ids, principal)
        cubes = req.cube_ids or [req.user_id]
        authorize_write(principal, cubes, self._users)
        if req.file_ids is not None:
            return self._files(cubes, dict.fromkeys(cubes, req.file_ids))
        if req.filter is not None or session is not None:
            if req.filter == {} and session is None:
                raise InvalidRequest(
                    "filter: empty; it would match everything (to erase all your data, send no selector)"
                )
            flt = compile_filter(req.filter)
            return self._forget_messages(self._select(cubes, _Selection(_matcher(flt, session))), req, cubes)
        return self._forget_messages(self._erase(cubes, erasing=req.user_id), req, cubes)

    def _forget_messages(self, receipt: Receipt, req: DeleteMemories, cubes: list[str]) -> Receipt:
        """A user's erasure (or a session's delete, without a filter) in their personal cube also
        erases the conversation's own messages, so nothing they said stays behind."""
        if self._messages is None or req.user_id not in cubes or req.filter is not None:
            return receipt
        return replace(receipt, messages=self._messages.delete_messages(req.user_id, req.session_id))

    def delete_files(self, by_cube: dict[str, list[str]], principal: Principal) -> Receipt:
        """Every memory of each cube's files (a file id names its cube); write on every cube is
        checked first: all or nothing."""
        cubes = list(by_cube)
        authorize_write(principal, cubes, self._users)
        return self._files(cubes, by_cube)

    def erase_cube(self, cube_id: str, principal: Principal) -> Receipt:
        """Erase a whole cube, as its owner (or, for a cube nobody created while keys are off, anyone)."""
        authorize_owner(principal, cube_id, self._users)
        receipt = self._erase([cube_id], erasing=None)
        self._users.delete_cube(cube_id)  # its grants go with it; the id is free again
        if self._messages is not None and self._users.is_user(cube_id):  # a personal cube: its user's words too
            receipt = replace(receipt, messages=self._messages.delete_messages(cube_id, None))
        return receipt

    # --- selective ---------------------------------------------------------------------------

    def delete_as_writers(self, memory_ids: list[str]) -> Receipt:
        """Delete by ids, each memory as the user who wrote it (the hosted API with keys off and
        no user named, as MemOS deletes)."""
        return self._by_ids(memory_ids, None, None)

    def _by_ids(self, memory_ids: list[str], cubes: list[str] | None, principal: Principal | None) -> Receipt:
        if cubes is not None and principal is not None:
            authorize_write(principal, cubes, self._users)  # all or nothing, before any delete
        found = {i.id: i for i in self._memories.get_memories(memory_ids)}
        allowed: dict[tuple[str, str], bool] = {}
        by_cube: dict[str, list[MemoryItem]] = {}
        for item in found.values():
            cube = item.metadata.cube_id
            who = principal or Principal(user_id=item.metadata.user_id)
            if (cube, who.user_id) not in allowed:
                may = (cube in cubes) if cubes is not None else self._may_write(who, cube)
                allowed[cube, who.user_id] = may
            if allowed[cube, who.user_id]:
                by_cube.setdefault(cube, []).append(item)
        deleted = {i.id for items in by_cube.values() for i in items}
        receipts = [self._remove(cube, self._with_lineage(cube, items)) for cube, items in by_cube.items()]
        return Receipt(receipts, [i for i in dict.fromkeys(memory_ids) if i not in deleted])

    def _may_write(self, principal: Principal, cube_id: str) -> bool:
        try:
            authorize_write(principal, [cube_id], self._users)
        except Forbidden:
            return False
        return True

    def _select(self, cubes: list[str], selection: _Selection) -> Receipt:
        return Receipt([self._select_in(cube, selection) for cube in cubes], [])

    def _select_in(self, cube: str, selection: _Selection) -> CubeReceipt:
        chosen = [i for i in self._all_items(cube) if selection.predicate(i)]
        return self._remove(cube, self._with_lineage(cube, chosen))

    def _files(self, cubes: list[str], by_cube: dict[str, list[str]]) -> Receipt:
        return Receipt([self._select_in(cube, _of_files(set(by_cube[cube]))) for cube in cubes], [])

    def _with_lineage(self, cube_id: str, items: list[MemoryItem]) -> list[MemoryItem]:
        """The items plus the archived versions they replaced or absorbed, transitively: deleting
        a fact deletes its history too."""
        chosen = {i.id: i for i in items}
        frontier = [ref for i in items for ref in _ancestors(i)]
        while frontier:
            fresh = [ref for ref in dict.fromkeys(frontier) if ref not in chosen]
            frontier = []
            for older in self._memories.get_memories(fresh):
                if older.metadata.cube_id == cube_id and older.metadata.status != "activated":
                    chosen[older.id] = older
                    frontier.extend(_ancestors(older))
        return list(chosen.values())

    def _remove(self, cube_id: str, items: list[MemoryItem]) -> CubeReceipt:
        receipt = CubeReceipt(cube_id=cube_id)
        for start in range(0, len(items), PAGE):
            page = items[start : start + PAGE]
            receipt.memories += self._memories.delete_memories(page)
            receipt.history += sum(len(i.metadata.history) + (i.metadata.status == "archived") for i in page)
            receipt.index += self._index.delete(cube_id, [i.id for i in page])
        return receipt

    def remove_with_lineage(self, cube_id: str, items: list[MemoryItem]) -> tuple[CubeReceipt, list[MemoryItem]]:
        """Remove these items of one cube with the archived versions they replaced, from the
        store and the index, as a selective delete does, for a service that decided it (the
        expiry sweep: no caller's permission is checked here). The receipt and every item removed."""
        chosen = self._with_lineage(cube_id, items)
        return self._remove(cube_id, chosen), chosen

    def _all_items(self, cube_id: str) -> Iterator[MemoryItem]:
        cursor: str | None = None
        while True:
            page, cursor = self._memories.export_page(cube_id, cursor, PAGE)
            yield from page
            if cursor is None:
                return

    # --- erasure -----------------------------------------------------------------------------

    def _erase(self, cubes: list[str], erasing: str | None) -> Receipt:
        at = self._now()
        letters = self._dead_letters.list_dead_letters()
        receipts = []
        for cube in cubes:
            # A user's personal cube is theirs alone: their erasure takes all of it, whoever wrote.
            user_id = None if cube == erasing else erasing
            self._erasures.mark_erased(cube, user_id, at)  # first: nothing submitted before may write after
            discarded = self._queue.discard(cube, user_id)
            if discarded is not None:
                self._cancel(discarded)
            mine = [i for i in self._all_items(cube) if user_id is None or i.metadata.user_id == user_id]
            receipt = self._remove(cube, mine)
            receipt.index += self._index.delete_where(cube, user_id)  # documents the store lost track of
            receipt.queued = None if discarded is None else len(discarded)
            mine_dead = [
                d for d in letters if d.cube_id == cube and (user_id is None or peek(d.body, "user_id") == user_id)
            ]
            receipt.dead_letters = self._dead_letters.delete_dead_letters(mine_dead)
            receipt.erased = True
            receipts.append(receipt)
        return Receipt(receipts, [])

    def _cancel(self, bodies: Sequence[str]) -> None:
        """Mark the parts of discarded messages cancelled, so their tasks finish visibly."""
        for body in bodies:
            try:
                msg = QueuedAdd.model_validate_json(body)
            except ValidationError:
                continue
            record = self._tasks.get_task(msg.task_id)
            part = next((p for p in record.parts if p.cube_id == msg.cube_id), None) if record else None
            if part is None or part.status in {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED}:
                continue
            cancelled = part.finished(TaskState.CANCELLED, self._now(), notes=[*part.notes, ERASED_NOTE])
            self._tasks.put_task_part(msg.task_id, cancelled)


def _of_files(files: set[str]) -> _Selection:
    return _Selection(lambda i: any(s.file_id in files for s in i.metadata.sources))


def _matcher(flt: Filter | None, session: str | None) -> Callable[[MemoryItem], bool]:

    def chosen(item: MemoryItem) -> bool:
        if session is not None and item.metadata.session_id != session:
            return False
        return matches(flt, filter_doc(item))

    return chosen


def _ancestors(item: MemoryItem) -> list[str]:
    meta = item.metadata
    return [*meta.merged_from, *([meta.covered_history] if meta.covered_history else [])]
