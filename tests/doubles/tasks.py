"""`TaskStore` in a dict: a test double."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from memcube.domain.model import Task, TaskPart, TaskRecord


class InMemoryTasks:
    """Tasks and their parts, copied in and out (no caller's object is aliased)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._parts: dict[str, dict[str, TaskPart]] = {}

    def clear(self) -> None:
        """Forget every task: a long benchmark keeps the heap as a deployed function's, whose
        tasks live in DynamoDB."""
        with self._lock:
            self._tasks.clear()
            self._parts.clear()

    def create_task(self, task: Task, parts: Sequence[TaskPart]) -> bool:
        cubes = [p.cube_id for p in parts]
        if len(set(cubes)) != len(cubes):
            raise ValueError(f"task {task.task_id!r} names a cube twice: {cubes}")
        with self._lock:
            if task.task_id in self._tasks:
                return False
            self._tasks[task.task_id] = task.model_copy(deep=True)
            self._parts[task.task_id] = {p.cube_id: p.model_copy(deep=True) for p in parts}
            return True

    def get_task(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return None
            parts = [p.model_copy(deep=True) for p in self._parts[task_id].values()]
            return TaskRecord(task=task.model_copy(deep=True), parts=parts)

    def list_tasks(self, user_id: str, limit: int) -> list[TaskRecord]:
        with self._lock:
            mine = sorted((t for t in self._tasks.values() if t.user_id == user_id), key=lambda t: t.created_at)
            ids = [t.task_id for t in reversed(mine)][:limit]
        records = [self.get_task(i) for i in ids]
        return [r for r in records if r is not None]

    def put_task_part(self, task_id: str, part: TaskPart) -> None:
        with self._lock:
            if task_id not in self._tasks:
                raise KeyError(task_id)
            self._parts[task_id][part.cube_id] = part.model_copy(deep=True)
