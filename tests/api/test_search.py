"""POST /product/search through the Lambda entry on the embedded default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from memcube.wiring import Container
from tests.lambda_support import call, serving


@pytest.fixture
def api(embedded_container: Container) -> Iterator[Container]:
    with serving(embedded_container) as container:
        yield container


def add(text: str, *, user: str = "alice", tags: list[str] | None = None, info: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"user_id": user, "messages": text, "async_mode": "sync", "mode": "fast"}
    body |= {"custom_tags": tags or [], "info": info or {}}
    code, payload = call("POST", "/product/add", body=body)
    assert code == 200, payload
    memory_id: str = payload["data"][0]["memory_id"]
    return memory_id


def search(**body: Any) -> tuple[int, dict[str, Any]]:
    return call("POST", "/product/search", body={"user_id": "alice", "relativity": 0.0, **body})


def found(payload: dict[str, Any]) -> list[str]:
    return [m["id"] for cube in payload["data"]["text_mem"] for m in cube["memories"]]


def test_a_memory_is_found_right_after_its_add_completes(api: Container) -> None:
    memory_id = add("I moved to Lisbon last May.")
    code, payload = search(query="Lisbon")
    assert code == 200, payload
    [cube] = payload["data"]["text_mem"]
    assert (cube["cube_id"], cube["total_nodes"]) == ("alice", 1)
    [memory] = cube["memories"]
    assert memory["id"] == memory_id
    assert 0 < memory["metadata"]["relativity"] <= 1
    assert "embedding" not in memory["metadata"]
    assert set(payload["data"]) >= {"text_mem", "pref_mem", "tool_mem", "skill_mem"}


def test_filters_by_custom_tag_and_info_key(api: Container) -> None:
    tea = add("Alice drinks green tea every morning.", tags=["drinks"], info={"app_id": "a1"})
    coffee = add("Alice drinks black coffee at work.", tags=["drinks"], info={"app_id": "a2"})
    add("Alice runs on Sundays.", tags=["sport"], info={"app_id": "a1"})
    _, by_tag = search(query="drinks", filter={"custom_tags": "drinks"})
    assert sorted(found(by_tag)) == sorted([tea, coffee])
    _, by_both = search(query="drinks", filter={"and": [{"custom_tags": "drinks"}, {"info.app_id": "a2"}]})
    assert found(by_both) == [coffee]


def test_only_readable_cubes_are_searched(api: Container) -> None:
    add("Alice's secret recipe uses saffron.")
    add("Bob keeps his notes here.", user="bob")
    code, payload = call(
        "POST", "/product/search", body={"user_id": "bob", "query": "saffron", "readable_cube_ids": ["alice"]}
    )
    assert code == 403
    assert "may not read cube 'alice'" in payload["message"]
    _, own = call("POST", "/product/search", body={"user_id": "bob", "query": "saffron", "relativity": 0.0})
    assert all("saffron" not in m["memory"] for c in own["data"]["text_mem"] for m in c["memories"])


def test_a_hostile_filter_is_a_422_not_a_query(api: Container) -> None:
    code, payload = search(query="x", filter={"info.x') OR 1=1 --": "a"})
    assert code == 422
    assert "not a valid field or info key" in payload["message"]


def test_top_k_and_relativity_bound_the_answer(api: Container) -> None:
    for n in range(5):
        add(f"Alice visited museum number {n} in Porto.")
    _, few = search(query="museum Porto", top_k=2, dedup="no")
    assert len(found(few)) == 2
    _, bounded = search(query="museum Porto", relativity=0.9)
    scores = [m["metadata"]["relativity"] for c in bounded["data"]["text_mem"] for m in c["memories"]]
    assert all(s >= 0.9 for s in scores)
    _, none = search(query="quantum chromodynamics lecture", relativity=0.45)
    assert found(none) == []
