"""Expiry on the real servers: an expiring memory's DynamoDB records carry the TTL attribute the
template enables (a day after the expiry: the sweep erases first), and the sweep removes the
OpenSearch documents of expired items, including those whose records DynamoDB's TTL took first."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import yaml

from memcube.adapters.dynamodb import open_stores
from memcube.adapters.dynamodb.memories import TTL_GRACE_SECONDS
from memcube.adapters.dynamodb.table import DynamoTable
from memcube.adapters.opensearch_index import OpenSearchIndex
from memcube.domain.expiry import ExpirySweep
from memcube.domain.model import MemoryItem
from memcube.ports import PutResult, Stores
from tests.aws_support import TEMPLATE
from tests.contract.support import expiring
from tests.doubles import InMemoryQueue
from tests.services import deletion_service


class _Cfn(yaml.SafeLoader):
    """CloudFormation YAML; intrinsics load as None."""


_Cfn.add_multi_constructor("!", lambda loader, suffix, node: None)
TTL_SPEC = yaml.load(TEMPLATE.read_text(), Loader=_Cfn)["Resources"]["Table"]["Properties"]["TimeToLiveSpecification"]


@pytest.fixture
def stores(dynamodb: Any, table: str) -> Stores:
    dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification=TTL_SPEC)
    return open_stores(DynamoTable(table, dynamodb))


@pytest.fixture
def index(search_url: str) -> OpenSearchIndex:
    idx = OpenSearchIndex(
        search_url, index=f"expiry-{uuid.uuid4().hex[:8]}", service="es", auth="none", dimension=3, vector_search=False
    )
    idx.bootstrap()
    return idx


def _records(dynamodb: Any, table: str, memory_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = dynamodb.scan(TableName=table)["Items"]
    return [i for i in items if i.get("memory_id", {}).get("S") == memory_id or i["pk"]["S"] == f"MEM#{memory_id}"]


def test_every_record_of_an_expiring_memory_carries_the_templates_ttl_attribute_a_grace_after_expiry(
    stores: Stores, dynamodb: Any, table: str
) -> None:
    described = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (described["AttributeName"], described["TimeToLiveStatus"]) == ("expires_at", "ENABLED")
    expires = int(time.time()) + 3600
    stores.memories.put_memory(expiring("m1", "alice likes green tea", expires))
    stores.memories.put_memory(expiring("m2", "alice likes cocoa", None))
    records = _records(dynamodb, table, "m1")
    assert {r["sk"]["S"].split("#")[0] for r in records} >= {"ITEM", "HASH", "LSH", ""}  # "" is the pointer's #MEM
    assert {r[TTL_SPEC["AttributeName"]]["N"] for r in records} == {str(expires + TTL_GRACE_SECONDS)}
    [item] = [r for r in records if r["sk"]["S"].startswith("ITEM#")]
    assert item["expiry"]["N"] == str(expires) and item["gsi1pk"]["S"].startswith("EXPIRY#")
    assert all("expires_at" not in r for r in _records(dynamodb, table, "m2"))


def test_clearing_an_expiry_takes_the_ttl_off_every_record_of_the_memory(
    stores: Stores, dynamodb: Any, table: str
) -> None:
    item = expiring("m1", "alice likes green tea", int(time.time()) + 3600)
    stores.memories.put_memory(item)
    cleared = item.model_copy(update={"metadata": item.metadata.model_copy(update={"expires_at": None, "version": 2})})
    assert stores.memories.update_memory(cleared, expected_version=1) is True
    records = _records(dynamodb, table, "m1")
    assert len(records) >= 4 and all("expires_at" not in r and "gsi1pk" not in r for r in records)


def test_a_text_edit_keeps_the_ttl_on_every_record_and_one_that_clears_the_expiry_takes_it_off(
    stores: Stores, dynamodb: Any, table: str
) -> None:
    from memcube.domain.ingest import content_hash

    def retexted(item: MemoryItem, text: str, expires_at: int | None) -> MemoryItem:
        changes = {"content_hash": content_hash(text), "version": item.metadata.version + 1, "expires_at": expires_at}
        return item.model_copy(update={"memory": text, "metadata": item.metadata.model_copy(update=changes)})

    expires = int(time.time()) + 3600
    item = expiring("m1", "alice lives in lisbon near the old castle", expires)
    stores.memories.put_memory(item)
    moved = retexted(item, "alice lives in porto by the douro river", expires)
    assert stores.memories.rewrite_memory(moved, expected_version=1) == PutResult("created")
    records = _records(dynamodb, table, "m1")
    assert {r["sk"]["S"].split("#")[0] for r in records} >= {"ITEM", "HASH", "LSH", ""}
    assert {r["expires_at"]["N"] for r in records} == {str(expires + TTL_GRACE_SECONDS)}
    cleared = retexted(moved, "alice lives in braga by the cathedral", None)
    assert stores.memories.rewrite_memory(cleared, expected_version=2) == PutResult("created")
    records = _records(dynamodb, table, "m1")
    assert len(records) >= 4 and all("expires_at" not in r and "gsi1pk" not in r for r in records)


def test_the_sweep_removes_the_opensearch_documents_of_expired_items_and_leaves_a_tombstone(
    stores: Stores, index: OpenSearchIndex
) -> None:
    now = int(time.time())
    expired = expiring("m1", "alice likes green tea", now - 60)
    taken_by_ttl = expiring("m2", "alice likes black coffee", now - 120)
    lasting = expiring("m3", "alice likes cocoa", now + 3600)
    for item in (expired, taken_by_ttl, lasting):
        stores.memories.put_memory(item)
    index.upsert([expired, taken_by_ttl, lasting])
    stores.memories.delete_memories([taken_by_ttl])  # DynamoDB's TTL got there before any sweep
    assert sorted(i.id for i in stores.expiring.expired_memories(now, 10)) == ["m1"]

    deleter = deletion_service(stores, index, InMemoryQueue())
    report = ExpirySweep(stores.memories, stores.expiring, index, deleter).sweep()

    assert report.erased == ["m1"]
    assert index.ids("cube-a") == {"m3"}
    assert index.expired_documents(now, 10) == []
    tomb = stores.memories.get_memory("m1")
    assert tomb is not None and (tomb.memory, tomb.metadata.status) == ("", "deleted")
    assert tomb.metadata.history[-1]["action"] == "expired"
    assert stores.expiring.expired_memories(now, 10) == []
    assert ExpirySweep(stores.memories, stores.expiring, index, deleter).sweep().erased == []
