"""MemOS's scheduler reads over a user's add tasks: counts by state (`allstatus`), and waiting
until the user's tasks (or one task) end, as one answer or as a stream of status changes.

Waiting polls the task store, so its bounds protect the store: the poll interval has a floor
(the route refuses less), the watched set is fixed when the wait starts (the user's newest
`WATCH_LIMIT` tasks, or the one named), and each poll rereads only the tasks still unfinished.
The deployment caps how long one request may block (`Settings.wait_cap_seconds`): behind API
Gateway a request cannot outlive its 30 s integration timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from memcube.domain import limits
from memcube.domain.model import TaskRecord, TaskState
from memcube.domain.tasks import StatusService
from memcube.ports import TaskStore

FINISHED = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED})
MIN_POLL_SECONDS = limits.MIN_POLL_SECONDS
MAX_POLL_SECONDS = limits.MAX_POLL_SECONDS


@dataclass(frozen=True)
class TaskCounts:
    """The user's tasks by state (MemOS's TaskSummary). `pending` counts, as MemOS does when no
    worker reports that state, the tasks not yet taken by a worker (= `waiting`); it is not
    part of `total`. `truncated`: the user has more tasks than were counted (the newest ones were)."""

    waiting: int = 0
    in_progress: int = 0
    pending: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0
    truncated: bool = False


@dataclass(frozen=True)
class WaitState:
    """Where a wait stands: the watched tasks' states (by the ids the caller knows), how many are
    still waiting or running, how long it has waited, and whether it ended by its timeout."""

    tasks: dict[str, str] = field(default_factory=dict)
    active: int = 0
    elapsed: float = 0.0
    timed_out: bool = False

    @property
    def done(self) -> bool:
        return self.active == 0


class SchedulerService:
    SUMMARY_LIMIT = 1000
    """Tasks counted by `summary` (the newest); the store keeps tasks for its TTL (30 days on AWS)."""
    WATCH_LIMIT = 100
    """Tasks a wait without a task id watches: the user's newest."""

    def __init__(
        self,
        tasks: TaskStore,
        status: StatusService,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._tasks = tasks
        self._status = status
        self._clock = clock
        self._sleep = sleep

    def summary(self, user_id: str) -> TaskCounts:
        """The user's tasks counted by state, read from the user's own task list (never another's)."""
        records = self._tasks.list_tasks(user_id, self.SUMMARY_LIMIT + 1)
        truncated = len(records) > self.SUMMARY_LIMIT
        counts = dict.fromkeys(TaskState, 0)
        for record in records[: self.SUMMARY_LIMIT]:
            counts[record.status] += 1
        return TaskCounts(
            waiting=counts[TaskState.WAITING],
            in_progress=counts[TaskState.IN_PROGRESS],
            pending=counts[TaskState.WAITING],
            completed=counts[TaskState.COMPLETED],
            failed=counts[TaskState.FAILED],
            cancelled=counts[TaskState.CANCELLED],
            total=sum(counts.values()),
            truncated=truncated,
        )

    def watch(self, user_id: str, task_id: str | None, timeout: float, poll: float) -> Iterator[WaitState]:
        """The wait as it goes: its first state, each change of a watched task's state, and the
        last state (every task finished, or `timeout` seconds passed: `timed_out`). An unknown
        task id (or another user's) raises `NotFound` before anything is yielded."""
        start = self._clock()
        if task_id is not None:
            records = [self._status.get(task_id, user_id)]
        else:
            records = self._tasks.list_tasks(user_id, self.WATCH_LIMIT)
        watched = {r.task.task_id: r for r in records}
        last: dict[str, str] | None = None
        while True:
            elapsed = self._clock() - start
            state = _state(watched, elapsed, timed_out=False)
            if state.done or elapsed >= timeout:
                yield _state(watched, elapsed, timed_out=not state.done)
                return
            if state.tasks != last:
                last = state.tasks
                yield state
            self._sleep(max(0.0, min(poll, timeout - elapsed)))
            for stored_id, record in list(watched.items()):
                if record.status not in FINISHED:
                    watched[stored_id] = self._tasks.get_task(stored_id) or record

    def wait(self, user_id: str, task_id: str | None, timeout: float, poll: float) -> WaitState:
        """Block until the watched tasks end or `timeout` passes; the last state."""
        state = WaitState()
        for state in self.watch(user_id, task_id, timeout, poll):  # noqa: B007 - the last one is the answer
            pass
        return state


def _state(watched: dict[str, TaskRecord], elapsed: float, *, timed_out: bool) -> WaitState:
    tasks = {r.task.public_id: r.status.value for r in watched.values()}
    active = sum(r.status not in FINISHED for r in watched.values())
    return WaitState(tasks=tasks, active=active, elapsed=round(elapsed, 3), timed_out=timed_out)
