"""Erasure marks on the DynamoDB table (`ErasureMarks`)."""

from __future__ import annotations

import contextlib
from typing import Final

from memcube.adapters.dynamodb.table import DynamoTable, attr_s

WHOLE_CUBE_SK: Final = "#CUBE"


class DynamoErasureMarks:
    """`ERASED#<cube>` items: `#CUBE` for the whole cube, `USER#<user>` for one user's data."""

    def __init__(self, table: DynamoTable) -> None:
        self._t = table

    def mark_erased(self, cube_id: str, user_id: str | None, at: str) -> None:
        key = {"pk": attr_s(f"ERASED#{cube_id}"), "sk": attr_s(f"USER#{user_id}" if user_id else WHOLE_CUBE_SK)}
        with contextlib.suppress(self._t.condition_failed):  # a later mark won
            self._t.write(
                "update_item",
                Key=key,
                UpdateExpression="SET #at = :at",
                ConditionExpression="attribute_not_exists(#at) OR #at < :at",  # keep the latest mark
                ExpressionAttributeNames={"#at": "erased_at"},
                ExpressionAttributeValues={":at": attr_s(at)},
            )

    def erased_at(self, cube_id: str, user_id: str) -> str | None:
        pk = attr_s(f"ERASED#{cube_id}")
        marks = self._t.batch_get(
            [{"pk": pk, "sk": attr_s(WHOLE_CUBE_SK)}, {"pk": pk, "sk": attr_s(f"USER#{user_id}")}]
        )
        found = [str(m["erased_at"]["S"]) for m in marks if "erased_at" in m]
        return max(found) if found else None
