"""Preference memory: what the user likes, wants or avoids, as MemOS's `PreferenceMemory`.

The fine reader asks for preferences in the same LLM call as the window's facts (one call per
window, not two), in a `preference_list` beside the `memory_list`:

    {"preference_type": "explicit_preference" | "implicit_preference",
     "preference": "<the preference, third person>", "reasoning": "<what shows it>", "key", "tags"}

An explicit preference is one the user states ("I prefer window seats"); an implicit one is
shown by what the user asks for, picks or corrects, without saying it as a preference. Each
becomes one item of type `PreferenceMemory` that the organizer places among the cube's other
preferences only (never merged into a fact): a changed preference supersedes the old one, which
is archived with its history, as a changed fact is.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator

from memcube.domain.base import Model
from memcube.domain.llm_json import entries, loose_tags
from memcube.domain.model import PreferenceType

MAX_PREFERENCES = 10
"""Preferences kept from one window's reply."""
MAX_PREFERENCE_IDS = MAX_PREFERENCES
"""Preference item ids one window can use (a redelivery looks them all up)."""

PROMPT_RULES = """- Also list the user's preferences in preference_list: an "explicit_preference" is one the
  user states (likes, dislikes, wants, habits, how they want to be answered); an
  "implicit_preference" is one shown by what the user asks for, picks or corrects without
  stating it. Write each preference as one sentence in the third person; give in reasoning what in
  the conversation shows it. Never guess a preference the conversation does not show; an empty
  preference_list is fine."""

REPLY_SHAPE = """"preference_list": [{"preference_type": "explicit_preference|implicit_preference",
"preference": "...", "reasoning": "...", "key": "...", "tags": ["..."]}], """
"""Inserted into the extraction prompt's reply shape (a value of `str.format`: single braces)."""

NO_LLM_NOTE = (
    "preferences: none extracted: preference memory is read by the LLM in fine mode, "
    "and no LLM is configured (memcube runs in fast mode)"
)
FAST_MODE_NOTE = "preferences: none extracted: this add was read in fast mode (mode: fast); send mode fine"


class ExtractedPreference(Model):
    model_config = ConfigDict(extra="ignore")

    preference_type: PreferenceType = "explicit_preference"
    preference: str = Field(min_length=1, max_length=2000)
    reasoning: str = Field(default="", max_length=2000)
    key: str = Field(default="", max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=10)

    @field_validator("preference_type", mode="before")
    @classmethod
    def _type(cls, value: object) -> object:
        """Models echo the type loosely ("implicit", "Implicit Preference"): read the intent,
        default to explicit."""
        return "implicit_preference" if str(value).lower().lstrip().startswith("implicit") else "explicit_preference"

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: object) -> object:
        return loose_tags(value)

    @property
    def title(self) -> str:
        return self.key.strip() or " ".join(self.preference.split())[:80]


def read_preferences(raw: object) -> tuple[list[ExtractedPreference], list[str]]:
    """The reply's usable preferences and notes on what was dropped (malformed or over the limit);
    a reply without a preference_list has none."""
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], ["preference_list was not a list; no preferences were read"]
    found, dropped = entries(raw, ExtractedPreference, _aliases, MAX_PREFERENCES)
    notes = [f"{dropped} malformed preference(s) dropped from the LLM reply"] if dropped else []
    if len(found) > MAX_PREFERENCES:
        notes.append(f"{len(found) - MAX_PREFERENCES} preference(s) over the limit of {MAX_PREFERENCES} dropped")
    return found[:MAX_PREFERENCES], notes


def _aliases(entry: object) -> object:
    """Accept the near-misses models make: the type's name as the key of the text
    (`{"explicit_preference": "..."}`, as MemOS's own prompts ask), or `value`/`memory`."""
    if not isinstance(entry, dict):
        return entry
    fixed = dict(entry)
    for kind in ("explicit_preference", "implicit_preference"):
        if "preference" not in fixed and isinstance(fixed.get(kind), str):
            fixed["preference"] = fixed.pop(kind)
            fixed.setdefault("preference_type", kind)
    for alias in ("value", "memory", "content", "text"):
        if "preference" not in fixed and alias in fixed:
            fixed["preference"] = fixed[alias]
    return fixed
