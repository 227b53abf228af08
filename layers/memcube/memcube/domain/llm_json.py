"""Reading an LLM's JSON reply: models wrap JSON in prose or code fences, drop a closing brace or
use single quotes. `json_repair` turns such near-JSON into data; the caller then validates it
against a pydantic schema, so a reply is only ever data, never an instruction."""

from __future__ import annotations

import json
from typing import Any


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
