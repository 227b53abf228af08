"""Rate-limit windows on the DynamoDB table (`Counter`)."""

from __future__ import annotations

from memcube.adapters.dynamodb.table import DynamoTable, attr_n, attr_s


class DynamoCounter:
    """`RATE#<principal key>` items, one per window start, removed by TTL."""

    def __init__(self, table: DynamoTable) -> None:
        self._t = table

    def hit(self, key: str, limit: int, window_start: int, window_seconds: int) -> bool:
        """One atomic conditional increment, shared by every Lambda instance; TTL removes the item."""
        try:
            self._t.write(
                "update_item",
                Key={"pk": attr_s(f"RATE#{key}"), "sk": attr_s(str(window_start))},
                UpdateExpression="ADD #u :one SET #e = :ends",
                ConditionExpression="attribute_not_exists(#u) OR #u < :limit",
                ExpressionAttributeNames={"#u": "used", "#e": "expires_at"},
                ExpressionAttributeValues={
                    ":one": attr_n(1),
                    ":limit": attr_n(limit),
                    ":ends": attr_n(window_start + window_seconds + 3600),
                },
            )
        except self._t.condition_failed:
            return False
        return True
