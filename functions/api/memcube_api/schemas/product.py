"""MemOS's `/product` requests (names, types and defaults as MemOS v2 has them) and their mapping
onto the domain's commands.

Unknown fields are refused, so typos are not silently ignored. `to_command` applies MemOS's
conversions to an add (deprecated fields, cube fallback, session default) and flattens its
messages into the units the reader consumes; the other requests map onto a command
(`SearchRequest.to_query`, `DeleteMemoryRequest.to_command`, ...) or plain arguments.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from memcube.domain import limits
from memcube.domain.base import Model
from memcube.domain.commands import AddCommand, DeleteMemories, GrantChange, NewCube, SearchQuery
from memcube.domain.errors import InvalidRequest
from memcube.domain.expiry import MAX_TTL_DAYS, parse_expiration
from memcube.domain.ids import Id, check_cube_ids, check_id, check_info, check_tags
from memcube.domain.limits import MAX_EXPORT_PAGE, MAX_IMPORT_ITEMS
from memcube.domain.memories import MAX_PAGE_SIZE
from memcube.domain.messages import size_problem
from memcube.domain.model import MemoryType, SourceMessage
from memcube.domain.when import parse_time
from memcube_api.params import Params
from memcube_api.schemas.messages import MessageEntry, MessagesType, TextPart, flatten

MAX_IDS = 1000
"""Memory or file ids in one delete."""
SHOW_EXPIRED = "memcube: also return memories past their expiration_date not yet erased (metadata.expired: true)"


_DEPRECATED: dict[str, Any] = {"deprecated": True}


class AddRequest(Model):
    """MemOS's APIADDRequest. Field order, names, types and defaults follow MemOS v2."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "user_id": "alice",
                "writable_cube_ids": ["alice"],
                "messages": [
                    {"role": "user", "content": "I moved to Lisbon last May.", "chat_time": "2025-06-01"},
                    {"role": "assistant", "content": "Noted: you live in Lisbon now."},
                ],
                "custom_tags": ["travel"],
                "info": {"app_id": "demo"},
            }
        },
    )

    user_id: str | None = None
    session_id: str | None = None
    task_id: str | None = None
    writable_cube_ids: list[str] | None = None
    async_mode: Literal["async", "sync"] = "async"
    mode: Literal["fast", "fine"] | None = None
    custom_tags: list[str] | None = None
    info: dict[str, Any] | None = None
    messages: MessagesType | None = None
    chat_history: list[MessageEntry] | None = None
    is_feedback: bool = False
    is_upload_skill: bool = False
    manager_user_id: str | None = None
    project_id: str | None = None
    # Deprecated in MemOS, still accepted and converted (marked deprecated in the OpenAPI schema;
    # not via Field(deprecated=...), which would warn on every read inside the conversion).
    mem_cube_id: str | None = Field(default=None, json_schema_extra=_DEPRECATED)
    memory_content: str | None = Field(default=None, json_schema_extra=_DEPRECATED)
    doc_path: str | None = Field(default=None, json_schema_extra=_DEPRECATED)
    source: str | None = Field(default=None, max_length=256, json_schema_extra=_DEPRECATED)
    operation: list[dict[str, Any]] | None = Field(default=None, json_schema_extra=_DEPRECATED)
    expiration_date: str | None = Field(
        default=None,
        max_length=64,
        description="memcube: when the memories expire, ISO 8601 (a date alone: the end of that day, UTC); "
        "in the future. Default: the cube's default_ttl_days, else never.",
    )

    @field_validator("user_id", "session_id", "task_id", "manager_user_id", "project_id", "mem_cube_id")
    @classmethod
    def _ids(cls, value: str | None, info: Any) -> str | None:
        return None if value is None else check_id(value, info.field_name)

    @field_validator("writable_cube_ids")
    @classmethod
    def _cubes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_cube_ids(value)

    @field_validator("custom_tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_tags(value)

    @field_validator("info")
    @classmethod
    def _info(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        check_info(value)
        return value

    @field_validator("messages", "chat_history")
    @classmethod
    def _message_count(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > limits.MAX_MESSAGES:
            raise ValueError(f"at most {limits.MAX_MESSAGES} entries, got {len(value)}")
        return value


def to_command(req: AddRequest) -> AddCommand:
    """Apply MemOS's conversions and flatten messages; raise InvalidRequest naming the field."""
    user_id, info = _refusals(req)
    units = flatten(_entries(req), "messages")
    if not any(u.content.strip() or u.data for u in units):
        raise InvalidRequest(
            "messages: nothing to remember (no text in messages or memory_content); an add must carry text"
        )
    history = flatten(list(req.chat_history), "chat_history") if req.chat_history is not None else None
    _check_parts("chat_history", history or [])
    problem = size_problem(units)
    if problem is not None:
        raise InvalidRequest(f"messages: {problem}")
    _check_parts("messages", units)
    return AddCommand(
        user_id=user_id,
        session_id=req.session_id or "default_session",
        task_id=req.task_id,
        cube_ids=req.writable_cube_ids or ([req.mem_cube_id] if req.mem_cube_id else [user_id]),
        async_mode=req.async_mode,
        mode=req.mode,
        custom_tags=req.custom_tags or [],
        info=info,
        messages=units,
        chat_history=history,
        is_feedback=req.is_feedback,
        manager_user_id=req.manager_user_id,
        project_id=req.project_id,
        expires_at=None if req.expiration_date is None else parse_expiration(req.expiration_date, time.time()),
    )


def _refusals(req: AddRequest) -> tuple[str, dict[str, Any]]:
    """The add's user and info, after what memcube refuses of an add that validated."""
    if not req.user_id:
        raise InvalidRequest("user_id: required (it selects the principal and the default cube)")
    if req.is_upload_skill:
        raise InvalidRequest("is_upload_skill: skill packages are not supported by memcube")
    if req.doc_path:
        raise InvalidRequest(
            "doc_path: server-side file paths are never read; send the file's text inline as messages[].file.file_data"
        )
    info = _info_with_source(req)
    for field, text in (("messages", req.messages), ("memory_content", req.memory_content)):
        if isinstance(text, str) and len(text.encode()) > limits.MAX_CONTENT_BYTES:
            raise InvalidRequest(f"{field}: at most {limits.MAX_CONTENT_BYTES} bytes of text, got {len(text.encode())}")
    return req.user_id, info


def _info_with_source(req: AddRequest) -> dict[str, Any]:
    """`info`, with the deprecated `source` in it (unless `info` has its own)."""
    info = dict(req.info or {})
    if req.source and "source" not in info:
        info["source"] = req.source
        try:  # the request's info was checked before `source` joined it
            check_info(info)
        except ValueError as exc:
            raise InvalidRequest(f"info: {exc} (with `source` added to it)") from exc
    return info


def _entries(req: AddRequest) -> list[Any]:
    """The messages as a list of entries, `memory_content` (deprecated) last."""
    raw = req.messages
    entries: list[Any] = [TextPart(type="text", text=raw)] if isinstance(raw, str) else list(raw or [])
    if req.memory_content:
        entries.append(TextPart(type="text", text=req.memory_content))
    return entries


def _check_parts(field: str, units: list[SourceMessage]) -> None:
    if len(units) > limits.MAX_MESSAGES * 2:
        raise InvalidRequest(f"{field}: at most {limits.MAX_MESSAGES * 2} message parts, got {len(units)}")


class SearchRequest(Model):
    """MemOS's APISearchRequest. `include_preference`/`pref_top_k` fill `pref_mem` and
    `search_tool_memory`/`tool_mem_top_k` fill `tool_mem` (memories fine mode extracts); the
    skill switches select a kind memcube does not extract: `skill_mem` comes back empty."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4096)
    user_id: Id
    readable_cube_ids: list[str] | None = None
    mem_cube_id: Id | None = Field(default=None, json_schema_extra={"deprecated": True})
    mode: Literal["fast", "fine", "mixture"] = "fast"
    session_id: Id | None = None
    top_k: int = Field(default=10, ge=1, le=100)
    relativity: float = Field(default=0.45, ge=0.0, le=1.0)
    dedup: Literal["no", "sim", "mmr"] = "mmr"
    rerank: bool = True
    filter: dict[str, Any] | None = None
    search_memory_type: Literal["All"] | MemoryType = "All"
    include_preference: bool = True
    pref_top_k: int = Field(default=6, ge=0, le=100)
    search_tool_memory: bool = True
    tool_mem_top_k: int = Field(default=6, ge=0, le=100)
    include_skill_memory: bool = True
    skill_mem_top_k: int = Field(default=3, ge=0, le=100)
    internet_search: bool = False
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    reference_time: str | None = Field(default=None, max_length=64)
    chat_history: list[dict[str, Any]] | None = Field(default=None, max_length=limits.MAX_MESSAGES)
    neighbor_discovery: bool = False
    source: str | None = Field(default=None, max_length=256)
    context_format: Literal["memory"] = "memory"
    show_expired: bool = Field(default=False, description=SHOW_EXPIRED)

    @field_validator("readable_cube_ids")
    @classmethod
    def _cubes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_cube_ids(value)

    @field_validator("reference_time")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is not None and parse_time(value) is None:
            raise ValueError("not a time with a year (e.g. 2023-05-08T13:56:00Z or 8 May 2023)")
        return value

    @model_validator(mode="after")
    def _refusals(self) -> SearchRequest:
        if self.internet_search:
            raise ValueError("internet_search: memcube searches memories only, never the internet (send false)")
        if self.neighbor_discovery:
            raise ValueError("neighbor_discovery: memcube keeps no memory graph to walk (send false)")
        if self.chat_history and self.mode == "fast":
            raise ValueError(
                "chat_history: it is read by mode fine or mixture, where the LLM rewrites the query with it; "
                "in fast mode send the query alone"
            )
        return self

    def to_query(self) -> SearchQuery:
        return SearchQuery(
            query=self.query,
            cube_ids=self.readable_cube_ids or ([self.mem_cube_id] if self.mem_cube_id else [self.user_id]),
            mode=self.mode,
            session_id=self.session_id,
            top_k=self.top_k,
            relativity=self.relativity,
            dedup=self.dedup,
            rerank=self.rerank,
            filter=self.filter,
            memory_type=None if self.search_memory_type == "All" else self.search_memory_type,
            threshold=self.threshold,
            reference_time=self.reference_time,
            chat_history=self.chat_history,
            show_expired=self.show_expired,
            pref_top_k=self.pref_top_k if self.include_preference else 0,
            tool_top_k=self.tool_mem_top_k if self.search_tool_memory else 0,
        )


class DeleteMemoryRequest(Model):
    """MemOS's delete request. Exactly one of `memory_ids`, `file_ids`, `filter` selects what to
    delete; `session_id` (or its alias `conversation_id`) narrows a filter or stands alone; with
    none of them the request erases everything `user_id` wrote in the cubes. `auto_cleanup_working`
    is accepted for compatibility: memcube keeps no working-memory copies to clean up."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    writable_cube_ids: list[str] | None = None
    memory_ids: list[Id] | None = Field(default=None, min_length=1, max_length=MAX_IDS)
    file_ids: list[Id] | None = Field(default=None, min_length=1, max_length=MAX_IDS)
    filter: dict[str, Any] | None = None
    session_id: Id | None = None
    conversation_id: Id | None = None
    auto_cleanup_working: bool = False

    @field_validator("writable_cube_ids")
    @classmethod
    def _cubes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_cube_ids(value)

    def to_command(self) -> DeleteMemories:
        if self.session_id and self.conversation_id and self.session_id != self.conversation_id:
            raise InvalidRequest("conversation_id: is an alias of session_id and must not differ from it")
        return DeleteMemories(
            user_id=self.user_id,
            cube_ids=self.writable_cube_ids,
            memory_ids=self.memory_ids,
            file_ids=self.file_ids,
            filter=self.filter,
            session_id=self.session_id or self.conversation_id,
        )


class DeleteCubeRequest(Model):
    """Erase a whole cube: every item, queued add and dead letter of it, whoever wrote them."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    cube_id: Id


class CreateCubeRequest(Model):
    """`POST /product/create_cube`: a knowledge-base cube owned by `user_id`."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    cube_id: Id
    readers: list[Id] = Field(default_factory=list, max_length=limits.MAX_GRANTS)
    writers: list[Id] = Field(default_factory=list, max_length=limits.MAX_GRANTS)
    default_ttl_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TTL_DAYS,
        description="memcube: memories added without an expiration_date expire this many days after their add",
    )

    def to_command(self) -> NewCube:
        return NewCube(
            cube_id=self.cube_id, readers=self.readers, writers=self.writers, default_ttl_days=self.default_ttl_days
        )


class CubeRequest(Model):
    """`POST /product/get_cube`: a knowledge-base cube's settings."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    cube_id: Id


class GrantRequest(Model):
    """`POST /product/grant_cube` and `/product/revoke_cube`."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    cube_id: Id
    target_user_id: Id
    permission: Literal["read", "write"]

    def to_command(self) -> GrantChange:
        return GrantChange(cube_id=self.cube_id, target_user_id=self.target_user_id, permission=self.permission)


class UndoRequest(Model):
    model_config = ConfigDict(extra="forbid")

    user_id: Id
    memory_id: Id


class ExportRequest(Model):
    """memcube's own route (MemOS has no export). `filter` is the search's filter language, as on
    `get_memory`: only the items of each page that pass it are answered, of every status."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    cube_id: Id
    cursor: str | None = Field(default=None, max_length=1024)
    limit: int = Field(default=100, ge=1, le=MAX_EXPORT_PAGE)
    show_expired: bool = Field(default=False, description=SHOW_EXPIRED)
    filter: dict[str, Any] | None = None


class ImportRequest(Model):
    model_config = ConfigDict(extra="forbid")

    user_id: Id
    cube_id: Id
    items: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_IMPORT_ITEMS)


class GetMemoryRequest(Model):
    """MemOS's GetMemoryRequest. The page lists every kind of the cube's memories; each is
    answered in its list (`text_mem`, `pref_mem`, `tool_mem`), and `include_preference: false`
    or `include_tool_memory: false` leaves that kind out of the answer (the page and its `total`
    stay the cube's). memcube extracts no skill memories: `include_skill_memory` selects nothing.
    `filter` is the search's filter language: only the memories that pass it are paged
    (`domain.reads`)."""

    model_config = ConfigDict(extra="forbid")

    mem_cube_id: Id
    user_id: Id | None = None
    include_preference: bool = True
    include_tool_memory: bool = True
    include_skill_memory: bool = True
    filter: dict[str, Any] | None = None
    page: int = Field(default=1, ge=1, le=100_000)
    page_size: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)
    show_expired: bool = Field(default=False, description=SHOW_EXPIRED)


class StatusParams(Params):
    user_id: Id
    task_id: str | None = Field(default=None, min_length=1, max_length=200)


class MemoryIdParams(Params):
    memory_id: str = Field(min_length=1, max_length=200)
    user_id: str | None = Field(default=None, max_length=limits.MAX_ID_CHARS)
    show_expired: bool = Field(default=False, description=SHOW_EXPIRED)
