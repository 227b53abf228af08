"""Fault injection for the reliability suite, around the ports only (the production code has no
test hooks): a wrapper that passes every call through to the real adapter except the faults
armed on it, and the named crash points of the worker expressed as such faults."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from memcube.domain.errors import IndexUnavailable


class Crash(BaseException):
    """The worker process dies at this point: a BaseException, so none of the worker's own
    failure handling runs (as with `kill -9`, an out-of-memory kill or a Lambda timeout)."""


@dataclass
class Fault:
    method: str | tuple[str, ...]
    when: Literal["before", "after"]
    nth: int = 1
    """Fire on this call of `method` (of any of them: 1 = the first), counted from arming."""
    make: Callable[[], BaseException] = lambda: Crash("injected crash")
    fired: bool = False
    seen: int = 0

    def matches(self, name: str) -> bool:
        return name == self.method or (isinstance(self.method, tuple) and name in self.method)


class Faulty:
    """A port (store, index, queue...) with faults: `arm(...)` one, `down()` / `up()` an outage in
    which every call raises `outage()`. Attribute reads and unarmed calls go to the real adapter."""

    def __init__(self, target: Any, outage: Callable[[], BaseException] | None = None) -> None:
        self._target = target
        self._faults: list[Fault] = []
        self._outage = outage or (lambda: IndexUnavailable("injected outage: connection refused"))
        self._down: Callable[[str, tuple[Any, ...]], bool] | None = None
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.hook: Callable[[str, tuple[Any, ...]], None] | None = None
        """Called with (method, args) before every call: lets a test line up concurrent workers."""

    @property
    def target(self) -> Any:
        return self._target

    def arm(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def down(
        self,
        only: Callable[[str, tuple[Any, ...]], bool] | None = None,
        error: Callable[[], BaseException] | None = None,
    ) -> None:
        """Every call (or those `only(method, args)` picks) raises the outage error (or `error()`)
        until `up()`."""
        self._down = only or (lambda method, args: True)
        if error is not None:
            self._outage = error

    def up(self) -> None:
        self._down = None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
                due = []
                for f in self._faults:
                    if f.matches(name) and not f.fired:
                        f.seen += 1
                        if f.seen == f.nth:
                            f.fired = True
                            due.append(f)
            if self.hook is not None:
                self.hook(name, args)
            if self._down is not None and self._down(name, args):
                raise self._outage()
            for f in due:
                if f.when == "before":
                    raise f.make()
            result = attr(*args, **kwargs)
            for f in due:
                if f.when == "after":
                    raise f.make()
            return result

        return call


@dataclass(frozen=True)
class CrashPoint:
    """Where in one attempt the worker dies, as a fault on a storage port or the index."""

    name: str
    port: Literal["tasks", "memories", "index"]
    method: str | tuple[str, ...]
    when: Literal["before", "after"]
    nth: int = 1
    state: str = ""
    """What the crash leaves behind."""


CRASH_POINTS = [
    CrashPoint("after reading", "tasks", "put_task_part", "before", state="nothing written, not even in_progress"),
    CrashPoint("mid store write", "memories", ("put_memory", "update_memory"), "after", state="one store write done"),
    CrashPoint("after the store write", "index", "upsert", "before", state="every store write done, none indexed"),
    CrashPoint("after the index write", "index", "upsert", "after", state="stored and indexed, status in_progress"),
    CrashPoint("before the status update", "tasks", "put_task_part", "before", nth=2, state="all but `completed`"),
]
