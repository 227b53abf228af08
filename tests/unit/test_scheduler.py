"""`SchedulerService`: counts of a user's tasks, and waits that poll only unfinished tasks, yield
each change once, and end at their timeout (on a fake clock: no test sleeps)."""

from __future__ import annotations

import pytest

from memcube.domain.errors import NotFound
from memcube.domain.model import TaskState
from memcube.domain.scheduler import SchedulerService
from memcube.domain.tasks import StatusService
from tests.contract.support import day, task
from tests.doubles.tasks import InMemoryTasks


class Clock:
    """A monotonic clock that moves only when the service sleeps, running `on_sleep` each time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: list[object] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            action = self.on_sleep.pop(0)
            if callable(action):
                action()


def _finish(tasks: InMemoryTasks, task_id: str, status: TaskState = TaskState.COMPLETED) -> None:
    record = tasks.get_task(task_id)
    assert record is not None
    for part in record.parts:
        tasks.put_task_part(task_id, part.finished(status, day(2)))


def _service(tasks: InMemoryTasks, clock: Clock) -> SchedulerService:
    return SchedulerService(tasks, StatusService(tasks), clock=clock, sleep=clock.sleep)


def test_summary_counts_the_users_tasks_by_state_and_nobody_elses() -> None:
    tasks = InMemoryTasks()
    for n, user in enumerate(["ann", "ann", "ann", "ann", "bob"]):
        tasks.create_task(*task(f"t{n}", user=user, created_at=day(n + 1)))
    _finish(tasks, "t0")
    _finish(tasks, "t1", TaskState.FAILED)
    _finish(tasks, "t2", TaskState.CANCELLED)
    counts = _service(tasks, Clock()).summary("ann")
    assert (counts.waiting, counts.in_progress, counts.completed, counts.failed, counts.cancelled) == (1, 0, 1, 1, 1)
    assert (counts.pending, counts.total, counts.truncated) == (1, 4, False)
    assert _service(tasks, Clock()).summary("carl").total == 0


def test_summary_says_when_it_counted_only_the_newest_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = InMemoryTasks()
    for n in range(4):
        tasks.create_task(*task(f"t{n}", user="ann", created_at=day(n + 1)))
    monkeypatch.setattr(SchedulerService, "SUMMARY_LIMIT", 3)
    counts = _service(tasks, Clock()).summary("ann")
    assert (counts.total, counts.truncated) == (3, True)


def test_a_wait_yields_each_change_once_and_ends_when_every_task_has() -> None:
    tasks, clock = InMemoryTasks(), Clock()
    tasks.create_task(*task("t1", user="ann", created_at=day(1)))
    tasks.create_task(*task("t2", user="ann", created_at=day(2)))
    clock.on_sleep = [None, lambda: _finish(tasks, "t1"), None, None, lambda: _finish(tasks, "t2")]
    states = list(_service(tasks, clock).watch("ann", None, timeout=60, poll=0.5))
    assert [s.tasks for s in states] == [
        {"t2": "waiting", "t1": "waiting"},
        {"t2": "waiting", "t1": "completed"},
        {"t2": "completed", "t1": "completed"},
    ]
    assert (states[-1].done, states[-1].timed_out, states[-1].elapsed) == (True, False, 2.5)
    assert clock.sleeps == [0.5] * 5


def test_a_wait_ends_at_its_timeout_with_the_tasks_still_running() -> None:
    tasks, clock = InMemoryTasks(), Clock()
    tasks.create_task(*task("t1", user="ann"))
    state = _service(tasks, clock).wait("ann", None, timeout=1.2, poll=0.5)
    assert (state.timed_out, state.active, state.elapsed) == (True, 1, 1.2)
    assert clock.sleeps == [0.5, 0.5, pytest.approx(0.2)]  # the last sleep stops at the timeout


def test_a_wait_for_one_task_watches_that_task_only() -> None:
    tasks, clock = InMemoryTasks(), Clock()
    tasks.create_task(*task("t1", user="ann"))
    tasks.create_task(*task("t2", user="ann"))
    _finish(tasks, "t2")
    state = _service(tasks, clock).wait("ann", "t2", timeout=10, poll=0.5)
    assert (state.tasks, state.done, clock.sleeps) == ({"t2": "completed"}, True, [])


def test_a_wait_for_an_unknown_or_another_users_task_is_not_found_before_any_state() -> None:
    tasks = InMemoryTasks()
    tasks.create_task(*task("t1", user="bob"))
    for task_id in ("t1", "nope"):
        with pytest.raises(NotFound, match="not found"):
            next(_service(tasks, Clock()).watch("ann", task_id, timeout=10, poll=0.5))


def test_a_wait_with_no_tasks_is_idle_at_once() -> None:
    state = _service(InMemoryTasks(), Clock()).wait("ann", None, timeout=10, poll=0.5)
    assert (state.done, state.timed_out, state.tasks) == (True, False, {})
