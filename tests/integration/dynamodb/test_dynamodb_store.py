"""The DynamoDB adapters on moto: the shared behaviours, plus what is checked through the recorded calls
(request shapes, retries, the client's construction) rather than through a server's answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from memcube.adapters.dynamodb import dead_letters, open_stores
from memcube.adapters.dynamodb import table as dynamodb_table
from memcube.adapters.dynamodb.table import TX_ATTEMPTS, DynamoTable
from memcube.domain.similarity import lsh_keys
from memcube.ports import PutResult, Stores
from tests.contract.support import day
from tests.integration.dynamodb.behaviours import *  # noqa: F403 - the shared behaviours run on this tier
from tests.integration.dynamodb.behaviours import dead_letter, memory, noise, task
from tests.integration.dynamodb.conftest import Recorded, expression_problems
from tests.integration.dynamodb.table import FALLBACK, template_table

# --- the table the adapter needs is the one the template deploys ----------------------------------


def test_template_defines_the_table_the_adapter_uses() -> None:
    props = template_table()
    if props is None:
        pytest.skip("template.yaml has no DynamoDB table yet: this tier uses FALLBACK")
    assert _shape(props) == _shape(FALLBACK)


def _shape(props: dict[str, Any]) -> dict[str, Any]:
    def keys(schema: list[dict[str, str]]) -> set[tuple[str, str]]:
        return {(k["AttributeName"], k["KeyType"]) for k in schema}

    return {
        "attributes": {(a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]},
        "keys": keys(props["KeySchema"]),
        "indexes": {
            g["IndexName"]: (keys(g["KeySchema"]), g["Projection"]["ProjectionType"])
            for g in props.get("GlobalSecondaryIndexes") or []
        },
        "ttl": props.get("TimeToLiveSpecification"),
        "billing": props.get("BillingMode"),
    }


# --- request shapes ---------------------------------------------------------------------------------


def test_the_expression_check_catches_bare_names_unused_and_undefined_placeholders() -> None:
    value = {":s": {"S": "x"}}
    named = {"UpdateExpression": "SET #s = :s", "ExpressionAttributeNames": {"#s": "status"}}
    assert expression_problems("update_item", {**named, "ExpressionAttributeValues": value}) == []
    bare = {"UpdateExpression": "SET status = :s", "ExpressionAttributeValues": value}
    assert "bare attribute name 'status'" in expression_problems("update_item", bare)[0]
    unused = {**named, "UpdateExpression": "SET #s = :s, #x = :s", "ExpressionAttributeNames": {"#s": "status"}}
    assert "undefined name #x" in expression_problems("update_item", {**unused, "ExpressionAttributeValues": value})[0]
    extra = {**named, "ExpressionAttributeNames": {"#s": "status", "#y": "y"}, "ExpressionAttributeValues": value}
    assert "unused placeholders ['#y']" in expression_problems("update_item", extra)[0]


def test_get_memory_reads_two_keys_and_never_queries_or_scans(stores: Stores, recorded: Recorded) -> None:
    stores.memories.put_memory(memory("m1", "alice likes tea"))
    recorded.calls.clear()
    assert stores.memories.get_memory("m1") is not None
    assert stores.memories.get_memory("nope") is None
    # pointer then item for m1; the pointer alone for a missing id
    assert recorded.operations() == ["batch_get_item", "batch_get_item", "batch_get_item"]


def test_put_memory_is_one_transaction_with_the_guard_first(stores: Stores, recorded: Recorded) -> None:
    stores.memories.put_memory(memory("m1", "alice likes tea"))
    ((name, params),) = recorded.calls
    assert name == "transact_write_items"
    guard, item, pointer, *bands = (op["Put"] for op in params["TransactItems"])
    assert [b["Item"]["sk"]["S"][:4] for b in bands] == ["LSH#"] * len(lsh_keys("alice likes tea"))
    assert guard["Item"]["sk"]["S"].startswith("HASH#")
    assert guard["ConditionExpression"] == "attribute_not_exists(#pk)"
    assert (item["Item"]["sk"]["S"][:5], pointer["Item"]["pk"]["S"]) == ("ITEM#", "MEM#m1")
    assert len(params["ClientRequestToken"]) == 36


def test_list_memories_totals_with_select_count_and_stops_reading_after_the_page(
    stores: Stores, recorded: Recorded
) -> None:
    for n in range(5):
        stores.memories.put_memory(memory(f"m{n}", f"fact {n}"))
    recorded.calls.clear()
    assert [i.id for i in stores.memories.list_memories("cube-a", 1, 2)[0]] == ["m1", "m2"]
    count, page = recorded.calls
    assert (count[0], count[1].get("Select"), page[0], page[1].get("Select")) == ("query", "COUNT", "query", None)
    recorded.calls.clear()
    assert stores.memories.list_memories("cube-a", 5, 2) == ([], 5)
    assert len(recorded.calls) == 1  # past the end: the count alone answers


def test_the_store_writes_parts_in_the_same_transaction_as_their_task(stores: Stores, recorded: Recorded) -> None:
    stores.tasks.create_task(*task("t1", cubes=("c1", "c2")))
    ((name, params),) = recorded.calls
    assert name == "transact_write_items"
    assert [next(iter(op.values()))["Item"]["sk"]["S"] for op in params["TransactItems"]] == [
        "#TASK",
        "PART#c1",
        "PART#c2",
    ]


def test_updating_a_known_part_is_one_conditional_update_not_a_transaction(stores: Stores, recorded: Recorded) -> None:
    t, parts = task("t1", cubes=("c1", "c2"))
    stores.tasks.create_task(t, parts)
    recorded.calls.clear()
    stores.tasks.put_task_part("t1", parts[1])
    assert recorded.operations() == ["update_item"]


# --- cancellations: conflicts are retried, other failures raise -------------------------------------


class Flaky(Recorded):
    """Cancels the next `failures` transactions with `code` on every item before the real call."""

    def __init__(self, inner: Recorded, code: str, failures: int) -> None:
        super().__init__(inner.client, inner.calls, inner.lock)
        self.code = code
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        real = super().__getattr__(name)
        if name != "transact_write_items":
            return real

        def call(**params: Any) -> Any:
            if self.failures > 0:
                self.failures -= 1
                self.calls.append((name, params))
                reasons = [{"Code": self.code, "Message": "injected"} for _ in params["TransactItems"]]
                error = {"Error": {"Code": "TransactionCanceledException", "Message": "injected"}}
                raise self.client.exceptions.TransactionCanceledException(
                    {**error, "CancellationReasons": reasons}, "TransactWriteItems"
                )
            return real(**params)

        return call


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The attempts the store backed off after (without sleeping)."""
    seen: list[int] = []

    def record(attempt: int) -> float:
        seen.append(attempt)
        return 0.0

    monkeypatch.setattr(dynamodb_table, "backoff", record)
    return seen


@pytest.mark.usefixtures("backoffs")
@pytest.mark.parametrize("code", ["TransactionConflict", "ThrottlingError"])
def test_a_cancelled_transaction_is_retried_with_a_new_token(recorded: Recorded, table_name: str, code: str) -> None:
    flaky = Flaky(recorded, code, failures=3)
    stores = open_stores(DynamoTable(table_name, flaky))
    assert stores.memories.put_memory(memory("m1", "alice likes tea")).status == "created"
    assert stores.tasks.create_task(*task("t1")) is True
    tokens = [p["ClientRequestToken"] for name, p in flaky.calls if name == "transact_write_items"]
    assert len(tokens) == 5
    assert len(set(tokens)) == 5


def test_conflicts_that_never_clear_raise_after_bounded_attempts(
    recorded: Recorded, table_name: str, backoffs: list[int]
) -> None:
    flaky = Flaky(recorded, "TransactionConflict", failures=100)
    stores = open_stores(DynamoTable(table_name, flaky))
    with pytest.raises(flaky.client.exceptions.TransactionCanceledException):
        stores.memories.put_memory(memory("m1", "alice likes tea"))
    assert flaky.operations().count("transact_write_items") == TX_ATTEMPTS
    assert backoffs == list(range(TX_ATTEMPTS - 1))


def test_backoff_is_jittered_and_capped() -> None:
    waits = [dynamodb_table.backoff(attempt) for attempt in range(12) for _ in range(20)]
    assert all(0 <= w <= 1.0 for w in waits)
    assert len(set(waits)) > 200
    assert max(dynamodb_table.backoff(0) for _ in range(50)) <= 0.02


def test_a_cancellation_other_than_the_guard_raises_at_once(recorded: Recorded, table_name: str) -> None:
    flaky = Flaky(recorded, "ValidationError", failures=1)
    stores = open_stores(DynamoTable(table_name, flaky))
    with pytest.raises(flaky.client.exceptions.TransactionCanceledException):
        stores.memories.put_memory(memory("m1", "alice likes tea"))
    assert flaky.operations() == ["transact_write_items"]


# --- the client ---------------------------------------------------------------------------------


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield


@pytest.mark.usefixtures("no_aws_env")
def test_construction_does_no_io_and_the_client_is_built_once_with_adaptive_retries() -> None:
    table = DynamoTable("any-table")
    open_stores(table)  # no credentials, no network: nothing happens yet
    assert table._client is None
    with mock_aws():
        client = table.client
        assert table.client is client
        assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 9}  # 8 retries
        table.close()
        assert table._client is None


def test_close_leaves_an_injected_client_to_its_owner(recorded: Recorded, table_name: str) -> None:
    table = DynamoTable(table_name, recorded)
    open_stores(table).close()
    assert table.client is recorded


class Forgetful(Recorded):
    """Drops the old item a failed condition returns (ReturnValuesOnConditionCheckFailure), as a
    server that does not support it would: the store must then read it itself."""

    def __getattr__(self, name: str) -> Any:
        real = super().__getattr__(name)

        def call(**params: Any) -> Any:
            try:
                return real(**params)
            except self.client.exceptions.ClientError as exc:
                exc.response.pop("Item", None)
                for reason in exc.response.get("CancellationReasons", []):
                    reason.pop("Item", None)
                raise

        return call


def test_without_the_old_item_in_a_failed_condition_the_store_reads_it(recorded: Recorded, table_name: str) -> None:
    forgetful = Forgetful(recorded.client, recorded.calls, recorded.lock)
    stores = open_stores(DynamoTable(table_name, forgetful))
    stores.memories.put_memory(memory("m1", "alice likes tea"))
    stores.idempotency.claim_idempotency_key("k", "t1")
    forgetful.calls.clear()
    assert stores.memories.put_memory(memory("m2", "alice likes tea")) == PutResult("duplicate", "m1")
    assert stores.memories.put_memory(memory("m1", "alice likes tea")) == PutResult("exists", "m1")
    assert stores.idempotency.claim_idempotency_key("k", "t2") == "t1"
    assert forgetful.operations() == ["transact_write_items", "get_item"] * 2 + ["put_item", "get_item"]


def test_a_dead_letter_body_is_cut_until_the_record_fits(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dead_letters, "DEAD_LETTER_KEEP", 4_000_000)  # the first cut keeps it all
    letter = dead_letter(1, body=noise(900_000))
    stores.dead_letters.record_dead_letter(letter)
    (kept,) = stores.dead_letters.list_dead_letters()
    assert 100_000 < len(kept.body) <= 500_000
    assert letter.body.startswith(kept.body)
    assert f"first {len(kept.body)} of 900000 bytes kept" in kept.reason


class _PagesOfTwo:
    """The client with every Query answering at most two items a page (as the 1 MB page limit
    would, for a user with many tasks)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def query(self, **params: Any) -> Any:
        return self._client.query(**params | {"Limit": min(int(params.get("Limit", 2)), 2)})


def test_listing_a_users_tasks_follows_the_index_pages_up_to_the_limit(stores: Stores, recorded: Recorded) -> None:
    for n in range(1, 6):
        stores.tasks.create_task(*task(f"t{n}", created_at=day(n)))
    recorded.client = _PagesOfTwo(recorded.client)
    recorded.calls.clear()
    assert [r.task.task_id for r in stores.tasks.list_tasks("u1", 4)] == ["t5", "t4", "t3", "t2"]
    index_pages = [p for name, p in recorded.calls if name == "query" and p.get("IndexName")]
    assert [p["Limit"] for p in index_pages] == [4, 2]  # the second page asks only for what is missing
    assert [r.task.task_id for r in stores.tasks.list_tasks("u1", 10)] == ["t5", "t4", "t3", "t2", "t1"]


class _NoPaginator(_PagesOfTwo):
    """`_PagesOfTwo` that fails a test which builds botocore's paginator."""

    def get_paginator(self, operation: str) -> Any:
        raise AssertionError(f"a paginator was built for {operation}")


def test_a_query_follows_last_evaluated_key_to_its_last_page_without_a_paginator(
    recorded: Recorded, table_name: str
) -> None:
    for n in range(5):
        recorded.client.put_item(TableName=table_name, Item={"pk": {"S": "P"}, "sk": {"S": f"S{n}"}})
    recorded.client = _NoPaginator(recorded.client)
    recorded.calls.clear()
    table = DynamoTable(table_name, recorded)
    condition = {
        "KeyConditionExpression": "#pk = :p",
        "ExpressionAttributeNames": {"#pk": "pk"},
        "ExpressionAttributeValues": {":p": {"S": "P"}},
    }
    assert [i["sk"]["S"] for i in table.query(**condition)] == [f"S{n}" for n in range(5)]
    starts = [params.get("ExclusiveStartKey") for _, params in recorded.calls]
    assert starts == [None, {"pk": {"S": "P"}, "sk": {"S": "S1"}}, {"pk": {"S": "P"}, "sk": {"S": "S3"}}]
