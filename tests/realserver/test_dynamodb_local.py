"""The DynamoDB adapters on DynamoDB Local: the storage ports' contracts (its 20-writer race included, here with
real concurrency), plus what only a real server shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from memcube.adapters.dynamodb import open_stores as open_dynamodb
from memcube.adapters.dynamodb.table import DynamoTable
from memcube.domain.model import TaskState
from memcube.ports import Stores
from tests.contract.support import task
from tests.contract.test_store_contract import *  # noqa: F403 - the shared store contract, run here too


@pytest.fixture
def stores(dynamodb: Any, table: str) -> Stores:
    """Overrides the contract's `stores` for the star-imported contract tests above."""
    return open_dynamodb(DynamoTable(table, dynamodb))


@pytest.fixture
def open_stores(dynamodb: Any, table: str) -> Callable[[], Stores]:
    """New adapters on the same table each call (the contract's reopen test)."""
    return lambda: open_dynamodb(DynamoTable(table, dynamodb))


def test_reserved_words_fail_on_the_real_server_so_the_adapter_names_them(dynamodb: Any, table: str) -> None:
    with pytest.raises(ClientError, match="reserved keyword"):
        dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": "x"}, "sk": {"S": "y"}},
            UpdateExpression="SET status = :s",
            ExpressionAttributeValues={":s": {"S": "activated"}},
        )


def test_task_records_carry_a_ttl(stores: Stores, dynamodb: Any, table: str) -> None:
    stores.tasks.create_task(*task("t1", cubes=("c1", "c2")))
    items = dynamodb.query(
        TableName=table,
        KeyConditionExpression="#pk = :pk",
        ExpressionAttributeNames={"#pk": "pk"},
        ExpressionAttributeValues={":pk": {"S": "TASK#t1"}},
    )["Items"]
    assert len(items) == 3
    assert all(int(i["expires_at"]["N"]) > 0 for i in items)


def test_a_part_added_by_a_producer_sorts_after_the_request_parts(stores: Stores) -> None:
    t, parts = task("t1", cubes=("c1", "c2"))
    stores.tasks.create_task(t, parts)
    late = parts[0].model_copy(update={"cube_id": "c0", "status": TaskState.IN_PROGRESS})
    stores.tasks.put_task_part("t1", late)
    record = stores.tasks.get_task("t1")
    assert record is not None
    assert [p.cube_id for p in record.parts] == ["c1", "c2", "c0"]
