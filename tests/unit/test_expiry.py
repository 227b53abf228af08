"""Expiry (domain.expiry): parsing `expiration_date`, an explicit expiry against a cube's default,
reads that leave an expired memory out at once (or show it, marked, with `show_expired`), and the
sweep that erases what expired, with its history, and nothing else."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from memcube.domain.commands import NewCube, SearchQuery
from memcube.domain.cubes import CubeService
from memcube.domain.errors import InvalidRequest, NotFound
from memcube.domain.expiry import DAY, ExpiryService, ExpirySweep, parse_expiration
from memcube.domain.history import HistoryService
from memcube.domain.ingest import Delivery, Verdict
from memcube.domain.memories import MemoryReader
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import Principal, iso
from memcube.domain.search import SearchService
from memcube.domain.transfer import TransferService, exported
from memcube_api.schemas.product import AddRequest, to_command
from tests.contract.support import FakeClock
from tests.services import deletion_service
from tests.unit.test_organizer import CONVERSATION, edited
from tests.unit.world import World, kinds, only

ALICE = Principal(user_id="alice")
NOW = 1_800_000_000.0
"""2027-01-15T08:00:00Z."""


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2027-02-01", "2027-02-02T00:00:00+00:00"),  # a date is its whole day
        ("2027-02-01T18:30:00Z", "2027-02-01T18:30:00+00:00"),
        ("2027-02-01T18:30:00+02:00", "2027-02-01T16:30:00+00:00"),
        ("2027-02-01T18:30:00", "2027-02-01T18:30:00+00:00"),  # no zone: UTC
    ],
)
def test_an_iso_date_or_date_time_in_the_future_is_an_epoch_expiry(value: str, expected: str) -> None:
    assert parse_expiration(value, NOW) == epoch(expected)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2027-01-15T07:59:59Z", "not in the future"),
        ("2027-01-14", "not in the future"),  # its day ended at midnight
        ("next tuesday", "not an ISO 8601 date"),
        ("2027-02-30", "not an ISO 8601 date"),
        ("2300-01-01", "at most 36500 days ahead"),
    ],
)
def test_an_expiry_that_is_past_unreadable_or_too_far_is_refused_naming_the_field(value: str, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=f"^expiration_date: .*{problem}"):
        parse_expiration(value, NOW)


def test_an_add_with_a_past_expiration_date_is_refused_before_any_command() -> None:
    body = {"user_id": "alice", "messages": "Alice likes tea.", "expiration_date": "2001-01-01"}
    with pytest.raises(InvalidRequest, match=r"^expiration_date: '2001-01-01' is not in the future"):
        to_command(AddRequest.model_validate(body))


# --- where an expiry comes from ------------------------------------------------------------------


def kb(world: World, days: int | None) -> None:
    CubeService(world.stores.directory).create(NewCube("kb-news", [], ["alice"], default_ttl_days=days), ALICE)


def queued_expiry(world: World, **body: Any) -> int | None:
    world.submit("Alice likes tea.", **body)
    [msg] = world.queue.sent
    world.queue.sent = []
    return msg.expires_at


def test_an_explicit_expiration_date_wins_over_the_cubes_default() -> None:
    world = World()
    kb(world, days=3)
    explicit = queued_expiry(world, writable_cube_ids=["kb-news"], expiration_date="2099-01-01")
    assert explicit == epoch("2099-01-02T00:00:00+00:00")


def test_without_one_the_cubes_default_counts_from_the_adds_submission() -> None:
    world = World()
    kb(world, days=3)
    submitted = epoch("2026-11-25T10:00:01+00:00")  # the world's clock at submission
    assert queued_expiry(world, writable_cube_ids=["kb-news"]) == submitted + 3 * DAY


def test_a_cube_without_a_default_and_a_personal_cube_keep_memories_forever() -> None:
    world = World()
    kb(world, days=None)
    assert queued_expiry(world, writable_cube_ids=["kb-news"]) is None
    assert queued_expiry(world) is None


def test_the_stored_memory_carries_its_expiry_as_epoch_seconds_and_iso() -> None:
    world = World()
    part = world.run("Alice likes tea.", expiration_date="2099-01-01T00:00:00Z")
    item = world.item(part.outcomes[0].memory_id)
    assert item.metadata.expires_at == epoch("2099-01-01T00:00:00+00:00")
    assert item.metadata.expiration_date == "2099-01-01T00:00:00.000Z"


# --- reads at once -------------------------------------------------------------------------------


class Expired:
    """A world with one memory expiring an hour from `clock`'s now, and one that never expires."""

    def __init__(self) -> None:
        self.world = World()
        self.clock = FakeClock(time.time())
        soon = datetime.fromtimestamp(self.clock.now + 3600, UTC).isoformat()
        self.expiring = self.world.run("Alice likes green tea.", expiration_date=soon).outcomes[0].memory_id
        self.lasting = self.world.run("Bob plays the cello on Sundays.").outcomes[0].memory_id
        stores = self.world.stores
        self.reader = MemoryReader(stores.memories, stores.directory, clock=self.clock)
        self.deleter = deletion_service(stores, self.world.index, self.world.queue)
        self.sweeper = ExpirySweep(stores.memories, stores.expiring, self.world.index, self.deleter, clock=self.clock)
        self.transfer = TransferService(
            stores.memories, stores.directory, self.world.index, self.world.embedder, clock=self.clock
        )
        self.history = HistoryService(
            stores.memories, stores.directory, self.world.index, self.world.embedder, self.iso_now
        )

    def iso_now(self) -> str:
        return iso(datetime.fromtimestamp(self.clock.now, UTC))

    def search(self, text: str, show_expired: bool = False) -> list[str]:
        stores = self.world.stores
        now = lambda: datetime.fromtimestamp(self.clock.now, UTC)  # noqa: E731
        searcher = SearchService(stores.memories, self.world.index, self.world.embedder, stores.directory, now=now)
        query = SearchQuery(text, ["alice"], relativity=0.0, show_expired=show_expired)
        return [s.item.id for r in searcher.search(query, ALICE).cubes for s in r.memories]


def test_an_expired_memory_leaves_reads_by_id_pages_search_and_export_at_once() -> None:
    w = Expired()
    assert w.expiring in w.search("green tea")
    w.clock.advance(3600)  # no sweep has run
    with pytest.raises(NotFound):
        w.reader.get(w.expiring, ALICE)
    page = w.reader.page("alice", ALICE, 1, 20)
    assert ([i.id for i in page.items], page.total) == ([w.lasting], 1)
    assert w.expiring not in w.search("green tea")
    assert [i.id for i in w.transfer.export_page("alice", None, 100, ALICE)[0]] == [w.lasting]
    with pytest.raises(NotFound):
        w.history.history(w.expiring, ALICE)


def test_show_expired_returns_an_expired_memory_until_it_is_erased() -> None:
    w = Expired()
    w.clock.advance(3600)
    assert w.reader.get(w.expiring, ALICE, show_expired=True).id == w.expiring
    assert w.reader.page("alice", ALICE, 1, 20, show_expired=True).total == 2
    assert w.expiring in w.search("green tea", show_expired=True)
    assert w.history.history(w.expiring, ALICE, show_expired=True).id == w.expiring
    assert len(w.transfer.export_page("alice", None, 100, ALICE, show_expired=True)[0]) == 2
    w.sweeper.sweep()
    with pytest.raises(NotFound):
        w.reader.get(w.expiring, ALICE, show_expired=True)
    assert w.expiring not in w.search("green tea", show_expired=True)


# --- the sweep -----------------------------------------------------------------------------------


def test_the_sweep_erases_what_expired_records_it_in_the_history_and_erases_nothing_else() -> None:
    w = Expired()
    before = w.sweeper.sweep()
    assert before.erased == [] and len(list(w.world.stores.memories.iter_memories())) == 2
    w.clock.advance(3600)
    report = w.sweeper.sweep()
    assert report.erased == [w.expiring] and report.index == 1
    tomb = w.world.item(w.expiring)
    assert (tomb.memory, tomb.metadata.status, tomb.metadata.sources) == ("", "deleted", [])
    assert tomb.metadata.key == "" and tomb.metadata.info == {} and tomb.metadata.expires_at is None
    assert tomb.metadata.history[-1]["action"] == "expired"
    assert "green tea" not in tomb.model_dump_json()  # no text left anywhere, history included
    assert w.world.history.history(w.expiring, ALICE).metadata.history[-1]["action"] == "expired"
    assert w.world.searchable() == {w.lasting}
    assert w.reader.get(w.lasting, ALICE).memory.startswith("Bob plays the cello")
    assert w.sweeper.sweep().erased == []  # a tombstone is not swept again


def test_an_expired_memory_and_its_tombstone_can_be_neither_undone_nor_changed() -> None:
    world = World()
    soon = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    [added] = world.run(CONVERSATION, expiration_date=soon).outcomes
    world.run(edited(CONVERSATION), expiration_date=soon)  # a merge: something to undo
    clock = FakeClock(time.time() + 3600)
    stores = world.stores
    expired = HistoryService(
        stores.memories,
        stores.directory,
        world.index,
        world.embedder,
        lambda: iso(datetime.fromtimestamp(clock.now, UTC)),
    )
    with pytest.raises(NotFound):
        expired.undo(added.memory_id, ALICE)
    deleter = deletion_service(stores, world.index, world.queue)
    ExpirySweep(stores.memories, stores.expiring, world.index, deleter, clock=clock).sweep()
    with pytest.raises(NotFound):
        world.history.undo(added.memory_id, ALICE)  # the tombstone keeps the steps, not what they undid
    with pytest.raises(NotFound):
        ExpiryService(stores.memories, stores.directory, world.index).set_expiry(added.memory_id, None, ALICE)


def test_the_sweep_leaves_only_the_tombstone_of_an_expired_memory_that_absorbed_another() -> None:
    world = World()
    soon = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    [added] = world.run(CONVERSATION, expiration_date=soon).outcomes
    merged = only(world.run(edited(CONVERSATION), expiration_date=soon), "merged")
    assert merged.memory_id == added.memory_id
    clock = FakeClock(time.time() + 3600)
    deleter = deletion_service(world.stores, world.index, world.queue)
    report = ExpirySweep(world.stores.memories, world.stores.expiring, world.index, deleter, clock=clock).sweep()
    assert report.erased == [added.memory_id]
    assert [i.id for i in world.stores.memories.iter_memories()] == [added.memory_id]  # the tombstone alone


def test_a_merge_keeps_the_longer_lived_expiry_and_a_restated_fact_renews_an_expired_one() -> None:
    world = World()
    soon = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    [added] = world.run(CONVERSATION, expiration_date=soon).outcomes
    world.run(edited(CONVERSATION))  # merged, without an expiry: the fact now lasts
    assert world.item(added.memory_id).metadata.expires_at is None
    [tea] = world.run("Alice likes green tea.", expiration_date=soon).outcomes
    part = world.run("Alice likes green tea.")  # the same fact again, without an expiry
    assert kinds(part) == ["duplicate"]
    renewed = world.item(tea.memory_id)
    assert renewed.metadata.expires_at is None and renewed.metadata.history[-1]["action"] == "renewed"


def test_the_sweep_removes_index_documents_whose_item_the_store_lost_and_refreshes_stale_ones() -> None:
    w = Expired()
    stored = w.world.item(w.expiring)
    w.world.stores.memories.delete_memories([stored])  # DynamoDB TTL got there first: the document stays
    lasting = w.world.item(w.lasting)
    stale = lasting.model_copy(update={"metadata": lasting.metadata.model_copy(update={"expires_at": 10})})
    w.world.index.upsert([stale])  # the index missed an edit that cleared an expiry
    w.clock.advance(3600)
    report = w.sweeper.sweep()
    assert report.erased == [] and report.reindexed == [w.lasting]
    assert w.world.searchable() == {w.lasting}
    assert w.world.index.docs[w.lasting].metadata.expires_at is None


# --- setting and clearing (for the update route) ------------------------------------------------


def test_setting_and_clearing_an_expiry_writes_versions_with_history_and_reindexes() -> None:
    w = Expired()
    stores = w.world.stores
    expiry = ExpiryService(stores.memories, stores.directory, w.world.index, clock=w.clock)
    later = datetime.fromtimestamp(w.clock.now + 2 * DAY, UTC).isoformat()
    item = expiry.set_expiry(w.lasting, later, ALICE)
    assert item.metadata.expires_at == int(w.clock.now) + 2 * DAY
    assert w.world.index.docs[w.lasting].metadata.expires_at == item.metadata.expires_at
    cleared = expiry.set_expiry(w.lasting, None, ALICE)
    assert cleared.metadata.expires_at is None
    assert [e["action"] for e in cleared.metadata.history] == ["expiry", "expiry"]
    with pytest.raises(InvalidRequest, match=r"^expiration_date: .*not in the future"):
        expiry.set_expiry(w.lasting, "2001-01-01", ALICE)
    with pytest.raises(NotFound):
        expiry.set_expiry(w.lasting, later, Principal(user_id="mallory"))
    w.clock.advance(3600)
    with pytest.raises(NotFound):  # expired: gone for changes too
        expiry.set_expiry(w.expiring, later, ALICE)


# --- import --------------------------------------------------------------------------------------


def test_an_import_of_an_expired_item_is_refused_naming_it_and_writes_nothing() -> None:
    w = Expired()
    rows = [exported(i) for i in w.transfer.export_page("alice", None, 100, ALICE)[0]]
    w.clock.advance(3600)
    rows.append({**rows[0], "id": "other"})
    rows[0]["metadata"]["expires_at"] = int(w.clock.now) - 1
    target = TransferService(
        w.world.stores.memories, w.world.stores.directory, w.world.index, w.world.embedder, clock=w.clock
    )
    with pytest.raises(InvalidRequest, match=r"^items\[0\]\.metadata\.expires_at: .*not in the future"):
        target.import_items("alice-copy", rows, Principal(user_id="alice-copy"))
    assert list(w.world.stores.memories.iter_memories("alice-copy")) == []


def test_an_imported_item_without_an_expiry_gets_the_cubes_default() -> None:
    w = Expired()
    kb(w.world, days=5)
    row = exported(w.world.item(w.lasting))
    result = w.transfer.import_items("kb-news", [row], ALICE)
    [item] = w.world.stores.memories.get_memories(result.imported)
    assert item.metadata.expires_at == int(w.clock.now) + 5 * DAY
    assert item.metadata.expiration_date is not None


def test_a_direct_producers_message_without_an_expiry_gets_the_cubes_default_from_the_worker() -> None:
    world = World()
    kb(world, days=3)
    text = [{"type": "text", "content": "Elections on Sunday."}]
    body = {"task_id": "p-1", "cube_id": "kb-news", "user_id": "alice", "messages": text}
    message = QueuedAdd.model_validate({**body, "submitted_at": "2026-11-25T10:00:00Z"})
    assert world.ingest.handle(Delivery(message.model_dump_json(), "q-1", 1, 5)) is Verdict.DONE
    [item] = world.stores.memories.list_memories("kb-news", 0, 10)[0]
    assert item.metadata.expires_at == epoch("2026-11-25T10:00:00+00:00") + 3 * DAY
