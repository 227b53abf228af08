"""The versioned queued-message schema, shared by the API, the worker and direct SQS producers.

One message carries one task's work for one cube. Producers that bypass the API send the same
JSON (see docs/queue-message.md and events/direct_producer_message.json); the worker validates
it and enforces the same cube permissions as the API.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field, SerializerFunctionWrapHandler, field_validator, model_serializer

from memcube.domain import limits
from memcube.domain.base import Model
from memcube.domain.files import decoded_size, is_binary_data_url
from memcube.domain.ids import Id, check_info
from memcube.domain.model import SourceMessage

SCHEMA_VERSION: Literal[1] = 1


class QueuedAdd(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    kind: Literal["add"] = "add"
    task_id: Id
    cube_id: Id
    user_id: Id
    session_id: Id = "default_session"
    mode: Literal["fast", "fine"] | None = None
    messages: list[SourceMessage] = Field(min_length=1, max_length=limits.MAX_MESSAGES * 2)
    chat_history: list[SourceMessage] | None = Field(default=None, max_length=limits.MAX_MESSAGES * 2)
    custom_tags: list[str] = Field(default_factory=list, max_length=limits.MAX_TAGS)
    info: dict[str, Any] = Field(default_factory=dict)
    is_feedback: bool = False
    manager_user_id: Id | None = None
    project_id: Id | None = None
    submitted_at: str | None = None
    id_salt: str = Field(default="", pattern=r"^[0-9a-f]{0,64}$")
    """The task's random id salt (the API sets it; a direct producer may leave it empty)."""
    run: int = Field(default=0, ge=0, le=1000)
    """0 for a task's first run; n for the caller's n-th retry of a failed part (a new message,
    not a duplicate of the failed run's)."""
    expires_at: int | None = Field(default=None, ge=0)
    """When this cube's memories of the add expire (epoch seconds; `domain.expiry`): the add's
    `expiration_date`, or the cube's default resolved by the API. None: never (a direct producer
    may set it; the worker then applies it as sent)."""
    retrieved_memory_ids: list[Id] | None = Field(default=None, max_length=limits.MAX_RETRIEVED_IDS)
    """A feedback's candidates: only these items of the cube may be corrected (None: the cube's
    items most similar to the feedback). Written only when set, so other messages keep their
    shape and a worker of the version before it still reads them."""

    @model_serializer(mode="wrap")
    def _without_unset_ids(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        body: dict[str, Any] = handler(self)
        if body.get("retrieved_memory_ids") is None:
            body.pop("retrieved_memory_ids", None)
        return body

    @field_validator("info")
    @classmethod
    def _info(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_info(value)
        return value

    @field_validator("messages")
    @classmethod
    def _has_text(cls, value: list[SourceMessage]) -> list[SourceMessage]:
        if not any(m.content.strip() or m.data for m in value):
            raise ValueError("no text to remember")
        for m in value:
            if m.data is not None and (m.type != "file" or not is_binary_data_url(m.data)):
                raise ValueError("data: only a file carries data, as data:<mime>;base64,<bytes>")
        problem = size_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @property
    def item_seed(self) -> str:
        """What this message's memory ids are derived from: the task id and its salt, fixed for
        the task, so a redelivery rewrites the same items and nobody else can compute them."""
        return f"{self.task_id}#{self.id_salt}" if self.id_salt else self.task_id

    @property
    def group_id(self) -> str:
        """FIFO ordering key: one cube's messages are processed one at a time, in order."""
        return self.cube_id

    @property
    def dedup_id(self) -> str:
        """The same task never enqueues the same cube twice in one run (SQS FIFO dedup window: 5
        minutes); a retry of a failed part is a new run, and so a new message."""
        again = f"\x1f{self.run}" if self.run else ""
        return hashlib.sha256(f"{self.task_id}\x1f{self.cube_id}{again}".encode()).hexdigest()


def file_bytes(unit: SourceMessage) -> int:
    """A file unit's size: its text's UTF-8 bytes, or its binary data's decoded bytes."""
    return len(unit.content.encode()) if unit.data is None else decoded_size(unit.data)


def size_problem(units: Sequence[SourceMessage]) -> str | None:
    """Why these units are too large, or None. Conversation text and files have separate budgets:
    a knowledge-base file may be larger than any conversation."""
    text = sum(len(u.content.encode()) for u in units if u.type != "file")
    if text > limits.MAX_CONTENT_BYTES:
        return f"at most {limits.MAX_CONTENT_BYTES} bytes of text, got {text}"
    files = sum(file_bytes(u) for u in units if u.type == "file")
    if files > limits.MAX_FILE_BYTES:
        return f"at most {limits.MAX_FILE_BYTES} bytes of files, got {files}"
    return None


def peek(body: str, field: str) -> str | None:
    """One string field of a queued body, read without validating it (for log correlation and
    for matching a poison message to its user or task)."""
    try:
        value = json.loads(body).get(field)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
