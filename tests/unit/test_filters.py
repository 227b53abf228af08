"""The filter language: validation before any backend sees it, and its evaluation."""

from __future__ import annotations

from typing import Any

import pytest

from memcube.domain.errors import InvalidRequest
from memcube.domain.filters import And, Cond, Or, compile_filter, matches

DOC = {
    "memory_type": "UserMemory",
    "session_id": "s1",
    "user_id": "alice",
    "key": "moved to Lisbon",
    "tags": ["mode:fast", "move"],
    "custom_tags": ["move"],
    "created_at": "2025-06-01T09:00:00.000Z",
    "updated_at": "2025-06-01T09:00:00.000Z",
    "info": {"app_id": "a1", "score": 7, "beta": True},
}


def test_leaves_and_nesting_compile_to_a_tree() -> None:
    flt = compile_filter({"and": [{"memory_type": "UserMemory"}, {"or": [{"app_id": "a1"}, {"score": {"gte": 5}}]}]})
    assert flt == And(
        (Cond("memory_type", "eq", "UserMemory"), Or((Cond("info.app_id", "eq", "a1"), Cond("info.score", "gte", 5))))
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"custom_tags": "move"}, True),
        ({"custom_tags": {"nin": ["move"]}}, False),
        ({"tags": {"ne": "other"}}, True),
        ({"info.app_id": {"in": ["a2", "a1"]}}, True),
        ({"score": {"gt": 7}}, False),
        ({"created_at": {"gte": "2025-01-01"}}, True),
        ({"key": {"contains": "Lisbon"}}, True),
        ({"beta": True}, True),
        ({"missing_key": "x"}, False),
        ({"or": [{"app_id": "zz"}, {"session_id": "s1"}]}, True),
        ({"memory_type": "UserMemory", "app_id": "zz"}, False),
    ],
)
def test_matches_evaluates_like_the_backends(raw: dict[str, Any], expected: bool) -> None:
    assert matches(compile_filter(raw), DOC) is expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"info.a'; DROP TABLE docs; --": 1}, "not a valid field or info key"),
        ({"created_at": {"regex": ".*"}}, "unknown operator"),
        ({"app_id": {"gt": 1, "lt": 3}}, "one operator per condition"),
        ({"app_id": {"in": "a1"}}, "must be a list"),
        ({"app_id": {"eq": {"$ne": 1}}}, "values must be strings"),
        ({"and": []}, "non-empty list"),
        ({"and": [{"and": [{"and": [{"and": [{"a": 1}]}]}]}]}, "nested deeper"),
        ({"app_id": "x" * 300}, "at most 256"),
        ({f"k{i}": i for i in range(40)}, "at most 32 conditions"),
    ],
)
def test_bad_filters_are_refused_naming_the_part(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        compile_filter(raw)
