"""Factories of every adapter, per port. Each contract test runs once per factory.

To put a new adapter under contract, add one entry to the port's dict: a name and a callable
that builds a fresh, empty adapter (it may use `tmp_path`, and may `pytest.skip` when its server
is not available). Real-server adapters register from their own tier's conftest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memcube.adapters.hash_embedder import HashEmbedder
from memcube.adapters.inmemory import InMemoryIndex, InMemoryStore
from memcube.adapters.sqlite_index import SqliteIndex
from memcube.adapters.sqlite_store import SqliteStore
from tests.aws_support import MotoDynamoStore

Factory = Callable[[Path], Any]

STORE_FACTORIES: dict[str, Factory] = {
    "memory": lambda _: InMemoryStore(),
    "sqlite": lambda tmp: SqliteStore(tmp / "store.db"),
    "dynamodb-moto": lambda _: MotoDynamoStore(),
}
"""Adapters implementing TaskStore + MemoryStore + UserDirectory."""

INDEX_FACTORIES: dict[str, Factory] = {
    "memory": lambda _: InMemoryIndex(),
    "sqlite": lambda tmp: SqliteIndex(tmp / "index.db"),
}

EMBEDDER_FACTORIES: dict[str, Factory] = {
    "hash": lambda _: HashEmbedder(384),
}


def _built(request: pytest.FixtureRequest, tmp_path: Path, factories: dict[str, Factory]) -> Iterator[Any]:
    adapter = factories[request.param](tmp_path)
    yield adapter
    close = getattr(adapter, "close", None)
    if close is not None:
        close()


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    yield from _built(request, tmp_path, STORE_FACTORIES)


@pytest.fixture(params=sorted(INDEX_FACTORIES))
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    yield from _built(request, tmp_path, INDEX_FACTORIES)


@pytest.fixture(params=sorted(EMBEDDER_FACTORIES))
def embedder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    yield from _built(request, tmp_path, EMBEDDER_FACTORIES)
