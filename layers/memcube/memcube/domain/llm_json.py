"""Reading an LLM's JSON reply: models wrap JSON in prose or code fences, drop a closing brace or
use single quotes. `json_repair` turns such near-JSON into data; the caller then validates it
against a pydantic schema, so a reply is only ever data, never an instruction."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def parse_reply(text: str, *, list_key: str) -> dict[str, Any]:
    """The reply as a JSON object; a bare list is read as `{list_key: list}`. Raises ValueError
    when nothing object-like can be recovered."""
    if not text or not text.strip():
        raise ValueError("empty reply")
    try:
        data: Any = json.loads(text)
    except ValueError:
        import json_repair  # only for a reply that needs repair (and never on the API's import path)

        data = json_repair.loads(text)
    if isinstance(data, list):
        # A bare list of entries, or (from json_repair) every top-level value it found: prefer
        # an object that holds the list.
        data = next((d for d in data if isinstance(d, dict) and list_key in d), {list_key: data})
    if not isinstance(data, dict) or not data:
        raise ValueError("the reply holds no JSON object")
    return data


def entries(raw: list[Any], model: type[M], fix: Callable[[object], object], limit: int) -> tuple[list[M], int]:
    """The entries of a reply's list that validate against `model` (after `fix` repairs their
    near-misses), reading at most twice `limit`; and how many were dropped as malformed."""
    found: list[M] = []
    dropped = 0
    for entry in raw[: limit * 2]:
        try:
            found.append(model.model_validate(fix(entry)))
        except ValidationError:
            dropped += 1
    return found, dropped


def loose_tags(value: object) -> object:
    """Tags as models write them (a comma-separated string, or a list of anything): at most ten
    stripped strings of up to 64 characters; anything else is left to the schema to refuse."""
    if isinstance(value, str):
        value = [t.strip() for t in value.split(",")]
    if isinstance(value, list):
        return [str(t).strip()[:64] for t in value if str(t).strip()][:10]
    return value
