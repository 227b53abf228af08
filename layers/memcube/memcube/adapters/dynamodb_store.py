"""DynamoDB: the system of record on AWS (TaskStore + MemoryStore + UserDirectory), one table.

| item | pk | sk | notes |
|---|---|---|---|
| task | `TASK#<task>` | `#TASK` | `gsi1pk=USER#<user>`, `gsi1sk=<created_at>#<task>` lists a user's tasks; TTL |
| task part | `TASK#<task>` | `PART#<cube>` | `ord` keeps request order; one Query reads task + parts; TTL |
| idempotency key | `IDEM#<key>` | `#IDEM` | first writer wins (conditional put); TTL |
| memory item | `CUBE#<cube>` | `ITEM#<created_at>#<id>` | one partition per cube: oldest first, consistent reads |
| id pointer | `MEM#<id>` | `#MEM` | `cube_id`, `item_sk`: get by id without a scan |
| content guard | `CUBE#<cube>` | `HASH#<content_hash>` | `memory_id` of the one item holding that content |
| user | `USER#<user>` | `#USER` | the users the permission rule knows |
| dead letter | `DLQ` | `<failed_at>#<message_id>` | rare by design: one partition is ample, and lists in order |

`put_memory` is one TransactWriteItems (guard with `attribute_not_exists`, item, pointer): two
racing writers of the same content can never both succeed, and a redelivery that finds its own
id in the guard writes nothing. Every expression names its attributes through
ExpressionAttributeNames: real DynamoDB rejects reserved words (`status`, ...) that moto accepts.
Throttling is retried by botocore's adaptive mode (exponential backoff with jitter).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from memcube.domain.model import DeadLetter, MemoryItem, Task, TaskPart, TaskRecord
from memcube.ports import PutResult

Item = dict[str, dict[str, Any]]
BATCH_GET = 100


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _cancel_codes(exc: Exception) -> list[str]:
    reasons = getattr(exc, "response", {}).get("CancellationReasons", [])
    return [r.get("Code", "None") for r in reasons]


class DynamoStore:
    def __init__(
        self,
        table_name: str,
        client: Any | None = None,
        *,
        task_ttl_days: int = 30,
        clock: Any = time.time,
    ) -> None:
        self._table = table_name
        self._client = client
        self._ttl_seconds = task_ttl_days * 86_400
        self._clock = clock

    @property
    def client(self) -> Any:
        """boto3's DynamoDB client, built on first use (no I/O at import or construction)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client("dynamodb", config=Config(retries={"mode": "adaptive", "max_attempts": 8}))
        return self._client

    def close(self) -> None:
        return None

    def _expires(self) -> dict[str, str]:
        return _n(int(self._clock()) + self._ttl_seconds)

    def _conditional_failed(self, exc: Exception) -> bool:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return bool(code == "ConditionalCheckFailedException")

    # --- tasks -----------------------------------------------------------------------------

    def create_task(self, task: Task, parts: Sequence[TaskPart]) -> bool:
        pk = _s(f"TASK#{task.task_id}")
        ops: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        "pk": pk,
                        "sk": _s("#TASK"),
                        "gsi1pk": _s(f"USER#{task.user_id}"),
                        "gsi1sk": _s(f"{task.created_at}#{task.task_id}"),
                        "body": _s(task.model_dump_json()),
                        "expires_at": self._expires(),
                    },
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": "pk"},
                }
            }
        ]
        for n, part in enumerate(parts):
            ops.append({"Put": {"TableName": self._table, "Item": self._part_item(task.task_id, part, n)}})
        try:
            self.client.transact_write_items(TransactItems=ops)
        except self.client.exceptions.TransactionCanceledException as exc:
            if _cancel_codes(exc)[:1] == ["ConditionalCheckFailed"]:
                return False
            raise
        return True

    def _part_item(self, task_id: str, part: TaskPart, ordinal: int) -> Item:
        return {
            "pk": _s(f"TASK#{task_id}"),
            "sk": _s(f"PART#{part.cube_id}"),
            "ord": _n(ordinal),
            "body": _s(part.model_dump_json()),
            "expires_at": self._expires(),
        }

    def get_task(self, task_id: str) -> TaskRecord | None:
        items = list(
            self._query(
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={"#pk": "pk"},
                ExpressionAttributeValues={":pk": _s(f"TASK#{task_id}")},
                ConsistentRead=True,
            )
        )
        head = next((i for i in items if i["sk"]["S"] == "#TASK"), None)
        if head is None:
            return None
        parts = sorted((i for i in items if i["sk"]["S"].startswith("PART#")), key=lambda i: int(i["ord"]["N"]))
        return TaskRecord(
            task=Task.model_validate_json(head["body"]["S"]),
            parts=[TaskPart.model_validate_json(p["body"]["S"]) for p in parts],
        )

    def list_tasks(self, user_id: str, limit: int) -> list[TaskRecord]:
        page = self.client.query(
            TableName=self._table,
            IndexName="gsi1",
            KeyConditionExpression="#g = :g",
            ExpressionAttributeNames={"#g": "gsi1pk"},
            ExpressionAttributeValues={":g": _s(f"USER#{user_id}")},
            ScanIndexForward=False,
            Limit=limit,
        )
        ids = [i["gsi1sk"]["S"].rsplit("#", 1)[1] for i in page.get("Items", [])]
        records = [self.get_task(task_id) for task_id in ids]
        return [r for r in records if r is not None]

    def put_task_part(self, task_id: str, part: TaskPart) -> None:
        names = {"#pk": "pk", "#body": "body", "#ord": "ord", "#exp": "expires_at"}
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self._table,
                            "Key": {"pk": _s(f"TASK#{task_id}"), "sk": _s("#TASK")},
                            "ConditionExpression": "attribute_exists(#pk)",
                            "ExpressionAttributeNames": {"#pk": "pk"},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {"pk": _s(f"TASK#{task_id}"), "sk": _s(f"PART#{part.cube_id}")},
                            # A part added later (a producer joining a task) sorts after the others.
                            "UpdateExpression": "SET #body = :b, #ord = if_not_exists(#ord, :o), #exp = :e",
                            "ExpressionAttributeNames": {k: v for k, v in names.items() if k != "#pk"},
                            "ExpressionAttributeValues": {
                                ":b": _s(part.model_dump_json()),
                                ":o": _n(10_000),
                                ":e": self._expires(),
                            },
                        }
                    },
                ]
            )
        except self.client.exceptions.TransactionCanceledException as exc:
            if _cancel_codes(exc)[:1] == ["ConditionalCheckFailed"]:
                raise KeyError(task_id) from exc
            raise

    def claim_idempotency_key(self, key: str, task_id: str) -> str:
        item_key = {"pk": _s(f"IDEM#{key}"), "sk": _s("#IDEM")}
        try:
            self.client.put_item(
                TableName=self._table,
                Item={**item_key, "task_id": _s(task_id), "expires_at": self._expires()},
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": "pk"},
            )
        except Exception as exc:
            if not self._conditional_failed(exc):
                raise
            found = self.client.get_item(TableName=self._table, Key=item_key, ConsistentRead=True)
            return str(found["Item"]["task_id"]["S"])
        return task_id

    def record_dead_letter(self, letter: DeadLetter) -> None:
        self.client.put_item(
            TableName=self._table,
            Item={
                "pk": _s("DLQ"),
                "sk": _s(f"{letter.failed_at}#{letter.message_id}"),
                "body": _s(letter.model_dump_json()),
            },
        )

    def list_dead_letters(self) -> list[DeadLetter]:
        items = self._query(
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": "pk"},
            ExpressionAttributeValues={":pk": _s("DLQ")},
            ConsistentRead=True,
        )
        return [DeadLetter.model_validate_json(i["body"]["S"]) for i in items]

    # --- memories ----------------------------------------------------------------------------

    def put_memory(self, item: MemoryItem) -> PutResult:
        meta = item.metadata
        cube = _s(f"CUBE#{meta.cube_id}")
        item_sk = f"ITEM#{meta.created_at}#{item.id}"
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": cube,
                                "sk": _s(f"HASH#{meta.content_hash}"),
                                "memory_id": _s(item.id),
                            },
                            "ConditionExpression": "attribute_not_exists(#pk)",
                            "ExpressionAttributeNames": {"#pk": "pk"},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": cube,
                                "sk": _s(item_sk),
                                "status": _s(meta.status),
                                "body": _s(item.model_dump_json()),
                            },
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": _s(f"MEM#{item.id}"),
                                "sk": _s("#MEM"),
                                "cube_id": _s(meta.cube_id),
                                "item_sk": _s(item_sk),
                            },
                        }
                    },
                ]
            )
        except self.client.exceptions.TransactionCanceledException as exc:
            reasons = exc.response.get("CancellationReasons", [])
            if not reasons or reasons[0].get("Code") != "ConditionalCheckFailed":
                raise
            owner = reasons[0].get("Item", {}).get("memory_id", {}).get("S") or self._guard_owner(meta)
            return PutResult("exists", item.id) if owner == item.id else PutResult("duplicate", owner)
        return PutResult("created")

    def _guard_owner(self, meta: Any) -> str:
        found = self.client.get_item(
            TableName=self._table,
            Key={"pk": _s(f"CUBE#{meta.cube_id}"), "sk": _s(f"HASH#{meta.content_hash}")},
            ConsistentRead=True,
        )
        return str(found["Item"]["memory_id"]["S"])

    def get_memory(self, memory_id: str) -> MemoryItem | None:
        found = self.get_memories([memory_id])
        return found[0] if found else None

    def get_memories(self, memory_ids: Sequence[str]) -> list[MemoryItem]:
        wanted = list(dict.fromkeys(memory_ids))
        pointers = self._batch_get([{"pk": _s(f"MEM#{i}"), "sk": _s("#MEM")} for i in wanted])
        keys = [{"pk": _s(f"CUBE#{p['cube_id']['S']}"), "sk": p["item_sk"]} for p in pointers]
        items = {
            item.id: item for item in (MemoryItem.model_validate_json(i["body"]["S"]) for i in self._batch_get(keys))
        }
        return [items[i] for i in wanted if i in items]

    def _batch_get(self, keys: list[Item]) -> list[Item]:
        out: list[Item] = []
        for start in range(0, len(keys), BATCH_GET):
            request: dict[str, Any] = {self._table: {"Keys": keys[start : start + BATCH_GET], "ConsistentRead": True}}
            delay = 0.05
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                out.extend(response.get("Responses", {}).get(self._table, []))
                request = response.get("UnprocessedKeys") or {}
                if request:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
        return out

    def list_memories(self, cube_id: str, offset: int, limit: int) -> tuple[list[MemoryItem], int]:
        """Offset paging walks the partition from the start: O(offset) reads, fine for the UI-sized
        pages this serves; exports use iter_memories."""
        activated = {
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
        page: list[MemoryItem] = []
        total = 0
        for raw in self._query(**activated):
            if offset <= total < offset + limit:
                page.append(MemoryItem.model_validate_json(raw["body"]["S"]))
            total += 1
        return page, total

    def iter_memories(self, cube_id: str | None = None) -> Iterator[MemoryItem]:
        if cube_id is not None:
            raws: Iterator[Item] = self._query(
                KeyConditionExpression="#pk = :pk AND begins_with(#sk, :item)",
                ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
                ExpressionAttributeValues={":pk": _s(f"CUBE#{cube_id}"), ":item": _s("ITEM#")},
                ConsistentRead=True,
            )
        else:
            raws = self._scan(
                FilterExpression="begins_with(#sk, :item)",
                ExpressionAttributeNames={"#sk": "sk"},
                ExpressionAttributeValues={":item": _s("ITEM#")},
            )
        for raw in raws:
            yield MemoryItem.model_validate_json(raw["body"]["S"])

    def _query(self, **kwargs: Any) -> Iterator[Item]:
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(TableName=self._table, **kwargs):
            yield from page.get("Items", [])

    def _scan(self, **kwargs: Any) -> Iterator[Item]:
        paginator = self.client.get_paginator("scan")
        for page in paginator.paginate(TableName=self._table, **kwargs):
            yield from page.get("Items", [])

    # --- users -------------------------------------------------------------------------------

    def register_user(self, user_id: str) -> None:
        self.client.put_item(TableName=self._table, Item={"pk": _s(f"USER#{user_id}"), "sk": _s("#USER")})

    def is_user(self, user_id: str) -> bool:
        found = self.client.get_item(
            TableName=self._table, Key={"pk": _s(f"USER#{user_id}"), "sk": _s("#USER")}, ConsistentRead=True
        )
        return "Item" in found
