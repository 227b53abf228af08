"""AWS test support: the DynamoDB table built from template.yaml's own definition (so the tests'
schema cannot drift from the deployment), and moto-backed stores for the contract suite."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import yaml

from memcube.adapters.dynamodb import open_stores
from memcube.adapters.dynamodb.table import DynamoTable
from memcube.ports import Stores

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML; intrinsic functions (!Ref, !If, ...) load as None."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def table_definition() -> dict[str, Any]:
    resources = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)["Resources"]
    props: dict[str, Any] = resources["Table"]["Properties"]
    return {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"],
        "BillingMode": props["BillingMode"],
    }


def create_table(client: Any, name: str) -> None:
    client.create_table(TableName=name, **table_definition())
    client.get_waiter("table_exists").wait(TableName=name)


class _Serialized:
    """moto's backend mutates shared dicts without a lock (transact_write_items crashes under
    concurrent calls), so calls into it take turns; real concurrency is proven on DynamoDB Local."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.RLock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name == "exceptions":
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


def moto_stores() -> Stores:
    """The DynamoDB stores on moto's in-process DynamoDB, torn down by their close()."""
    import boto3
    from moto import mock_aws

    mock = mock_aws()
    mock.start()
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_table(client, "memcube-test")
    stores = open_stores(DynamoTable("memcube-test", _Serialized(client)))
    return dataclasses.replace(stores, close=mock.stop)
