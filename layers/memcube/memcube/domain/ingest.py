"""Worker-side use case: turn one queued message (one task, one cube) into stored memories.

Every step is safe to repeat: item ids derive from (task, cube, window), the content-hash guard
and the item are written together, the index upserts by id, and a part already completed is
not redone. So a redelivered message rewrites the same items and never adds new ones.

A redelivery after a crash (attempts > 1) first reads back what the earlier attempt stored under
this task's item ids and reports those items from the store (`Organizer.recovered`), so the
outcomes are the ones the first attempt would have reported and every item involved is indexed
again. If the index write fails after the store write, the part says which memories are stored
and that they are not yet searchable while the message waits for its retry.
"""

from __future__ import annotations

import binascii
import hashlib
import logging
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from pydantic import ValidationError

from memcube.domain import preferences, tool_memory
from memcube.domain.errors import Forbidden, PermanentError, UnreadableFile
from memcube.domain.expiry import resolve
from memcube.domain.files import parse_data_url
from memcube.domain.messages import QueuedAdd, peek
from memcube.domain.model import (
    ERASED_NOTE,
    DeadLetter,
    FeedbackStep,
    MemoryItem,
    MemoryMetadata,
    MemoryOutcome,
    MemoryType,
    Principal,
    SourceMessage,
    Task,
    TaskPart,
    TaskRecord,
    TaskState,
    iso,
    kind_of,
    utcnow,
)
from memcube.domain.organizer import Organizer, Placement, Thresholds
from memcube.domain.permissions import authorize_write
from memcube.domain.reader import Sizes, Window, read
from memcube.domain.when import event_times
from memcube.ports import (
    LLM,
    DeadLetterSink,
    DeadLetterStore,
    DocumentReader,
    Embedder,
    ErasureMarks,
    MemoryStore,
    NoTelemetry,
    SearchIndex,
    TaskStore,
    Telemetry,
    UserDirectory,
)

if TYPE_CHECKING:  # fine mode's and feedback's modules load with their first use (a fast add never needs them)
    from memcube.domain.extraction import Extraction, Extractor
    from memcube.domain.feedback import FeedbackService

log = logging.getLogger(__name__)

ITEM_NAMESPACE = uuid.UUID("5b0c2f5e-8f0e-4f43-9d3a-6c0b3f7e2a11")
FEEDBACK_IDS = 22
"""Feedback item ids a task may use: the probe (`feedback.0`) and one per LLM decision (at most 20)."""
FINISHED = frozenset({TaskState.COMPLETED, TaskState.CANCELLED, TaskState.FAILED})
"""Part states a delivery leaves as they are: done, cancelled by an erasure, or given up on."""


def content_hash(text: str, memory_type: str | None = None) -> str:
    """Exact-duplicate key: NFC-normalized text with whitespace runs folded. A preference or a
    tool memory is keyed under its kind too, so one saying what a fact says is not refused as
    that fact's copy (search answers them in different lists)."""
    folded = " ".join(unicodedata.normalize("NFC", text).split())
    kind = kind_of(memory_type) if memory_type else "text"
    return hashlib.sha256((folded if kind == "text" else f"{kind}\x1f{folded}").encode()).hexdigest()


def item_id(task_id: str, cube_id: str, index: int | str) -> str:
    """Deterministic, so a redelivery rewrites the same items: `index` is the window (fast), the
    window and the extracted item (`"2.0"`, fine) or the feedback item (`"feedback.1"`)."""
    return str(uuid.uuid5(ITEM_NAMESPACE, f"{task_id}/{cube_id}/{index}"))


@dataclass(frozen=True)
class Draft:
    """A new item before it is embedded."""

    id: str
    text: str
    key: str
    tags: list[str]
    memory_type: MemoryType
    sources: list[SourceMessage]
    background: str = ""
    source: Literal["conversation", "file"] = "conversation"
    fields: dict[str, Any] = field(default_factory=dict)
    """The preference or tool metadata of such an item (`model.KIND_FIELDS`)."""


class IndexingPending(Exception):
    """The store writes of a part are done but its index write failed: the outcomes are true
    (and shown) while the message waits for a retry that indexes them."""

    def __init__(self, outcomes: list[MemoryOutcome], notes: list[str], cause: Exception) -> None:
        self.outcomes = outcomes
        self.notes = notes
        self.reason = (
            f"index write failed ({type(cause).__name__}: {cause}); the memories are stored but not yet searchable"
        )
        super().__init__(self.reason)


class Verdict(Enum):
    DONE = "done"
    """Acknowledge: processed, skipped as already done, or rejected for good (dead-lettered)."""
    RETRY = "retry"
    """Leave for redelivery: a transient failure."""


@dataclass(frozen=True)
class Delivery:
    """One receipt of a queued message, as the queue reports it."""

    body: str
    message_id: str
    attempt: int
    """The queue's receive count. On SQS FIFO it also counts receipts in which the message was
    skipped behind a failing one of its cube, so give-up decisions use the attempts recorded in
    the task part instead, and fall back to this only when none was recorded."""
    max_attempts: int
    group_id: str | None = None
    """The FIFO group the message travelled in; it must be the message's cube."""
    blamed: bool | None = None
    """How the queue saw this message's previous receipt end, when it never finished: True if its
    worker died while running it alone (the message is the likely cause), False if the death is
    not the message's (its process died with other messages in flight, or was stopped). None
    when the queue cannot tell (SQS): a Lambda invocation runs one record at a time and starts it
    only when ready and with its record budget left, so a death during it is charged to it."""


class IngestService:
    def __init__(
        self,
        *,
        tasks: TaskStore,
        dead_letters: DeadLetterStore,
        users: UserDirectory,
        memories: MemoryStore,
        erasures: ErasureMarks,
        index: SearchIndex,
        embedder: Embedder,
        llm: LLM | None = None,
        thresholds: Thresholds | None = None,
        feedback_cosine: float = 0.45,
        open_cubes: bool = True,
        telemetry: Telemetry | None = None,
        sink: DeadLetterSink | None = None,
        documents: DocumentReader | None = None,
        now: Callable[[], str] = lambda: iso(utcnow()),
    ) -> None:
        self._sink = sink
        self._documents = documents
        self._telemetry = telemetry or NoTelemetry()
        self._tasks = tasks
        self._dead_letters = dead_letters
        self._users = users
        self._memories = memories
        self._erasures = erasures
        self._index = index
        self._embedder = embedder
        self._now = now
        self._open_cubes = open_cubes
        """API keys off: cubes nobody created are open (the worker re-checks with the API's rules)."""
        self._extractor = _fine_mode_extractor(llm) if llm is not None else None
        self._llm = llm
        self._organizer = Organizer(memories, index, llm=llm, thresholds=thresholds, now=now)
        self._feedback_cosine = feedback_cosine

    @cached_property
    def _feedback(self) -> FeedbackService:
        """Built with the first feedback message (its module is not loaded before)."""
        from memcube.domain.feedback import FeedbackService

        return FeedbackService(self._organizer, llm=self._llm, feedback_cosine=self._feedback_cosine, now=self._now)

    def handle(self, delivery: Delivery) -> Verdict:
        """Process one delivery; decide whether the queue should delete it or deliver it again."""
        try:
            msg = QueuedAdd.model_validate_json(delivery.body)
        except ValidationError as exc:
            reason = "invalid queued message: " + "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
            )
            self._dead_letter(delivery, reason, None)
            return Verdict.DONE
        if delivery.group_id is not None and delivery.group_id != msg.cube_id:
            reason = (
                f"MessageGroupId {delivery.group_id!r} is not the message's cube_id {msg.cube_id!r}: "
                "per-cube order needs the cube id as the group"
            )
            self._dead_letter(delivery, reason, msg)
            return Verdict.DONE
        try:
            self.process(
                msg, max_attempts=delivery.max_attempts, message_id=delivery.message_id, blamed=delivery.blamed
            )
        except PermanentError as exc:
            self._dead_letter(delivery, exc.message, msg)
            return Verdict.DONE
        except Exception as exc:
            pending = exc if isinstance(exc, IndexingPending) else None
            reason = pending.reason if pending else f"{type(exc).__name__}: {exc}"
            log.warning("ingest attempt failed", extra={"task_id": msg.task_id, "cube_id": msg.cube_id})
            part = self._own_part(msg.task_id, msg.cube_id, msg.user_id)  # read once for both branches
            if part is not None and pending is not None:  # what is stored, even though not yet searchable
                notes = list(dict.fromkeys(part.notes + pending.notes))
                part = part.model_copy(update={"outcomes": pending.outcomes, "notes": notes})
            attempts = part.charged_attempts() if part is not None and part.attempts > 0 else delivery.attempt
            if attempts >= delivery.max_attempts:
                if pending is not None:
                    reason += "; `memcube redrive` indexes them once the index is back"
                self._dead_letter(delivery, f"gave up after {attempts} attempts: {reason}", msg, part)
                return Verdict.DONE
            if part is not None and part.status is not TaskState.COMPLETED:
                # Keep the latest failure visible in the status while the message waits for a retry.
                # The worker survived the attempt: it ended, and it was no crash of the worker.
                update = {"error": f"retrying: {reason}", "updated_at": self._now(), "running": False, "crashes": 0}
                self._tasks.put_task_part(msg.task_id, part.model_copy(update=update))
            self._telemetry.count("PartsRetried")
            return Verdict.RETRY
        return Verdict.DONE

    def reject(self, delivery: Delivery, reason: str) -> None:
        """Dead-letter a delivery that can never succeed (e.g. its claim check is gone)."""
        self._dead_letter(delivery, reason, None)

    def _own_part(self, task_id: str, cube_id: str, user_id: str | None) -> TaskPart | None:
        """The task's part for this cube, if the task belongs to this user: a forged message
        never touches another user's task."""
        record = self._tasks.get_task(task_id)
        if record is None or record.task.user_id != user_id:
            return None
        return next((p for p in record.parts if p.cube_id == cube_id), None)

    def process(
        self,
        msg: QueuedAdd,
        *,
        max_attempts: int | None = None,
        message_id: str | None = None,
        blamed: bool | None = None,
    ) -> TaskPart:
        """Run one cube's part of a task to completion (or raise). With `max_attempts`, a part
        whose last attempts all started and never finished, each charged to it (`blamed`: its
        worker died while running it alone, or timed out on it: a message that crashes it), is
        given up on with that reason. A message already dead-lettered under this `message_id`
        (redelivered because the worker stopped before the queue heard it was done) is not run
        again; a redriven one (a new message) is."""
        self._authorize(msg)
        before, part, submitted = self._start(msg, max_attempts, message_id, blamed)
        if part.status in FINISHED:
            return part  # a redelivery of finished (or given-up) work: nothing to redo
        erased = self._erasures.erased_at(msg.cube_id, msg.user_id)
        if _covers(erased, submitted):
            return self._cancel(msg, part)
        # An earlier attempt (or an earlier run the caller retried) may have written: read it back, do not redo it.
        redelivery = part.attempts > 1 or bool(part.runs)
        placement = self._feedback_part(msg, part, redelivery) if msg.is_feedback else self._organize(msg, redelivery)
        written = self._index_changed(placement)
        later = self._erasures.erased_at(msg.cube_id, msg.user_id)
        if later != erased and _covers(later, submitted):
            # The cube was erased while this part ran: the eraser may have missed these writes.
            self._memories.delete_memories(written)
            self._index.delete(msg.cube_id, [i.id for i in written])
            return self._cancel(msg, part)
        done = part.finished(
            TaskState.COMPLETED,
            self._now(),
            outcomes=placement.outcomes,
            notes=list(dict.fromkeys(part.notes + self._mode_notes(msg) + placement.notes)),
            error=None,
        )
        self._tasks.put_task_part(msg.task_id, done)
        if before is TaskState.FAILED or part.runs:  # a redriven or retried part succeeded: its dead letter is resolved
            self._resolve_dead_letters(msg)
        self._count_completed(placement.outcomes)
        return done

    def _authorize(self, msg: QueuedAdd) -> None:
        """The API's write rules, checked again: a message that may not write its cube never will."""
        try:
            scopes = frozenset() if self._open_cubes else frozenset({"user"})  # keys on: held to created cubes
            authorize_write(Principal(user_id=msg.user_id, scopes=scopes), [msg.cube_id], self._users)
        except Forbidden as exc:
            raise PermanentError(exc.message) from exc

    def _index_changed(self, placement: Placement) -> list[MemoryItem]:
        """Index the last version of every item the placement wrote; returns them. A failure here
        leaves the store writes done: the part waits for a retry (`IndexingPending`)."""
        written = list({i.id: i for i in placement.changed}.values())  # the last version of each
        if written:
            try:
                self._index.upsert(written)
            except Exception as exc:
                raise IndexingPending(placement.outcomes, placement.notes, exc) from exc
        return written

    def _resolve_dead_letters(self, msg: QueuedAdd) -> None:
        mine = (msg.task_id, msg.cube_id)
        resolved = [d for d in self._dead_letters.list_dead_letters() if (d.task_id, d.cube_id) == mine]
        if resolved:
            self._dead_letters.delete_dead_letters(resolved)

    def _count_completed(self, outcomes: list[MemoryOutcome]) -> None:
        self._telemetry.count("PartsCompleted")
        for outcome in ("added", "duplicate", "merged", "updated", "archived"):
            n = sum(1 for o in outcomes if o.outcome == outcome)
            if n:
                self._telemetry.count(f"Memories{outcome.capitalize()}", n)

    def _mode_notes(self, msg: QueuedAdd) -> list[str]:
        notes = []
        if msg.mode == "fine" and self._extractor is None:
            notes.append("fine mode requested but no LLM is configured: fast mode was used")
        if not self._fine(msg) and not msg.is_feedback:  # say why no preference or tool memory was made
            no_llm = self._extractor is None
            if any(u.type != "file" for u in msg.messages):
                notes.append(preferences.NO_LLM_NOTE if no_llm else preferences.FAST_MODE_NOTE)
            if tool_memory.has_tool_messages(msg.messages):
                notes.append(tool_memory.NO_LLM_NOTE if no_llm else tool_memory.FAST_MODE_NOTE)
        return notes

    def _fine(self, msg: QueuedAdd) -> bool:
        """Fine unless fast was asked for: fine is the default when an LLM is configured."""
        return self._extractor is not None and msg.mode != "fast"

    def _organize(self, msg: QueuedAdd, redelivery: bool = False) -> Placement:
        sizes = Sizes.for_embedder(self._embedder.max_tokens)  # every memory's text reaches its vector
        windows = read(self._readable(msg.messages), sizes)  # once: a PDF's text is extracted here
        drafts, notes = self._drafts(msg, windows)
        tools, tool_notes = self._tool_drafts(msg)
        drafts += tools
        placement = Placement(notes=notes + tool_notes)
        earlier = self._earlier(msg, self._candidate_ids(msg, drafts, len(windows))) if redelivery else {}
        new = {i.id: i for i in self._embedded(msg, [d for d in drafts if d.id not in earlier])}
        for memory_id in dict.fromkeys([d.id for d in drafts] + list(earlier)):  # draft order, then the rest
            if memory_id in earlier:
                step = self._organizer.recovered(earlier[memory_id])
            else:
                fresh = [i for i in placement.changed if i.metadata.status == "activated"]
                step = self._organizer.place(new[memory_id], fresh)
            placement.add(step)
        return placement

    def _candidate_ids(self, msg: QueuedAdd, drafts: list[Draft], windows: int) -> list[str]:
        """Every item id this message can have written: its drafts' now, and in fine mode every id
        an earlier LLM reply could have used (a second reply may differ from the first)."""
        ids = [d.id for d in drafts]
        if self._fine(msg):
            from memcube.domain.extraction import MAX_ITEMS

            for i in range(windows):
                ids += [item_id(msg.item_seed, msg.cube_id, i)]
                ids += [item_id(msg.item_seed, msg.cube_id, f"{i}.{j}") for j in range(MAX_ITEMS)]
                ids += [item_id(msg.item_seed, msg.cube_id, f"{i}.p{j}") for j in range(preferences.MAX_PREFERENCE_IDS)]
            if tool_memory.has_tool_messages(msg.messages):
                ids += [item_id(msg.item_seed, msg.cube_id, f"tool.{n}") for n in range(tool_memory.MAX_CALLS)]
        return list(dict.fromkeys(ids))

    def _tool_drafts(self, msg: QueuedAdd) -> tuple[list[Draft], list[str]]:
        """Fine mode: one `ToolTrajectoryMemory` per tool call of the message (`tool_memory`)."""
        if self._llm is None or not self._fine(msg) or not tool_memory.has_tool_messages(msg.messages):
            return [], []
        reading = tool_memory.read(self._llm, msg.messages)
        drafts = [
            Draft(
                id=item_id(msg.item_seed, msg.cube_id, f"tool.{n}"),
                text=t.text,
                key=f"tool call: {t.call.name}"[:80],
                tags=list(dict.fromkeys(["mode:fine", "tool", t.call.name[:64], t.call.status, *msg.custom_tags])),
                memory_type="ToolTrajectoryMemory",
                sources=t.sources,
                fields={"tool_call": t.call, "experience": t.experience or None},
            )
            for n, t in enumerate(reading.trajectories)
        ]
        return drafts, reading.notes

    def _preference_drafts(
        self, msg: QueuedAdd, window: int, result: Extraction, sources: list[SourceMessage]
    ) -> list[Draft]:
        """The window's preferences as `PreferenceMemory` drafts (`preferences`)."""
        return [
            Draft(
                id=item_id(msg.item_seed, msg.cube_id, f"{window}.p{j}"),
                text=p.preference,
                key=p.title,
                tags=list(dict.fromkeys(["mode:fine", "preference", *p.tags, *msg.custom_tags])),
                memory_type="PreferenceMemory",
                sources=sources,
                background=result.summary,
                fields={"preference_type": p.preference_type, "preference": p.preference, "reasoning": p.reasoning},
            )
            for j, p in enumerate(result.preferences)
        ]

    def _earlier(self, msg: QueuedAdd, ids: list[str]) -> dict[str, MemoryItem]:
        """The items an earlier attempt of this part stored, by id, in the order of `ids`."""
        found = {
            i.id: i
            for i in self._memories.get_memories(ids)
            if (i.metadata.task_id, i.metadata.cube_id) == (msg.task_id, msg.cube_id)
        }
        return {i: found[i] for i in ids if i in found}

    def _drafts(self, msg: QueuedAdd, windows: list[Window]) -> tuple[list[Draft], list[str]]:
        """One draft per window (fast), or the LLM's items per window (fine, falling back to the
        window's fast item when the reply is unusable)."""
        notes: list[str] = []
        drafts: list[Draft] = []
        custom = list(msg.custom_tags)
        for i, win in enumerate(windows):
            source: Literal["conversation", "file"] = "file" if win.from_file else "conversation"
            if self._extractor is not None and self._fine(msg):
                from memcube.domain.extraction import Extraction

                result = self._extractor.extract(win, custom_tags=custom, now=_instant(msg.submitted_at or self._now()))
                if isinstance(result, Extraction):
                    notes += [f"window {i}: {n}" for n in result.notes]
                    if not result.items and not (result.preferences and not win.from_file):
                        notes.append(f"window {i}: the LLM found nothing worth remembering")
                    drafts += [
                        Draft(
                            id=item_id(msg.item_seed, msg.cube_id, f"{i}.{j}"),
                            text=x.value,
                            key=x.key,
                            tags=list(dict.fromkeys(["mode:fine", *x.tags, *custom])),
                            memory_type=x.memory_type,
                            sources=win.sources,
                            background=result.summary,
                            source=source,
                        )
                        for j, x in enumerate(result.items)
                    ]
                    if not win.from_file:  # a document states no preference of the user's
                        drafts += self._preference_drafts(msg, i, result, win.sources)
                    continue
                notes.append(f"window {i}: {result}; its fast item was stored instead")
            drafts.append(
                Draft(
                    id=item_id(msg.item_seed, msg.cube_id, i),
                    text=win.text,
                    key=win.key,
                    tags=["mode:fast", *custom],
                    memory_type=win.memory_type,
                    sources=win.sources,
                    source=source,
                )
            )
        return drafts, notes

    def _readable(self, units: list[SourceMessage]) -> list[SourceMessage]:
        """The units with every binary file (a PDF) replaced by its text, read here on the worker."""
        out = []
        for unit in units:
            if unit.data is None:
                out.append(unit)
                continue
            name = unit.filename or unit.file_id or "a file"
            url = parse_data_url(unit.data)
            if url is None or url.mime is None:  # the queued message's schema admits typed data URLs only
                raise UnreadableFile(f"{name}: its data is not a data URL with a file type")
            if self._documents is None:
                raise UnreadableFile(f"{name}: no document reader is configured for {url.mime}")
            try:
                text = self._documents.text(url.decoded(), url.mime)
            except binascii.Error as exc:
                raise UnreadableFile(f"{name}: its data is not valid base64 ({exc})") from exc
            except UnreadableFile as exc:
                raise UnreadableFile(f"{name}: {exc.message}") from exc
            out.append(unit.model_copy(update={"content": text, "data": None}))
        return out

    def _embedded(self, msg: QueuedAdd, drafts: list[Draft]) -> list[MemoryItem]:
        vectors = self._embedder.embed([d.text for d in drafts])
        return [self._item(msg, d, v) for d, v in zip(drafts, vectors, strict=True)]

    def _feedback_part(self, msg: QueuedAdd, part: TaskPart, redelivery: bool = False) -> Placement:
        from memcube.domain.feedback import split_feedback

        ids = [item_id(msg.item_seed, msg.cube_id, f"feedback.{n}") for n in range(FEEDBACK_IDS)]
        fb = split_feedback(msg.messages, msg.chat_history or [])

        def new_item(n: int, text: str, key: str, tags: list[str]) -> MemoryItem:
            draft = Draft(
                id=ids[n],
                text=text,
                key=key or " ".join(text.split())[:80],
                tags=list(dict.fromkeys(["mode:feedback", *tags, *msg.custom_tags])),
                memory_type="UserMemory",
                sources=[fb.feedback] if fb is not None else [],
            )
            return self._embedded(msg, [draft])[0]

        earlier = self._earlier(msg, ids) if redelivery or part.feedback_plan is not None else {}
        if part.feedback_plan is not None:  # an earlier attempt decided: apply the rest of that plan
            return self._feedback.replay(
                part.feedback_plan, new_item, lambda n: earlier.get(ids[n]), self._memories.get_memories
            )
        if earlier:  # applied by an earlier attempt without a plan (one item): report it from the store
            placement = Placement()
            for stored in earlier.values():
                placement.add(self._organizer.recovered(stored))
            return placement
        if fb is None:
            placement = self._organize(msg)
            placement.notes.append("feedback: no user message to read as feedback; stored as a normal add")
            return placement

        def record_plan(plan: list[FeedbackStep]) -> None:
            self._tasks.put_task_part(msg.task_id, part.model_copy(update={"feedback_plan": plan}))

        retrieved = msg.retrieved_memory_ids
        return self._feedback.apply(
            fb, new_item, msg.task_id, record_plan, retrieved=retrieved, items=self._memories.get_memories
        )

    def _cancel(self, msg: QueuedAdd, part: TaskPart) -> TaskPart:
        cancelled = part.finished(
            TaskState.CANCELLED, self._now(), outcomes=[], notes=[*part.notes, ERASED_NOTE], error=None
        )
        self._tasks.put_task_part(msg.task_id, cancelled)
        self._telemetry.count("PartsCancelled")
        return cancelled

    def _start(
        self,
        msg: QueuedAdd,
        max_attempts: int | None = None,
        message_id: str | None = None,
        blamed: bool | None = None,
    ) -> tuple[TaskState, TaskPart, str]:
        """The part's state before this attempt, the part marked in progress (or left as it is:
        finished, or given up on under this very message id), and when its task was submitted
        (for erasure marks). An earlier attempt that never ended is counted here: as a crash of
        this message if it is to blame (see `Delivery.blamed`), else as interrupted, which never
        counts toward giving up."""
        now = self._now()
        record = self._task_record(msg, now)
        submitted = _instant(record.task.created_at)
        part = next((p for p in record.parts if p.cube_id == msg.cube_id), None)
        if part is None:
            part = TaskPart(cube_id=msg.cube_id, updated_at=now)
        if self._settled(part, message_id):
            return part.status, part, submitted
        part = _charge_unfinished(part, blamed)
        if part.status is TaskState.IN_PROGRESS and max_attempts is not None and part.crashes >= max_attempts:
            self._give_up_on_crashes(msg, part)
        started = part.model_copy(
            update={
                "status": TaskState.IN_PROGRESS,
                "running": True,
                "attempts": part.attempts + 1,
                "started_at": part.started_at or now,
                "updated_at": now,
                "mode": "fine" if self._fine(msg) else "fast",
            }
        )
        self._tasks.put_task_part(msg.task_id, started)
        return part.status, started, submitted

    def _task_record(self, msg: QueuedAdd, now: str) -> TaskRecord:
        """The message's task, created here for a direct producer (the task starts with its first
        message); a task of another user is refused for good."""
        record = self._tasks.get_task(msg.task_id)
        if record is None:
            task = Task(
                task_id=msg.task_id,
                user_id=msg.user_id,
                cube_ids=[msg.cube_id],
                fingerprint=hashlib.sha256(msg.model_dump_json().encode()).hexdigest(),
                created_at=msg.submitted_at or now,
                origin="producer",
            )
            self._users.register_user(msg.user_id)
            self._tasks.create_task(task, [TaskPart(cube_id=msg.cube_id, updated_at=now)])
            record = self._tasks.get_task(msg.task_id)
            if record is None:  # pragma: no cover - defensive; create_task is durable
                raise RuntimeError("task record vanished after creation")
        elif record.task.user_id != msg.user_id:
            raise PermanentError(f"task {msg.task_id!r} belongs to another user; a queued message may not join it")
        return record

    def _settled(self, part: TaskPart, message_id: str | None) -> bool:
        """Finished (completed or cancelled), or given up on under this very message id: left as it is."""
        if part.status in {TaskState.COMPLETED, TaskState.CANCELLED}:
            return True
        return (
            part.status is TaskState.FAILED
            and message_id is not None
            and any(d.message_id == message_id for d in self._dead_letters.list_dead_letters())
        )

    def _give_up_on_crashes(self, msg: QueuedAdd, part: TaskPart) -> NoReturn:
        """Record the crashes counted and give up: every recent attempt died while running this message."""
        last = f"; the last error seen: {part.error.removeprefix('retrying: ')}" if part.error else ""
        self._tasks.put_task_part(msg.task_id, part)
        raise PermanentError(
            f"gave up after {part.crashes} attempts that never finished (each time the worker died or "
            f"timed out while running this message alone){last}"
        )

    def _item(self, msg: QueuedAdd, draft: Draft, vector: list[float]) -> MemoryItem:
        now = self._now()
        start, end = event_times(s.chat_time for s in draft.sources)
        return MemoryItem(
            id=draft.id,
            memory=draft.text,
            metadata=MemoryMetadata(
                user_id=msg.user_id,
                session_id=msg.session_id,
                cube_id=msg.cube_id,
                memory_type=draft.memory_type,
                key=draft.key,
                tags=draft.tags,
                custom_tags=list(msg.custom_tags),
                info=dict(msg.info),
                sources=draft.sources,
                source=draft.source,
                background=draft.background,
                embedding=vector,
                embedding_model=self._embedder.model_id,
                created_at=now,
                updated_at=now,
                content_hash=content_hash(draft.text, draft.memory_type),
                task_id=msg.task_id,
                event_time=start,
                event_time_end=end,
                manager_user_id=msg.manager_user_id,
                project_id=msg.project_id,
                expires_at=self._expiry(msg, now),
                **draft.fields,
            ),
        )

    def _expiry(self, msg: QueuedAdd, now: str) -> int | None:
        """The message's expiry; without one (a direct producer's message, or a cube without a
        default), the cube's default counted from the submission, as the API resolves it."""
        if msg.expires_at is not None:
            return msg.expires_at
        try:
            submitted = datetime.fromisoformat(msg.submitted_at or now).timestamp()
        except ValueError:  # a producer's unreadable time: from now, never already expired
            submitted = datetime.fromisoformat(now).timestamp()
        return resolve(None, self._users.get_cube(msg.cube_id), submitted)

    def _dead_letter(
        self, delivery: Delivery, reason: str, msg: QueuedAdd | None, part: TaskPart | None = None
    ) -> None:
        task_id, cube_id, user_id = (msg.task_id, msg.cube_id, msg.user_id) if msg else _ids_from(delivery.body)
        now = self._now()
        self._telemetry.count("PartsDeadLettered")
        if self._sink is not None:
            self._sink.park(delivery.body, reason, cube_id)
        # An unreadable body names no cube: its FIFO group does (the queue's own record of it).
        where = {"task_id": task_id, "cube_id": cube_id or delivery.group_id, "reason": reason}
        log.error("dead-lettered", extra={k: v for k, v in where.items() if v is not None})
        # One record per task and cube (`DeadLetter.key`): a redriven message that fails again
        # replaces its record with this failure.
        self._dead_letters.record_dead_letter(
            DeadLetter(
                message_id=delivery.message_id,
                body=delivery.body,
                reason=reason,
                task_id=task_id,
                cube_id=cube_id,
                attempts=delivery.attempt,
                failed_at=now,
            )
        )
        if part is None and task_id and cube_id:
            part = self._own_part(task_id, cube_id, user_id)
        if task_id is None or part is None or part.status is TaskState.COMPLETED:
            return
        self._tasks.put_task_part(task_id, part.finished(TaskState.FAILED, now, error=reason))


def _charge_unfinished(part: TaskPart, blamed: bool | None) -> TaskPart:
    """The part with an earlier attempt that never ended counted: as a crash of this message if it
    is to blame (see `Delivery.blamed`), else as interrupted. A redriven part starts afresh: its
    earlier crashes were the cause it failed for."""
    if part.status is TaskState.FAILED:
        part = part.model_copy(update={"crashes": 0, "running": False})
    if part.running:  # the last attempt never ended: its worker died or timed out
        if blamed is False:
            part = part.model_copy(update={"interrupted": part.interrupted + 1, "crashes": 0})
        else:
            part = part.model_copy(update={"crashes": part.crashes + 1})
    return part


def _covers(mark: str | None, submitted: str) -> bool:
    """Whether an erasure mark covers a task submitted at `submitted`."""
    return mark is not None and submitted <= mark


def _instant(text: str) -> str:
    """A timestamp in the one format the service writes (so marks compare as strings); an
    unparsable one counts as the epoch's start, which any erasure mark covers."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return iso(datetime.fromtimestamp(0, UTC))
    return iso(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def _ids_from(body: str) -> tuple[str | None, str | None, str | None]:
    """Best effort: name the task, cube and user of a message that failed validation."""
    return peek(body, "task_id"), peek(body, "cube_id"), peek(body, "user_id")


def _fine_mode_extractor(llm: LLM) -> Extractor:
    """Fine mode's extractor (only with an LLM: its module is not loaded without one)."""
    from memcube.domain.extraction import Extractor

    return Extractor(llm)
