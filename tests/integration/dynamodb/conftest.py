"""moto tier: the DynamoDB adapters on moto's in-process DynamoDB (`mock_aws`), a fresh table per test built
from template.yaml. The table's client records every call, and after each test every expression
it sent is checked for bare attribute names (real DynamoDB rejects reserved words moto accepts)."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from memcube.adapters.dynamodb import open_stores
from memcube.adapters.dynamodb.table import DynamoTable
from memcube.ports import Stores
from tests.integration.dynamodb.table import create_table

EXPRESSION_WORDS = frozenset(
    {
        "and", "or", "not", "between", "in", "set", "remove", "add", "delete",
        "attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains", "size",
        "if_not_exists", "list_append",
    }
)  # fmt: skip
"""Every other bare word in an expression is an attribute name, which must be a #placeholder."""
TOKEN = re.compile(r"[#:][A-Za-z0-9_]+|[A-Za-z_][A-Za-z0-9_]*")


def expression_problems(operation: str, params: dict[str, Any]) -> list[str]:
    """What real DynamoDB would reject (or what would break on a reserved word) in one call."""
    groups = [params]
    if operation == "transact_write_items":
        groups = [op for entry in params["TransactItems"] for op in entry.values()]
    problems = []
    for group in groups:
        expressions = [v for k, v in group.items() if k.endswith("Expression")]
        names = group.get("ExpressionAttributeNames", {})
        values = group.get("ExpressionAttributeValues", {})
        tokens = [t for e in expressions for t in TOKEN.findall(e)]
        for token in tokens:
            if token.startswith("#") and token not in names:
                problems.append(f"{operation}: undefined name {token}")
            elif token.startswith(":") and token not in values:
                problems.append(f"{operation}: undefined value {token}")
            elif token[0] not in "#:" and token.lower() not in EXPRESSION_WORDS:
                problems.append(f"{operation}: bare attribute name {token!r} in {expressions}")
        unused = (set(names) | set(values)) - set(tokens)
        if unused:
            problems.append(f"{operation}: unused placeholders {sorted(unused)} (real DynamoDB rejects them)")
    return problems


@dataclass
class Recorded:
    """A client that records each call and makes calls take turns: moto's backend mutates shared
    dicts without a lock. Real concurrency is proven on DynamoDB Local."""

    client: Any
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def exceptions(self) -> Any:
        return self.client.exceptions

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(**params: Any) -> Any:
            with self.lock:
                self.calls.append((name, params))
                return method(**params)

        return call

    def close(self) -> None:
        return None

    def operations(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture(scope="module")
def moto_dynamodb() -> Iterator[Any]:
    """One mock_aws per module (starting it per test costs more than the tests)."""
    with mock_aws():
        yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture
def ddb(moto_dynamodb: Any) -> Any:
    """The raw moto client."""
    return moto_dynamodb


@pytest.fixture
def table_name(ddb: Any) -> Iterator[str]:
    """A fresh table per test, from template.yaml's definition."""
    name = f"memcube-{uuid.uuid4().hex[:10]}"
    create_table(ddb, name)
    yield name
    ddb.delete_table(TableName=name)


@pytest.fixture
def recorded(ddb: Any, table_name: str) -> Iterator[Recorded]:
    """The client the stores use; every expression they sent is checked after the test."""
    client = Recorded(ddb)
    yield client
    problems = [p for name, params in client.calls for p in expression_problems(name, params)]
    assert problems == []


@pytest.fixture
def make_stores(recorded: Recorded, table_name: str) -> Any:
    def make(**kwargs: Any) -> Stores:
        return open_stores(DynamoTable(table_name, recorded, **kwargs))

    return make
