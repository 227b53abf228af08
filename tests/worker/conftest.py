"""The worker tier: the real Lambda entry (`memcube_worker.handler.lambda_handler`, powertools'
SqsFifoPartialProcessor) driven by SQS FIFO events copied from `events/`, and a small FIFO queue
that delivers them the way the Lambda event source mapping does."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

import memcube.wiring
from memcube.domain.messages import QueuedAdd
from memcube.wiring import Container
from tests.conftest import load_event
from tests.lambda_support import index_of, invoke_worker  # noqa: F401 - shared helpers


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch, memory_container: Container) -> Container:
    """In-memory ports behind the worker's process-wide container (restored afterwards)."""
    monkeypatch.setattr(memcube.wiring, "_container", memory_container)
    return memory_container


def failures(result: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


def message_ids(event: dict[str, Any]) -> list[str]:
    return [r["messageId"] for r in event["Records"]]


def sqs_record(body: str, *, group: str, seq: int, receive_count: int = 1, dedup: str | None = None) -> dict[str, Any]:
    """A record shaped like the first one of events/sqs_fifo_batch.json, carrying `body`."""
    record: dict[str, Any] = copy.deepcopy(load_event("sqs_fifo_batch.json")["Records"][0])
    record["messageId"] = f"0b1c2d3e-0000-4000-8000-{seq:012d}"
    record["receiptHandle"] = f"AQEB-receipt-{seq}-{receive_count}"
    record["body"] = body
    record["md5OfBody"] = hashlib.md5(body.encode()).hexdigest()
    attributes = record["attributes"]
    attributes["ApproximateReceiveCount"] = str(receive_count)
    attributes["SequenceNumber"] = str(18600000000000000000 + seq)
    attributes["MessageGroupId"] = group
    attributes["MessageDeduplicationId"] = dedup or hashlib.sha256(body.encode()).hexdigest()
    return record


def queued_record(msg: QueuedAdd, seq: int, receive_count: int = 1) -> dict[str, Any]:
    """The record SQS delivers for a message the API (or a direct producer) sent."""
    return sqs_record(
        msg.model_dump_json(), group=msg.group_id, seq=seq, receive_count=receive_count, dedup=msg.dedup_id
    )


def producer_body(task_id: str, cube_id: str, user_id: str, text: str, **extra: Any) -> str:
    """A direct producer's message: events/direct_producer_message.json with its ids changed."""
    body = load_event("direct_producer_message.json") | {"task_id": task_id, "cube_id": cube_id, "user_id": user_id}
    body["messages"] = [{"type": "chat", "role": "user", "content": text}]
    return json.dumps(body | extra)


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


@dataclass
class _Waiting:
    seq: int
    body: str
    group: str
    dedup: str
    receives: int = 0


@dataclass
class FifoQueue:
    """SQS FIFO as the worker sees it through the event source mapping: each `deliver` receives the
    visible messages in order (at most `batch_size`), increments their receive counts, calls the
    worker with the event, deletes what it did not report as failed, and, like a redrive policy,
    moves a message received `max_receive_count` times and failed again to `redriven`."""

    max_receive_count: int
    batch_size: int = 10
    waiting: list[_Waiting] = field(default_factory=list)
    redriven: list[str] = field(default_factory=list)
    _seq: int = 0
    _dedup: set[str] = field(default_factory=set)

    def send(self, body: str, group: str, dedup: str) -> None:
        if dedup in self._dedup:
            return
        self._dedup.add(dedup)
        self._seq += 1
        self.waiting.append(_Waiting(self._seq, body, group, dedup))

    def send_queued(self, messages: list[QueuedAdd]) -> None:
        for msg in messages:
            self.send(msg.model_dump_json(), msg.group_id, msg.dedup_id)

    def deliver(self) -> dict[str, Any]:
        batch = self.waiting[: self.batch_size]
        records = []
        for w in batch:
            w.receives += 1
            records.append(sqs_record(w.body, group=w.group, seq=w.seq, receive_count=w.receives, dedup=w.dedup))
        result = invoke_worker(sqs_event(*records))
        failed = set(failures(result))
        for w, record in zip(batch, records, strict=True):
            if record["messageId"] not in failed:
                self.waiting.remove(w)
            elif w.receives >= self.max_receive_count:
                self.waiting.remove(w)
                self.redriven.append(w.body)
        return result

    def drain(self, max_deliveries: int = 20) -> int:
        """Deliver until the queue is empty; the number of deliveries it took."""
        for n in range(1, max_deliveries + 1):
            self.deliver()
            if not self.waiting:
                return n
        raise AssertionError(f"queue not empty after {max_deliveries} deliveries: {self.waiting}")
