"""The `MessageLog` contract on DynamoDB Local (the real server: its key conditions, the GSI read
backwards, batch writes and reserved words)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from memcube.adapters.dynamodb import open_stores as open_dynamodb
from memcube.adapters.dynamodb.table import DynamoTable
from memcube.ports import Stores
from tests.contract.test_message_log_contract import *  # noqa: F403 - the shared contract, run here too
from tests.contract.test_message_log_contract import msg


@pytest.fixture
def stores(dynamodb: Any, table: str) -> Stores:
    return open_dynamodb(DynamoTable(table, dynamodb))


@pytest.fixture
def open_stores(dynamodb: Any, table: str) -> Callable[[], Stores]:
    return lambda: open_dynamodb(DynamoTable(table, dynamodb))


def test_a_long_conversation_is_written_in_batches_and_read_back_last_n(stores: Stores) -> None:
    sent = [msg(n) for n in range(60)]  # more than one BatchWriteItem of 25
    stores.messages.append_messages(sent)
    assert stores.messages.recent_messages("alice", "s1", 7) == sent[-7:]
    assert stores.messages.delete_messages("alice", None) == 60
    assert stores.messages.recent_messages("alice", "s1", 100) == []
