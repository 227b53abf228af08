"""API keys on the DynamoDB table (`KeyStore`)."""

from __future__ import annotations

import contextlib
from typing import Final

from memcube.adapters.dynamodb.table import GSI, Attr, DynamoTable, attr_s, body_attr, body_text
from memcube.domain.auth import ApiKey

KEY_SK: Final = "#APIKEY"
KEYS_GSI_PK: Final = "APIKEYS"
"""One GSI partition lists every key (keys are created by operators, a handful per user): a
query, not a scan, and a user's keys are the `<user>#` prefix of its sort key (ids hold no `#`)."""


class DynamoKeys:
    """`APIKEY#<key id>` items, listed through the `APIKEYS` partition of `gsi1`."""

    def __init__(self, table: DynamoTable) -> None:
        self._t = table

    def put_key(self, key: ApiKey) -> bool:
        try:
            self._t.write(
                "put_item",
                Item={
                    "pk": attr_s(f"APIKEY#{key.key_id}"),
                    "sk": attr_s(KEY_SK),
                    "gsi1pk": attr_s(KEYS_GSI_PK),
                    "gsi1sk": attr_s(f"{key.user_id}#{key.created_at}#{key.key_id}"),
                    "body": body_attr(key.model_dump_json()),
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": "pk"},
            )
        except self._t.condition_failed:
            return False
        return True

    def get_key(self, key_id: str) -> ApiKey | None:
        found = self._t.get({"pk": attr_s(f"APIKEY#{key_id}"), "sk": attr_s(KEY_SK)})
        return ApiKey.model_validate_json(body_text(found["body"])) if found else None

    def list_keys(self, user_id: str | None) -> list[ApiKey]:
        condition = "#g = :g"
        values: dict[str, Attr] = {":g": attr_s(KEYS_GSI_PK)}
        if user_id is not None:
            condition += " AND begins_with(#gs, :user)"
            values[":user"] = attr_s(f"{user_id}#")
        items = self._t.query(
            IndexName=GSI,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#g": "gsi1pk", "#gs": "gsi1sk"} if user_id else {"#g": "gsi1pk"},
            ExpressionAttributeValues=values,
        )
        keys = [ApiKey.model_validate_json(body_text(i["body"])) for i in items]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def revoke_key(self, key_id: str, at: str) -> bool:
        key = self.get_key(key_id)
        if key is None:
            return False
        if key.revoked_at is not None:
            return True
        revoked = key.model_copy(update={"revoked_at": at})
        with contextlib.suppress(self._t.condition_failed):  # revoked meanwhile
            self._t.write(
                "update_item",
                Key={"pk": attr_s(f"APIKEY#{key_id}"), "sk": attr_s(KEY_SK)},
                UpdateExpression="SET #b = :b",
                ConditionExpression="attribute_exists(#pk) AND #b = :old",
                ExpressionAttributeNames={"#b": "body", "#pk": "pk"},
                ExpressionAttributeValues={
                    ":b": body_attr(revoked.model_dump_json()),
                    ":old": body_attr(key.model_dump_json()),
                },
            )
        return True
