"""What the DynamoDB adapters must do beyond the shared storage contracts (which runs on DynamoDB through
tests/contract on moto and tests/realserver/test_dynamodb_local.py on DynamoDB Local): what is
specific to the single-table layout, transactions, compression and TTL.

A tier star-imports this module and provides the fixtures: `ddb` (a raw boto3 client),
`table_name` (a fresh table from template.yaml's definition) and `make_stores(**kwargs)` (the stores
on a new `DynamoTable` on that table; each call is a new adapter, as after a restart).
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from memcube.domain.model import DeadLetter, MemoryItem, SourceMessage, TaskPart, TaskState
from memcube.domain.similarity import lsh_keys
from memcube.ports import PutResult, Stores
from tests.contract.support import day, race, task
from tests.contract.support import memory as contract_memory

R = TypeVar("R")
MakeStores = Callable[..., Stores]


# --- builders --------------------------------------------------------------------------------------


class FakeClock:
    """Epoch seconds moved only by the test, starting at the real time: DynamoDB Local really
    deletes items whose `expires_at` has passed, so a clock in the past would expire records."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def memory(
    memory_id: str, text: str, cube: str = "cube-a", created_at: str = day(1), *, digest: str | None = None
) -> MemoryItem:
    """The contract's builder, with a source (so bodies carry one, as the worker writes them)."""
    item = contract_memory(memory_id, text, cube, created_at, digest=digest)
    item.metadata.tags = ["mode:fast"]
    item.metadata.sources = [SourceMessage(type="chat", role="user", content=text)]
    return item


def dead_letter(n: int, body: str = '{"v": 1}') -> DeadLetter:
    return DeadLetter(
        message_id=f"q{n}", body=body, reason=f"reason {n}", task_id=f"t{n}", cube_id="c1", attempts=n, failed_at=day(n)
    )


def noise(n_chars: int, seed: int = 7) -> str:
    """Text that compresses poorly (zlib keeps about 3/4 of it)."""
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_letters + string.digits, k=n_chars))


def partition(ddb: Any, table: str, pk: str) -> list[dict[str, Any]]:
    """Every raw item of one partition, in sort-key order."""
    items: list[dict[str, Any]] = []
    for page in ddb.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="#pk = :pk",
        ExpressionAttributeNames={"#pk": "pk"},
        ExpressionAttributeValues={":pk": {"S": pk}},
        ConsistentRead=True,
    ):
        items.extend(page["Items"])
    return items


@pytest.fixture
def stores(make_stores: MakeStores) -> Stores:
    return make_stores()


# --- tasks -----------------------------------------------------------------------------------------


def test_a_task_too_large_for_one_transaction_raises_and_writes_nothing(
    stores: Stores, ddb: Any, table_name: str
) -> None:
    t, parts = task("t1", cubes=tuple(f"c{n}" for n in range(100)))
    with pytest.raises(ValueError, match="one transaction"):
        stores.tasks.create_task(t, parts)
    assert partition(ddb, table_name, "TASK#t1") == []


def test_parts_joining_later_sort_after_the_request_parts_in_join_order(make_stores: MakeStores) -> None:
    clock = FakeClock()
    stores = make_stores(clock=clock)
    t, parts = task("t1", cubes=("c5", "c6"))
    stores.tasks.create_task(t, parts)
    for cube in ("zz", "aa"):
        clock.now += 1
        stores.tasks.put_task_part("t1", parts[0].model_copy(update={"cube_id": cube, "status": TaskState.IN_PROGRESS}))
    stores.tasks.put_task_part("t1", parts[0].model_copy(update={"cube_id": "zz", "status": TaskState.COMPLETED}))
    record = stores.tasks.get_task("t1")
    assert record is not None
    assert [(p.cube_id, p.status) for p in record.parts] == [
        ("c5", TaskState.WAITING),
        ("c6", TaskState.WAITING),
        ("zz", TaskState.COMPLETED),
        ("aa", TaskState.IN_PROGRESS),
    ]


def test_parallel_cube_workers_and_joiners_update_one_task_without_losing_a_part(stores: Stores) -> None:
    cubes = tuple(f"c{n}" for n in range(8))
    t, parts = task("t1", cubes=cubes)
    stores.tasks.create_task(t, parts)

    def finish(n: int) -> None:
        if n < 8:  # a worker completing its cube's part
            stores.tasks.put_task_part("t1", parts[n].model_copy(update={"status": TaskState.COMPLETED}))
        else:  # a direct producer's cube joining the task
            stores.tasks.put_task_part("t1", TaskPart(cube_id=f"j{n}", status=TaskState.IN_PROGRESS, updated_at=day(2)))

    race(16, finish)
    record = stores.tasks.get_task("t1")
    assert record is not None
    assert [(p.cube_id, p.status) for p in record.parts[:8]] == [(c, TaskState.COMPLETED) for c in cubes]
    assert sorted(p.cube_id for p in record.parts[8:]) == sorted(f"j{n}" for n in range(8, 16))


def test_task_records_carry_the_ttl_attribute_the_table_expires_on(
    make_stores: MakeStores, ddb: Any, table_name: str
) -> None:
    clock = FakeClock()
    stores = make_stores(clock=clock, task_ttl_days=7)
    stores.tasks.create_task(*task("t1", cubes=("c1", "c2")))
    stores.tasks.put_task_part("t1", TaskPart(cube_id="late", updated_at=day(2)))
    stores.idempotency.claim_idempotency_key("u1\x1fk", "t1")
    ttl = ddb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    records = partition(ddb, table_name, "TASK#t1") + partition(ddb, table_name, "IDEM#u1\x1fk")
    assert [r["sk"]["S"] for r in records] == ["#TASK", "PART#c1", "PART#c2", "PART#late", "#IDEM"]
    assert {r["expires_at"]["N"] for r in records} == {str(int(clock.now) + 7 * 86_400)}


# --- idempotency keys ------------------------------------------------------------------------------


def test_an_expired_idempotency_binding_is_free_again_before_ttl_deletes_it(make_stores: MakeStores) -> None:
    clock = FakeClock()
    stores = make_stores(clock=clock, task_ttl_days=1)
    assert stores.idempotency.claim_idempotency_key("u1\x1fk", "t1") == "t1"
    clock.now += 86_400 - 1
    assert stores.idempotency.claim_idempotency_key("u1\x1fk", "t2") == "t1"
    clock.now += 2
    assert stores.idempotency.claim_idempotency_key("u1\x1fk", "t2") == "t2"
    assert stores.idempotency.claim_idempotency_key("u1\x1fk", "t3") == "t2"


# --- memory items ----------------------------------------------------------------------------------


def test_an_item_is_its_guard_record_and_pointer_written_together(stores: Stores, ddb: Any, table_name: str) -> None:
    item = memory("m1", "alice likes tea", created_at=day(3))
    stores.memories.put_memory(item)
    cube = partition(ddb, table_name, "CUBE#cube-a")
    bands = sorted(f"LSH#{key}#m1" for key in lsh_keys(item.memory))
    assert [(r["sk"]["S"], r.get("memory_id", {}).get("S")) for r in cube] == [
        (f"HASH#{item.metadata.content_hash}", "m1"),
        (f"ITEM#{day(3)}#m1", "m1"),
        *[(sk, "m1") for sk in bands],
    ]
    assert (cube[1]["status"], cube[1]["version"]) == ({"S": "activated"}, {"N": "1"})
    (pointer,) = partition(ddb, table_name, "MEM#m1")
    assert (pointer["cube_id"]["S"], pointer["item_sk"]["S"]) == ("cube-a", f"ITEM#{day(3)}#m1")


def test_duplicate_is_decided_by_content_hash_not_text(stores: Stores) -> None:
    stores.memories.put_memory(memory("m1", "alice likes tea", digest="h" * 64))
    assert stores.memories.put_memory(memory("m2", "ALICE LIKES TEA", digest="h" * 64)) == PutResult("duplicate", "m1")
    assert stores.memories.put_memory(memory("m3", "alice likes tea", digest="k" * 64)).status == "created"


def test_racing_writers_of_one_content_leave_exactly_one_item(stores: Stores, ddb: Any, table_name: str) -> None:
    results = race(20, lambda n: stores.memories.put_memory(memory(f"m{n}", "the very same fact")))
    statuses = [r.status for r in results]
    assert statuses.count("created") == 1
    winner = f"m{statuses.index('created')}"
    assert {r for r in results if r.status != "created"} == {PutResult("duplicate", winner)}
    assert [i.id for i in stores.memories.iter_memories("cube-a")] == [winner]
    assert stores.memories.list_memories("cube-a", 0, 50)[1] == 1
    raw = partition(ddb, table_name, "CUBE#cube-a")
    assert [r["sk"]["S"].split("#")[0] for r in raw] == ["HASH", "ITEM", *["LSH"] * len(lsh_keys("the very same fact"))]
    assert {r["memory_id"]["S"] for r in raw} == {winner}  # a loser's band keys were never written
    losers = [f"m{n}" for n in range(20) if f"m{n}" != winner]
    assert all(partition(ddb, table_name, f"MEM#{m}") == [] for m in losers)


def test_get_memories_reads_past_one_batch_of_a_hundred_keys(stores: Stores) -> None:
    ids = [f"m{n:03d}" for n in range(105)]
    for memory_id in ids:
        stores.memories.put_memory(memory(memory_id, f"fact {memory_id}", cube=f"cube-{memory_id[-1]}"))
    wanted = list(reversed(ids))
    assert [i.id for i in stores.memories.get_memories(wanted)] == wanted


def test_list_memories_pages_across_dynamodb_result_pages(stores: Stores) -> None:
    # ~30 KB per item (stored uncompressed): 45 items span two 1 MB Query (and COUNT) pages
    for n in range(45):
        stores.memories.put_memory(memory(f"m{n:02d}", f"fact {n} " + noise(15_000, seed=n)))
    page, total = stores.memories.list_memories("cube-a", 30, 10)
    assert total == 45
    assert [i.id for i in page] == [f"m{n:02d}" for n in range(30, 40)]
    assert sum(1 for _ in stores.memories.iter_memories("cube-a")) == 45


def test_a_large_item_is_stored_compressed_and_reads_back_equal(stores: Stores, ddb: Any, table_name: str) -> None:
    item = memory("m1", "a long document " * 40_000)  # ~1.3 MB of JSON (text and source)
    assert stores.memories.put_memory(item).status == "created"
    assert stores.memories.get_memory("m1") == item
    assert stores.memories.list_memories("cube-a", 0, 1) == ([item], 1)
    raw = [r for r in partition(ddb, table_name, "CUBE#cube-a") if r["sk"]["S"].startswith("ITEM#")]
    assert "B" in raw[0]["body"]


def test_an_item_too_large_even_compressed_raises_and_writes_nothing(stores: Stores, ddb: Any, table_name: str) -> None:
    with pytest.raises(ValueError, match="400 KB"):
        stores.memories.put_memory(memory("m1", noise(400_000)))
    assert partition(ddb, table_name, "CUBE#cube-a") == []
    assert stores.memories.get_memory("m1") is None


# --- dead letters and users ------------------------------------------------------------------------


def test_a_dead_letter_over_the_item_limit_is_kept_whole_compressed(stores: Stores) -> None:
    letter = dead_letter(1, body='{"v": 1, "messages": "' + "the same words again " * 50_000 + '"}')
    stores.dead_letters.record_dead_letter(letter)
    assert stores.dead_letters.list_dead_letters() == [letter]


def test_a_dead_letter_that_cannot_fit_keeps_the_head_of_its_body_and_says_so(stores: Stores) -> None:
    letter = dead_letter(1, body=noise(900_000))
    stores.dead_letters.record_dead_letter(letter)
    (kept,) = stores.dead_letters.list_dead_letters()
    assert letter.body.startswith(kept.body)
    assert 200_000 < len(kept.body) < len(letter.body)
    assert kept.reason.startswith("reason 1 [body truncated")
    assert kept.model_copy(update={"body": letter.body, "reason": letter.reason}) == letter


# --- a new adapter on the same table (a restart, another Lambda container) -------------------------
