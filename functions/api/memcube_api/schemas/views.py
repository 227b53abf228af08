"""Entities as the `/product` answers show them, mapped explicitly from what is stored: a memory
without its embedding, a task part without its internal fields, a delete's receipt per cube."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from memcube.domain.expiry import is_expired
from memcube.domain.model import MemoryItem, Principal, TaskPart, TaskRecord
from memcube.domain.permissions import CubeAcl

if TYPE_CHECKING:  # the deletion service loads on the first delete, not with the app (cold start)
    from memcube.domain.deletion import CubeReceipt

PART_INTERNALS = frozenset({"feedback_plan", "running"})
"""A task part's fields that no status answer shows."""

METADATA_VIEW = frozenset(
    {
        "user_id", "session_id", "cube_id", "status", "memory_type", "type", "key", "tags", "custom_tags",
        "info", "sources", "embedding_model", "confidence", "background", "source", "created_at",
        "updated_at", "version", "history", "covered_history", "merged_from", "content_hash", "task_id",
        "event_time", "event_time_end", "manager_user_id", "project_id", "original_user_id",
        "expires_at", "expiration_date",
        "preference_type", "preference", "reasoning", "tool_call", "experience",
    }
)  # fmt: skip
"""The stored metadata a client sees (MemOS's names, in the stored order): all of it but the
embedding. A field added to the stored form is not shown until it is named here (a test asks)."""
MEMORY_VIEW: dict[str, Any] = {"id": True, "memory": True, "metadata": METADATA_VIEW}


def memory_view(item: MemoryItem) -> dict[str, Any]:
    """The item as clients see it: `{id, memory, metadata}`, embeddings never returned; one past
    its expiry (returned only to a read with `show_expired`) says so: `metadata.expired: true`."""
    view = item.model_dump(mode="json", include=MEMORY_VIEW)
    if is_expired(item, time.time()):
        view["metadata"]["expired"] = True
    return view


def cube_view(acl: CubeAcl, principal: Principal) -> dict[str, Any]:
    """A cube's record: its settings for every reader, its grants for its owner alone."""
    view = acl.model_dump()
    if principal.user_id != acl.owner_id and "admin" not in principal.scopes:
        view = {k: view[k] for k in ("cube_id", "owner_id", "created_at", "default_ttl_days")}
    return view


def scored_view(item: MemoryItem, relativity: float) -> dict[str, Any]:
    """A search hit: the item, with its relativity in its metadata (as MemOS answers)."""
    body = memory_view(item)
    body["metadata"]["relativity"] = relativity
    return body


def added_view(item: MemoryItem, outcome: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """A memory in a sync add's answer: what it says and where it went (and what happened to it)."""
    view: dict[str, Any] = {
        "memory": item.memory,
        "memory_id": item.id,
        "memory_type": item.metadata.memory_type,
        "cube_id": item.metadata.cube_id,
    }
    if outcome is not None:
        view |= {"outcome": outcome, "reason": reason}
    return view


def cube_memories(cube_id: str, memories: list[dict[str, Any]], total: int) -> dict[str, Any]:
    """MemOS's per-cube block of a memory list (get_memory and search answer the same shape)."""
    return {"cube_id": cube_id, "memories": memories, "total_nodes": total}


def part_view(part: TaskPart) -> dict[str, Any]:
    """A task part as a status answer shows it."""
    return part.model_dump(mode="json", exclude=set(PART_INTERNALS))


def status_view(record: TaskRecord) -> dict[str, Any]:
    return {
        "task_id": record.task.public_id,
        "status": record.status.value,
        "user_id": record.task.user_id,
        "created_at": record.task.created_at,
        "cubes": [part_view(p) for p in record.parts],
    }


def receipt_view(receipt: CubeReceipt) -> dict[str, Any]:
    """What a delete removed from one cube, per place."""
    return asdict(receipt)
