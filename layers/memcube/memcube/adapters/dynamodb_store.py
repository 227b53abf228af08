"""DynamoDB: the system of record on AWS (TaskStore + MemoryStore + UserDirectory), one table.

The table (template.yaml `Table`): keys `pk`/`sk` (S), GSI `gsi1` on `gsi1pk`/`gsi1sk` (S, ALL),
TTL on `expires_at` (epoch seconds). Every record keeps its pydantic model's JSON in `body`
(zlib-compressed into a binary `body` above 32 KiB, so a large record still fits DynamoDB's
400 KB item limit), plus the key and filter attributes below.

| record | pk | sk | other attributes |
|---|---|---|---|
| task | `TASK#<task>` | `#TASK` | `gsi1pk=USER#<user>`, `gsi1sk=<created_at>#<task>`, `expires_at` |
| task part | `TASK#<task>` | `PART#<cube>` | `ord` (request order), `expires_at` |
| idempotency key | `IDEM#<key>` | `#IDEM` | `task_id`, `expires_at` (an expired key is free again) |
| memory item | `CUBE#<cube>` | `ITEM#<created_at>#<id>` | `memory_id`, `status`, `version` |
| content guard | `CUBE#<cube>` | `HASH#<content_hash>` | `memory_id` of the one item with that content |
| LSH band key | `CUBE#<cube>` | `LSH#<band key>#<id>` | `memory_id` (near-duplicate candidates) |
| id pointer | `MEM#<id>` | `#MEM` | `cube_id`, `item_sk`: get by id with two reads, never a scan |
| user | `USER#<user>` | `#USER` | (presence is the fact) |
| rate window | `RATE#<principal key>` | `<window start>` | `used`, `expires_at` (TTL) |
| cube grants | `ACL#<cube>` | `#ACL` | `version` (owner, readers, writers in `body`) |
| API key | `APIKEY#<key id>` | `#APIKEY` | `gsi1pk=APIKEYS`, `gsi1sk=<user>#<created_at>#<key id>` |
| dead letter | `DLQ` | `<failed_at>#<message_id>` | |
| erasure mark | `ERASED#<cube>` | `#CUBE`, or `USER#<user>` | `erased_at` (the latest erasure) |

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

import contextlib
import random
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any, Final

from memcube.domain.auth import ApiKey
from memcube.domain.model import DeadLetter, MemoryItem, MemoryMetadata, Task, TaskPart, TaskRecord
from memcube.domain.permissions import CubeAcl
from memcube.domain.similarity import lsh_keys
from memcube.ports import PutResult

DynamoClient = Any
"""boto3's low-level DynamoDB client (untyped here); only this module calls it."""
Attr = dict[str, Any]
"""One typed attribute value: {"S": str} | {"N": str} | {"B": bytes}."""
Item = dict[str, Attr]

TASK_SK: Final = "#TASK"
IDEM_SK: Final = "#IDEM"
POINTER_SK: Final = "#MEM"
USER_SK: Final = "#USER"
KEY_SK: Final = "#APIKEY"
ACL_SK: Final = "#ACL"
KEYS_GSI_PK: Final = "APIKEYS"
"""One GSI partition lists every key (keys are created by operators, a handful per user): a
query, not a scan, and a user's keys are the `<user>#` prefix of its sort key (ids hold no `#`)."""
DLQ_PK: Final = "DLQ"
GSI: Final = "gsi1"

MAX_TRANSACT_ITEMS: Final = 100
BATCH_GET: Final = 100
COMPRESS_OVER: Final = 32 * 1024
"""Bodies above this are stored zlib-compressed (binary); smaller ones stay readable JSON."""
MAX_BODY: Final = 380 * 1024
"""What a body may take after compression, leaving room for keys within the 400 KB item limit."""
DEAD_LETTER_KEEP: Final = 256 * 1024
"""A dead letter too large to store keeps this many bytes of its body (and says so)."""
TX_ATTEMPTS: Final = 8
RETRYABLE_CANCELLATIONS: Final = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
LIST_TASK_READERS: Final = 8
DELETERS: Final = 8
"""Parallel single-item deletes: an item's delete needs its own conditions, which batch writes lack."""
WHOLE_CUBE_SK: Final = "#CUBE"


def _s(value: str) -> Attr:
    return {"S": value}


def _n(value: int) -> Attr:
    return {"N": str(value)}


def _body(json_text: str) -> Attr:
    data = json_text.encode()
    if len(data) <= COMPRESS_OVER:
        return {"S": json_text}
    packed = zlib.compress(data, 6)
    if len(packed) > MAX_BODY:
        raise ValueError(
            f"record of {len(data)} bytes ({len(packed)} compressed) does not fit DynamoDB's 400 KB item limit"
        )
    return {"B": packed}


def _text(attr: Attr) -> str:
    if "S" in attr:
        return str(attr["S"])
    raw: bytes = zlib.decompress(attr["B"])
    return raw.decode()


def _item_sk(meta: MemoryMetadata, memory_id: str) -> str:
    return f"ITEM#{meta.created_at}#{memory_id}"


def _band_sks(item: MemoryItem) -> list[str]:
    return [f"LSH#{key}#{item.id}" for key in lsh_keys(item.memory)]


def _backoff(attempt: int) -> float:
    """Full jitter: a random wait up to 20 ms, 40 ms, ... 1 s."""
    return random.uniform(0, min(1.0, 0.02 * 2**attempt))


def _fits(json_text: str) -> bool:
    data = json_text.encode()
    return len(data) <= COMPRESS_OVER or len(zlib.compress(data, 6)) <= MAX_BODY


def _fit(letter: DeadLetter) -> DeadLetter:
    """The letter itself, or (if even compressed it cannot be stored) one with its body cut short:
    losing the record of a dead letter would be worse than losing the tail of its body."""
    if _fits(letter.model_dump_json()):
        return letter
    data = letter.body.encode()
    keep = DEAD_LETTER_KEEP
    while True:
        kept = data[:keep].decode(errors="ignore")
        note = f" [body truncated for the store: first {len(kept.encode())} of {len(data)} bytes kept]"
        cut = letter.model_copy(update={"body": kept, "reason": letter.reason + note})
        if _fits(cut.model_dump_json()) or keep == 0:
            return cut
        keep //= 2


class DynamoStore:
    """TaskStore + MemoryStore + UserDirectory on one DynamoDB table (layout: module docstring)."""

    def __init__(
        self,
        table_name: str,
        client: DynamoClient | None = None,
        *,
        task_ttl_days: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table_name
        self._client = client
        self._owns_client = client is None
        self._client_lock = threading.Lock()
        self._ttl_seconds = task_ttl_days * 86_400
        self._clock = clock

    @property
    def client(self) -> DynamoClient:
        """boto3's DynamoDB client, built on first use (no I/O at import or construction)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    config = Config(retries={"mode": "adaptive", "max_attempts": 8})
                    self._client = boto3.client("dynamodb", config=config)
        return self._client

    def close(self) -> None:
        """Close the client this store built (an injected client belongs to its owner)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def _expires(self) -> Attr:
        return _n(int(self._clock()) + self._ttl_seconds)

    # --- writes that may meet concurrent transactions -----------------------------------------

    def _transact(self, ops: list[dict[str, Any]]) -> dict[str, Any] | None:
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
                    time.sleep(_backoff(attempt))
                    continue
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _write(self, method: str, **kwargs: Any) -> Any:
        """One single-item write, retried while it conflicts with a transaction on that item."""
        for attempt in range(TX_ATTEMPTS):
            try:
                return getattr(self.client, method)(TableName=self._table, **kwargs)
            except self.client.exceptions.TransactionConflictException:
                if attempt + 1 == TX_ATTEMPTS:
                    raise
                time.sleep(_backoff(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    # --- tasks -------------------------------------------------------------------------------

    def create_task(self, task: Task, parts: Sequence[TaskPart]) -> bool:
        cubes = [p.cube_id for p in parts]
        if len(set(cubes)) != len(cubes):
            raise ValueError(f"task {task.task_id!r} names a cube twice: {cubes}")
        if len(parts) + 1 > MAX_TRANSACT_ITEMS:
            raise ValueError(f"a task is written in one transaction: at most {MAX_TRANSACT_ITEMS - 1} parts")
        expires = self._expires()
        head = {
            "Put": {
                "TableName": self._table,
                "Item": {
                    "pk": _s(f"TASK#{task.task_id}"),
                    "sk": _s(TASK_SK),
                    "gsi1pk": _s(f"USER#{task.user_id}"),
                    "gsi1sk": _s(f"{task.created_at}#{task.task_id}"),
                    "body": _body(task.model_dump_json()),
                    "expires_at": expires,
                },
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": "pk"},
            }
        }
        part_puts = [
            {"Put": {"TableName": self._table, "Item": self._part_item(task.task_id, part, n, expires)}}
            for n, part in enumerate(parts)
        ]
        return self._transact([head, *part_puts]) is None

    def _part_item(self, task_id: str, part: TaskPart, ordinal: int, expires: Attr) -> Item:
        return {
            "pk": _s(f"TASK#{task_id}"),
            "sk": _s(f"PART#{part.cube_id}"),
            "ord": _n(ordinal),
            "body": _body(part.model_dump_json()),
            "expires_at": expires,
        }

    def get_task(self, task_id: str) -> TaskRecord | None:
        head: Item | None = None
        parts: list[Item] = []
        for raw in self._query(
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": "pk"},
            ExpressionAttributeValues={":pk": _s(f"TASK#{task_id}")},
            ConsistentRead=True,
        ):
            sk = raw["sk"]["S"]
            if sk == TASK_SK:
                head = raw
            elif sk.startswith("PART#"):
                parts.append(raw)
        if head is None:
            return None
        parts.sort(key=lambda p: int(p["ord"]["N"]))
        return TaskRecord(
            task=Task.model_validate_json(_text(head["body"])),
            parts=[TaskPart.model_validate_json(_text(p["body"])) for p in parts],
        )

    def list_tasks(self, user_id: str, limit: int) -> list[TaskRecord]:
        """Newest first, from the user's index partition (eventually consistent, as GSIs are)."""
        if limit <= 0:
            return []
        page = self.client.query(
            TableName=self._table,
            IndexName=GSI,
            KeyConditionExpression="#g = :g",
            ProjectionExpression="#gs",
            ExpressionAttributeNames={"#g": "gsi1pk", "#gs": "gsi1sk"},
            ExpressionAttributeValues={":g": _s(f"USER#{user_id}")},
            ScanIndexForward=False,
            Limit=limit,
        )
        # gsi1sk is `<created_at>#<task_id>`, and an ISO timestamp holds no `#`.
        ids = [i["gsi1sk"]["S"].split("#", 1)[1] for i in page.get("Items", [])]
        if len(ids) <= 1:
            records = [self.get_task(i) for i in ids]
        else:
            with ThreadPoolExecutor(max_workers=min(LIST_TASK_READERS, len(ids))) as pool:
                records = list(pool.map(self.get_task, ids))
        return [r for r in records if r is not None]

    def put_task_part(self, task_id: str, part: TaskPart) -> None:
        key = {"pk": _s(f"TASK#{task_id}"), "sk": _s(f"PART#{part.cube_id}")}
        body = _body(part.model_dump_json())
        try:  # the usual case: the part was written with its task, so its existence proves the task's
            self._write(
                "update_item",
                Key=key,
                UpdateExpression="SET #body = :b",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#body": "body", "#pk": "pk"},
                ExpressionAttributeValues={":b": body},
            )
            return
        except self.client.exceptions.ConditionalCheckFailedException:
            pass  # a cube joining the task later (a direct producer's message), or no such task
        check_task = {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": {"pk": _s(f"TASK#{task_id}"), "sk": _s(TASK_SK)},
                "ConditionExpression": "attribute_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": "pk"},
            }
        }
        upsert_part = {
            "Update": {
                "TableName": self._table,
                "Key": key,
                # A part joining later sorts after the request's parts (and after earlier joiners).
                "UpdateExpression": "SET #body = :b, #ord = if_not_exists(#ord, :o), #exp = if_not_exists(#exp, :e)",
                "ExpressionAttributeNames": {"#body": "body", "#ord": "ord", "#exp": "expires_at"},
                "ExpressionAttributeValues": {
                    ":b": body,
                    ":o": _n(int(self._clock() * 1000)),
                    ":e": self._expires(),
                },
            }
        }
        if self._transact([check_task, upsert_part]) is not None:
            raise KeyError(task_id)

    def claim_idempotency_key(self, key: str, task_id: str) -> str:
        item_key = {"pk": _s(f"IDEM#{key}"), "sk": _s(IDEM_SK)}
        try:
            self._write(
                "put_item",
                Item={**item_key, "task_id": _s(task_id), "expires_at": self._expires()},
                # TTL deletes lazily (within days): an expired binding must not outlive its TTL.
                ConditionExpression="attribute_not_exists(#pk) OR #exp < :now",
                ExpressionAttributeNames={"#pk": "pk", "#exp": "expires_at"},
                ExpressionAttributeValues={":now": _n(int(self._clock()))},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            bound = exc.response.get("Item") or self._get(item_key)
            if bound is None:  # never deleted except by TTL, long after it could have been bound
                raise RuntimeError(f"idempotency key {key!r} is bound but cannot be read") from exc
            return str(bound["task_id"]["S"])
        return task_id

    def record_dead_letter(self, letter: DeadLetter) -> None:
        kept = _fit(letter)
        self._write(
            "put_item",
            Item={
                "pk": _s(DLQ_PK),
                "sk": _s(f"{kept.failed_at}#{kept.message_id}"),
                "body": _body(kept.model_dump_json()),
            },
        )

    def list_dead_letters(self) -> list[DeadLetter]:
        items = self._query(
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": "pk"},
            ExpressionAttributeValues={":pk": _s(DLQ_PK)},
            ConsistentRead=True,
        )
        return [DeadLetter.model_validate_json(_text(i["body"])) for i in items]

    def delete_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        removed = 0
        for letter in letters:
            old = self._write(
                "delete_item",
                Key={"pk": _s(DLQ_PK), "sk": _s(f"{letter.failed_at}#{letter.message_id}")},
                ReturnValues="ALL_OLD",
            )
            removed += "Attributes" in old
        return removed

    # --- memories ----------------------------------------------------------------------------

    def put_memory(self, item: MemoryItem) -> PutResult:
        meta = item.metadata
        cube = _s(f"CUBE#{meta.cube_id}")
        item_sk = _item_sk(meta, item.id)
        guard = {
            "Put": {
                "TableName": self._table,
                "Item": {"pk": cube, "sk": _s(f"HASH#{meta.content_hash}"), "memory_id": _s(item.id)},
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": "pk"},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        record = {
            "Put": {
                "TableName": self._table,
                "Item": {
                    "pk": cube,
                    "sk": _s(item_sk),
                    "memory_id": _s(item.id),
                    "status": _s(meta.status),
                    "version": _n(meta.version),
                    "body": _body(item.model_dump_json()),
                },
            }
        }
        bands = [
            {"Put": {"TableName": self._table, "Item": {"pk": cube, "sk": _s(sk), "memory_id": _s(item.id)}}}
            for sk in _band_sks(item)
        ]
        pointer = {
            "Put": {
                "TableName": self._table,
                "Item": {
                    "pk": _s(f"MEM#{item.id}"),
                    "sk": _s(POINTER_SK),
                    "cube_id": _s(meta.cube_id),
                    "item_sk": _s(item_sk),
                },
            }
        }
        failed = self._transact([guard, record, pointer, *bands])
        if failed is None:
            return PutResult("created")
        owner = (failed.get("Item") or {}).get("memory_id", {}).get("S") or self._guard_owner(meta)
        return PutResult("exists", item.id) if owner == item.id else PutResult("duplicate", owner)

    def update_memory(self, item: MemoryItem, expected_version: int) -> bool:
        stored = self.get_memory(item.id)
        if stored is None:
            return False
        if not stored.same_content(item):
            raise ValueError(f"update_memory may not change the cube, text or creation time of {item.id!r}")
        meta = item.metadata
        # Items written before versions were kept as an attribute count as version 1.
        condition = "attribute_exists(#pk) AND #v = :v"
        if expected_version == 1:
            condition = "attribute_exists(#pk) AND (attribute_not_exists(#v) OR #v = :v)"
        try:
            self._write(
                "put_item",
                Item={
                    "pk": _s(f"CUBE#{meta.cube_id}"),
                    "sk": _s(_item_sk(meta, item.id)),
                    "memory_id": _s(item.id),
                    "status": _s(meta.status),
                    "version": _n(meta.version),
                    "body": _body(item.model_dump_json()),
                },
                ConditionExpression=condition,
                ExpressionAttributeNames={"#pk": "pk", "#v": "version"},
                ExpressionAttributeValues={":v": _n(expected_version)},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def similar_ids(self, cube_id: str, text: str, limit: int) -> list[str]:
        keys = lsh_keys(text)
        if not keys:
            return []
        cube = _s(f"CUBE#{cube_id}")

        def band(key: str) -> list[str]:
            found = self._query(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": cube, ":prefix": _s(f"LSH#{key}#")},
                ProjectionExpression="memory_id",
                ConsistentRead=True,
            )
            return [str(i["memory_id"]["S"]) for i in found]

        counts: dict[str, int] = {}
        with ThreadPoolExecutor(max_workers=min(DELETERS, len(keys))) as pool:
            for ids in pool.map(band, keys):
                for memory_id in ids:
                    counts[memory_id] = counts.get(memory_id, 0) + 1
        return sorted(counts, key=lambda i: (-counts[i], i))[:limit]

    def _guard_owner(self, meta: MemoryMetadata) -> str:
        found = self._get({"pk": _s(f"CUBE#{meta.cube_id}"), "sk": _s(f"HASH#{meta.content_hash}")})
        if found is None:  # guards are never deleted
            raise RuntimeError(f"content guard of cube {meta.cube_id!r} failed its condition but is gone")
        return str(found["memory_id"]["S"])

    def _get(self, key: Item) -> Item | None:
        found: Item | None = self.client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return found

    def get_memory(self, memory_id: str) -> MemoryItem | None:
        found = self.get_memories([memory_id])
        return found[0] if found else None

    def get_memories(self, memory_ids: Sequence[str]) -> list[MemoryItem]:
        wanted = list(dict.fromkeys(memory_ids))
        pointers = self._batch_get([{"pk": _s(f"MEM#{i}"), "sk": _s(POINTER_SK)} for i in wanted])
        keys = [{"pk": _s(f"CUBE#{p['cube_id']['S']}"), "sk": p["item_sk"]} for p in pointers]
        items = {i.id: i for i in (MemoryItem.model_validate_json(_text(r["body"])) for r in self._batch_get(keys))}
        return [items[i] for i in wanted if i in items]

    def _batch_get(self, keys: list[Item]) -> list[Item]:
        out: list[Item] = []
        for start in range(0, len(keys), BATCH_GET):
            request: dict[str, Any] = {self._table: {"Keys": keys[start : start + BATCH_GET], "ConsistentRead": True}}
            attempt = 0
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                out.extend(response.get("Responses", {}).get(self._table, []))
                request = response.get("UnprocessedKeys") or {}
                if request:  # throttled keys come back unprocessed, not as an error
                    time.sleep(_backoff(attempt))
                    attempt += 1
        return out

    def _activated(self, cube_id: str) -> dict[str, Any]:
        return {
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :item)",
            "FilterExpression": "#st = :active",
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk", "#st": "status"},
            "ExpressionAttributeValues": {
                ":pk": _s(f"CUBE#{cube_id}"),
                ":item": _s("ITEM#"),
                ":active": _s("activated"),
            },
            "ConsistentRead": True,
        }

    def list_memories(self, cube_id: str, offset: int, limit: int) -> tuple[list[MemoryItem], int]:
        """A page by offset: the Query walks the cube's partition from its start and stops after
        `offset + limit` matches, so a page costs O(offset + limit) reads (filtered-out archived
        items are read too). The total is a second, Select=COUNT Query over the whole partition
        (no item data returned, but every item is read): the two are not one snapshot."""
        total = sum(int(p.get("Count", 0)) for p in self._pages("query", Select="COUNT", **self._activated(cube_id)))
        if limit <= 0 or offset >= total:
            return [], total
        raws = islice(self._query(**self._activated(cube_id)), max(offset, 0), max(offset, 0) + limit)
        return [MemoryItem.model_validate_json(_text(r["body"])) for r in raws], total

    def iter_memories(self, cube_id: str | None = None) -> Iterator[MemoryItem]:
        if cube_id is not None:
            raws = self._query(
                KeyConditionExpression="#pk = :pk AND begins_with(#sk, :item)",
                ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
                ExpressionAttributeValues={":pk": _s(f"CUBE#{cube_id}"), ":item": _s("ITEM#")},
                ConsistentRead=True,
            )
        else:  # every cube: a full scan, for reindexing only
            raws = self._scan(
                FilterExpression="begins_with(#sk, :item)",
                ExpressionAttributeNames={"#sk": "sk"},
                ExpressionAttributeValues={":item": _s("ITEM#")},
            )
        for raw in raws:
            yield MemoryItem.model_validate_json(_text(raw["body"]))

    def export_page(self, cube_id: str, cursor: str | None, limit: int) -> tuple[list[MemoryItem], str | None]:
        """A page in sort-key order (oldest first); the cursor is the last item's sort key."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :item)",
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk"},
            "ExpressionAttributeValues": {":pk": _s(f"CUBE#{cube_id}"), ":item": _s("ITEM#")},
            "ConsistentRead": True,
            "Limit": limit + 1,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = {"pk": _s(f"CUBE#{cube_id}"), "sk": _s(cursor)}
        raws: list[Item] = self.client.query(**kwargs).get("Items", [])
        page = raws[:limit]
        items = [MemoryItem.model_validate_json(_text(r["body"])) for r in page]
        return items, (str(page[-1]["sk"]["S"]) if len(raws) > limit else None)

    def delete_memories(self, items: Sequence[MemoryItem]) -> int:
        items = list({(i.metadata.cube_id, i.id): i for i in items}.values())  # one delete per item
        if len(items) <= 1:
            return sum(self._delete_memory(i) for i in items)
        with ThreadPoolExecutor(max_workers=min(DELETERS, len(items))) as pool:
            return sum(pool.map(self._delete_memory, items))

    def _delete_memory(self, item: MemoryItem) -> bool:
        """Guard first (only if it still names this item), then the record, then the pointer: a
        crash part-way leaves an item that a repeated delete finishes, never a guard that names
        a missing item (which would report new content as a duplicate of nothing)."""
        meta = item.metadata
        cube = _s(f"CUBE#{meta.cube_id}")
        # A failed condition: the guard is gone already, or names another item (not this one's to remove).
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self._write(
                "delete_item",
                Key={"pk": cube, "sk": _s(f"HASH#{meta.content_hash}")},
                ConditionExpression="#m = :id",
                ExpressionAttributeNames={"#m": "memory_id"},
                ExpressionAttributeValues={":id": _s(item.id)},
            )
        # Conditional, so of two concurrent deletes of one item exactly one counts it.
        try:
            self._write(
                "delete_item",
                Key={"pk": cube, "sk": _s(_item_sk(meta, item.id))},
                ConditionExpression="attribute_exists(pk)",
            )
            deleted = True
        except self.client.exceptions.ConditionalCheckFailedException:
            deleted = False
        for sk in _band_sks(item):
            self._write("delete_item", Key={"pk": cube, "sk": _s(sk)})
        self._write("delete_item", Key={"pk": _s(f"MEM#{item.id}"), "sk": _s(POINTER_SK)})
        return deleted

    def mark_erased(self, cube_id: str, user_id: str | None, at: str) -> None:
        key = {"pk": _s(f"ERASED#{cube_id}"), "sk": _s(f"USER#{user_id}" if user_id else WHOLE_CUBE_SK)}
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):  # a later mark won
            self._write(
                "update_item",
                Key=key,
                UpdateExpression="SET #at = :at",
                ConditionExpression="attribute_not_exists(#at) OR #at < :at",  # keep the latest mark
                ExpressionAttributeNames={"#at": "erased_at"},
                ExpressionAttributeValues={":at": _s(at)},
            )

    def erased_at(self, cube_id: str, user_id: str) -> str | None:
        pk = _s(f"ERASED#{cube_id}")
        marks = self._batch_get([{"pk": pk, "sk": _s(WHOLE_CUBE_SK)}, {"pk": pk, "sk": _s(f"USER#{user_id}")}])
        found = [str(m["erased_at"]["S"]) for m in marks if "erased_at" in m]
        return max(found) if found else None

    def _pages(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        yield from self.client.get_paginator(operation).paginate(TableName=self._table, **kwargs)

    def _query(self, **kwargs: Any) -> Iterator[Item]:
        for page in self._pages("query", **kwargs):
            yield from page.get("Items", [])

    def _scan(self, **kwargs: Any) -> Iterator[Item]:
        for page in self._pages("scan", **kwargs):
            yield from page.get("Items", [])

    # --- users -------------------------------------------------------------------------------

    # --- rate windows ------------------------------------------------------------------------

    def hit(self, key: str, limit: int, window_start: int, window_seconds: int) -> bool:
        """One atomic conditional increment, shared by every Lambda instance; TTL removes the item."""
        try:
            self._write(
                "update_item",
                Key={"pk": _s(f"RATE#{key}"), "sk": _s(str(window_start))},
                UpdateExpression="ADD #u :one SET #e = :ends",
                ConditionExpression="attribute_not_exists(#u) OR #u < :limit",
                ExpressionAttributeNames={"#u": "used", "#e": "expires_at"},
                ExpressionAttributeValues={
                    ":one": _n(1),
                    ":limit": _n(limit),
                    ":ends": _n(window_start + window_seconds + 3600),
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # --- cube grants -------------------------------------------------------------------------

    def get_cube(self, cube_id: str) -> CubeAcl | None:
        found = self._get({"pk": _s(f"ACL#{cube_id}"), "sk": _s(ACL_SK)})
        return CubeAcl.model_validate_json(_text(found["body"])) if found else None

    def _put_cube(self, acl: CubeAcl, condition: str, values: dict[str, Attr] | None = None) -> bool:
        item = {"pk": _s(f"ACL#{acl.cube_id}"), "sk": _s(ACL_SK), "version": _n(acl.version)}
        item["body"] = _body(acl.model_dump_json())
        try:
            extra = {"ExpressionAttributeValues": values} if values else {}
            self._write(
                "put_item",
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#pk": "pk", "#v": "version"} if values else {"#pk": "pk"},
                **extra,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def create_cube(self, acl: CubeAcl) -> bool:
        return self._put_cube(acl, "attribute_not_exists(#pk)")

    def update_cube(self, acl: CubeAcl, expected_version: int) -> bool:
        return self._put_cube(acl, "attribute_exists(#pk) AND #v = :v", {":v": _n(expected_version)})

    def delete_cube(self, cube_id: str) -> bool:
        old = self._write("delete_item", Key={"pk": _s(f"ACL#{cube_id}"), "sk": _s(ACL_SK)}, ReturnValues="ALL_OLD")
        return "Attributes" in old

    # --- API keys ----------------------------------------------------------------------------

    def put_key(self, key: ApiKey) -> bool:
        try:
            self._write(
                "put_item",
                Item={
                    "pk": _s(f"APIKEY#{key.key_id}"),
                    "sk": _s(KEY_SK),
                    "gsi1pk": _s(KEYS_GSI_PK),
                    "gsi1sk": _s(f"{key.user_id}#{key.created_at}#{key.key_id}"),
                    "body": _body(key.model_dump_json()),
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": "pk"},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def get_key(self, key_id: str) -> ApiKey | None:
        found = self._get({"pk": _s(f"APIKEY#{key_id}"), "sk": _s(KEY_SK)})
        return ApiKey.model_validate_json(_text(found["body"])) if found else None

    def list_keys(self, user_id: str | None) -> list[ApiKey]:
        condition = "#g = :g"
        values: dict[str, Attr] = {":g": _s(KEYS_GSI_PK)}
        if user_id is not None:
            condition += " AND begins_with(#gs, :user)"
            values[":user"] = _s(f"{user_id}#")
        items = self._query(
            IndexName=GSI,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#g": "gsi1pk", "#gs": "gsi1sk"} if user_id else {"#g": "gsi1pk"},
            ExpressionAttributeValues=values,
        )
        keys = [ApiKey.model_validate_json(_text(i["body"])) for i in items]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def revoke_key(self, key_id: str, at: str) -> bool:
        key = self.get_key(key_id)
        if key is None:
            return False
        if key.revoked_at is not None:
            return True
        revoked = key.model_copy(update={"revoked_at": at})
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):  # revoked meanwhile
            self._write(
                "update_item",
                Key={"pk": _s(f"APIKEY#{key_id}"), "sk": _s(KEY_SK)},
                UpdateExpression="SET #b = :b",
                ConditionExpression="attribute_exists(#pk) AND #b = :old",
                ExpressionAttributeNames={"#b": "body", "#pk": "pk"},
                ExpressionAttributeValues={
                    ":b": _body(revoked.model_dump_json()),
                    ":old": _body(key.model_dump_json()),
                },
            )
        return True

    def register_user(self, user_id: str) -> None:
        self._write("put_item", Item={"pk": _s(f"USER#{user_id}"), "sk": _s(USER_SK)})

    def is_user(self, user_id: str) -> bool:
        return self._get({"pk": _s(f"USER#{user_id}"), "sk": _s(USER_SK)}) is not None
