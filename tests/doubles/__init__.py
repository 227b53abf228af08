"""In-memory adapters of every port: the tests' own backend, never a deployment (nothing persists,
one process only), so they live with the tests and not in any package that ships. Unit tests, the
contract suites and the add-overhead benchmark use them; they keep the same invariants as the real
adapters (they pass the same contract suites), and mypy checks each against its port: the stores in
`open_stores`, the queue and index where `doubles_container` passes them to the layer's container
(which builds no adapter for `backend="memory"`: the doubles are always passed in)."""

from __future__ import annotations

from memcube.ports import Stores
from memcube.settings import Settings
from memcube.wiring import Container
from tests.doubles.counters import InMemoryCounter
from tests.doubles.dead_letters import InMemoryDeadLetters
from tests.doubles.directory import InMemoryDirectory
from tests.doubles.erasures import InMemoryErasureMarks
from tests.doubles.idempotency import InMemoryIdempotencyKeys
from tests.doubles.index import InMemoryIndex
from tests.doubles.keys import InMemoryKeys
from tests.doubles.memories import InMemoryMemories
from tests.doubles.messages import InMemoryMessages
from tests.doubles.queue import InMemoryQueue
from tests.doubles.tasks import InMemoryTasks

__all__ = ["InMemoryIndex", "InMemoryQueue", "doubles_container", "open_stores"]


def doubles_container(settings: Settings | None = None, **overrides: object) -> Container:
    """The layer's container on fresh doubles (`backend="memory"`: the hash embedder, no auth by
    default); `overrides` replace any of them or add other adapters and services."""
    adapters: dict[str, object] = {"stores": open_stores(), "queue": InMemoryQueue(), "index": InMemoryIndex()}
    return Container(settings or Settings(backend="memory"), **(adapters | overrides))


def open_stores() -> Stores:
    """Every storage port, empty, in this process's memory."""
    memories = InMemoryMemories()
    return Stores(
        tasks=InMemoryTasks(),
        idempotency=InMemoryIdempotencyKeys(),
        dead_letters=InMemoryDeadLetters(),
        memories=memories,
        erasures=InMemoryErasureMarks(),
        directory=InMemoryDirectory(),
        api_keys=InMemoryKeys(),
        counter=InMemoryCounter(),
        messages=InMemoryMessages(),
        close=lambda: None,
        expiring=memories,
    )
