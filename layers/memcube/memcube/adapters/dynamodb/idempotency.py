"""Client idempotency keys on the DynamoDB table (`IdempotencyKeys`)."""

from __future__ import annotations

from typing import Final

from memcube.adapters.dynamodb.table import DynamoTable, attr_n, attr_s

IDEM_SK: Final = "#IDEM"


class DynamoIdempotencyKeys:
    """`IDEM#<key>` items binding a key to its task until their TTL."""

    def __init__(self, table: DynamoTable) -> None:
        self._t = table

    def claim_idempotency_key(self, key: str, task_id: str) -> str:
        item_key = {"pk": attr_s(f"IDEM#{key}"), "sk": attr_s(IDEM_SK)}
        try:
            self._t.write(
                "put_item",
                Item={**item_key, "task_id": attr_s(task_id), "expires_at": self._t.expires()},
                # TTL deletes lazily (within days): an expired binding must not outlive its TTL.
                ConditionExpression="attribute_not_exists(#pk) OR #exp < :now",
                ExpressionAttributeNames={"#pk": "pk", "#exp": "expires_at"},
                ExpressionAttributeValues={":now": attr_n(int(self._t.clock()))},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._t.condition_failed as exc:
            bound = exc.response.get("Item") or self._t.get(item_key)
            if bound is None:  # never deleted except by TTL, long after it could have been bound
                raise RuntimeError(f"idempotency key {key!r} is bound but cannot be read") from exc
            return str(bound["task_id"]["S"])
        return task_id
