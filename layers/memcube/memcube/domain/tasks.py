"""API-side use cases: accept an add as a task (one queued message per cube), report its status."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from memcube.domain.commands import AddCommand
from memcube.domain.errors import Conflict, InvalidRequest, NotFound, Unavailable
from memcube.domain.expiry import resolve
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import Principal, Task, TaskPart, TaskRecord, TaskState, iso, utcnow
from memcube.domain.permissions import authorize_write
from memcube.ports import DeadLetterStore, IdempotencyKeys, TaskQueue, TaskStore, UserDirectory

log = logging.getLogger(__name__)
RESEND = "the task is recorded as waiting: retry the same request (same task_id) to enqueue it"
NOT_ACCEPTED = (
    "the add was not accepted: send it again (with a task_id or an Idempotency-Key, a resend is safe to repeat)"
)
TERMINAL = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED})
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
"""The fingerprint's JSON, built once: `json.dumps` with options makes an encoder per call."""


@dataclass(frozen=True)
class Submission:
    record: TaskRecord
    replay: bool
    """True when this request repeated an accepted one (same task id or Idempotency-Key)."""
    retried: bool = False
    """True when the repeated add had failed and runs again (a new run of the same task)."""

    @property
    def task_id(self) -> str:
        """The stored task's id (scoped to its user)."""
        return self.record.task.task_id

    @property
    def public_id(self) -> str:
        return self.record.task.public_id


def fingerprint(cmd: AddCommand) -> str:
    """A digest of everything that defines the add except its task id: a reused task id with a
    different body is a conflict, not a replay."""
    # A field added later is left out while unset, so a resent add keeps its fingerprint.
    unset = {"retrieved_memory_ids"} if cmd.retrieved_memory_ids is None else set()
    body = cmd.model_dump(mode="json", exclude={"task_id", *unset})
    return hashlib.sha256(_CANONICAL.encode(body).encode()).hexdigest()


def scoped_task_id(user_id: str, task_id: str) -> str:
    """The stored id of a caller's business task id: one namespace per user, so another user's
    equal task id is another task (no 409, no oracle, no pre-empting)."""
    return "t-" + hashlib.sha256(f"{user_id}\x1f{task_id}".encode()).hexdigest()[:32]


def task_id_for_key(user_id: str, key: str) -> str:
    return "idem-" + hashlib.sha256(f"{user_id}\x1f{key}".encode()).hexdigest()[:32]


class AddService:
    def __init__(
        self,
        tasks: TaskStore,
        idempotency: IdempotencyKeys,
        dead_letters: DeadLetterStore,
        users: UserDirectory,
        queue: TaskQueue,
        *,
        fine_available: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], str] = lambda: iso(utcnow()),
        salt: Callable[[str], str] = lambda _task_id: secrets.token_hex(16),
    ) -> None:
        self._now = now
        self._salt = salt
        self._tasks = tasks
        self._idempotency = idempotency
        self._dead_letters = dead_letters
        self._users = users
        self._queue = queue
        self._fine_available = fine_available
        self._sleep = sleep
        self._monotonic = monotonic

    def submit(self, cmd: AddCommand, principal: Principal, idempotency_key: str | None = None) -> Submission:
        authorize_write(principal, cmd.cube_ids, self._users)
        if cmd.async_mode == "sync" and cmd.mode == "fine" and not self._fine_available:
            raise InvalidRequest("mode: fine mode needs an LLM and none is configured; use mode=fast")
        digest = fingerprint(cmd)
        task_id = self._task_id(cmd, principal, idempotency_key)
        now = self._now()
        salt = self._salt(task_id)
        # Built before anything is written: a message the queue schema refuses is a 422, not a
        # task left waiting forever (nor a bound Idempotency-Key).
        messages = self._messages(cmd, task_id, cmd.cube_ids, now, salt=salt)
        if idempotency_key is not None and cmd.task_id is not None:
            self._claim(principal, idempotency_key, cmd.task_id)
        existing = self._tasks.get_task(task_id)
        if existing is not None:
            return self._replay(existing, cmd, digest)
        task = Task(
            task_id=task_id,
            user_id=principal.user_id,
            cube_ids=cmd.cube_ids,
            fingerprint=digest,
            created_at=now,
            async_mode=cmd.async_mode,
            client_task_id=cmd.task_id,
            id_salt=salt,
        )
        parts = [TaskPart(cube_id=c, mode=self._mode(cmd), updated_at=now) for c in cmd.cube_ids]
        self._users.register_user(principal.user_id)
        if not self._tasks.create_task(task, parts):
            raced = self._tasks.get_task(task_id)
            if raced is None:  # pragma: no cover - a task is never deleted between these calls
                raise Unavailable("task store lost a task that was just created; retry")
            return self._replay(raced, cmd, digest)
        if cmd.task_id is not None or idempotency_key is not None:
            self._send(messages, RESEND)  # on an outage the caller resends it: the waiting task is enqueued then
        else:
            try:
                self._send(messages, NOT_ACCEPTED)
            except Unavailable:
                self._give_up(task_id, parts)
                raise
        return Submission(TaskRecord(task=task, parts=parts), replay=False)

    def _give_up(self, task_id: str, parts: list[TaskPart]) -> None:
        """A task whose id the caller never learned cannot be resent: mark it failed (not
        accepted) so it does not show as waiting for good; the caller sends the add again."""
        now = self._now()
        reason = "not queued: the queue was unavailable and the add was refused (503); no memory is written"
        for part in parts:
            try:
                self._tasks.put_task_part(task_id, part.finished(TaskState.FAILED, now, error=reason))
            except Exception:  # the store may be down too: the 503 still goes out
                log.warning("could not mark an unqueued task failed", extra={"task_id": task_id})

    def _mode(self, cmd: AddCommand) -> Literal["fast", "fine"]:
        """Fine when asked for, or by default (mode unset), and an LLM is configured; else fast."""
        return "fine" if cmd.mode != "fast" and self._fine_available else "fast"

    def _task_id(self, cmd: AddCommand, principal: Principal, key: str | None) -> str:
        if cmd.task_id is not None:
            return scoped_task_id(principal.user_id, cmd.task_id)
        return f"task-{uuid.uuid4().hex}" if key is None else task_id_for_key(principal.user_id, key)

    def _claim(self, principal: Principal, key: str, task_id: str) -> None:
        """Bind an Idempotency-Key to the task_id sent with it (first binding wins)."""
        bound = self._idempotency.claim_idempotency_key(f"{principal.user_id}\x1f{key}", task_id)
        if bound != task_id:
            raise Conflict(f"Idempotency-Key: already used for task {bound!r}, not {task_id!r}")

    def _replay(self, record: TaskRecord, cmd: AddCommand, digest: str) -> Submission:
        if record.task.fingerprint != digest:
            raise Conflict(
                f"task_id: {record.task.public_id!r} was already used for a different add; "
                "use a new task_id (or resend the identical request to get its status)"
            )
        if record.status is TaskState.FAILED:
            return self._retry(record, cmd)
        # A part still waiting may never have reached the queue (the first attempt failed
        # after the task was recorded): send it again; FIFO dedup and idempotent writes absorb it.
        waiting = [p for p in record.parts if p.status is TaskState.WAITING]
        if waiting:
            task = record.task
            for run, cubes in _by_run(waiting).items():
                self._send(
                    self._messages(cmd, task.task_id, cubes, task.created_at, salt=task.id_salt, run=run), RESEND
                )
        return Submission(record, replay=True)

    def _retry(self, record: TaskRecord, cmd: AddCommand) -> Submission:
        """The caller re-sent an add whose task failed: each failed part runs again as a new run
        of the same task (the failed run stays in the part's `runs`); the items it stored are
        kept and read back, never doubled. Completed parts stay as they are."""
        task, now = record.task, self._now()
        task_id = task.task_id
        parts = [p.retried(now) if p.status is TaskState.FAILED else p for p in record.parts]
        again = [p for p in parts if p.status is TaskState.WAITING and p.runs]
        for part in again:
            self._tasks.put_task_part(task_id, part)
        stale = {(task_id, p.cube_id) for p in again}
        letters = [d for d in self._dead_letters.list_dead_letters() if (d.task_id, d.cube_id) in stale]
        if letters:  # the caller took the retry over: the operator's redrive must not run it a third time
            self._dead_letters.delete_dead_letters(letters)
        for run, cubes in _by_run(again).items():
            self._send(self._messages(cmd, task_id, cubes, task.created_at, salt=task.id_salt, run=run), RESEND)
        log.info("a failed task retried by its caller", extra={"task_id": task_id})
        return Submission(TaskRecord(task=record.task, parts=parts), replay=True, retried=True)

    def _messages(
        self, cmd: AddCommand, task_id: str, cube_ids: list[str], submitted_at: str, *, salt: str, run: int = 0
    ) -> list[QueuedAdd]:
        """One message per cube: the first validated, the others its copies (cube ids are valid).
        `run` counts the caller's retries of a failed part: a retry is a new message."""
        first = QueuedAdd(
            task_id=task_id,
            cube_id=cube_ids[0],
            user_id=cmd.user_id,
            session_id=cmd.session_id,
            mode=cmd.mode,  # as asked: the worker, which holds the LLM, decides and notes it
            messages=cmd.messages,
            chat_history=cmd.chat_history,
            custom_tags=cmd.custom_tags,
            info=cmd.info,
            is_feedback=cmd.is_feedback,
            retrieved_memory_ids=cmd.retrieved_memory_ids,
            manager_user_id=cmd.manager_user_id,
            project_id=cmd.project_id,
            submitted_at=submitted_at,
            id_salt=salt,
            run=run,
            expires_at=self._expiry(cmd, cube_ids[0], submitted_at),
        )
        return [first] + [
            first.model_copy(update={"cube_id": cube, "expires_at": self._expiry(cmd, cube, submitted_at)})
            for cube in cube_ids[1:]
        ]

    def _expiry(self, cmd: AddCommand, cube_id: str, submitted_at: str) -> int | None:
        """The add's own expiry, else the cube's default counted from the task's submission (the
        same on every resend of the task)."""
        if cmd.expires_at is not None:
            return cmd.expires_at
        return resolve(None, self._users.get_cube(cube_id), datetime.fromisoformat(submitted_at).timestamp())

    def _send(self, messages: list[QueuedAdd], advice: str) -> None:
        try:
            self._queue.send(messages)
        except Exception as exc:
            raise Unavailable(f"queue unavailable ({type(exc).__name__}); {advice}") from exc

    def wait(self, task_id: str, timeout: float, poll: float = 0.02) -> TaskRecord:
        """Poll until the task is completed or failed, or `timeout` seconds pass."""
        deadline = self._monotonic() + timeout
        while True:
            record = self._tasks.get_task(task_id)
            if record is None:
                raise NotFound(f"task_id: {task_id!r} not found")
            if record.status in TERMINAL or self._monotonic() >= deadline:
                return record
            self._sleep(poll)
            poll = min(poll * 1.5, 0.25)


def _by_run(parts: list[TaskPart]) -> dict[int, list[str]]:
    """Cube ids of waiting parts by their run (parts of one task retried a different number of times)."""
    runs: dict[int, list[str]] = {}
    for part in parts:
        runs.setdefault(len(part.runs), []).append(part.cube_id)
    return runs


class StatusService:
    LIST_LIMIT = 100

    def __init__(self, tasks: TaskStore) -> None:
        self._tasks = tasks

    def recent(self, user_id: str) -> list[TaskRecord]:
        return self._tasks.list_tasks(user_id, self.LIST_LIMIT)

    def get(self, task_id: str, user_id: str | None) -> TaskRecord:
        """The task the user knows as `task_id`: its own business id first, then an id the
        service generated (`task-…`, `idem-…`)."""
        record = self._tasks.get_task(scoped_task_id(user_id, task_id)) if user_id else None
        record = record or self._tasks.get_task(task_id)
        # Another user's task answers exactly like an unknown one: ids do not leak.
        if record is None or (user_id is not None and record.task.user_id != user_id):
            raise NotFound(f"task_id: {task_id!r} not found")
        return record
