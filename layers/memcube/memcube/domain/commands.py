"""What the API asks the domain to do, in the domain's own words: validated, normalized, free of
any wire format (the API maps MemOS's and the hosted API's requests onto these, in
`memcube_api.schemas`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict

from memcube.domain.base import Model
from memcube.domain.model import MemoryType, SourceMessage


class AddCommand(Model):
    """A validated, normalized add: what the domain works with after MemOS's conversions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str
    session_id: str
    task_id: str | None
    cube_ids: list[str]
    async_mode: Literal["async", "sync"]
    mode: Literal["fast", "fine"] | None
    custom_tags: list[str]
    info: dict[str, Any]
    messages: list[SourceMessage]
    chat_history: list[SourceMessage] | None
    is_feedback: bool
    manager_user_id: str | None
    project_id: str | None
    expires_at: int | None = None
    """The add's explicit expiry (epoch seconds, already checked to lie ahead); None: each cube's
    default, if it has one (`domain.expiry`)."""
    retrieved_memory_ids: list[str] | None = None
    """A feedback's candidates (MemOS's `retrieved_memory_ids`): only these may be corrected."""


@dataclass(frozen=True)
class SearchQuery:
    """A search over `cube_ids` (each read under the caller's permissions); see `search`."""

    query: str
    cube_ids: list[str]
    mode: Literal["fast", "fine", "mixture"] = "fast"
    session_id: str | None = None
    top_k: int = 10
    relativity: float = 0.45
    dedup: Literal["no", "sim", "mmr"] = "mmr"
    rerank: bool = True
    filter: dict[str, Any] | None = None
    memory_type: MemoryType | None = None
    """Only this memory type (None: every type)."""
    threshold: float | None = None
    reference_time: str | None = None
    chat_history: list[dict[str, Any]] | None = None
    show_expired: bool = False
    """Also return memories past their expiry that the sweep has not erased yet (marked expired)."""
    pref_top_k: int = 0
    """Preference memories to return beside the hits (MemOS's `pref_mem`); 0: none asked."""
    tool_top_k: int = 0
    """Tool memories to return beside the hits (MemOS's `tool_mem`); 0: none asked."""


@dataclass(frozen=True)
class DeleteMemories:
    """A delete in `cube_ids` (None: the user's personal cube): by `memory_ids`, `file_ids` or
    `filter` (exactly one), `session_id` narrowing a filter or standing alone; with none of them,
    the erasure of everything `user_id` wrote there."""

    user_id: str
    cube_ids: list[str] | None = None
    memory_ids: list[str] | None = None
    file_ids: list[str] | None = None
    filter: dict[str, Any] | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class NewCube:
    """A knowledge-base cube to create, owned by its creator, with first readers and writers."""

    cube_id: str
    readers: list[str]
    writers: list[str]
    default_ttl_days: int | None = None
    """The cube's default expiry for memories written without one (`domain.expiry`)."""


@dataclass(frozen=True)
class GrantChange:
    """Grant (or revoke) `permission` on a cube to `target_user_id`."""

    cube_id: str
    target_user_id: str
    permission: Literal["read", "write"]


@dataclass(frozen=True)
class MemoryEdit:
    """A direct edit of one memory: each field given replaces the stored one (None: unchanged);
    `cube_id`, when given, must be the memory's cube."""

    memory_id: str
    cube_id: str | None = None
    memory: str | None = None
    key: str | None = None
    tags: list[str] | None = None
    info: dict[str, Any] | None = None
    status: Literal["activated", "archived"] | None = None
    sets_expiry: bool = False
    """Whether the edit sets or clears the expiry: to `expires_at` (None: never expires)."""
    expires_at: int | None = None
    """The new expiry (epoch seconds, already checked to lie ahead), when `sets_expiry`."""
