"""The requests that change memories other than by adding: MemOS's feedback
(`/product/feedback`, its `APIFeedbackRequest`) and direct edits (`/product/update_memory`, and
the hosted `update/memory` that `MemOSClient.update_memory` calls), mapped onto the domain's
commands, and the feedback's sync answer.

A feedback is the add that `is_feedback` already sends down the feedback path: the request
becomes an `AddRequest` whose one user message is `feedback_content` (at `feedback_time`), with
`history` as its chat history, then the same `AddCommand`, carrying `retrieved_memory_ids`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from memcube.domain import limits
from memcube.domain.base import Model
from memcube.domain.commands import AddCommand, MemoryEdit
from memcube.domain.expiry import expiry_changes
from memcube.domain.ids import Id
from memcube.domain.model import MemoryItem, MemoryOutcome
from memcube_api.schemas.hosted import CubeIds, Info, Tags
from memcube_api.schemas.messages import ChatMessage, MessageEntry
from memcube_api.schemas.product import AddRequest, to_command

_DEPRECATED: dict[str, Any] = {"deprecated": True}
MAX_MEMORY_CHARS = 20_000
"""A memory's new text, in characters (the embedder's window is checked by the domain)."""


class FeedbackRequest(Model):
    """MemOS's APIFeedbackRequest: a correction of what the cube(s) know, in the user's words."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "user_id": "alice",
                "history": [
                    {"role": "user", "content": "Where do I live?"},
                    {"role": "assistant", "content": "You live in Lisbon."},
                ],
                "feedback_content": "No, I moved to Porto last month.",
                "async_mode": "sync",
            }
        },
    )

    user_id: Id
    session_id: Id | None = "default_session"
    task_id: Id | None = None
    history: list[MessageEntry] | None = Field(default=None, max_length=limits.MAX_MESSAGES)
    retrieved_memory_ids: list[Id] | None = Field(default=None, min_length=1, max_length=limits.MAX_RETRIEVED_IDS)
    feedback_content: str = Field(min_length=1, max_length=limits.MAX_CONTENT_BYTES)
    feedback_time: str | None = Field(default=None, max_length=64)
    writable_cube_ids: CubeIds | None = None
    async_mode: Literal["sync", "async"] = "async"
    corrected_answer: bool = False
    info: Info | None = None
    mem_cube_id: Id | None = Field(default=None, json_schema_extra=_DEPRECATED)

    @field_validator("feedback_content")
    @classmethod
    def _has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty: the feedback is the text that corrects the memories")
        return value

    @model_validator(mode="after")
    def _answer_is_sync(self) -> FeedbackRequest:
        if self.corrected_answer and self.async_mode == "async":
            raise ValueError(
                "corrected_answer: the corrected answer comes back in the response of a sync feedback; "
                "send async_mode=sync (or corrected_answer=false)"
            )
        return self


def feedback_command(req: FeedbackRequest) -> AddCommand:
    """The add that `is_feedback` sends: the feedback as the last user message, after `history`."""
    add = AddRequest(
        user_id=req.user_id,
        session_id=req.session_id,
        task_id=req.task_id,
        writable_cube_ids=req.writable_cube_ids,
        async_mode=req.async_mode,
        info=req.info,
        messages=[ChatMessage(role="user", content=req.feedback_content, chat_time=req.feedback_time)],
        chat_history=req.history,
        is_feedback=True,
        mem_cube_id=req.mem_cube_id,
    )
    ids = list(dict.fromkeys(req.retrieved_memory_ids)) if req.retrieved_memory_ids is not None else None
    return to_command(add).model_copy(update={"retrieved_memory_ids": ids})


def feedback_record(outcomes: Iterable[MemoryOutcome], items: dict[str, MemoryItem], answer: str) -> dict[str, Any]:
    """MemOS's sync feedback answer for one cube: `{answer, record: {add, update}}`, one `update`
    entry per archived item (`archived_id`, its text as `origin_memory`)."""
    add: list[dict[str, Any]] = []
    update: list[dict[str, Any]] = []
    for o in outcomes:
        item = items.get(o.memory_id)
        if item is None:
            continue
        entry = {"id": item.id, "text": item.memory, "source_doc_id": item.metadata.info.get("source_doc_id")}
        if o.outcome == "added":
            add.append(entry)
        elif o.outcome == "updated":
            for old_id in o.related_ids:
                old = items.get(old_id)
                update.append(entry | {"archived_id": old_id, "origin_memory": old.memory if old else None})
    return {"answer": answer, "record": {"add": add, "update": update}}


class UpdateMemoryRequest(Model):
    """`POST /product/update_memory`: a new version of one memory; each field given replaces the
    stored one (at least one of `memory`, `tags`, `info`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"user_id": "alice", "memory_id": "…", "memory": "Alice lives in Porto."}},
    )

    user_id: Id
    memory_id: Id
    mem_cube_id: Id | None = None
    memory: str | None = Field(default=None, min_length=1, max_length=MAX_MEMORY_CHARS)
    tags: Tags | None = None
    info: Info | None = None
    expiration_date: str | None = Field(
        default=None,
        max_length=64,
        description="memcube: the memory's new expiry, ISO 8601 (a date alone: the end of that day, UTC), in the "
        "future; null clears it (never expires). Absent: unchanged.",
    )

    @field_validator("memory")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("empty: a memory's text must say something (delete the memory instead)")
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _something(self) -> UpdateMemoryRequest:
        if self.memory is None and self.tags is None and self.info is None and not self._sets_expiry:
            raise ValueError(
                "memory, tags, info, expiration_date: give at least one of them (the new text, tags, info or expiry)"
            )
        return self

    @property
    def _sets_expiry(self) -> bool:
        return "expiration_date" in self.model_fields_set  # null is sent to clear it

    def to_command(self) -> MemoryEdit:
        """The edit; a malformed or past `expiration_date` is refused here (422), before any read."""
        sets = self._sets_expiry
        changes = expiry_changes(self.expiration_date, time.time()) if sets else {"expires_at": None}
        return MemoryEdit(
            memory_id=self.memory_id,
            cube_id=self.mem_cube_id,
            memory=self.memory,
            tags=self.tags,
            info=self.info,
            sets_expiry=sets,
            expires_at=changes["expires_at"],
        )


class UpdateMemoryBody(Model):
    """The hosted `update/memory` (`MemOSClient.update_memory`, which sends every field, unset
    ones as null): `content` is the new text, `title` the memory's key, `status` archives or
    reactivates it."""

    model_config = ConfigDict(extra="forbid")

    memory_id: Id
    content: str | None = Field(default=None, max_length=MAX_MEMORY_CHARS)
    title: str | None = Field(default=None, max_length=200)
    status: str | None = Field(default=None, max_length=32)

    @field_validator("content", "title")
    @classmethod
    def _text(cls, value: str | None, info: Any) -> str | None:
        if value is not None and not value.strip():
            raise ValueError(f"empty: give the new {'text' if info.field_name == 'content' else 'title'} or null")
        return value.strip() if value is not None else None

    @field_validator("status")
    @classmethod
    def _status(cls, value: str | None) -> str | None:
        if value not in (None, "activated", "archived"):
            raise ValueError(
                f"{value!r} is not a status an update sets: activated or archived (delete a memory with delete/memory)"
            )
        return value

    @model_validator(mode="after")
    def _something(self) -> UpdateMemoryBody:
        if self.content is None and self.title is None and self.status is None:
            raise ValueError("content, title, status: give at least one of them")
        return self

    def to_command(self) -> MemoryEdit:
        status: Literal["activated", "archived"] | None = self.status  # type: ignore[assignment]  # validated
        return MemoryEdit(memory_id=self.memory_id, memory=self.content, key=self.title, status=status)
