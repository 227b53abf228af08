"""Users and knowledge-base cube grants on the DynamoDB table (`UserDirectory`)."""

from __future__ import annotations

from typing import Final

from memcube.adapters.dynamodb.table import GSI, Attr, DynamoTable, attr_n, attr_s, body_attr, body_text
from memcube.domain.permissions import CubeAcl

USER_SK: Final = "#USER"
ACL_SK: Final = "#ACL"
CUBES_GSI_PK: Final = "CUBES"
"""The `gsi1` partition every cube's grants are written to (`gsi1sk` its id): `cubes_of` reads it."""


class DynamoDirectory:
    """`USER#<user>` presence items and `ACL#<cube>` grants (versioned)."""

    def __init__(self, table: DynamoTable) -> None:
        self._t = table

    def register_user(self, user_id: str) -> None:
        self._t.write("put_item", Item={"pk": attr_s(f"USER#{user_id}"), "sk": attr_s(USER_SK)})

    def is_user(self, user_id: str) -> bool:
        return self._t.get({"pk": attr_s(f"USER#{user_id}"), "sk": attr_s(USER_SK)}) is not None

    def get_cube(self, cube_id: str) -> CubeAcl | None:
        found = self._t.get({"pk": attr_s(f"ACL#{cube_id}"), "sk": attr_s(ACL_SK)})
        return CubeAcl.model_validate_json(body_text(found["body"])) if found else None

    def _put_cube(self, acl: CubeAcl, condition: str, values: dict[str, Attr] | None = None) -> bool:
        item = {"pk": attr_s(f"ACL#{acl.cube_id}"), "sk": attr_s(ACL_SK), "version": attr_n(acl.version)}
        item |= {"gsi1pk": attr_s(CUBES_GSI_PK), "gsi1sk": attr_s(acl.cube_id)}
        item["body"] = body_attr(acl.model_dump_json())
        try:
            extra = {"ExpressionAttributeValues": values} if values else {}
            self._t.write(
                "put_item",
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#pk": "pk", "#v": "version"} if values else {"#pk": "pk"},
                **extra,
            )
        except self._t.condition_failed:
            return False
        return True

    def create_cube(self, acl: CubeAcl) -> bool:
        return self._put_cube(acl, "attribute_not_exists(#pk)")

    def update_cube(self, acl: CubeAcl, expected_version: int) -> bool:
        return self._put_cube(acl, "attribute_exists(#pk) AND #v = :v", {":v": attr_n(expected_version)})

    def delete_cube(self, cube_id: str) -> bool:
        old = self._t.write(
            "delete_item", Key={"pk": attr_s(f"ACL#{cube_id}"), "sk": attr_s(ACL_SK)}, ReturnValues="ALL_OLD"
        )
        return "Attributes" in old

    def cubes_of(self, user_id: str) -> list[CubeAcl]:
        # One Query of the cubes' gsi1 partition (no scan of the table); grants are matched here.
        # A cube written before the partition existed appears once its grants next change.
        items = self._t.query(
            IndexName=GSI,
            KeyConditionExpression="#g = :g",
            ExpressionAttributeNames={"#g": "gsi1pk"},
            ExpressionAttributeValues={":g": attr_s(CUBES_GSI_PK)},
        )
        acls = [CubeAcl.model_validate_json(body_text(i["body"])) for i in items]
        mine = [a for a in acls if user_id == a.owner_id or user_id in a.readers or user_id in a.writers]
        return sorted(mine, key=lambda a: a.cube_id)
