"""A conversation's messages on the DynamoDB table (`MessageLog`).

| record | pk | sk | other attributes |
|---|---|---|---|
| message | `CONV#<user>` | `MSG#<session>#<seq>#<message id>` | `body` |
| session | `CONV#<user>` | `SESSION#<session>` | `latest` (seq); `gsi1pk=CONVS#<user>`, `gsi1sk=<latest>#<session>` |

A user's conversations share one partition (one person's chat is far below a partition's write
rate): a session's last N messages are one Query on the `MSG#<session>#` prefix read backwards,
and the user's most recent sessions one Query of `gsi1` read backwards. Ids hold no `#`, so a
session's prefix never matches another session. A repeated message id is a put of the same key
(the same seq): it overwrites, never doubles.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any, Final

from memcube.adapters.dynamodb.table import GSI, DynamoTable, Item, attr_s, backoff, body_attr, body_text
from memcube.domain.conversation import ConversationMessage

BATCH_WRITE: Final = 25


def _pk(user_id: str) -> dict[str, str]:
    return attr_s(f"CONV#{user_id}")


class DynamoMessages:
    """`CONV#<user>` partitions of messages and session markers."""

    def __init__(self, table: DynamoTable) -> None:
        self._t = table

    def append_messages(self, messages: Sequence[ConversationMessage]) -> None:
        puts = [
            {
                "pk": _pk(m.user_id),
                "sk": attr_s(f"MSG#{m.session_id}#{m.seq}#{m.message_id}"),
                "body": body_attr(m.model_dump_json()),
            }
            for m in messages
        ]
        self._batch([{"PutRequest": {"Item": p}} for p in puts])
        latest: dict[tuple[str, str], str] = {}
        for m in messages:
            key = (m.user_id, m.session_id)
            latest[key] = max(latest.get(key, ""), m.seq)
        for (user_id, session_id), seq in latest.items():
            self._touch(user_id, session_id, seq)

    def _touch(self, user_id: str, session_id: str, seq: str) -> None:
        """Move the session's marker to `seq` unless it is already later (a concurrent append)."""
        with contextlib.suppress(self._t.condition_failed):  # already at a later message
            self._t.write(
                "put_item",
                Item={
                    "pk": _pk(user_id),
                    "sk": attr_s(f"SESSION#{session_id}"),
                    "latest": attr_s(seq),
                    "gsi1pk": attr_s(f"CONVS#{user_id}"),
                    "gsi1sk": attr_s(f"{seq}#{session_id}"),
                },
                ConditionExpression="attribute_not_exists(#pk) OR #l < :seq",
                ExpressionAttributeNames={"#pk": "pk", "#l": "latest"},
                ExpressionAttributeValues={":seq": attr_s(seq)},
            )

    def recent_messages(self, user_id: str, session_id: str, limit: int) -> list[ConversationMessage]:
        if limit <= 0:
            return []
        response = self._t.client.query(
            TableName=self._t.name,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
            ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
            ExpressionAttributeValues={":pk": _pk(user_id), ":prefix": attr_s(f"MSG#{session_id}#")},
            ScanIndexForward=False,
            Limit=limit,
            ConsistentRead=True,
        )
        items: list[Item] = response.get("Items", [])
        return [ConversationMessage.model_validate_json(body_text(i["body"])) for i in reversed(items)]

    def recent_sessions(self, user_id: str, limit: int) -> list[str]:
        if limit <= 0:
            return []
        response = self._t.client.query(
            TableName=self._t.name,
            IndexName=GSI,
            KeyConditionExpression="#g = :g",
            ExpressionAttributeNames={"#g": "gsi1pk"},
            ExpressionAttributeValues={":g": attr_s(f"CONVS#{user_id}")},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [str(i["sk"]["S"]).removeprefix("SESSION#") for i in response.get("Items", [])]

    def delete_messages(self, user_id: str, session_id: str | None) -> int:
        prefix = "MSG#" if session_id is None else f"MSG#{session_id}#"
        messages = self._keys(user_id, prefix)
        markers = self._keys(user_id, "SESSION#" if session_id is None else f"SESSION#{session_id}")
        self._batch([{"DeleteRequest": {"Key": k}} for k in messages + markers])
        return len(messages)

    def _keys(self, user_id: str, prefix: str) -> list[Item]:
        items = self._t.query(
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
            ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
            ExpressionAttributeValues={":pk": _pk(user_id), ":prefix": attr_s(prefix)},
            ProjectionExpression="#pk, #sk",
            ConsistentRead=True,
        )
        return [{"pk": i["pk"], "sk": i["sk"]} for i in items]

    def _batch(self, requests: list[dict[str, Any]]) -> None:
        """BatchWriteItem in chunks of 25, resending what DynamoDB leaves unprocessed (throttled)."""
        for start in range(0, len(requests), BATCH_WRITE):
            pending: dict[str, Any] = {self._t.name: requests[start : start + BATCH_WRITE]}
            attempt = 0
            while pending:
                response = self._t.client.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if pending:
                    time.sleep(backoff(attempt))
                    attempt += 1
