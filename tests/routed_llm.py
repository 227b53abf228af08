"""A scripted LLM that answers by prompt: the fine reader's extraction, the tool-memory review
and the organizer's judge each get their own scripted replies, so a test does not depend on how
many judge calls the organizer happens to make."""

from __future__ import annotations

import json
import threading
from typing import Any

from tests.unit.world import ScriptedLLM


def extraction_reply(facts: list[dict[str, Any]] | None = None, preferences: list[dict[str, Any]] | None = None) -> str:
    return json.dumps({"memory_list": facts or [], "preference_list": preferences or [], "summary": "a chat"})


def preference(text: str, kind: str = "explicit_preference", reasoning: str = "the user said so") -> dict[str, Any]:
    return {"preference_type": kind, "preference": text, "reasoning": reasoning, "key": text[:40], "tags": []}


def tool_reply(*calls: tuple[str, str, str]) -> str:
    """`(call_id, status, summary)` per call."""
    return json.dumps(
        {"tool_calls": [{"call_id": c, "status": s, "summary": m, "experience": "", "error": ""} for c, s, m in calls]}
    )


class RoutedLLM(ScriptedLLM):
    """Extraction prompts take the next of `extractions` (an empty extraction when none is
    left), tool reviews the next of `tools`, and the judge answers `relation` for every
    existing memory it is offered (each offer is recorded in `judged`)."""

    def __init__(self, extractions: list[str], tools: list[str] | None = None, relation: str = "independent") -> None:
        super().__init__()
        self.extractions = list(extractions)
        self.tools = list(tools or [])
        self.relation = relation
        self.judged: list[list[dict[str, str]]] = []
        self._lock = threading.Lock()

    def complete(self, system: str, user: str, *, json_output: bool = True) -> str:
        with self._lock:
            self.calls.append((system, user))
            if system.startswith("You keep a memory store"):
                offered = json.loads(user)["existing"]
                self.judged.append(offered)
                judgements = [{"id": e["id"], "relation": self.relation, "reason": "changed"} for e in offered]
                return json.dumps({"judgements": judgements})
            if system.startswith("You review the tool calls"):
                return self.tools.pop(0)
            if system.startswith("You extract long-term memories"):
                return self.extractions.pop(0) if self.extractions else extraction_reply()
            raise AssertionError(f"unexpected prompt: {system[:80]}")
