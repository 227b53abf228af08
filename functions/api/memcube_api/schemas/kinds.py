"""How answers show preference and tool memories: MemOS's `pref_mem`/`tool_mem` lists, its
`pref_string`/`pref_note` (the preferences as a block for an LLM's prompt), and the kind fields
the hosted API's detail lists add."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from memcube.domain.model import KIND_FIELDS, MemoryItem, kind_of

PREF_NOTE = (
    "Note: the fact memories above summarize facts; the preference memories summarize the user's "
    "preferences. Keep to every preference, explicit or implicit, in your answer, and where the "
    "answer has to weigh one against the request, say briefly why."
)
"""Told to the LLM that reads `pref_string` (MemOS answers such a note beside the preferences)."""


def pref_texts(items: Iterable[MemoryItem]) -> dict[str, str]:
    """`pref_string` (the preferences by type, numbered, then the note) and `pref_note`; empty
    when there are no preferences, as MemOS leaves them out."""
    explicit: list[str] = []
    implicit: list[str] = []
    for item in items:
        meta = item.metadata
        text = meta.preference or item.memory
        (implicit if meta.preference_type == "implicit_preference" else explicit).append(text)
    if not explicit and not implicit:
        return {}
    blocks = [
        f"{title}:\n" + "\n".join(f"{n}. {p}" for n, p in enumerate(prefs, 1))
        for title, prefs in (("Explicit preferences", explicit), ("Implicit preferences", implicit))
        if prefs
    ]
    return {"pref_string": "\n".join([*blocks, PREF_NOTE]), "pref_note": PREF_NOTE}


def by_kind(items: Iterable[MemoryItem]) -> dict[str, list[MemoryItem]]:
    """A page's items split into the lists they answer in: `text`, `preference`, `tool`."""
    out: dict[str, list[MemoryItem]] = {"text": [], "preference": [], "tool": []}
    for item in items:
        out[kind_of(item.metadata.memory_type)].append(item)
    return out


def kind_fields(item: MemoryItem) -> dict[str, Any]:
    """A preference's or tool memory's own metadata (none for other types), for detail lists."""
    meta = item.metadata.model_dump(mode="json", include=set(KIND_FIELDS))
    return {k: v for k, v in meta.items() if v is not None}
