"""What the contract suites share: the shapes they test against, builders of real domain objects,
and a controllable clock. Adapters are never imported here (conftest.py lists them)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from memcube.domain.ingest import content_hash
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import DeadLetter, MemoryItem, MemoryMetadata, SourceMessage, Task, TaskPart
from memcube.ports import SearchIndex, TaskQueue

# --- the shapes under contract -------------------------------------------------------------------


class Delivery(Protocol):
    """One received message, as a consuming queue hands it out."""

    @property
    def seq(self) -> int: ...

    @property
    def group_id(self) -> str: ...

    @property
    def body(self) -> str: ...

    @property
    def attempts(self) -> int: ...

    @property
    def blamed(self) -> bool | None: ...


class ConsumingQueue(TaskQueue, Protocol):
    """A TaskQueue the service also consumes itself (the embedded default's), with SQS FIFO rules."""

    def receive(self, max_messages: int, lease_seconds: float, *, suspects: bool = True) -> Sequence[Delivery]: ...

    def ack(self, seq: int) -> None: ...

    def retry_later(self, seq: int, delay_seconds: float) -> None: ...

    def release_all_leases(self) -> int: ...

    def release(self, seqs: Sequence[int]) -> None: ...

    def depth(self) -> int: ...

    def close(self) -> None: ...


class TextIndex(SearchIndex, Protocol):
    def text_search(self, cube_id: str, query: str, limit: int) -> list[str]: ...


@dataclass
class QueueUnderTest:
    adapter: TaskQueue
    drain: Callable[[], list[QueuedAdd]]
    """Take (consume) every message the queue currently holds for delivery, in delivery order."""


def close(adapter: object) -> None:
    """Close an adapter that holds a connection; in-memory ones have nothing to close."""
    closer = getattr(adapter, "close", None)
    if callable(closer):
        closer()


class FakeClock:
    """Seconds since the epoch, moved only by the test."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- builders of real domain objects -------------------------------------------------------------


def day(n: int) -> str:
    """An ISO timestamp `n` days into 2025, as the domain writes them (ms, Z)."""
    return f"2025-01-{n:02d}T00:00:00.000Z"


def memory(
    memory_id: str,
    text: str,
    cube: str = "cube-a",
    created_at: str = day(1),
    *,
    digest: str | None = None,
) -> MemoryItem:
    return MemoryItem(
        id=memory_id,
        memory=text,
        metadata=MemoryMetadata(
            user_id="u1",
            session_id="s1",
            cube_id=cube,
            memory_type="LongTermMemory",
            key=text[:20],
            tags=["mode:fast", "t1"],
            created_at=created_at,
            updated_at=created_at,
            content_hash=digest or content_hash(text),
            task_id="task-1",
            embedding=[0.1, 0.2, 0.3],
        ),
    )


def expiring(memory_id: str, text: str, expires_at: int | None, cube: str = "cube-a") -> MemoryItem:
    """`memory(...)` expiring at `expires_at` (epoch seconds; None: never)."""
    item = memory(memory_id, text, cube=cube)
    return item.model_copy(update={"metadata": item.metadata.model_copy(update={"expires_at": expires_at})})


def task(
    task_id: str, user: str = "u1", cubes: Sequence[str] = ("c1",), created_at: str = day(1)
) -> tuple[Task, list[TaskPart]]:
    return (
        Task(task_id=task_id, user_id=user, cube_ids=list(cubes), fingerprint="f" * 64, created_at=created_at),
        [TaskPart(cube_id=c, updated_at=created_at) for c in cubes],
    )


def dead_letter(n: int) -> DeadLetter:
    return DeadLetter(
        message_id=f"q{n}",
        body='{"v": 1}',
        reason=f"reason {n}",
        task_id=f"t{n}",
        cube_id="c1",
        attempts=n,
        failed_at=day(n + 1),
    )


def queued(task_id: str, cube: str, text: str | None = None) -> QueuedAdd:
    return QueuedAdd(
        task_id=task_id,
        cube_id=cube,
        user_id="u1",
        messages=[SourceMessage(type="chat", role="user", content=text or f"{task_id} for {cube}")],
        submitted_at=day(1),
    )


def task_ids(messages: Sequence[QueuedAdd], cube: str | None = None) -> list[str]:
    return [m.task_id for m in messages if cube is None or m.cube_id == cube]


R = TypeVar("R")


def race(n: int, action: Callable[[int], R]) -> list[R]:
    """Run action(0..n-1) on n threads released together; the results in thread order."""
    results: list[R | None] = [None] * n
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return [r for r in results if r is not None]
