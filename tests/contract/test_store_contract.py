"""The contracts of the system of record's ports (`memcube.ports`: TaskStore, IdempotencyKeys,
DeadLetterStore, MemoryStore, ErasureMarks, UserDirectory, KeyStore, Counter): each test takes the
one port it is about and runs once per adapter of it; the reopen test takes a whole `Stores`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from memcube.domain.auth import ApiKey
from memcube.domain.model import DeadLetter, MemoryItem, TaskState
from memcube.domain.permissions import CubeAcl
from memcube.ports import (
    Counter,
    DeadLetterStore,
    ErasureMarks,
    IdempotencyKeys,
    KeyStore,
    MemoryStore,
    PutResult,
    Stores,
    TaskStore,
    UserDirectory,
)
from tests.contract.support import day, dead_letter, expiring, memory, race, task


def _port_of_stores(name: str) -> Any:
    """A fixture named like a field of `Stores`: that port of the backend under test (`stores`, from
    conftest.py or a tier that star-imports this module), so a port's tests run once per backend's
    adapter of it (they annotate the port's type)."""

    @pytest.fixture(name=name)
    def port(stores: Stores) -> object:
        return getattr(stores, name)

    return port


tasks = _port_of_stores("tasks")
idempotency = _port_of_stores("idempotency")
dead_letters = _port_of_stores("dead_letters")
memories = _port_of_stores("memories")
erasures = _port_of_stores("erasures")
directory = _port_of_stores("directory")
api_keys = _port_of_stores("api_keys")
counter = _port_of_stores("counter")


# --- tasks ---------------------------------------------------------------------------------------


def test_created_task_reads_back_with_its_parts_in_insertion_order(tasks: TaskStore) -> None:
    t, parts = task("t1", cubes=("c2", "c1", "c3"))
    assert tasks.create_task(t, parts) is True
    record = tasks.get_task("t1")
    assert record is not None
    assert record.task == t
    assert record.parts == parts
    assert record.status is TaskState.WAITING


def test_unknown_task_is_none(tasks: TaskStore) -> None:
    assert tasks.get_task("missing") is None


def test_create_task_refuses_an_existing_id_and_keeps_the_first_parts(tasks: TaskStore) -> None:
    t, parts = task("t1", user="u1", cubes=("c1", "c2"))
    assert tasks.create_task(t, parts) is True
    other, other_parts = task("t1", user="u2", cubes=("zz",), created_at=day(9))
    assert tasks.create_task(other, other_parts) is False
    record = tasks.get_task("t1")
    assert record is not None
    assert (record.task, record.parts) == (t, parts)
    assert tasks.list_tasks("u2", 10) == []


def test_racing_creates_of_one_task_id_store_exactly_one_whole_task(tasks: TaskStore) -> None:
    def create(n: int) -> bool:
        t, parts = task("t1", user=f"u{n}", cubes=(f"a{n}", f"b{n}", f"c{n}"))
        return tasks.create_task(t, parts)

    won = race(20, create)
    assert won.count(True) == 1
    winner = won.index(True)
    record = tasks.get_task("t1")
    assert record is not None
    assert record.task.user_id == f"u{winner}"
    assert [p.cube_id for p in record.parts] == [f"a{winner}", f"b{winner}", f"c{winner}"]


def test_create_task_with_a_repeated_cube_raises_and_writes_nothing(tasks: TaskStore) -> None:
    t, parts = task("t1", cubes=("c1", "c2", "c1"))
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own error type
        tasks.create_task(t, parts)
    assert tasks.get_task("t1") is None


def test_put_task_part_replaces_only_that_part_in_place(tasks: TaskStore) -> None:
    t, parts = task("t1", cubes=("c1", "c2", "c3"))
    tasks.create_task(t, parts)
    done = parts[1].model_copy(update={"status": TaskState.COMPLETED, "attempts": 1, "finished_at": day(2)})
    tasks.put_task_part("t1", done)
    record = tasks.get_task("t1")
    assert record is not None
    assert record.parts == [parts[0], done, parts[2]]
    assert record.status is TaskState.IN_PROGRESS


def test_put_task_part_of_an_unknown_task_raises_key_error(tasks: TaskStore) -> None:
    _, parts = task("t1")
    with pytest.raises(KeyError):
        tasks.put_task_part("nope", parts[0])
    assert tasks.get_task("nope") is None


def test_list_tasks_is_the_users_own_newest_first_up_to_limit(tasks: TaskStore) -> None:
    for n, user in enumerate(["u1", "u2", "u1", "u1", "u2"]):
        t, parts = task(f"t{n}", user=user, cubes=(f"c{n}",), created_at=day(n + 1))
        tasks.create_task(t, parts)
    mine = tasks.list_tasks("u1", 10)
    assert [r.task.task_id for r in mine] == ["t3", "t2", "t0"]
    assert [[p.cube_id for p in r.parts] for r in mine] == [["c3"], ["c2"], ["c0"]]
    assert [r.task.task_id for r in tasks.list_tasks("u1", 2)] == ["t3", "t2"]
    assert [r.task.task_id for r in tasks.list_tasks("u2", 10)] == ["t4", "t1"]
    assert tasks.list_tasks("nobody", 10) == []


def test_first_idempotency_key_binding_wins(idempotency: IdempotencyKeys) -> None:
    assert idempotency.claim_idempotency_key("u1\x1fk", "t1") == "t1"
    assert idempotency.claim_idempotency_key("u1\x1fk", "t2") == "t1"
    assert idempotency.claim_idempotency_key("u1\x1fk", "t1") == "t1"
    assert idempotency.claim_idempotency_key("u2\x1fk", "t3") == "t3"


def test_racing_idempotency_claims_all_get_the_one_winner(idempotency: IdempotencyKeys) -> None:
    bound = race(20, lambda n: idempotency.claim_idempotency_key("u1\x1fkey", f"t{n}"))
    assert len(bound) == 20
    assert len(set(bound)) == 1


# --- memory items --------------------------------------------------------------------------------


def test_new_item_is_created_and_reads_back_equal(memories: MemoryStore) -> None:
    item = memory("m1", "alice likes tea")
    assert memories.put_memory(item).status == "created"
    assert memories.get_memory("m1") == item
    assert memories.get_memory("nope") is None


def test_same_id_rewritten_is_reported_as_existing(memories: MemoryStore) -> None:
    item = memory("m1", "alice likes tea")
    memories.put_memory(item)
    assert memories.put_memory(item).status == "exists"
    assert memories.put_memory(item.model_copy(deep=True)).status == "exists"
    assert memories.get_memory("m1") == item
    assert memories.list_memories("cube-a", 0, 10) == ([item], 1)


def test_second_item_with_same_content_in_a_cube_is_a_duplicate(memories: MemoryStore) -> None:
    first = memory("m1", "alice likes tea")
    memories.put_memory(first)
    result = memories.put_memory(memory("m2", "alice likes tea", created_at=day(2)))
    assert result == PutResult("duplicate", "m1")
    assert memories.get_memory("m2") is None
    assert memories.get_memory("m1") == first
    assert memories.list_memories("cube-a", 0, 10) == ([first], 1)


def test_duplicate_is_decided_by_content_hash_not_text(memories: MemoryStore) -> None:
    memories.put_memory(memory("m1", "alice likes tea", digest="h" * 64))
    assert memories.put_memory(memory("m2", "ALICE LIKES TEA", digest="h" * 64)) == PutResult("duplicate", "m1")
    assert memories.put_memory(memory("m3", "alice likes tea", digest="k" * 64)).status == "created"


def test_same_content_in_another_cube_is_not_a_duplicate(memories: MemoryStore) -> None:
    memories.put_memory(memory("m1", "alice likes tea", cube="cube-a"))
    assert memories.put_memory(memory("m2", "alice likes tea", cube="cube-b")).status == "created"
    assert memories.get_memory("m2") is not None
    assert memories.list_memories("cube-b", 0, 10)[1] == 1


def test_racing_writers_of_one_content_leave_exactly_one_item(memories: MemoryStore) -> None:
    results = race(20, lambda n: memories.put_memory(memory(f"m{n}", "the very same fact")))
    assert len(results) == 20
    assert [r.status for r in results].count("created") == 1
    winner = f"m{[r.status for r in results].index('created')}"
    assert {r for r in results if r.status != "created"} == {PutResult("duplicate", winner)}
    page, total = memories.list_memories("cube-a", 0, 50)
    assert ([i.id for i in page], total) == ([winner], 1)
    assert [i.id for i in memories.iter_memories("cube-a")] == [winner]


def test_stored_items_are_not_aliased_to_the_callers_objects(memories: MemoryStore) -> None:
    item = memory("m1", "alice likes tea")
    memories.put_memory(item)
    kept = item.model_copy(deep=True)
    item.metadata.tags.append("mutated after put")
    read = memories.get_memory("m1")
    assert read == kept
    assert read is not None
    read.metadata.tags.append("mutated after get")
    assert memories.get_memory("m1") == kept


def test_get_memories_keeps_the_requested_order_and_skips_missing(memories: MemoryStore) -> None:
    for n in range(4):
        memories.put_memory(memory(f"m{n}", f"fact {n}", cube="cube-a" if n % 2 else "cube-b"))
    assert [i.id for i in memories.get_memories(["m2", "zz", "m0", "m3"])] == ["m2", "m0", "m3"]
    assert memories.get_memories([]) == []
    assert memories.get_memories(["zz"]) == []


def test_get_memories_returns_a_repeated_id_once(memories: MemoryStore) -> None:
    memories.put_memory(memory("m1", "fact"))
    assert [i.id for i in memories.get_memories(["m1", "m1"])] == ["m1"]


def test_list_memories_pages_a_cubes_activated_items_oldest_first(memories: MemoryStore) -> None:
    for n in range(5):  # ids in the opposite order of age: m4 is the oldest
        memories.put_memory(memory(f"m{n}", f"fact {n}", created_at=day(5 - n)))
    archived = memory("mx", "archived fact", created_at=day(1))
    archived.metadata.status = "archived"
    memories.put_memory(archived)
    memories.put_memory(memory("other", "fact in another cube", cube="cube-b", created_at=day(1)))

    pages = [memories.list_memories("cube-a", offset, 2) for offset in (0, 2, 4, 6)]
    assert [([i.id for i in page], total) for page, total in pages] == [
        (["m4", "m3"], 5),
        (["m2", "m1"], 5),
        (["m0"], 5),
        ([], 5),
    ]
    assert memories.list_memories("empty-cube", 0, 10) == ([], 0)


def test_list_memories_breaks_ties_of_age_by_id(memories: MemoryStore) -> None:
    for memory_id in ("mc", "ma", "mb"):
        memories.put_memory(memory(memory_id, f"fact {memory_id}", created_at=day(1)))
    page, _ = memories.list_memories("cube-a", 0, 10)
    assert [i.id for i in page] == ["ma", "mb", "mc"]


def test_iter_memories_yields_every_item_of_any_status_of_a_cube_or_of_all(memories: MemoryStore) -> None:
    for n in range(7):
        item = memory(f"m{n}", f"fact {n}", cube="cube-a" if n < 5 else "cube-b")
        if n == 0:
            item.metadata.status = "archived"
        memories.put_memory(item)
    assert sorted(i.id for i in memories.iter_memories("cube-a")) == [f"m{n}" for n in range(5)]
    assert sorted(i.id for i in memories.iter_memories()) == [f"m{n}" for n in range(7)]
    assert list(memories.iter_memories("empty-cube")) == []


# --- dead letters and users ----------------------------------------------------------------------


def test_dead_letters_are_kept_whole_and_listed_in_order(dead_letters: DeadLetterStore) -> None:
    assert dead_letters.list_dead_letters() == []
    letters = [dead_letter(n) for n in range(3)]
    for letter in letters:
        dead_letters.record_dead_letter(letter)
    assert dead_letters.list_dead_letters() == letters


def test_users_are_registered_idempotently(directory: UserDirectory) -> None:
    assert directory.is_user("alice") is False
    directory.register_user("alice")
    directory.register_user("alice")
    assert directory.is_user("alice") is True
    assert directory.is_user("bob") is False


# --- persistence (persistent adapters only) ------------------------------------------------------


def test_everything_survives_closing_and_reopening(open_stores: Callable[[], Stores]) -> None:
    first = open_stores()
    t, parts = task("t1", cubes=("c1", "c2"))
    first.tasks.create_task(t, parts)
    first.tasks.put_task_part("t1", parts[0].model_copy(update={"status": TaskState.COMPLETED}))
    first.idempotency.claim_idempotency_key("u1\x1fk", "t1")
    item = memory("m1", "kept")
    first.memories.put_memory(item)
    first.dead_letters.record_dead_letter(dead_letter(1))
    first.directory.register_user("alice")
    first.close()

    again = open_stores()
    record = again.tasks.get_task("t1")
    assert record is not None
    assert [(p.cube_id, p.status) for p in record.parts] == [("c1", TaskState.COMPLETED), ("c2", TaskState.WAITING)]
    assert [r.task.task_id for r in again.tasks.list_tasks("u1", 10)] == ["t1"]
    assert again.idempotency.claim_idempotency_key("u1\x1fk", "t9") == "t1"
    assert again.memories.get_memory("m1") == item
    assert again.memories.put_memory(memory("m2", "kept")) == PutResult("duplicate", "m1")
    assert again.memories.put_memory(item).status == "exists"
    assert again.dead_letters.list_dead_letters() == [dead_letter(1)]
    assert again.directory.is_user("alice") is True


# --- deletes and erasure marks -----------------------------------------------------------------


def test_deleted_item_is_gone_and_its_content_can_be_added_again(memories: MemoryStore) -> None:
    first = memory("m1", "alice likes tea")
    memories.put_memory(first)
    memories.put_memory(memory("m2", "bob likes coffee"))
    assert memories.delete_memories([first]) == 1
    assert memories.get_memory("m1") is None
    assert memories.get_memories(["m1", "m2"])[0].id == "m2"
    assert [i.id for i in memories.iter_memories("cube-a")] == ["m2"]
    assert memories.put_memory(memory("m3", "alice likes tea")) == PutResult("created")


def test_deleting_a_missing_item_counts_nothing_and_keeps_the_guard_of_its_content_owner(memories: MemoryStore) -> None:
    owner = memory("m1", "alice likes tea")
    memories.put_memory(owner)
    stranger = memory("m9", "alice likes tea")  # same content, never stored: the guard is m1's
    assert memories.delete_memories([stranger]) == 0
    assert memories.put_memory(memory("m2", "alice likes tea")) == PutResult("duplicate", "m1")
    assert memories.delete_memories([owner, owner]) == 1


def test_export_pages_cover_a_cube_exactly_once_in_a_stable_order(memories: MemoryStore) -> None:
    for n in range(7):
        memories.put_memory(memory(f"m{n}", f"fact {n}", created_at=day(n + 1)))
    archived = memory("old", "an archived fact")
    archived.metadata.status = "archived"
    memories.put_memory(archived)
    memories.put_memory(memory("other", "another cube's", cube="cube-b"))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = memories.export_page("cube-a", cursor, 3)
        seen += [i.id for i in page]
        pages += 1
        if cursor is None:
            break
    assert sorted(seen) == sorted([f"m{n}" for n in range(7)] + ["old"])
    assert len(seen) == len(set(seen)) and pages == 3
    again, _ = memories.export_page("cube-a", None, 100)
    assert [i.id for i in again] == seen
    assert memories.export_page("empty-cube", None, 10) == ([], None)


def test_erasure_marks_keep_the_latest_time_and_cover_the_whole_cube_or_one_user(erasures: ErasureMarks) -> None:
    assert erasures.erased_at("c1", "u1") is None
    erasures.mark_erased("c1", "u1", day(5))
    erasures.mark_erased("c1", "u1", day(3))  # an older mark never moves it back
    assert erasures.erased_at("c1", "u1") == day(5)
    assert erasures.erased_at("c1", "u2") is None
    assert erasures.erased_at("c2", "u1") is None
    erasures.mark_erased("c1", None, day(7))
    assert (erasures.erased_at("c1", "u1"), erasures.erased_at("c1", "u2")) == (day(7), day(7))
    erasures.mark_erased("c1", "u2", day(9))
    assert (erasures.erased_at("c1", "u1"), erasures.erased_at("c1", "u2")) == (day(7), day(9))


def test_deleted_dead_letters_are_gone_and_others_stay(dead_letters: DeadLetterStore) -> None:
    letters = [dead_letter(n) for n in (1, 2, 3)]
    for letter in letters:
        dead_letters.record_dead_letter(letter)
    assert dead_letters.delete_dead_letters([letters[0], letters[2]]) == 2
    assert dead_letters.list_dead_letters() == [letters[1]]
    assert dead_letters.delete_dead_letters([letters[0]]) == 0


def test_a_message_that_fails_again_replaces_its_record_of_the_same_task_and_cube(
    dead_letters: DeadLetterStore,
) -> None:
    first, other = dead_letter(1), dead_letter(2)
    dead_letters.record_dead_letter(first)
    dead_letters.record_dead_letter(other)
    again = first.model_copy(update={"message_id": "q1-redriven", "reason": "failed again", "failed_at": day(5)})
    dead_letters.record_dead_letter(again)
    assert dead_letters.list_dead_letters() == [other, again]
    assert dead_letters.delete_dead_letters([again]) == 1
    assert dead_letters.list_dead_letters() == [other]


def test_a_large_redriven_message_that_fails_again_keeps_one_record(dead_letters: DeadLetterStore) -> None:
    """A body too big to store whole is cut short on DynamoDB; the record is still one per task and cube."""
    body = json.dumps({"v": 1, "text": os.urandom(700_000).hex()})
    big = dead_letter(1).model_copy(update={"body": body})
    dead_letters.record_dead_letter(big)
    dead_letters.record_dead_letter(big.model_copy(update={"message_id": "q1-redriven", "failed_at": day(3)}))
    [kept] = dead_letters.list_dead_letters()
    assert (kept.message_id, kept.task_id, kept.cube_id) == ("q1-redriven", "t1", "c1")
    assert dead_letters.delete_dead_letters([kept]) == 1 and dead_letters.list_dead_letters() == []


def test_unreadable_messages_are_one_record_per_body(dead_letters: DeadLetterStore) -> None:
    broken = DeadLetter(message_id="m1", body="{not json", reason="invalid", attempts=1, failed_at=day(1))
    dead_letters.record_dead_letter(broken)
    dead_letters.record_dead_letter(broken.model_copy(update={"message_id": "m2", "failed_at": day(2)}))
    other = broken.model_copy(update={"message_id": "m3", "body": "{also not json", "failed_at": day(3)})
    dead_letters.record_dead_letter(other)
    assert [d.message_id for d in dead_letters.list_dead_letters()] == ["m2", "m3"]


# --- versioned updates and near-duplicate candidates ---------------------------------------------


def _next_version(item: MemoryItem, **changes: object) -> MemoryItem:
    meta = item.metadata.model_copy(update={"version": item.metadata.version + 1, **changes})
    return item.model_copy(update={"metadata": meta})


def test_an_update_replaces_the_item_when_its_version_is_still_the_expected_one(memories: MemoryStore) -> None:
    original = memory("m1", "alice likes tea")
    memories.put_memory(original)
    archived = _next_version(original, status="archived", tags=["x"], covered_history="m2")
    assert memories.update_memory(archived, expected_version=1) is True
    assert memories.get_memory("m1") == archived
    assert memories.list_memories("cube-a", 0, 10) == ([], 0)  # archived items are not listed


def test_an_update_from_a_stale_version_changes_nothing(memories: MemoryStore) -> None:
    original = memory("m1", "alice likes tea")
    memories.put_memory(original)
    first = _next_version(original, tags=["first"])
    assert memories.update_memory(first, expected_version=1) is True
    assert memories.update_memory(_next_version(original, tags=["late"]), expected_version=1) is False
    assert memories.get_memory("m1") == first


def test_racing_updates_from_one_version_let_exactly_one_win(memories: MemoryStore) -> None:
    original = memory("m1", "alice likes tea")
    memories.put_memory(original)
    won = race(8, lambda n: memories.update_memory(_next_version(original, tags=[f"t{n}"]), expected_version=1))
    assert won.count(True) == 1
    stored = memories.get_memory("m1")
    assert stored is not None
    assert stored.metadata.tags == [f"t{won.index(True)}"]


def test_an_update_of_a_missing_item_is_false(memories: MemoryStore) -> None:
    assert memories.update_memory(memory("m404", "nothing"), expected_version=1) is False


def test_an_update_may_not_change_the_text(memories: MemoryStore) -> None:
    memories.put_memory(memory("m1", "alice likes tea"))
    changed = memory("m1", "alice likes coffee").model_copy()
    with pytest.raises(ValueError, match="m1"):
        memories.update_memory(_next_version(changed), expected_version=1)


def test_a_near_copy_is_a_candidate_the_moment_the_original_is_written(memories: MemoryStore) -> None:
    text = "alice moved to lisbon in march and works as a nurse at the city hospital near the river"
    memories.put_memory(memory("m1", text))
    memories.put_memory(memory("m2", "bob plays football every sunday with his friends from school"))
    memories.put_memory(memory("m3", text, cube="cube-b", digest="other"))  # another cube is never a candidate
    near = text.replace("nurse", "doctor")
    assert memories.similar_ids("cube-a", near, 10) == ["m1"]
    assert memories.similar_ids("cube-a", "completely unrelated words about weather forecasts", 10) == []


def test_chinese_near_copies_are_candidates_too(memories: MemoryStore) -> None:
    memories.put_memory(memory("m1", "用户下个月要搬到里斯本，在市中心的医院当护士，周末喜欢去海边散步"))
    assert memories.similar_ids("cube-a", "用户下个月要搬到里斯本，在市中心的医院当医生，周末喜欢去海边散步", 10) == [
        "m1"
    ]


def test_a_deleted_item_is_no_longer_a_candidate(memories: MemoryStore) -> None:
    text = "alice moved to lisbon in march and works as a nurse at the city hospital"
    item = memory("m1", text)
    memories.put_memory(item)
    memories.delete_memories([item])
    assert memories.similar_ids("cube-a", text, 10) == []


# --- API keys ------------------------------------------------------------------------------------


def api_key(key_id: str, user: str = "alice", created_at: str = day(1), **extra: Any) -> ApiKey:
    return ApiKey(key_id=key_id, user_id=user, salt="00" * 16, digest="ab" * 32, created_at=created_at, **extra)


def test_a_stored_key_reads_back_whole_and_a_repeated_id_is_refused(api_keys: KeyStore) -> None:
    key = api_key("0123456789abcdef", scope="service", label="ingest bot")
    assert api_keys.put_key(key) is True
    assert api_keys.get_key("0123456789abcdef") == key
    assert api_keys.put_key(api_key("0123456789abcdef", user="mallory")) is False
    assert api_keys.get_key("0123456789abcdef") == key
    assert api_keys.get_key("ffffffffffffffff") is None


def test_keys_are_listed_per_user_or_all_oldest_first(api_keys: KeyStore) -> None:
    api_keys.put_key(api_key("000000000000000b", created_at=day(2)))
    api_keys.put_key(api_key("000000000000000a", created_at=day(1)))
    api_keys.put_key(api_key("000000000000000c", user="alicea", created_at=day(3)))  # a prefix is not the user
    assert [k.key_id for k in api_keys.list_keys("alice")] == ["000000000000000a", "000000000000000b"]
    assert [k.key_id for k in api_keys.list_keys(None)] == ["000000000000000a", "000000000000000b", "000000000000000c"]
    assert api_keys.list_keys("nobody") == []


def test_revoking_keeps_the_key_with_its_first_revocation_time(api_keys: KeyStore) -> None:
    api_keys.put_key(api_key("0123456789abcdef"))
    assert api_keys.revoke_key("0123456789abcdef", day(5)) is True
    assert api_keys.revoke_key("0123456789abcdef", day(6)) is True
    revoked = api_keys.get_key("0123456789abcdef")
    assert revoked is not None and revoked.revoked_at == day(5)
    assert api_keys.revoke_key("ffffffffffffffff", day(5)) is False


# --- cube grants ---------------------------------------------------------------------------------


def test_a_created_cube_reads_back_and_a_second_create_is_refused(directory: UserDirectory) -> None:
    acl = CubeAcl(cube_id="kb-team", owner_id="alice", readers=["bob"], writers=["carol"], created_at=day(1))
    assert directory.create_cube(acl) is True
    assert directory.get_cube("kb-team") == acl
    assert directory.create_cube(acl.model_copy(update={"owner_id": "mallory"})) is False
    assert directory.get_cube("kb-team") == acl
    assert directory.get_cube("kb-other") is None


def test_grants_change_only_from_the_version_read(directory: UserDirectory) -> None:
    acl = CubeAcl(cube_id="kb-team", owner_id="alice", created_at=day(1))
    directory.create_cube(acl)
    granted = acl.model_copy(update={"readers": ["bob"], "version": 2})
    assert directory.update_cube(granted, expected_version=1) is True
    assert directory.update_cube(acl.model_copy(update={"writers": ["eve"], "version": 2}), expected_version=1) is False
    assert directory.get_cube("kb-team") == granted
    assert directory.update_cube(granted.model_copy(update={"cube_id": "kb-none"}), expected_version=2) is False


def test_a_deleted_cube_frees_its_id(directory: UserDirectory) -> None:
    directory.create_cube(CubeAcl(cube_id="kb-team", owner_id="alice", created_at=day(1)))
    assert directory.delete_cube("kb-team") is True
    assert directory.get_cube("kb-team") is None
    assert directory.delete_cube("kb-team") is False
    assert directory.create_cube(CubeAcl(cube_id="kb-team", owner_id="bob", created_at=day(2))) is True


def test_the_cubes_of_a_user_are_those_they_own_or_are_granted_and_follow_changes(directory: UserDirectory) -> None:
    directory.create_cube(CubeAcl(cube_id="kb-b", owner_id="alice", created_at=day(1)))
    directory.create_cube(CubeAcl(cube_id="kb-a", owner_id="carol", readers=["alice"], created_at=day(1)))
    directory.create_cube(CubeAcl(cube_id="kb-c", owner_id="carol", writers=["bob"], created_at=day(1)))
    assert [a.cube_id for a in directory.cubes_of("alice")] == ["kb-a", "kb-b"]
    assert [a.cube_id for a in directory.cubes_of("bob")] == ["kb-c"]
    assert directory.cubes_of("mallory") == []
    revoked = CubeAcl(cube_id="kb-a", owner_id="carol", created_at=day(1), version=2)
    assert directory.update_cube(revoked, expected_version=1) is True
    directory.delete_cube("kb-b")
    assert directory.cubes_of("alice") == []
    assert [a.cube_id for a in directory.cubes_of("carol")] == ["kb-a", "kb-c"]


# --- rate windows --------------------------------------------------------------------------------


def test_a_window_counts_up_to_its_limit_and_a_new_window_starts_afresh(counter: Counter) -> None:
    assert [counter.hit("req:alice", 2, 600, 60) for _ in range(3)] == [True, True, False]
    assert counter.hit("req:bob", 2, 600, 60) is True  # another principal has its own window
    assert counter.hit("req:alice", 2, 660, 60) is True


def test_racing_hits_never_exceed_the_limit(counter: Counter) -> None:
    results = race(10, lambda _: counter.hit("req:alice", 4, 600, 60))
    assert results.count(True) == 4


# --- expiry (domain.expiry) ----------------------------------------------------------------------


def test_a_page_read_live_leaves_expired_items_out_of_the_page_and_the_total(memories: MemoryStore) -> None:
    for item in (
        expiring("m1", "alice likes tea", None),
        expiring("m2", "alice likes coffee", 1_000),
        expiring("m3", "alice likes cocoa", 3_000),
    ):
        memories.put_memory(item)
    assert [i.id for i in memories.list_memories("cube-a", 0, 10, live_at=2_000)[0]] == ["m1", "m3"]
    assert memories.list_memories("cube-a", 0, 10, live_at=2_000)[1] == 2
    assert memories.list_memories("cube-a", 0, 10, live_at=3_000)[1] == 1  # the expiry instant itself is expired
    assert memories.list_memories("cube-a", 0, 10)[1] == 3  # without live_at: every activated item, as before


def test_expired_memories_lists_items_of_every_cube_past_their_expiry_soonest_first(stores: Stores) -> None:
    for item in (
        expiring("m1", "alice likes tea", None),
        expiring("m2", "alice likes coffee", 2_000),
        expiring("m3", "bob likes cocoa", 1_000, cube="cube-b"),
        expiring("m4", "alice likes juice", 9_000),
    ):
        stores.memories.put_memory(item)
    assert [i.id for i in stores.expiring.expired_memories(5_000, 10)] == ["m3", "m2"]
    assert [i.id for i in stores.expiring.expired_memories(5_000, 1)] == ["m3"]
    assert stores.expiring.expired_memories(500, 10) == []


def test_an_expiry_changed_by_an_update_is_what_the_store_lists_by(stores: Stores) -> None:
    item = expiring("m1", "alice likes tea", 1_000)
    stores.memories.put_memory(item)
    cleared = item.model_copy(update={"metadata": item.metadata.model_copy(update={"expires_at": None, "version": 2})})
    assert stores.memories.update_memory(cleared, expected_version=1) is True
    assert stores.expiring.expired_memories(5_000, 10) == []
    assert stores.memories.list_memories("cube-a", 0, 10, live_at=5_000)[1] == 1
    assert stores.memories.get_memory("m1") == cleared  # its guard and pointer outlive the old expiry


# --- rewriting an item's text (a direct edit) ----------------------------------------------------


def _retexted(item: MemoryItem, text: str) -> MemoryItem:
    from memcube.domain.ingest import content_hash

    meta = item.metadata.model_copy(update={"content_hash": content_hash(text), "version": item.metadata.version + 1})
    return item.model_copy(update={"memory": text, "metadata": meta})


def test_rewrite_moves_the_content_guard_and_band_keys_with_the_text(memories: MemoryStore) -> None:
    old_text, new_text = "alice lives in lisbon near the old castle", "alice lives in porto by the douro river"
    item = memory("m1", old_text)
    memories.put_memory(item)
    assert memories.rewrite_memory(_retexted(item, new_text), expected_version=1) == PutResult("created")
    stored = memories.get_memory("m1")
    assert stored is not None and (stored.memory, stored.metadata.version) == (new_text, 2)
    assert "m1" in memories.similar_ids("cube-a", new_text, 10)
    assert "m1" not in memories.similar_ids("cube-a", old_text, 10)
    assert memories.put_memory(memory("m2", new_text, created_at=day(2))) == PutResult("duplicate", "m1")
    assert memories.put_memory(memory("m3", old_text, created_at=day(3))).status == "created"
    assert memories.list_memories("cube-a", 0, 10)[1] == 2


def test_rewrite_to_the_text_of_another_item_is_a_duplicate_and_writes_nothing(memories: MemoryStore) -> None:
    first, second = memory("m1", "alice likes tea"), memory("m2", "bob likes coffee", created_at=day(2))
    memories.put_memory(first)
    memories.put_memory(second)
    assert memories.rewrite_memory(_retexted(second, "alice likes tea"), 1) == PutResult("duplicate", "m1")
    assert memories.get_memory("m2") == second
    assert memories.put_memory(memory("m3", "bob likes coffee", created_at=day(3))) == PutResult("duplicate", "m2")
    assert "m2" in memories.similar_ids("cube-a", "bob likes coffee", 10)


def test_rewrite_of_a_changed_or_missing_item_writes_nothing(memories: MemoryStore) -> None:
    item = memory("m1", "alice likes tea")
    memories.put_memory(item)
    assert memories.rewrite_memory(_retexted(item, "alice likes green tea"), expected_version=5) is None
    assert memories.get_memory("m1") == item
    assert memories.rewrite_memory(memory("nope", "anything at all"), expected_version=1) is None
    assert memories.get_memory("nope") is None


def test_a_rewrite_carries_the_expiry_and_one_that_clears_it_leaves_the_expiry_listing(stores: Stores) -> None:
    old_text, new_text = "alice lives in lisbon near the old castle", "alice lives in porto by the douro river"
    item = expiring("m1", old_text, 1_000)
    stores.memories.put_memory(item)
    kept = _retexted(item, new_text)
    assert stores.memories.rewrite_memory(kept, expected_version=1) == PutResult("created")
    assert [i.id for i in stores.expiring.expired_memories(5_000, 10)] == ["m1"]
    assert stores.memories.list_memories("cube-a", 0, 10, live_at=2_000)[1] == 0
    meta = kept.metadata.model_copy(update={"expires_at": None})
    cleared = _retexted(kept.model_copy(update={"metadata": meta}), old_text)  # version 3
    assert stores.memories.rewrite_memory(cleared, expected_version=2) == PutResult("created")
    assert stores.expiring.expired_memories(5_000, 10) == []
    assert stores.memories.list_memories("cube-a", 0, 10, live_at=5_000)[1] == 1
    assert stores.memories.get_memory("m1") == cleared
    assert "m1" in stores.memories.similar_ids("cube-a", old_text, 10)
