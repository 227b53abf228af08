"""Business rules on what a request names: ids, cube lists, tags and `info` (limits in `limits`).

Both APIs (MemOS's and the hosted one), the queued message and the CLI check with these, so an
id valid in one place is valid everywhere.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field

from memcube.domain import limits

MEMORY_FIELD_NAMES = frozenset(
    {
        "id", "memory", "user_id", "session_id", "cube_id", "status", "memory_type", "type", "key",
        "tags", "custom_tags", "sources", "embedding", "embedding_model", "confidence", "background",
        "created_at", "updated_at", "version", "history", "covered_history", "merged_from",
        "content_hash", "task_id", "manager_user_id", "project_id", "info",
    }
)  # fmt: skip
"""`info` keys that would shadow an item field (MemOS drops them; we refuse them, naming the key)."""


def check_id(value: str, field: str) -> str:
    if not value:
        raise ValueError(f"{field} must not be empty")
    if len(value) > limits.MAX_ID_CHARS or not limits.ID_PATTERN.fullmatch(value):  # `$` alone allows a final \n
        raise ValueError(f"{field} {value[:40]!r} is not a valid id ({limits.ID_RULE})")
    return value


def check_cube_ids(values: list[str]) -> list[str]:
    """Cube ids of a request: each a valid id, duplicates removed in order, at most the limit."""
    unique = list(dict.fromkeys(check_id(v, "cube id") for v in values))
    if len(unique) > limits.MAX_CUBES_PER_REQUEST:
        raise ValueError(f"at most {limits.MAX_CUBES_PER_REQUEST} cubes per request, got {len(unique)}")
    return unique


Id = Annotated[str, Field(min_length=1, max_length=limits.MAX_ID_CHARS, pattern=limits.ID_PATTERN.pattern)]


def check_tags(value: list[str]) -> list[str]:
    """Custom tags: trimmed, repeats dropped (order kept), within the count and length limits."""
    tags = list(dict.fromkeys(t.strip() for t in value))
    if len(tags) > limits.MAX_TAGS:
        raise ValueError(f"at most {limits.MAX_TAGS} tags, got {len(tags)}")
    for tag in tags:
        if not tag or len(tag) > limits.MAX_TAG_CHARS:
            raise ValueError(f"each tag must be 1-{limits.MAX_TAG_CHARS} characters, got {tag[:80]!r}")
    return tags


def check_info(info: dict[str, Any]) -> None:
    clashing = sorted(k for k in info if k in MEMORY_FIELD_NAMES and k != "source_doc_id")
    if clashing:
        raise ValueError(f"keys {clashing} clash with memory item fields; rename them")
    if len(info) > limits.MAX_INFO_KEYS:
        raise ValueError(f"at most {limits.MAX_INFO_KEYS} keys, got {len(info)}")
    try:
        size = len(json.dumps(info, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError) as exc:  # NaN and Infinity are not JSON, whatever parsers allow
        raise ValueError(f"must hold JSON values only (no NaN or Infinity): {exc}") from exc
    if size > limits.MAX_INFO_BYTES:
        raise ValueError(f"at most {limits.MAX_INFO_BYTES} bytes as JSON, got {size}")
    depth = _depth(info)
    if depth > limits.MAX_INFO_DEPTH:
        raise ValueError(f"nesting depth at most {limits.MAX_INFO_DEPTH}, got {depth}")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0
