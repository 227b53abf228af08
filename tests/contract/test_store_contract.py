"""The store contract (TaskStore + MemoryStore + UserDirectory), for every store adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from memcube.domain.auth import ApiKey
from memcube.domain.model import MemoryItem, TaskState
from memcube.domain.permissions import CubeAcl
from memcube.ports import PutResult
from tests.contract.support import Store, close, day, dead_letter, memory, race, task

# --- tasks ---------------------------------------------------------------------------------------


def test_created_task_reads_back_with_its_parts_in_insertion_order(store: Store) -> None:
    t, parts = task("t1", cubes=("c2", "c1", "c3"))
    assert store.create_task(t, parts) is True
    record = store.get_task("t1")
    assert record is not None
    assert record.task == t
    assert record.parts == parts
    assert record.status is TaskState.WAITING


def test_unknown_task_is_none(store: Store) -> None:
    assert store.get_task("missing") is None


def test_create_task_refuses_an_existing_id_and_keeps_the_first_parts(store: Store) -> None:
    t, parts = task("t1", user="u1", cubes=("c1", "c2"))
    assert store.create_task(t, parts) is True
    other, other_parts = task("t1", user="u2", cubes=("zz",), created_at=day(9))
    assert store.create_task(other, other_parts) is False
    record = store.get_task("t1")
    assert record is not None
    assert (record.task, record.parts) == (t, parts)
    assert store.list_tasks("u2", 10) == []


def test_racing_creates_of_one_task_id_store_exactly_one_whole_task(store: Store) -> None:
    def create(n: int) -> bool:
        t, parts = task("t1", user=f"u{n}", cubes=(f"a{n}", f"b{n}", f"c{n}"))
        return store.create_task(t, parts)

    won = race(20, create)
    assert won.count(True) == 1
    winner = won.index(True)
    record = store.get_task("t1")
    assert record is not None
    assert record.task.user_id == f"u{winner}"
    assert [p.cube_id for p in record.parts] == [f"a{winner}", f"b{winner}", f"c{winner}"]


def test_create_task_with_a_repeated_cube_raises_and_writes_nothing(store: Store) -> None:
    t, parts = task("t1", cubes=("c1", "c2", "c1"))
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own error type
        store.create_task(t, parts)
    assert store.get_task("t1") is None


def test_put_task_part_replaces_only_that_part_in_place(store: Store) -> None:
    t, parts = task("t1", cubes=("c1", "c2", "c3"))
    store.create_task(t, parts)
    done = parts[1].model_copy(update={"status": TaskState.COMPLETED, "attempts": 1, "finished_at": day(2)})
    store.put_task_part("t1", done)
    record = store.get_task("t1")
    assert record is not None
    assert record.parts == [parts[0], done, parts[2]]
    assert record.status is TaskState.IN_PROGRESS


def test_put_task_part_of_an_unknown_task_raises_key_error(store: Store) -> None:
    _, parts = task("t1")
    with pytest.raises(KeyError):
        store.put_task_part("nope", parts[0])
    assert store.get_task("nope") is None


def test_list_tasks_is_the_users_own_newest_first_up_to_limit(store: Store) -> None:
    for n, user in enumerate(["u1", "u2", "u1", "u1", "u2"]):
        t, parts = task(f"t{n}", user=user, cubes=(f"c{n}",), created_at=day(n + 1))
        store.create_task(t, parts)
    mine = store.list_tasks("u1", 10)
    assert [r.task.task_id for r in mine] == ["t3", "t2", "t0"]
    assert [[p.cube_id for p in r.parts] for r in mine] == [["c3"], ["c2"], ["c0"]]
    assert [r.task.task_id for r in store.list_tasks("u1", 2)] == ["t3", "t2"]
    assert [r.task.task_id for r in store.list_tasks("u2", 10)] == ["t4", "t1"]
    assert store.list_tasks("nobody", 10) == []


def test_first_idempotency_key_binding_wins(store: Store) -> None:
    assert store.claim_idempotency_key("u1\x1fk", "t1") == "t1"
    assert store.claim_idempotency_key("u1\x1fk", "t2") == "t1"
    assert store.claim_idempotency_key("u1\x1fk", "t1") == "t1"
    assert store.claim_idempotency_key("u2\x1fk", "t3") == "t3"


def test_racing_idempotency_claims_all_get_the_one_winner(store: Store) -> None:
    bound = race(20, lambda n: store.claim_idempotency_key("u1\x1fkey", f"t{n}"))
    assert len(bound) == 20
    assert len(set(bound)) == 1


# --- memory items --------------------------------------------------------------------------------


def test_new_item_is_created_and_reads_back_equal(store: Store) -> None:
    item = memory("m1", "alice likes tea")
    assert store.put_memory(item).status == "created"
    assert store.get_memory("m1") == item
    assert store.get_memory("nope") is None


def test_same_id_rewritten_is_reported_as_existing(store: Store) -> None:
    item = memory("m1", "alice likes tea")
    store.put_memory(item)
    assert store.put_memory(item).status == "exists"
    assert store.put_memory(item.model_copy(deep=True)).status == "exists"
    assert store.get_memory("m1") == item
    assert store.list_memories("cube-a", 0, 10) == ([item], 1)


def test_second_item_with_same_content_in_a_cube_is_a_duplicate(store: Store) -> None:
    first = memory("m1", "alice likes tea")
    store.put_memory(first)
    result = store.put_memory(memory("m2", "alice likes tea", created_at=day(2)))
    assert result == PutResult("duplicate", "m1")
    assert store.get_memory("m2") is None
    assert store.get_memory("m1") == first
    assert store.list_memories("cube-a", 0, 10) == ([first], 1)


def test_duplicate_is_decided_by_content_hash_not_text(store: Store) -> None:
    store.put_memory(memory("m1", "alice likes tea", digest="h" * 64))
    assert store.put_memory(memory("m2", "ALICE LIKES TEA", digest="h" * 64)) == PutResult("duplicate", "m1")
    assert store.put_memory(memory("m3", "alice likes tea", digest="k" * 64)).status == "created"


def test_same_content_in_another_cube_is_not_a_duplicate(store: Store) -> None:
    store.put_memory(memory("m1", "alice likes tea", cube="cube-a"))
    assert store.put_memory(memory("m2", "alice likes tea", cube="cube-b")).status == "created"
    assert store.get_memory("m2") is not None
    assert store.list_memories("cube-b", 0, 10)[1] == 1


def test_racing_writers_of_one_content_leave_exactly_one_item(store: Store) -> None:
    results = race(20, lambda n: store.put_memory(memory(f"m{n}", "the very same fact")))
    assert len(results) == 20
    assert [r.status for r in results].count("created") == 1
    winner = f"m{[r.status for r in results].index('created')}"
    assert {r for r in results if r.status != "created"} == {PutResult("duplicate", winner)}
    page, total = store.list_memories("cube-a", 0, 50)
    assert ([i.id for i in page], total) == ([winner], 1)
    assert [i.id for i in store.iter_memories("cube-a")] == [winner]


def test_stored_items_are_not_aliased_to_the_callers_objects(store: Store) -> None:
    item = memory("m1", "alice likes tea")
    store.put_memory(item)
    kept = item.model_copy(deep=True)
    item.metadata.tags.append("mutated after put")
    read = store.get_memory("m1")
    assert read == kept
    assert read is not None
    read.metadata.tags.append("mutated after get")
    assert store.get_memory("m1") == kept


def test_get_memories_keeps_the_requested_order_and_skips_missing(store: Store) -> None:
    for n in range(4):
        store.put_memory(memory(f"m{n}", f"fact {n}", cube="cube-a" if n % 2 else "cube-b"))
    assert [i.id for i in store.get_memories(["m2", "zz", "m0", "m3"])] == ["m2", "m0", "m3"]
    assert store.get_memories([]) == []
    assert store.get_memories(["zz"]) == []


def test_get_memories_returns_a_repeated_id_once(store: Store) -> None:
    store.put_memory(memory("m1", "fact"))
    assert [i.id for i in store.get_memories(["m1", "m1"])] == ["m1"]


def test_list_memories_pages_a_cubes_activated_items_oldest_first(store: Store) -> None:
    for n in range(5):  # ids in the opposite order of age: m4 is the oldest
        store.put_memory(memory(f"m{n}", f"fact {n}", created_at=day(5 - n)))
    archived = memory("mx", "archived fact", created_at=day(1))
    archived.metadata.status = "archived"
    store.put_memory(archived)
    store.put_memory(memory("other", "fact in another cube", cube="cube-b", created_at=day(1)))

    pages = [store.list_memories("cube-a", offset, 2) for offset in (0, 2, 4, 6)]
    assert [([i.id for i in page], total) for page, total in pages] == [
        (["m4", "m3"], 5),
        (["m2", "m1"], 5),
        (["m0"], 5),
        ([], 5),
    ]
    assert store.list_memories("empty-cube", 0, 10) == ([], 0)


def test_list_memories_breaks_ties_of_age_by_id(store: Store) -> None:
    for memory_id in ("mc", "ma", "mb"):
        store.put_memory(memory(memory_id, f"fact {memory_id}", created_at=day(1)))
    page, _ = store.list_memories("cube-a", 0, 10)
    assert [i.id for i in page] == ["ma", "mb", "mc"]


def test_iter_memories_yields_every_item_of_any_status_of_a_cube_or_of_all(store: Store) -> None:
    for n in range(7):
        item = memory(f"m{n}", f"fact {n}", cube="cube-a" if n < 5 else "cube-b")
        if n == 0:
            item.metadata.status = "archived"
        store.put_memory(item)
    assert sorted(i.id for i in store.iter_memories("cube-a")) == [f"m{n}" for n in range(5)]
    assert sorted(i.id for i in store.iter_memories()) == [f"m{n}" for n in range(7)]
    assert list(store.iter_memories("empty-cube")) == []


# --- dead letters and users ----------------------------------------------------------------------


def test_dead_letters_are_kept_whole_and_listed_in_order(store: Store) -> None:
    assert store.list_dead_letters() == []
    letters = [dead_letter(n) for n in range(3)]
    for letter in letters:
        store.record_dead_letter(letter)
    assert store.list_dead_letters() == letters


def test_users_are_registered_idempotently(store: Store) -> None:
    assert store.is_user("alice") is False
    store.register_user("alice")
    store.register_user("alice")
    assert store.is_user("alice") is True
    assert store.is_user("bob") is False


# --- persistence (persistent adapters only) ------------------------------------------------------


def test_everything_survives_closing_and_reopening(open_store: Callable[[], Store]) -> None:
    first = open_store()
    t, parts = task("t1", cubes=("c1", "c2"))
    first.create_task(t, parts)
    first.put_task_part("t1", parts[0].model_copy(update={"status": TaskState.COMPLETED}))
    first.claim_idempotency_key("u1\x1fk", "t1")
    item = memory("m1", "kept")
    first.put_memory(item)
    first.record_dead_letter(dead_letter(1))
    first.register_user("alice")
    close(first)

    again = open_store()
    record = again.get_task("t1")
    assert record is not None
    assert [(p.cube_id, p.status) for p in record.parts] == [("c1", TaskState.COMPLETED), ("c2", TaskState.WAITING)]
    assert [r.task.task_id for r in again.list_tasks("u1", 10)] == ["t1"]
    assert again.claim_idempotency_key("u1\x1fk", "t9") == "t1"
    assert again.get_memory("m1") == item
    assert again.put_memory(memory("m2", "kept")) == PutResult("duplicate", "m1")
    assert again.put_memory(item).status == "exists"
    assert again.list_dead_letters() == [dead_letter(1)]
    assert again.is_user("alice") is True


# --- deletes and erasure marks -----------------------------------------------------------------


def test_deleted_item_is_gone_and_its_content_can_be_added_again(store: Store) -> None:
    first = memory("m1", "alice likes tea")
    store.put_memory(first)
    store.put_memory(memory("m2", "bob likes coffee"))
    assert store.delete_memories([first]) == 1
    assert store.get_memory("m1") is None
    assert store.get_memories(["m1", "m2"])[0].id == "m2"
    assert [i.id for i in store.iter_memories("cube-a")] == ["m2"]
    assert store.put_memory(memory("m3", "alice likes tea")) == PutResult("created")


def test_deleting_a_missing_item_counts_nothing_and_keeps_the_guard_of_its_content_owner(store: Store) -> None:
    owner = memory("m1", "alice likes tea")
    store.put_memory(owner)
    stranger = memory("m9", "alice likes tea")  # same content, never stored: the guard is m1's
    assert store.delete_memories([stranger]) == 0
    assert store.put_memory(memory("m2", "alice likes tea")) == PutResult("duplicate", "m1")
    assert store.delete_memories([owner, owner]) == 1


def test_export_pages_cover_a_cube_exactly_once_in_a_stable_order(store: Store) -> None:
    for n in range(7):
        store.put_memory(memory(f"m{n}", f"fact {n}", created_at=day(n + 1)))
    archived = memory("old", "an archived fact")
    archived.metadata.status = "archived"
    store.put_memory(archived)
    store.put_memory(memory("other", "another cube's", cube="cube-b"))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = store.export_page("cube-a", cursor, 3)
        seen += [i.id for i in page]
        pages += 1
        if cursor is None:
            break
    assert sorted(seen) == sorted([f"m{n}" for n in range(7)] + ["old"])
    assert len(seen) == len(set(seen)) and pages == 3
    again, _ = store.export_page("cube-a", None, 100)
    assert [i.id for i in again] == seen
    assert store.export_page("empty-cube", None, 10) == ([], None)


def test_erasure_marks_keep_the_latest_time_and_cover_the_whole_cube_or_one_user(store: Store) -> None:
    assert store.erased_at("c1", "u1") is None
    store.mark_erased("c1", "u1", day(5))
    store.mark_erased("c1", "u1", day(3))  # an older mark never moves it back
    assert store.erased_at("c1", "u1") == day(5)
    assert store.erased_at("c1", "u2") is None
    assert store.erased_at("c2", "u1") is None
    store.mark_erased("c1", None, day(7))
    assert (store.erased_at("c1", "u1"), store.erased_at("c1", "u2")) == (day(7), day(7))
    store.mark_erased("c1", "u2", day(9))
    assert (store.erased_at("c1", "u1"), store.erased_at("c1", "u2")) == (day(7), day(9))


def test_deleted_dead_letters_are_gone_and_others_stay(store: Store) -> None:
    letters = [dead_letter(n) for n in (1, 2, 3)]
    for letter in letters:
        store.record_dead_letter(letter)
    assert store.delete_dead_letters([letters[0], letters[2]]) == 2
    assert store.list_dead_letters() == [letters[1]]
    assert store.delete_dead_letters([letters[0]]) == 0


# --- versioned updates and near-duplicate candidates ---------------------------------------------


def _next_version(item: MemoryItem, **changes: object) -> MemoryItem:
    meta = item.metadata.model_copy(update={"version": item.metadata.version + 1, **changes})
    return item.model_copy(update={"metadata": meta})


def test_an_update_replaces_the_item_when_its_version_is_still_the_expected_one(store: Store) -> None:
    original = memory("m1", "alice likes tea")
    store.put_memory(original)
    archived = _next_version(original, status="archived", tags=["x"], covered_history="m2")
    assert store.update_memory(archived, expected_version=1) is True
    assert store.get_memory("m1") == archived
    assert store.list_memories("cube-a", 0, 10) == ([], 0)  # archived items are not listed


def test_an_update_from_a_stale_version_changes_nothing(store: Store) -> None:
    original = memory("m1", "alice likes tea")
    store.put_memory(original)
    first = _next_version(original, tags=["first"])
    assert store.update_memory(first, expected_version=1) is True
    assert store.update_memory(_next_version(original, tags=["late"]), expected_version=1) is False
    assert store.get_memory("m1") == first


def test_racing_updates_from_one_version_let_exactly_one_win(store: Store) -> None:
    original = memory("m1", "alice likes tea")
    store.put_memory(original)
    won = race(8, lambda n: store.update_memory(_next_version(original, tags=[f"t{n}"]), expected_version=1))
    assert won.count(True) == 1
    stored = store.get_memory("m1")
    assert stored is not None
    assert stored.metadata.tags == [f"t{won.index(True)}"]


def test_an_update_of_a_missing_item_is_false(store: Store) -> None:
    assert store.update_memory(memory("m404", "nothing"), expected_version=1) is False


def test_an_update_may_not_change_the_text(store: Store) -> None:
    store.put_memory(memory("m1", "alice likes tea"))
    changed = memory("m1", "alice likes coffee").model_copy()
    with pytest.raises(ValueError, match="m1"):
        store.update_memory(_next_version(changed), expected_version=1)


def test_a_near_copy_is_a_candidate_the_moment_the_original_is_written(store: Store) -> None:
    text = "alice moved to lisbon in march and works as a nurse at the city hospital near the river"
    store.put_memory(memory("m1", text))
    store.put_memory(memory("m2", "bob plays football every sunday with his friends from school"))
    store.put_memory(memory("m3", text, cube="cube-b", digest="other"))  # another cube is never a candidate
    near = text.replace("nurse", "doctor")
    assert store.similar_ids("cube-a", near, 10) == ["m1"]
    assert store.similar_ids("cube-a", "completely unrelated words about weather forecasts", 10) == []


def test_chinese_near_copies_are_candidates_too(store: Store) -> None:
    store.put_memory(memory("m1", "用户下个月要搬到里斯本，在市中心的医院当护士，周末喜欢去海边散步"))
    assert store.similar_ids("cube-a", "用户下个月要搬到里斯本，在市中心的医院当医生，周末喜欢去海边散步", 10) == ["m1"]


def test_a_deleted_item_is_no_longer_a_candidate(store: Store) -> None:
    text = "alice moved to lisbon in march and works as a nurse at the city hospital"
    item = memory("m1", text)
    store.put_memory(item)
    store.delete_memories([item])
    assert store.similar_ids("cube-a", text, 10) == []


# --- API keys ------------------------------------------------------------------------------------


def api_key(key_id: str, user: str = "alice", created_at: str = day(1), **extra: Any) -> ApiKey:
    return ApiKey(key_id=key_id, user_id=user, salt="00" * 16, digest="ab" * 32, created_at=created_at, **extra)


def test_a_stored_key_reads_back_whole_and_a_repeated_id_is_refused(store: Store) -> None:
    key = api_key("0123456789abcdef", scope="service", label="ingest bot")
    assert store.put_key(key) is True
    assert store.get_key("0123456789abcdef") == key
    assert store.put_key(api_key("0123456789abcdef", user="mallory")) is False
    assert store.get_key("0123456789abcdef") == key
    assert store.get_key("ffffffffffffffff") is None


def test_keys_are_listed_per_user_or_all_oldest_first(store: Store) -> None:
    store.put_key(api_key("000000000000000b", created_at=day(2)))
    store.put_key(api_key("000000000000000a", created_at=day(1)))
    store.put_key(api_key("000000000000000c", user="alicea", created_at=day(3)))  # a prefix is not the user
    assert [k.key_id for k in store.list_keys("alice")] == ["000000000000000a", "000000000000000b"]
    assert [k.key_id for k in store.list_keys(None)] == ["000000000000000a", "000000000000000b", "000000000000000c"]
    assert store.list_keys("nobody") == []


def test_revoking_keeps_the_key_with_its_first_revocation_time(store: Store) -> None:
    store.put_key(api_key("0123456789abcdef"))
    assert store.revoke_key("0123456789abcdef", day(5)) is True
    assert store.revoke_key("0123456789abcdef", day(6)) is True
    revoked = store.get_key("0123456789abcdef")
    assert revoked is not None and revoked.revoked_at == day(5)
    assert store.revoke_key("ffffffffffffffff", day(5)) is False


# --- cube grants ---------------------------------------------------------------------------------


def test_a_created_cube_reads_back_and_a_second_create_is_refused(store: Store) -> None:
    acl = CubeAcl(cube_id="kb-team", owner_id="alice", readers=["bob"], writers=["carol"], created_at=day(1))
    assert store.create_cube(acl) is True
    assert store.get_cube("kb-team") == acl
    assert store.create_cube(acl.model_copy(update={"owner_id": "mallory"})) is False
    assert store.get_cube("kb-team") == acl
    assert store.get_cube("kb-other") is None


def test_grants_change_only_from_the_version_read(store: Store) -> None:
    acl = CubeAcl(cube_id="kb-team", owner_id="alice", created_at=day(1))
    store.create_cube(acl)
    granted = acl.model_copy(update={"readers": ["bob"], "version": 2})
    assert store.update_cube(granted, expected_version=1) is True
    assert store.update_cube(acl.model_copy(update={"writers": ["eve"], "version": 2}), expected_version=1) is False
    assert store.get_cube("kb-team") == granted
    assert store.update_cube(granted.model_copy(update={"cube_id": "kb-none"}), expected_version=2) is False


def test_a_deleted_cube_frees_its_id(store: Store) -> None:
    store.create_cube(CubeAcl(cube_id="kb-team", owner_id="alice", created_at=day(1)))
    assert store.delete_cube("kb-team") is True
    assert store.get_cube("kb-team") is None
    assert store.delete_cube("kb-team") is False
    assert store.create_cube(CubeAcl(cube_id="kb-team", owner_id="bob", created_at=day(2))) is True


# --- rate windows --------------------------------------------------------------------------------


def test_a_window_counts_up_to_its_limit_and_a_new_window_starts_afresh(store: Store) -> None:
    assert [store.hit("req:alice", 2, 600, 60) for _ in range(3)] == [True, True, False]
    assert store.hit("req:bob", 2, 600, 60) is True  # another principal has its own window
    assert store.hit("req:alice", 2, 660, 60) is True


def test_racing_hits_never_exceed_the_limit(store: Store) -> None:
    results = race(10, lambda _: store.hit("req:alice", 4, 600, 60))
    assert results.count(True) == 4
