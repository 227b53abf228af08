"""Every adapter of every port, listed once per port. Each contract test runs once per adapter.

To put a new adapter under contract (DynamoDB, SQS FIFO, OpenSearch, a neural embedder, ...),
add ONE entry to the port's dict below: a short name (it becomes the test id) and a factory that
builds a fresh, empty adapter. Factories that take a `Path` get a private temporary directory for
their files (or to derive a unique table/queue/index name from); a factory whose server or
emulator is not available calls `pytest.skip(...)`. Nothing else changes: the suites pick the
adapter up through the fixtures at the end of this file.

- STORES_FACTORIES       the system of record's ports of one backend, as one `Stores` (TaskStore,
                         IdempotencyKeys, DeadLetterStore, MemoryStore, ErasureMarks, UserDirectory,
                         KeyStore, Counter); each port's tests take that port's fixture
                         (test_store_contract.py)
                         (`persistent=True`: building again on the same directory finds the data:
                         the reopen tests run on it)
- QUEUE_FACTORIES        TaskQueue `send`, with a `drain` that takes what was delivered
- CONSUMING_QUEUE_FACTORIES  queues the service consumes itself (receive/ack/retry_later/leases)
- INDEX_FACTORIES        SearchIndex (upsert/delete/ids); TEXT_INDEX_FACTORIES adds `text_search`
- EMBEDDER_FACTORIES     Embedder

A known bug of one adapter is marked on the test with `@pytest.mark.xfail_for("<name>", reason=...)`:
a strict xfail for that adapter only, so the fix turns it into a failure to remove the mark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from memcube.adapters.hash_embedder import HashEmbedder
from memcube.domain.messages import QueuedAdd
from memcube.ports import Embedder, SearchIndex, Stores
from memcube_local import sqlite
from memcube_local.minilm import MiniLMEmbedder
from memcube_local.sqlite.index import SqliteIndex
from memcube_local.sqlite.queue import SqliteQueue
from tests import doubles as memory
from tests.aws_support import moto_stores
from tests.contract.support import ConsumingQueue, FakeClock, QueueUnderTest, TextIndex, close
from tests.doubles import InMemoryIndex, InMemoryQueue

T = TypeVar("T")


@dataclass(frozen=True)
class Factory(Generic[T]):
    build: Callable[[Path], T]
    """A fresh, empty adapter keeping its files (if any) in the given directory."""
    persistent: bool = False
    """Building again on the same directory finds everything the closed first instance wrote."""


@dataclass(frozen=True)
class QueueFactory(Generic[T]):
    build: Callable[[Path], T]
    drain: Callable[[T], list[QueuedAdd]]
    """Take (consume) every message the queue currently holds for delivery, in delivery order."""


def _drain_recorded(queue: InMemoryQueue) -> list[QueuedAdd]:
    taken = list(queue.sent)
    queue.sent.clear()
    return taken


def _drain_consuming(queue: ConsumingQueue) -> list[QueuedAdd]:
    taken: list[QueuedAdd] = []
    while batch := queue.receive(10, lease_seconds=60):
        for delivery in batch:
            taken.append(QueuedAdd.model_validate_json(delivery.body))
            queue.ack(delivery.seq)
    return taken


STORES_FACTORIES: dict[str, Factory[Stores]] = {
    "memory": Factory(lambda _: memory.open_stores()),
    "sqlite": Factory(lambda d: sqlite.open_stores(d / "store.db"), persistent=True),
    "dynamodb-moto": Factory(lambda _: moto_stores()),
}
"""DynamoDB Local runs this same suite in tests/realserver/test_dynamodb_local.py."""

QUEUE_FACTORIES: dict[str, QueueFactory[Any]] = {
    "memory": QueueFactory(lambda _: InMemoryQueue(), _drain_recorded),
    "sqlite": QueueFactory(lambda d: SqliteQueue(d / "queue.db"), _drain_consuming),
}

CONSUMING_QUEUE_FACTORIES: dict[str, Callable[[Path, FakeClock], ConsumingQueue]] = {
    "sqlite": lambda d, clock: SqliteQueue(d / "queue.db", clock=clock),
}
"""Durable by definition: opening again on the same directory finds the queue."""

INDEX_FACTORIES: dict[str, Factory[SearchIndex]] = {
    "memory": Factory(lambda _: InMemoryIndex()),
    "sqlite": Factory(lambda d: SqliteIndex(d / "index.db"), persistent=True),
}

TEXT_INDEX_FACTORIES: dict[str, Factory[TextIndex]] = {
    "sqlite": Factory(lambda d: SqliteIndex(d / "index.db"), persistent=True),
}

EMBEDDER_FACTORIES: dict[str, Callable[[], Embedder]] = {
    "hash": lambda: HashEmbedder(384),
    "minilm": MiniLMEmbedder,
}
"""MiniLM instances share one model per process: it loads once per session, on first use."""


# --- known bugs: a strict xfail for one adapter ----------------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        for mark in item.iter_markers("xfail_for"):
            if mark.args[0] in callspec.params.values():
                item.add_marker(pytest.mark.xfail(reason=mark.kwargs["reason"], strict=True))


# --- fixtures -------------------------------------------------------------------------------------


def _fresh(factories: dict[str, Factory[T]], request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[T]:
    """The parametrized adapter, built fresh for one test and closed after it."""
    adapter = factories[request.param].build(tmp_path)
    yield adapter
    close(adapter)


def _opener(build: Callable[[], T]) -> tuple[Callable[[], T], Callable[[], None]]:
    """Open adapters on demand (again on the same directory, to test reopening); close them all."""
    opened: list[T] = []

    def open_() -> T:
        adapter = build()
        opened.append(adapter)
        return adapter

    def close_all() -> None:
        for adapter in opened:
            close(adapter)

    return open_, close_all


@pytest.fixture(params=list(STORES_FACTORIES))
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """A fresh, empty system of record of one backend: every storage port over one table or file."""
    yield from _fresh(STORES_FACTORIES, request, tmp_path)


@pytest.fixture(params=[name for name, f in STORES_FACTORIES.items() if f.persistent])
def open_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Stores]]:
    """Opens a persistent backend's stores on the same directory each time it is called."""
    open_, close_all = _opener(lambda: STORES_FACTORIES[request.param].build(tmp_path))
    yield open_
    close_all()


@pytest.fixture(params=list(QUEUE_FACTORIES))
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueUnderTest]:
    factory = QUEUE_FACTORIES[request.param]
    adapter = factory.build(tmp_path)
    yield QueueUnderTest(adapter, lambda: factory.drain(adapter))
    close(adapter)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=list(CONSUMING_QUEUE_FACTORIES))
def open_consuming_queue(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[[], ConsumingQueue]]:
    """Opens the queue on the same directory (and clock) each time it is called."""
    open_, close_all = _opener(lambda: CONSUMING_QUEUE_FACTORIES[request.param](tmp_path, clock))
    yield open_
    close_all()


@pytest.fixture
def consuming_queue(open_consuming_queue: Callable[[], ConsumingQueue]) -> ConsumingQueue:
    return open_consuming_queue()


@pytest.fixture(params=list(INDEX_FACTORIES))
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchIndex]:
    yield from _fresh(INDEX_FACTORIES, request, tmp_path)


@pytest.fixture(params=[name for name, f in INDEX_FACTORIES.items() if f.persistent])
def open_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], SearchIndex]]:
    open_, close_all = _opener(lambda: INDEX_FACTORIES[request.param].build(tmp_path))
    yield open_
    close_all()


@pytest.fixture(params=list(TEXT_INDEX_FACTORIES))
def text_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TextIndex]:
    yield from _fresh(TEXT_INDEX_FACTORIES, request, tmp_path)


@pytest.fixture(params=list(EMBEDDER_FACTORIES))
def embedder_factory(request: pytest.FixtureRequest) -> Callable[[], Embedder]:
    """Builds a new instance of one embedder each call (to compare instances)."""
    return EMBEDDER_FACTORIES[request.param]


@pytest.fixture
def embedder(embedder_factory: Callable[[], Embedder]) -> Embedder:
    return embedder_factory()
