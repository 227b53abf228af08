"""Point 3, DynamoDB throttling: the store retries with backoff and jitter, so a throttled table
slows adds down but loses and doubles nothing. Throttling answers are injected at the HTTP level
(botocore's `before-send` event, ahead of moto's in-process DynamoDB, which never sees a throttled
request), so botocore's own retry logic (the adaptive mode the store configures) and the store's
retries both run for real."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from memcube.adapters.dynamodb import open_stores
from memcube.adapters.dynamodb.table import DynamoTable
from memcube.adapters.hash_embedder import HashEmbedder
from memcube.domain.ingest import Delivery, Verdict
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import Task, TaskPart, TaskState
from memcube.ports import Stores
from tests.aws_support import create_table
from tests.doubles import InMemoryIndex
from tests.reliability.conftest import Figures
from tests.services import ingest_service


class _Raw(BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.read()


def _answer(status: int, body: dict[str, Any]) -> AWSResponse:
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "Content-Length": str(len(raw))}
    return AWSResponse("https://dynamodb.us-east-1.amazonaws.com/", status, headers, _Raw(raw))


def _throttled(code: str) -> AWSResponse:
    return _answer(400, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "Rate of requests exceeds"})


class Throttle:
    """Answers the next `times` requests of `operation` with a throttling error (or `answer`)."""

    def __init__(self, table: DynamoTable, operation: str, times: int, answer: Any = None) -> None:
        self.left = times
        self.sent = 0
        self.answer = answer or (lambda request: _throttled("ProvisionedThroughputExceededException"))
        table.client.meta.events.register_first(f"before-send.dynamodb.{operation}", self)

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        self.sent += 1
        if self.left <= 0:
            return None  # on to moto
        self.left -= 1
        response: AWSResponse = self.answer(request)
        request.url = "https://throttled.invalid/"  # moto (the next handler) matches no route: nothing is written
        return response


def _cancelled(request: Any) -> AWSResponse:
    """TransactWriteItems cancelled because the table is throttled (the first reason names it)."""
    ops = json.loads(request.body)["TransactItems"]
    reasons = [{"Code": "ThrottlingError", "Message": "throughput exceeds"}] + [{"Code": "None"}] * (len(ops) - 1)
    return _answer(400, {"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                         "message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                                    "[ThrottlingError]", "CancellationReasons": reasons})  # fmt: skip


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoTable]:
    """The table with the client it builds itself (adaptive retries, as deployed), on moto."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with mock_aws():
        create_table(boto3.client("dynamodb"), "memcube-throttled")
        table = DynamoTable("memcube-throttled")
        yield table
        table.close()


@pytest.fixture
def stores(table: DynamoTable) -> Stores:
    return open_stores(table)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every backoff wait (botocore's and the store's), recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)
    return waited


def _task(stores: Stores, task_id: str = "t1") -> None:
    task = Task(task_id=task_id, user_id="u1", cube_ids=["u1"], fingerprint="f", created_at="2026-11-25T00:00:00.000Z")
    assert stores.tasks.create_task(task, [TaskPart(cube_id="u1", updated_at="2026-11-25T00:00:00.000Z")])


def test_a_throttled_write_is_retried_by_botocore_with_jittered_exponential_backoff(
    stores: Stores, table: DynamoTable, sleeps: list[float], figures: Figures
) -> None:
    _task(stores)
    throttle = Throttle(table, "UpdateItem", times=3)
    stores.tasks.put_task_part("t1", TaskPart(cube_id="u1", status=TaskState.IN_PROGRESS, attempts=3, updated_at="x"))
    assert throttle.sent == 4  # three throttled answers, then the write went through
    record = stores.tasks.get_task("t1")
    assert record is not None and record.parts[0].attempts == 3
    waits = sleeps[-3:]
    caps = [min(1.0 * 2**i, 20.0) for i in range(3)]  # botocore: rand(0, 1) * 1 s * 2^i for throttling
    assert len(sleeps) == 3 and all(0 <= w <= cap for w, cap in zip(waits, caps, strict=True)), sleeps
    assert len(set(waits)) == 3, "the same wait every time: no jitter"
    figures.record("3 outages", dynamodb_request_throttles_absorbed=3,
                   dynamodb_backoff_seconds=[round(w, 3) for w in waits])  # fmt: skip


def test_a_transaction_cancelled_for_throttling_is_retried_by_the_store_with_jitter(
    stores: Stores, table: DynamoTable, sleeps: list[float]
) -> None:
    """TransactWriteItems cancelled with `ThrottlingError` reasons: botocore does not retry a
    cancellation, the store does (full jitter, 20 ms doubling up to 1 s)."""
    from tests.contract.support import memory

    throttle = Throttle(table, "TransactWriteItems", times=5, answer=_cancelled)
    item = memory("m1", "a fact under throttling", cube="u1")
    assert stores.memories.put_memory(item).status == "created"
    assert throttle.sent == 6
    assert stores.memories.put_memory(item).status == "exists"  # one item, one guard
    waits = [w for w in sleeps if w <= 1.0]
    assert len(waits) >= 5
    assert all(0 <= w <= min(1.0, 0.02 * 2**i) for i, w in enumerate(waits[:5])), waits


def test_unprocessed_keys_of_a_throttled_batch_read_are_read_again(
    stores: Stores, table: DynamoTable, sleeps: list[float]
) -> None:
    from tests.contract.support import memory

    for n in range(3):
        assert stores.memories.put_memory(memory(f"m{n}", f"fact number {n}", cube="u1")).status == "created"

    def unprocessed(request: Any) -> AWSResponse:
        return _answer(200, {"Responses": {}, "UnprocessedKeys": json.loads(request.body)["RequestItems"]})

    throttle = Throttle(table, "BatchGetItem", times=2, answer=unprocessed)
    assert sorted(i.id for i in stores.memories.get_memories(["m0", "m1", "m2"])) == ["m0", "m1", "m2"]
    assert throttle.sent == 4  # the pointers' read twice unprocessed, then read; then the items' read


def test_throttling_beyond_the_retries_leaves_the_add_for_redelivery_then_it_completes_once(
    stores: Stores, table: DynamoTable, sleeps: list[float], figures: Figures
) -> None:
    ingest = ingest_service(stores, InMemoryIndex(), HashEmbedder(64))
    msg = QueuedAdd.model_validate(
        {"task_id": "t9", "cube_id": "u1", "user_id": "u1", "messages": [{"type": "text", "content": "throttled fact"}]}
    )
    _task(stores, "t9")  # recorded by the API before the table got throttled
    throttle = Throttle(table, "TransactWriteItems", times=1000, answer=_cancelled)  # throttled all delivery long
    assert ingest.handle(Delivery(msg.model_dump_json(), "m1", 1, 5)) is Verdict.RETRY
    record = stores.tasks.get_task("t9")
    assert record is not None
    [part] = record.parts
    assert part.status is TaskState.IN_PROGRESS
    assert part.error is not None and "ThrottlingError" in part.error, part.error
    assert list(stores.memories.iter_memories("u1")) == []
    throttled = throttle.sent
    throttle.left = 0  # the table has capacity again
    assert ingest.handle(Delivery(msg.model_dump_json(), "m1", 2, 5)) is Verdict.DONE
    record = stores.tasks.get_task("t9")
    assert record is not None and record.status is TaskState.COMPLETED
    assert [i.memory for i in stores.memories.iter_memories("u1")] == ["throttled fact"]
    figures.record("3 outages", dynamodb_attempts_before_giving_the_delivery_back=throttled)
