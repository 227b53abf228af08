"""GET /product/get_memory_history/{id} and POST /product/undo_memory through the Lambda entry
on the embedded default: a merge shows in the history and the task status, and undo restores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from memcube.wiring import Container
from tests.lambda_support import call, serving

TEXT = "Alice moved to Lisbon in March and works as a nurse at the Santa Maria hospital by the river."


@pytest.fixture
def api(embedded_container: Container) -> Iterator[Container]:
    with serving(embedded_container) as container:
        yield container


def add(text: str, **extra: Any) -> dict[str, Any]:
    body = {"user_id": "alice", "messages": text, "async_mode": "sync", **extra}
    code, payload = call("POST", "/product/add", body=body)
    assert code == 200, payload
    [outcome] = payload["data"]
    return dict(outcome)


def test_a_merge_is_reported_shown_in_history_and_undone(api: Container) -> None:
    first = add(TEXT, custom_tags=["move"])
    second = add(TEXT.replace("nurse", "senior nurse"), custom_tags=["work"])
    assert (second["outcome"], second["memory_id"]) == ("merged", first["memory_id"])
    code, payload = call("GET", f"/product/get_memory_history/{first['memory_id']}", query="user_id=alice")
    assert code == 200, payload
    data = payload["data"]
    assert (data["version"], data["status"]) == (2, "activated")
    [entry] = data["history"]
    assert entry["action"] == "merged" and entry["previous"]["metadata"]["custom_tags"] == ["move"]
    assert "embedding" not in data["memory"]["metadata"]

    code, payload = call("POST", "/product/undo_memory", body={"user_id": "alice", "memory_id": first["memory_id"]})
    assert code == 200, payload
    assert payload["data"]["undone"] == "merged"
    [restored] = payload["data"]["restored"]
    code, payload = call("GET", f"/product/get_memory/{restored}", query="user_id=alice")
    assert code == 200 and "senior nurse" in payload["data"]["memory"]
    body = {"user_id": "alice", "query": "senior nurse", "relativity": 0.0}
    code, payload = call("POST", "/product/search", body=body)
    assert restored in {m["id"] for c in payload["data"]["text_mem"] for m in c["memories"]}


def test_undo_of_an_unknown_memory_is_a_404_in_the_envelope(api: Container) -> None:
    code, payload = call("POST", "/product/undo_memory", body={"user_id": "alice", "memory_id": "nope"})
    assert code == 404
    assert payload["code"] == 404 and "memory_id" in payload["message"]


def test_undo_with_nothing_to_undo_is_a_clear_422(api: Container) -> None:
    first = add(TEXT)
    code, payload = call("POST", "/product/undo_memory", body={"user_id": "alice", "memory_id": first["memory_id"]})
    assert code == 422 and "no merge or correction to undo" in payload["message"]


def test_undo_with_a_missing_field_names_it(api: Container) -> None:
    code, payload = call("POST", "/product/undo_memory", body={"user_id": "alice"})
    assert code == 422 and "memory_id" in payload["message"]
