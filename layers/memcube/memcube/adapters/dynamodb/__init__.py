"""The AWS system of record: one adapter per storage port over one DynamoDB table (`table`)."""

from __future__ import annotations

from memcube.adapters.dynamodb.counters import DynamoCounter
from memcube.adapters.dynamodb.dead_letters import DynamoDeadLetters
from memcube.adapters.dynamodb.directory import DynamoDirectory
from memcube.adapters.dynamodb.erasures import DynamoErasureMarks
from memcube.adapters.dynamodb.idempotency import DynamoIdempotencyKeys
from memcube.adapters.dynamodb.keys import DynamoKeys
from memcube.adapters.dynamodb.memories import DynamoMemories
from memcube.adapters.dynamodb.messages import DynamoMessages
from memcube.adapters.dynamodb.table import DynamoTable
from memcube.adapters.dynamodb.tasks import DynamoTasks
from memcube.ports import Stores


def open_stores(table: DynamoTable) -> Stores:
    """Every storage port on the table, sharing its one client (built on first use unless given)."""
    memories = DynamoMemories(table)
    return Stores(
        tasks=DynamoTasks(table),
        idempotency=DynamoIdempotencyKeys(table),
        dead_letters=DynamoDeadLetters(table),
        memories=memories,
        erasures=DynamoErasureMarks(table),
        directory=DynamoDirectory(table),
        api_keys=DynamoKeys(table),
        counter=DynamoCounter(table),
        messages=DynamoMessages(table),
        close=table.close,
        expiring=memories,
    )
