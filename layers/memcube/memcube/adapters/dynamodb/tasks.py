"""Tasks and their per-cube parts on the DynamoDB table (`TaskStore`)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from memcube.adapters.dynamodb.table import GSI, Attr, DynamoTable, Item, attr_n, attr_s, body_attr, body_text
from memcube.domain.model import Task, TaskPart, TaskRecord

TASK_SK: Final = "#TASK"
MAX_TRANSACT_ITEMS: Final = 100
LIST_TASK_READERS: Final = 8


class DynamoTasks:
    """`TASK#<task>` partitions: the task (`#TASK`) and its parts (`PART#<cube>`), with a TTL."""

    def __init__(self, table: DynamoTable) -> None:
        self._t = table

    def create_task(self, task: Task, parts: Sequence[TaskPart]) -> bool:
        cubes = [p.cube_id for p in parts]
        if len(set(cubes)) != len(cubes):
            raise ValueError(f"task {task.task_id!r} names a cube twice: {cubes}")
        if len(parts) + 1 > MAX_TRANSACT_ITEMS:
            raise ValueError(f"a task is written in one transaction: at most {MAX_TRANSACT_ITEMS - 1} parts")
        expires = self._t.expires()
        head = {
            "Put": {
                "TableName": self._t.name,
                "Item": {
                    "pk": attr_s(f"TASK#{task.task_id}"),
                    "sk": attr_s(TASK_SK),
                    "gsi1pk": attr_s(f"USER#{task.user_id}"),
                    "gsi1sk": attr_s(f"{task.created_at}#{task.task_id}"),
                    "body": body_attr(task.model_dump_json()),
                    "expires_at": expires,
                },
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": "pk"},
            }
        }
        part_puts = [
            {"Put": {"TableName": self._t.name, "Item": self._part_item(task.task_id, part, n, expires)}}
            for n, part in enumerate(parts)
        ]
        return self._t.transact([head, *part_puts]) is None

    def _part_item(self, task_id: str, part: TaskPart, ordinal: int, expires: Attr) -> Item:
        return {
            "pk": attr_s(f"TASK#{task_id}"),
            "sk": attr_s(f"PART#{part.cube_id}"),
            "ord": attr_n(ordinal),
            "body": body_attr(part.model_dump_json()),
            "expires_at": expires,
        }

    def get_task(self, task_id: str) -> TaskRecord | None:
        head: Item | None = None
        parts: list[Item] = []
        for raw in self._t.query(
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": "pk"},
            ExpressionAttributeValues={":pk": attr_s(f"TASK#{task_id}")},
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
            task=Task.model_validate_json(body_text(head["body"])),
            parts=[TaskPart.model_validate_json(body_text(p["body"])) for p in parts],
        )

    def list_tasks(self, user_id: str, limit: int) -> list[TaskRecord]:
        """Newest first, from the user's index partition (eventually consistent, as GSIs are)."""
        if limit <= 0:
            return []
        keys: list[Item] = []
        start: Item | None = None
        while len(keys) < limit:  # a page stops at 1 MB read: a long list takes several
            query: dict[str, object] = {"ExclusiveStartKey": start} if start else {}
            page = self._t.client.query(
                TableName=self._t.name,
                IndexName=GSI,
                KeyConditionExpression="#g = :g",
                ProjectionExpression="#gs",
                ExpressionAttributeNames={"#g": "gsi1pk", "#gs": "gsi1sk"},
                ExpressionAttributeValues={":g": attr_s(f"USER#{user_id}")},
                ScanIndexForward=False,
                Limit=limit - len(keys),
                **query,
            )
            keys += page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        # gsi1sk is `<created_at>#<task_id>`, and an ISO timestamp holds no `#`.
        ids = [i["gsi1sk"]["S"].split("#", 1)[1] for i in keys]
        if len(ids) <= 1:
            records = [self.get_task(i) for i in ids]
        else:
            with ThreadPoolExecutor(max_workers=min(LIST_TASK_READERS, len(ids))) as pool:
                records = list(pool.map(self.get_task, ids))
        return [r for r in records if r is not None]

    def put_task_part(self, task_id: str, part: TaskPart) -> None:
        key = {"pk": attr_s(f"TASK#{task_id}"), "sk": attr_s(f"PART#{part.cube_id}")}
        body = body_attr(part.model_dump_json())
        try:  # the usual case: the part was written with its task, so its existence proves the task's
            self._t.write(
                "update_item",
                Key=key,
                UpdateExpression="SET #body = :b",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#body": "body", "#pk": "pk"},
                ExpressionAttributeValues={":b": body},
            )
            return
        except self._t.condition_failed:
            pass  # a cube joining the task later (a direct producer's message), or no such task
        check_task = {
            "ConditionCheck": {
                "TableName": self._t.name,
                "Key": {"pk": attr_s(f"TASK#{task_id}"), "sk": attr_s(TASK_SK)},
                "ConditionExpression": "attribute_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": "pk"},
            }
        }
        upsert_part = {
            "Update": {
                "TableName": self._t.name,
                "Key": key,
                # A part joining later sorts after the request's parts (and after earlier joiners).
                "UpdateExpression": "SET #body = :b, #ord = if_not_exists(#ord, :o), #exp = if_not_exists(#exp, :e)",
                "ExpressionAttributeNames": {"#body": "body", "#ord": "ord", "#exp": "expires_at"},
                "ExpressionAttributeValues": {
                    ":b": body,
                    ":o": attr_n(int(self._t.clock() * 1000)),
                    ":e": self._t.expires(),
                },
            }
        }
        if self._t.transact([check_task, upsert_part]) is not None:
            raise KeyError(task_id)
