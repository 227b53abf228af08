"""Expiry: a memory may carry the instant it expires (`metadata.expires_at`, epoch seconds, with
its ISO 8601 view `expiration_date`).

Where it comes from: an add's `expiration_date`, an imported item's own expiry, a direct edit
(`ExpiryService.set_expiry`, for the update route), or else a knowledge-base cube's default
(`default_ttl_days`, counted from the add's submission). An explicit value always wins over the
cube's default; an item without either never expires.

What it does, as soon as the clock passes it:
- **Reads.** Every read compares `expires_at` with the clock when it runs (search in the index
  query itself, so expired documents never take a result's place; pages, reads by id, history
  and export in the store's answer): an expired memory has left them all at that instant, not
  when a sweep comes by. A read with `show_expired` still returns it, marked expired, until the
  sweep erases it.
- **Erasure.** `ExpirySweep.sweep` finds expired items in the store (`ExpiringMemories`) and
  erases each with the archived versions it replaced (as a selective delete does), from the
  store and the index, then writes its **tombstone**: the same id with status `deleted`, no text,
  key, tags, info, sources or embedding, and its history reduced to the steps it went through
  plus the `expired` entry (when, and which archived versions went with it). The history route
  shows that record; nothing else returns it, and a user's or cube's erasure removes it too.
  Documents whose item the store no longer holds (DynamoDB TTL got there first) are found in the
  index by their own `expires_at` and removed.

It runs every `MEMCUBE_EXPIRY_SWEEP_SECONDS` in the embedded server's worker, and from an
EventBridge schedule in the AWS worker; on AWS DynamoDB's TTL is the backstop that erases the
store's records a grace period after expiry if no sweep ran (README, SECURITY.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from memcube.domain.errors import Forbidden, InvalidRequest, NotFound
from memcube.domain.history import apply, revise
from memcube.domain.model import MemoryItem, MemoryMetadata, Principal, iso
from memcube.domain.permissions import CubeAcl, authorize_write
from memcube.ports import ExpiringMemories, MemoryStore, SearchIndex, UserDirectory

if TYPE_CHECKING:
    from memcube.domain.deletion import DeletionService

DAY = 86_400
MAX_TTL_DAYS = 36_500
"""The furthest an expiry may lie ahead (and the largest cube default): a hundred years."""
SWEEP_BATCH = 200
SWEEP_ROUNDS = 50
"""Batches one sweep erases at most (10,000 items); the next sweep goes on from there."""
EXPIRED_ACTION = "expired"


def _instant(value: str) -> datetime:
    """The instant an ISO 8601 date or date-time names: a date alone is its whole day, so it
    expires at the next midnight (UTC); a date-time without a zone is UTC."""
    text = value.strip()
    if "T" not in text and " " not in text and ":" not in text:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    parsed = datetime.fromisoformat(text)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_expiration(value: str, now: float, where: str = "expiration_date") -> int:
    """The expiry `value` asks for, as epoch seconds; InvalidRequest naming `where` when it is not
    an ISO 8601 date or date-time, is not in the future, or lies over `MAX_TTL_DAYS` ahead."""
    try:
        instant = _instant(value)
    except (ValueError, OverflowError):
        raise InvalidRequest(
            f"{where}: {value[:40]!r} is not an ISO 8601 date or date-time (e.g. 2027-01-31 or 2027-01-31T18:00:00Z)"
        ) from None
    epoch = int(instant.timestamp())
    if epoch <= now:
        raise InvalidRequest(
            f"{where}: {value[:40]!r} is not in the future (it is now {iso_epoch(int(now))}); "
            "a memory must not be written already expired"
        )
    if epoch > now + MAX_TTL_DAYS * DAY:
        raise InvalidRequest(f"{where}: at most {MAX_TTL_DAYS} days ahead")
    return epoch


def iso_epoch(epoch: int) -> str:
    return iso(datetime.fromtimestamp(epoch, UTC))


def resolve(explicit: int | None, acl: CubeAcl | None, now: float) -> int | None:
    """An explicit expiry wins; else the cube's default (`default_ttl_days` of a knowledge base;
    a personal cube has none), counted from `now`; else none."""
    if explicit is not None:
        return explicit
    days = acl.default_ttl_days if acl is not None else None
    return int(now) + days * DAY if days else None


def longer_lived(a: int | None, b: int | None) -> int | None:
    """The later of two expiries, None (never) being the latest: what a merge or a restated
    duplicate keeps."""
    return None if a is None or b is None else max(a, b)


def is_expired(item: MemoryItem, now: float) -> bool:
    expires = item.metadata.expires_at
    return expires is not None and expires <= now


def expiry_changes(expiration_date: str | None, now: float, where: str = "expiration_date") -> dict[str, Any]:
    """The metadata changes that set (an ISO date or date-time) or clear (None) a memory's expiry:
    for `history.revise`, so an update that also changes other fields writes one version."""
    return {"expires_at": None if expiration_date is None else parse_expiration(expiration_date, now, where)}


class ExpiryService:
    """Setting and clearing one memory's expiry (the update route calls it, or `expiry_changes`)."""

    def __init__(
        self,
        memories: MemoryStore,
        users: UserDirectory,
        index: SearchIndex,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._memories = memories
        self._users = users
        self._index = index
        self._clock = clock

    def set_expiry(self, memory_id: str, expiration_date: str | None, principal: Principal) -> MemoryItem:
        """A new version of the memory expiring at `expiration_date` (None: never), with a history
        entry, re-indexed. Refused (404, as for an unknown id) for a memory the caller may not
        write, one already expired, or an erased one; 422 for a date not in the future."""
        now = self._clock()
        changes = expiry_changes(expiration_date, now)
        missing = NotFound(f"memory_id: {memory_id!r} not found")
        current = self._memories.get_memory(memory_id)
        if current is None or current.metadata.status == "deleted" or is_expired(current, now):
            raise missing
        try:
            authorize_write(principal, [current.metadata.cube_id], self._users)
        except Forbidden:
            raise missing from None
        at = iso_epoch(int(now))
        reason = "expiry cleared" if changes["expires_at"] is None else f"expires at {iso_epoch(changes['expires_at'])}"

        def change(item: MemoryItem) -> MemoryItem | None:
            if item.metadata.status == "deleted" or is_expired(item, now):
                return None
            return revise(item, "expiry", at=at, task_id=None, reason=reason, changes=changes)

        updated = apply(self._memories, memory_id, change)
        if updated is None or updated.metadata.expires_at != changes["expires_at"]:
            raise missing  # erased or expired meanwhile
        self._index.upsert([updated])
        return updated


def tombstone(item: MemoryItem, at: str, erased: list[str]) -> MemoryItem:
    """What stays of an expired memory once it is erased: its id, cube, writer, session and type,
    and its history reduced to the steps (no text, no snapshots, no reasons), ending with the
    `expired` entry naming the archived versions erased with it."""
    meta = item.metadata
    steps = [{k: e.get(k) for k in ("version", "action", "at", "task_id", "related_ids")} for e in meta.history]
    version = meta.version + 1
    entry = {
        "version": version,
        "action": EXPIRED_ACTION,
        "at": at,
        "task_id": None,
        "reason": f"expired at {meta.expiration_date}; erased by the expiry sweep",
        "related_ids": erased,
        "expired_at": meta.expiration_date,
    }
    return MemoryItem(
        id=item.id,
        memory="",
        metadata=MemoryMetadata(
            user_id=meta.user_id,
            session_id=meta.session_id,
            cube_id=meta.cube_id,
            status="deleted",
            memory_type=meta.memory_type,
            key="",
            source=meta.source,
            created_at=meta.created_at,
            updated_at=at,
            version=version,
            history=[*steps, entry],
            content_hash=f"erased:{item.id}",
            task_id=meta.task_id,
        ),
    )


@dataclass
class SweepReport:
    erased: list[str] = field(default_factory=list)
    """Expired memories erased (each leaves a tombstone with the `expired` history entry)."""
    history: int = 0
    """Archived versions erased with them."""
    index: int = 0
    """Index documents removed (theirs, and those of items the store no longer held)."""
    reindexed: list[str] = field(default_factory=list)
    """Documents whose expiry was stale in the index (the item's expiry was changed): rewritten."""


class ExpirySweep:
    """Erases what has expired, on both sides of the store/index pair. Safe to run at any time
    and concurrently with adds and reads: every item is read back from the store before it is
    erased, and each erasure is the selective delete's (guard, item, bands, pointer; index)."""

    def __init__(
        self,
        memories: MemoryStore,
        expiring: ExpiringMemories,
        index: SearchIndex,
        deleter: DeletionService,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._memories = memories
        self._expiring = expiring
        self._index = index
        self._deleter = deleter
        self._clock = clock

    def sweep(self) -> SweepReport:
        now = int(self._clock())
        report = SweepReport()
        for _ in range(SWEEP_ROUNDS):
            listed = self._expiring.expired_memories(now, SWEEP_BATCH)
            due = self._due([i.id for i in listed], now)
            self._erase(due, now, report)
            if len(listed) < SWEEP_BATCH or not due:
                break
        self._orphans(now, report)
        return report

    def _due(self, memory_ids: list[str], now: int) -> list[MemoryItem]:
        """The items as the store holds them now, still expired and not yet erased."""
        found = self._memories.get_memories(memory_ids)
        return [i for i in found if i.metadata.status != "deleted" and is_expired(i, now)]

    def _erase(self, items: list[MemoryItem], now: int, report: SweepReport) -> None:
        at = iso_epoch(now)
        by_cube: dict[str, list[MemoryItem]] = {}
        for item in items:
            by_cube.setdefault(item.metadata.cube_id, []).append(item)
        for cube_id, expired in by_cube.items():
            receipt, removed = self._deleter.remove_with_lineage(cube_id, expired)
            report.history += len(removed) - len(expired)
            report.index += receipt.index
            mine = {i.id for i in expired}
            for item in expired:
                # Archived versions go with the expired item that replaced or absorbed them.
                erased = [r.id for r in removed if r.id not in mine and r.id in _lineage_of(item, removed)]
                self._memories.put_memory(tombstone(item, at, erased))
                report.erased.append(item.id)

    def _orphans(self, now: int, report: SweepReport) -> None:
        """Index documents past their expiry whose item is gone, erased or no longer expired."""
        seen: set[str] = set()
        for _ in range(SWEEP_ROUNDS):
            docs = self._index.expired_documents(now, SWEEP_BATCH)
            if not docs or seen.issuperset(memory_id for _, memory_id in docs):
                return  # nothing left, or only what a lagging index (Serverless) still shows
            seen.update(memory_id for _, memory_id in docs)
            self._settle(docs, now, report)
            if len(docs) < SWEEP_BATCH:
                return

    def _settle(self, docs: list[tuple[str, str]], now: int, report: SweepReport) -> None:
        """Erase the documents' items that are expired, rewrite the documents of items whose
        expiry changed since, and remove those of items the store no longer holds."""
        stored = {i.id: i for i in self._memories.get_memories([memory_id for _, memory_id in docs])}
        kept = [i for i in stored.values() if i.metadata.status != "deleted"]
        self._erase([i for i in kept if is_expired(i, now)], now, report)
        live = [i for i in kept if not is_expired(i, now)]
        if live:
            self._index.upsert(live)
            report.reindexed.extend(i.id for i in live)
        gone: dict[str, list[str]] = {}
        for cube_id, memory_id in docs:
            if memory_id not in stored or stored[memory_id].metadata.status == "deleted":
                gone.setdefault(cube_id, []).append(memory_id)
        for cube_id, ids in gone.items():
            report.index += self._index.delete(cube_id, ids)


def _lineage_of(item: MemoryItem, removed: list[MemoryItem]) -> set[str]:
    """The ids among `removed` that `item` reaches through merged_from and covered_history."""
    by_id = {r.id: r for r in removed}
    seen: set[str] = set()
    frontier = [item]
    while frontier:
        meta = frontier.pop().metadata
        for ref in [*meta.merged_from, *([meta.covered_history] if meta.covered_history else [])]:
            if ref in by_id and ref not in seen:
                seen.add(ref)
                frontier.append(by_id[ref])
    return seen
