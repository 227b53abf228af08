"""Small builders of domain objects for the contract suites."""

from __future__ import annotations

from memcube.domain.ingest import content_hash
from memcube.domain.model import MemoryItem, MemoryMetadata, Task, TaskPart


def memory(memory_id: str, text: str, cube: str = "cube-a", created_at: str = "2025-01-01T00:00:00.000Z") -> MemoryItem:
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
            content_hash=content_hash(text),
            task_id="task-1",
            embedding=[0.1, 0.2, 0.3],
        ),
    )


def task(
    task_id: str, user: str = "u1", cubes: tuple[str, ...] = ("c1",), created_at: str = "2025-01-01T00:00:00.000Z"
) -> tuple[Task, list[TaskPart]]:
    return (
        Task(task_id=task_id, user_id=user, cube_ids=list(cubes), fingerprint="f" * 64, created_at=created_at),
        [TaskPart(cube_id=c, updated_at=created_at) for c in cubes],
    )
