"""Tasks and their per-cube parts in the store file (`TaskStore`)."""

from __future__ import annotations

from collections.abc import Sequence

from memcube.domain.model import Task, TaskPart, TaskRecord
from memcube_local.sqlite.db import SqliteDb


class SqliteTasks:
    """Tables `tasks` and `task_parts` (parts in insertion order)."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    def create_task(self, task: Task, parts: Sequence[TaskPart]) -> bool:
        with self._db.tx() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO tasks (task_id, user_id, created_at, body) VALUES (?, ?, ?, ?)",
                (task.task_id, task.user_id, task.created_at, task.model_dump_json()),
            )
            if cur.rowcount == 0:
                return False
            cur.executemany(
                "INSERT INTO task_parts (task_id, cube_id, body) VALUES (?, ?, ?)",
                [(task.task_id, p.cube_id, p.model_dump_json()) for p in parts],
            )
            return True

    def get_task(self, task_id: str) -> TaskRecord | None:
        with self._db.read() as cur:
            row = cur.execute("SELECT body FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
            if row is None:
                return None
            parts = cur.execute("SELECT body FROM task_parts WHERE task_id = ? ORDER BY rowid", (task_id,)).fetchall()
        return TaskRecord(
            task=Task.model_validate_json(row["body"]),
            parts=[TaskPart.model_validate_json(p["body"]) for p in parts],
        )

    def list_tasks(self, user_id: str, limit: int) -> list[TaskRecord]:
        with self._db.read() as cur:
            rows = cur.execute(
                "SELECT task_id FROM tasks WHERE user_id = ? ORDER BY created_at DESC LIMIT ?",
                (user_id, limit),
            ).fetchall()
        records = [self.get_task(r["task_id"]) for r in rows]
        return [r for r in records if r is not None]

    def put_task_part(self, task_id: str, part: TaskPart) -> None:
        with self._db.tx() as cur:
            if cur.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone() is None:
                raise KeyError(task_id)
            cur.execute(
                "INSERT INTO task_parts (task_id, cube_id, body) VALUES (?, ?, ?) "
                "ON CONFLICT (task_id, cube_id) DO UPDATE SET body = excluded.body",
                (task_id, part.cube_id, part.model_dump_json()),
            )
