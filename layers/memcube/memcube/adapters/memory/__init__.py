"""In-memory adapters of every port: a TEST BACKEND, never a deployment (nothing persists, one
process only). Unit tests, the contract suites and the add-overhead benchmark use them; they keep
the same invariants as the real adapters (they pass the same contract suites), and mypy checks
each against its port: the stores in `open_stores` below, the queue and index where `wiring` builds
them for `backend="memory"`."""

from __future__ import annotations

from memcube.adapters.memory.counters import InMemoryCounter
from memcube.adapters.memory.dead_letters import InMemoryDeadLetters
from memcube.adapters.memory.directory import InMemoryDirectory
from memcube.adapters.memory.erasures import InMemoryErasureMarks
from memcube.adapters.memory.idempotency import InMemoryIdempotencyKeys
from memcube.adapters.memory.index import InMemoryIndex
from memcube.adapters.memory.keys import InMemoryKeys
from memcube.adapters.memory.memories import InMemoryMemories
from memcube.adapters.memory.queue import InMemoryQueue
from memcube.adapters.memory.tasks import InMemoryTasks
from memcube.ports import Stores

__all__ = ["InMemoryIndex", "InMemoryQueue", "open_stores"]


def open_stores() -> Stores:
    """Every storage port, empty, in this process's memory."""
    return Stores(
        tasks=InMemoryTasks(),
        idempotency=InMemoryIdempotencyKeys(),
        dead_letters=InMemoryDeadLetters(),
        memories=InMemoryMemories(),
        erasures=InMemoryErasureMarks(),
        directory=InMemoryDirectory(),
        api_keys=InMemoryKeys(),
        counter=InMemoryCounter(),
        close=lambda: None,
    )
