"""DynamoDB: the system of record on AWS, one table shared by every storage port's adapter.

This module is the table: its layout (below), the client, transactions and writes retried while
they conflict, paging, and the attribute helpers. Each port's adapter (`tasks`, `memories`,
`directory`, ...) holds the one `DynamoTable` the backend opened (`open_stores`).

The table (template.yaml `Table`): keys `pk`/`sk` (S), GSI `gsi1` on `gsi1pk`/`gsi1sk` (S, ALL),
TTL on `expires_at` (epoch seconds). Every record keeps its pydantic model's JSON in `body`
(zlib-compressed into a binary `body` above 32 KiB, so a large record still fits DynamoDB's
400 KB item limit), plus the key and filter attributes below.

| record | pk | sk | other attributes |
|---|---|---|---|
| task | `TASK#<task>` | `#TASK` | `gsi1pk=USER#<user>`, `gsi1sk=<created_at>#<task>`, `expires_at` |
| task part | `TASK#<task>` | `PART#<cube>` | `ord` (request order), `expires_at` |
| idempotency key | `IDEM#<key>` | `#IDEM` | `task_id`, `expires_at` (an expired key is free again) |
| memory item | `CUBE#<cube>` | `ITEM#<created_at>#<id>` | `memory_id`, `status`, `version`; expiring: see below |
| content guard | `CUBE#<cube>` | `HASH#<content_hash>` | `memory_id` of the one item with that content |
| LSH band key | `CUBE#<cube>` | `LSH#<band key>#<id>` | `memory_id` (near-duplicate candidates) |
| id pointer | `MEM#<id>` | `#MEM` | `cube_id`, `item_sk`: get by id with two reads, never a scan |
| user | `USER#<user>` | `#USER` | (presence is the fact) |
| rate window | `RATE#<principal key>` | `<window start>` | `used`, `expires_at` (TTL) |
| cube grants | `ACL#<cube>` | `#ACL` | `version` (owner, readers, writers in `body`), `gsi1pk=CUBES`, `gsi1sk=<cube>` |
| API key | `APIKEY#<key id>` | `#APIKEY` | `gsi1pk=APIKEYS`, `gsi1sk=<user>#<created_at>#<key id>` |
| dead letter | `DLQ` | `<failed_at>#<message_id>` | |
| erasure mark | `ERASED#<cube>` | `#CUBE`, or `USER#<user>` | `erased_at` (the latest erasure) |
| chat message | `CONV#<user>` | `MSG#<session>#<seq>#<id>` | (the `messages` module) |
| chat session | `CONV#<user>` | `SESSION#<session>` | `latest`, `gsi1pk=CONVS#<user>`, `gsi1sk=<latest>#<session>` |

An expiring memory's item record also has `expiry` (epoch seconds: what reads filter on) and a
`gsi1` entry `EXPIRY#<day>#<shard>` / `<expiry>#<id>` (what the expiry sweep queries), and it, its
guard, band keys and pointer carry the TTL `expires_at`, `memories.TTL_GRACE_SECONDS` after it.

One Query on `TASK#<task>` reads a task with its parts; the `gsi1` partition `USER#<user>` lists a
user's tasks newest first. A cube's items sort oldest first (ties by id) within `CUBE#<cube>`.

Partitions: a cube's items and guards share `CUBE#<cube>`. Its writers are serialized by the
cube's SQS FIFO group, so one partition never sees more than one worker's writes, and with no
LSI DynamoDB can split a large cube's item collection by sort key. Tasks, keys, pointers and users
each get their own partition key (spread evenly). Dead letters are rare by design (a message
lands there only after the redrive policy's receives), so one `DLQ` partition is far below its
1,000 writes/s and keeps them listable in order with a single Query; sharding it would turn every
listing into a scatter-gather.

Writes: `put_memory` is one TransactWriteItems of the guard (`attribute_not_exists`), the item,
its pointer and its LSH band keys (`domain.similarity`), so a near-copy is found by the very next
add and two writers of one content can never both succeed; a loser reads the guard's
owner from the cancellation reason (`ReturnValuesOnConditionCheckFailure`) and reports `duplicate`,
or `exists` when the owner is its own id (a redelivery). `create_task` writes the task
(`attribute_not_exists`) and its parts in one transaction. Transactions carry a
ClientRequestToken (a botocore retry after a lost response replays the same outcome); a
transaction cancelled by a conflicting concurrent transaction or throttling is retried here with
jittered exponential backoff, and any other cancellation raises. Request-level throttling is
retried by botocore's adaptive mode.

Every expression names its attributes through ExpressionAttributeNames: real DynamoDB rejects
reserved words (`status`, ...) that moto accepts.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Final

DynamoClient = Any
"""boto3's low-level DynamoDB client (untyped here); only this package calls it."""
Attr = dict[str, Any]
"""One typed attribute value: {"S": str} | {"N": str} | {"B": bytes}."""
Item = dict[str, Attr]

BATCH_GET: Final = 100
COMPRESS_OVER: Final = 32 * 1024
"""Bodies above this are stored zlib-compressed (binary); smaller ones stay readable JSON."""
MAX_BODY: Final = 380 * 1024
"""What a body may take after compression, leaving room for keys within the 400 KB item limit."""
TX_ATTEMPTS: Final = 8
RETRYABLE_CANCELLATIONS: Final = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
GSI: Final = "gsi1"


def attr_s(value: str) -> Attr:
    return {"S": value}


def attr_n(value: int) -> Attr:
    return {"N": str(value)}


def body_attr(json_text: str) -> Attr:
    data = json_text.encode()
    if len(data) <= COMPRESS_OVER:
        return {"S": json_text}
    packed = zlib.compress(data, 6)
    if len(packed) > MAX_BODY:
        raise ValueError(
            f"record of {len(data)} bytes ({len(packed)} compressed) does not fit DynamoDB's 400 KB item limit"
        )
    return {"B": packed}


def body_text(attr: Attr) -> str:
    if "S" in attr:
        return str(attr["S"])
    raw: bytes = zlib.decompress(attr["B"])
    return raw.decode()


def backoff(attempt: int) -> float:
    """Full jitter: a random wait up to 20 ms, 40 ms, ... 1 s."""
    return random.uniform(0, min(1.0, 0.02 * 2**attempt))


class DynamoTable:
    """The table and its client, shared by every port's adapter of one backend."""

    def __init__(
        self,
        table_name: str,
        client: DynamoClient | None = None,
        *,
        task_ttl_days: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = table_name
        self._client = client
        self._owns_client = client is None
        self._client_lock = threading.Lock()
        self._ttl_seconds = task_ttl_days * 86_400
        self.clock = clock

    @property
    def client(self) -> DynamoClient:
        """boto3's DynamoDB client, built on first use (no I/O at import or construction)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    from botocore.config import Config

                    from memcube.adapters import aws_session

                    config = Config(retries={"mode": "adaptive", "max_attempts": 8})
                    self._client = aws_session.client("dynamodb", config=config)
        return self._client

    def close(self) -> None:
        """Close the client this table built (an injected client belongs to its owner)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    @property
    def condition_failed(self) -> Any:
        """What a single-item write raises when its ConditionExpression is false (botocore builds
        the class at run time, with the failed item in `.response`)."""
        return self.client.exceptions.ConditionalCheckFailedException

    def expires(self) -> Attr:
        return attr_n(int(self.clock()) + self._ttl_seconds)

    def transact(self, ops: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Run one TransactWriteItems whose only conditional operation comes first.

        None when it committed; the first operation's cancellation reason when its condition
        failed. A cancellation by a conflicting transaction or by throttling is retried; any
        other failure raises.
        """
        for attempt in range(TX_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=ops, ClientRequestToken=str(uuid.uuid4()))
                return None
            except self.client.exceptions.TransactionCanceledException as exc:
                reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or []
                codes = [r.get("Code", "None") for r in reasons]
                if codes[:1] == ["ConditionalCheckFailed"]:
                    return reasons[0]
                if attempt + 1 < TX_ATTEMPTS and RETRYABLE_CANCELLATIONS.intersection(codes):
                    time.sleep(backoff(attempt))
                    continue
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def transact_checked(self, ops: list[dict[str, Any]]) -> list[str] | None:
        """Run one TransactWriteItems with any number of conditional operations: None when it
        committed, else the cancellation code of each operation in order (a failed condition
        is `ConditionalCheckFailed`). Conflicts and throttling are retried; anything else raises."""
        for attempt in range(TX_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=ops, ClientRequestToken=str(uuid.uuid4()))
                return None
            except self.client.exceptions.TransactionCanceledException as exc:
                codes = [str(r.get("Code", "None")) for r in exc.response.get("CancellationReasons") or []]
                if "ConditionalCheckFailed" in codes:
                    return codes
                if attempt + 1 < TX_ATTEMPTS and RETRYABLE_CANCELLATIONS.intersection(codes):
                    time.sleep(backoff(attempt))
                    continue
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def write(self, method: str, **kwargs: Any) -> Any:
        """One single-item write, retried while it conflicts with a transaction on that item."""
        for attempt in range(TX_ATTEMPTS):
            try:
                return getattr(self.client, method)(TableName=self.name, **kwargs)
            except self.client.exceptions.TransactionConflictException:
                if attempt + 1 == TX_ATTEMPTS:
                    raise
                time.sleep(backoff(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def get(self, key: Item) -> Item | None:
        found: Item | None = self.client.get_item(TableName=self.name, Key=key, ConsistentRead=True).get("Item")
        return found

    def batch_get(self, keys: list[Item]) -> list[Item]:
        out: list[Item] = []
        for start in range(0, len(keys), BATCH_GET):
            request: dict[str, Any] = {self.name: {"Keys": keys[start : start + BATCH_GET], "ConsistentRead": True}}
            attempt = 0
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                out.extend(response.get("Responses", {}).get(self.name, []))
                request = response.get("UnprocessedKeys") or {}
                if request:  # throttled keys come back unprocessed, not as an error
                    time.sleep(backoff(attempt))
                    attempt += 1
        return out

    def pages(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Each page of a Query or Scan, following `LastEvaluatedKey`. Not botocore's paginator:
        its first use in a process loads and builds the paginator model, about 9 ms of a cold
        worker's first batch, for the one continuation key DynamoDB's protocol has."""
        call = getattr(self.client, operation)
        while True:
            page: dict[str, Any] = call(TableName=self.name, **kwargs)
            yield page
            if not page.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def query(self, **kwargs: Any) -> Iterator[Item]:
        for page in self.pages("query", **kwargs):
            yield from page.get("Items", [])

    def scan(self, **kwargs: Any) -> Iterator[Item]:
        for page in self.pages("scan", **kwargs):
            yield from page.get("Items", [])
