"""The store's table, built from template.yaml's own definition (so test schemas cannot drift from
the deployment), or from FALLBACK while the template has no DynamoDB table."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"

FALLBACK: dict[str, Any] = {
    "BillingMode": "PAY_PER_REQUEST",
    "AttributeDefinitions": [
        {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gsi1pk", "gsi1sk")
    ],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "gsi1",
            "KeySchema": [
                {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
}


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]
    """Reads CloudFormation YAML: intrinsic functions (!Ref, !GetAtt, !If, ...) load as None."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@cache
def template_table() -> dict[str, Any] | None:
    """The Properties of template.yaml's DynamoDB table (`Table`, else the only one), if any."""
    if not TEMPLATE.exists():
        return None
    resources = (yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader) or {}).get("Resources") or {}
    tables = {name: r for name, r in resources.items() if (r or {}).get("Type") == "AWS::DynamoDB::Table"}
    chosen = tables.get("Table") or (next(iter(tables.values())) if len(tables) == 1 else None)
    if chosen is None:
        return None
    props: dict[str, Any] = chosen.get("Properties") or {}
    return props  # cached: callers must not mutate it


def table_definition() -> dict[str, Any]:
    """The table's properties as this tier uses them: the template's, else FALLBACK."""
    return template_table() or FALLBACK


def create_table(client: Any, name: str) -> None:
    """Create the table (keys, GSIs, billing, TTL) and wait until it is active."""
    props = table_definition()
    indexes = [
        {k: gsi[k] for k in ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput") if k in gsi}
        for gsi in props.get("GlobalSecondaryIndexes") or []
    ]
    params: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode") or "PAY_PER_REQUEST",
    }
    if indexes:
        params["GlobalSecondaryIndexes"] = indexes
    if params["BillingMode"] == "PROVISIONED":
        params["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    client.create_table(**params)
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
