"""Entities: memory items (MemOS field names), tasks and their per-cube parts, principals."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from memcube.domain.base import Model

Role = Literal["system", "user", "assistant", "tool"]
MemoryType = Literal[
    "WorkingMemory",
    "LongTermMemory",
    "UserMemory",
    "OuterMemory",
    "ToolSchemaMemory",
    "ToolTrajectoryMemory",
    "RawFileMemory",
    "SkillMemory",
    "PreferenceMemory",
]
ItemStatus = Literal["activated", "archived", "deleted"]
PreferenceType = Literal["explicit_preference", "implicit_preference"]
"""MemOS's two kinds of preference: stated by the user, or shown by what the user does."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Principal(Model):
    """Who is calling. Today the body's user_id; API keys bind it in the security issue."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    scopes: frozenset[str] = frozenset()


class SourceMessage(Model):
    """Where a memory came from: one message (or one modality of it), as MemOS records it."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["chat", "text", "file", "image"]
    role: Role | None = None
    chat_time: str | None = None
    message_id: str | None = None
    content: str = ""
    file_id: str | None = None
    filename: str | None = None
    url: str | None = None
    data: str | None = None
    """A binary file (PDF) as a `data:<mime>;base64,...` URL, on its way to the worker, which reads
    its text (document mode); memory items never keep it."""
    tool_call_id: str | None = None
    """A `tool` message's answer to this call id (tool memory pairs it with the call)."""
    tool_calls: list[dict[str, Any]] | None = None
    """An assistant message's tool calls, as sent (`[{id, type, function: {name, arguments}}]`)."""

    @model_serializer(mode="wrap")
    def _without_empty_data(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """`data` and the tool fields are written only when set, so stored sources keep their shape."""
        body: dict[str, Any] = handler(self)
        for name in ("data", "tool_call_id", "tool_calls"):
            if body.get(name) is None:
                body.pop(name, None)
        return body


class ToolCall(Model):
    """One tool call of a `ToolTrajectoryMemory`: what was called, with what, what came back and
    whether it worked, under the call id that links the assistant's call to the tool's answer."""

    model_config = ConfigDict(extra="forbid")

    call_id: str
    name: str
    arguments: str = ""
    result: str | None = None
    """The tool message's content; None when the conversation holds no answer to the call."""
    status: Literal["success", "error", "no_result"]
    error: str | None = None


class MemoryMetadata(Model):
    model_config = ConfigDict(extra="forbid")

    user_id: str
    session_id: str
    cube_id: str
    status: ItemStatus = "activated"
    memory_type: MemoryType
    type: str = "fact"
    key: str
    tags: list[str] = Field(default_factory=list)
    custom_tags: list[str] = Field(default_factory=list)
    info: dict[str, Any] = Field(default_factory=dict)
    sources: list[SourceMessage] = Field(default_factory=list)
    embedding: list[float] | None = None
    embedding_model: str | None = None
    confidence: float = 0.99
    background: str = ""
    source: Literal["conversation", "file", "system"] = "conversation"
    created_at: str
    updated_at: str
    version: int = 1
    history: list[dict[str, Any]] = Field(default_factory=list)
    covered_history: str | None = None
    merged_from: list[str] = Field(default_factory=list)
    content_hash: str
    task_id: str
    event_time: str | None = None
    """When the memory's events happened (UTC, ISO 8601): its earliest message's `chat_time` that
    names an instant (`domain.when`); None when none does."""
    event_time_end: str | None = None
    """Its latest message's time: with `event_time`, the span that `event_time` filters test."""
    manager_user_id: str | None = None
    project_id: str | None = None
    original_user_id: str | None = None
    """Provenance of an imported item: the author its export named, when someone else imported
    it (as that importer claims it; `user_id`, the writer, is the importer)."""
    expires_at: int | None = Field(default=None, ge=0)
    """When the memory expires (epoch seconds, UTC; `domain.expiry`): from then on it is in no
    search or read (unless asked with `show_expired`), and the next sweep erases it. None: never."""
    expiration_date: str | None = None
    """`expires_at` as ISO 8601 (UTC), for people; always derived from `expires_at`."""
    preference_type: PreferenceType | None = None
    """A `PreferenceMemory`'s kind (MemOS's names); None for every other type."""
    preference: str | None = None
    """A `PreferenceMemory`'s preference (MemOS keeps it beside `memory`, which says the same)."""
    reasoning: str | None = None
    """Why the reader took it for a preference (what in the conversation shows it)."""
    tool_call: ToolCall | None = None
    """A `ToolTrajectoryMemory`'s call: name, arguments, result, success or error, call id."""
    experience: str | None = None
    """A `ToolTrajectoryMemory`'s lesson, as MemOS words it ("when ..., then ...")."""

    @model_validator(mode="after")
    def _expiry_view(self) -> MemoryMetadata:
        """One source of truth: the ISO view follows `expires_at` (an import that sends only the
        view is read by `domain.expiry` first)."""
        self.expiration_date = iso(datetime.fromtimestamp(self.expires_at, UTC)) if self.expires_at else None
        return self

    @model_serializer(mode="wrap")
    def _without_empty_kind_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The preference and tool fields are written only on those types, so every other item
        keeps its stored shape."""
        body: dict[str, Any] = handler(self)
        for name in KIND_FIELDS:
            if body.get(name) is None:
                body.pop(name, None)
        return body


KIND_FIELDS = ("preference_type", "preference", "reasoning", "tool_call", "experience")
"""Metadata fields only preference and tool memories carry (absent from the others)."""
PREFERENCE_TYPES: frozenset[str] = frozenset({"PreferenceMemory"})
TOOL_TYPES: frozenset[str] = frozenset({"ToolTrajectoryMemory", "ToolSchemaMemory"})


def kind_of(memory_type: str) -> Literal["text", "preference", "tool"]:
    """Which of search's lists a memory type answers in (`text_mem`, `pref_mem`, `tool_mem`):
    the organizer only compares memories of one kind."""
    if memory_type in PREFERENCE_TYPES:
        return "preference"
    return "tool" if memory_type in TOOL_TYPES else "text"


class MemoryItem(Model):
    model_config = ConfigDict(extra="forbid")

    id: str
    memory: str
    metadata: MemoryMetadata

    def same_content(self, other: MemoryItem) -> bool:
        """Same id, cube, text and creation time: what an update may never change, because the
        content guard, the LSH keys and the store's sort keys are filed under them."""
        mine, theirs = self.metadata, other.metadata
        return (self.id, mine.cube_id, self.memory, mine.content_hash, mine.created_at) == (
            other.id,
            theirs.cube_id,
            other.memory,
            theirs.content_hash,
            theirs.created_at,
        )


class TaskState(StrEnum):
    WAITING = "waiting"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """The cube (or the user's data in it) was erased before this part ran: nothing was written."""


ERASED_NOTE = "cancelled: the cube (or this user's data in it) was erased before this part ran"

Outcome = Literal["added", "duplicate", "merged", "updated", "archived"]


class MemoryOutcome(Model):
    """What happened to one memory of a task, with the ids involved and why."""

    model_config = ConfigDict(extra="forbid")

    memory_id: str
    outcome: Outcome
    memory_type: MemoryType
    reason: str
    related_ids: list[str] = Field(default_factory=list)


class FeedbackStep(Model):
    """One change an LLM decided for a feedback (its item is `feedback.<n>`, n from 1). The
    steps are recorded on the part before the first is applied, so a redelivery after a crash
    applies the rest of the same plan instead of asking again: a second reply, over a cube the
    first steps already changed, could decide otherwise and lose or double a change."""

    model_config = ConfigDict(extra="forbid")

    operation: Literal["ADD", "UPDATE"]
    memory: str
    key: str = ""
    tags: list[str] = Field(default_factory=list)
    replaces: list[str] = Field(default_factory=list)
    """UPDATE: the ids the new item supersedes."""
    reasons: dict[str, str] = Field(default_factory=dict)


class PartRun(Model):
    """An earlier run of a task part that ended failed, kept when its caller retried the add
    (the status history): what it tried and why it stopped."""

    model_config = ConfigDict(extra="forbid")

    status: TaskState
    error: str | None = None
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None


class TaskPart(Model):
    """One target cube's share of a task: its own state, attempts and per-memory outcomes."""

    model_config = ConfigDict(extra="forbid")

    cube_id: str
    status: TaskState = TaskState.WAITING
    mode: Literal["fast", "fine"] = "fast"
    outcomes: list[MemoryOutcome] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    error: str | None = None
    attempts: int = 0
    updated_at: str
    started_at: str | None = None
    finished_at: str | None = None
    feedback_plan: list[FeedbackStep] | None = None
    """Internal (never in a status response): a feedback's decided steps while it is applied."""
    running: bool = False
    """An attempt has started and not yet ended (done, handed back, or given up): seen by the
    next delivery, it means that attempt's worker died or timed out."""
    crashes: int = 0
    """Consecutive attempts whose worker died while running this message and nothing else that
    could have caused it (the crash-loop guard gives up at the attempt limit)."""
    interrupted: int = 0
    """Attempts cut short by a worker death not charged to this message (an external kill, a
    deploy, a death while other messages ran too): they never count toward giving up."""
    runs: list[PartRun] = Field(default_factory=list)
    """Earlier runs that failed and were retried by the caller, oldest first."""

    def finished(self, status: TaskState, at: str, **changes: Any) -> TaskPart:
        """This part ended in `status` at `at`. A completed or cancelled part drops its feedback
        plan (its texts are kept nowhere but in the items); a failed one keeps it for a redrive."""
        plan = self.feedback_plan if status is TaskState.FAILED else None
        update = {"status": status, "updated_at": at, "finished_at": at, "feedback_plan": plan, "running": False}
        return self.model_copy(update=update | changes)

    def charged_attempts(self) -> int:
        """Attempts that count toward giving up: every attempt but those a worker death not
        caused by this message cut short."""
        return self.attempts - self.interrupted

    def retried(self, at: str) -> TaskPart:
        """A failed part run again at its caller's request: the failed run goes to `runs` and
        the part waits for a fresh set of attempts (the items it stored stay, under the same ids)."""
        run = PartRun(
            status=self.status, error=self.error, attempts=self.attempts,
            started_at=self.started_at, finished_at=self.finished_at,
        )  # fmt: skip
        return self.model_copy(
            update={
                "status": TaskState.WAITING, "error": None, "attempts": 0, "crashes": 0, "interrupted": 0,
                "running": False, "outcomes": [], "started_at": None, "finished_at": None, "updated_at": at,
                "runs": [*self.runs, run],
            }
        )  # fmt: skip


class Task(Model):
    model_config = ConfigDict(extra="forbid")

    task_id: str
    user_id: str
    cube_ids: list[str]
    fingerprint: str
    created_at: str
    origin: Literal["api", "producer"] = "api"
    async_mode: Literal["async", "sync"] = "async"
    client_task_id: str | None = None
    """The caller's business task id, when it sent one: `task_id` is then derived from it and the
    user (`tasks.scoped_task_id`), so two users' equal business ids are two tasks."""
    id_salt: str = ""
    """Random, chosen when the task is created: its memory ids are derived from it too, so they
    cannot be computed from a task id another user may know."""

    @property
    def public_id(self) -> str:
        """The task id the caller sees and sends back: its own, or the one generated for it."""
        return self.client_task_id or self.task_id


class TaskRecord(Model):
    """A task with its parts, as read back for status."""

    task: Task
    parts: list[TaskPart]

    @property
    def status(self) -> TaskState:
        return aggregate_status([p.status for p in self.parts])


def aggregate_status(states: list[TaskState]) -> TaskState:
    """MemOS's rule: any failed -> failed; any waiting/in progress -> in progress; all completed -> completed.
    A cancelled part (its cube erased first) is finished: all cancelled -> cancelled, and
    completed with cancelled -> completed."""
    if not states:
        return TaskState.WAITING
    if TaskState.FAILED in states:
        return TaskState.FAILED
    if all(s is TaskState.CANCELLED for s in states):
        return TaskState.CANCELLED
    if all(s in {TaskState.COMPLETED, TaskState.CANCELLED} for s in states):
        return TaskState.COMPLETED
    if all(s is TaskState.WAITING for s in states):
        return TaskState.WAITING
    return TaskState.IN_PROGRESS


class DeadLetter(Model):
    """A queued message that was given up on, with the reason, kept for inspection and redrive."""

    model_config = ConfigDict(extra="forbid")

    message_id: str
    body: str
    reason: str
    task_id: str | None = None
    cube_id: str | None = None
    attempts: int
    failed_at: str

    @property
    def key(self) -> str:
        """What makes a record one: its task and cube, so a message that fails again (redriven,
        or its body cut short for the store) replaces its record instead of adding one; a message
        naming neither (unreadable) is keyed by its body."""
        if self.task_id and self.cube_id:
            return f"task#{self.task_id}#{self.cube_id}"
        return "body#" + hashlib.sha256(self.body.encode("utf-8", "surrogatepass")).hexdigest()[:40]
