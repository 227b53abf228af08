"""Expiry across the reads and the edit route on the embedded default: `get_all` (pages and the
related-to-a-query mode), `get_memory_by_ids`, the filtered `get_memory`, the hosted `get/memory`
and `search/memory` leave an expired memory out (and an erased one's tombstone always), and
return it marked with `show_expired` where the route has that switch; `/product/update_memory`
sets or clears a memory's expiry as a new version, undoable, and refuses a past date (422,
nothing written) and an expired memory (404)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from memcube.domain.model import MemoryMetadata
from memcube.wiring import Container
from tests.lambda_support import call, serving

PREFIX = "/api/openmem/v1"


@pytest.fixture
def api(embedded_container: Container) -> Iterator[Container]:
    with serving(embedded_container) as container:
        yield container


def add(text: str, **body: Any) -> str:
    payload = {"user_id": "alice", "messages": text, "async_mode": "sync", "mode": "fast", **body}
    code, answer = call("POST", "/product/add", body=payload)
    assert code == 200, answer
    memory_id: str = answer["data"][0]["memory_id"]
    return memory_id


def expire(api: Container, memory_id: str) -> None:
    """Move the memory's expiry into the past, in the store and the index, as time passing would."""
    item = api.memories.get_memory(memory_id)
    assert item is not None
    meta = MemoryMetadata.model_validate(
        item.metadata.model_dump() | {"expires_at": int(time.time()) - 60, "version": item.metadata.version + 1}
    )
    gone = item.model_copy(update={"metadata": meta})
    assert api.memories.update_memory(gone, expected_version=item.metadata.version)
    api.index.upsert([gone])


@pytest.fixture
def two(api: Container) -> tuple[str, str]:
    """Alice's lasting memory and her expired one (both tagged `drinks`)."""
    lasting = add("Alice drinks green tea every morning.", custom_tags=["drinks"])
    expired = add("Alice drinks black coffee at night.", custom_tags=["drinks"])
    expire(api, expired)
    return lasting, expired


def ids(block: dict[str, Any]) -> list[str]:
    return [m["id"] for m in block["memories"]]


def test_get_all_pages_leave_an_expired_memory_out_of_the_page_and_total_and_show_expired_returns_it(
    two: tuple[str, str],
) -> None:
    lasting, expired = two
    code, answer = call("POST", "/product/get_all", body={"user_id": "alice", "memory_type": "text_mem"})
    assert code == 200, answer
    [block] = answer["data"]
    assert (ids(block), block["total"]) == ([lasting], 1)
    body = {"user_id": "alice", "memory_type": "text_mem", "show_expired": True}
    [shown] = call("POST", "/product/get_all", body=body)[1]["data"]
    assert shown["total"] == 2 and set(ids(shown)) == {lasting, expired}
    assert [m["metadata"].get("expired") for m in shown["memories"] if m["id"] == expired] == [True]


@pytest.mark.parametrize("search_type", ["fulltext", "embedding"])
def test_get_all_related_to_a_query_leaves_an_expired_memory_out_unless_show_expired(
    two: tuple[str, str], search_type: str
) -> None:
    lasting, expired = two
    body = {"user_id": "alice", "memory_type": "text_mem", "search_query": "Alice drinks", "search_type": search_type}
    [block] = call("POST", "/product/get_all", body=body)[1]["data"]
    assert ids(block) == [lasting]
    [shown] = call("POST", "/product/get_all", body=body | {"show_expired": True})[1]["data"]
    assert set(ids(shown)) == {lasting, expired}


def test_get_memory_by_ids_names_an_expired_memory_not_found_unless_show_expired(two: tuple[str, str]) -> None:
    lasting, expired = two
    code, answer = call("POST", "/product/get_memory_by_ids", body=[lasting, expired], query="user_id=alice")
    assert code == 200, answer
    assert [m["id"] for m in answer["data"]["memories"]] == [lasting]
    assert answer["data"]["not_found"] == [expired]
    query = "user_id=alice&show_expired=true"
    code, shown = call("POST", "/product/get_memory_by_ids", body=[lasting, expired], query=query)
    assert code == 200 and [m["id"] for m in shown["data"]["memories"]] == [lasting, expired]
    assert shown["data"]["memories"][1]["metadata"]["expired"] is True and shown["data"]["not_found"] == []


def test_an_erased_memorys_tombstone_is_in_no_read_even_with_show_expired(api: Container, two: tuple[str, str]) -> None:
    lasting, expired = two
    report = api.sweeper.sweep()
    tomb = api.memories.get_memory(expired)
    assert tomb is not None and tomb.metadata.status == "deleted", report
    query = "user_id=alice&show_expired=true"
    code, answer = call("POST", "/product/get_memory_by_ids", body=[lasting, expired], query=query)
    assert code == 200 and answer["data"]["not_found"] == [expired]
    [block] = call(
        "POST", "/product/get_all", body={"user_id": "alice", "memory_type": "text_mem", "show_expired": True}
    )[1]["data"]
    assert ids(block) == [lasting]


def test_a_filtered_get_memory_leaves_an_expired_memory_out_of_the_page_and_total_unless_show_expired(
    two: tuple[str, str],
) -> None:
    lasting, expired = two
    body = {"user_id": "alice", "mem_cube_id": "alice", "filter": {"custom_tags": "drinks"}}
    code, answer = call("POST", "/product/get_memory", body=body)
    assert code == 200, answer
    assert (ids(answer["data"]["text_mem"][0]), answer["data"]["total"]) == ([lasting], 1)
    code, shown = call("POST", "/product/get_memory", body=body | {"show_expired": True})
    assert code == 200 and shown["data"]["total"] == 2
    assert set(ids(shown["data"]["text_mem"][0])) == {lasting, expired}


@pytest.mark.parametrize("flt", [None, {"custom_tags": "drinks"}])
def test_the_hosted_listing_leaves_an_expired_memory_out(two: tuple[str, str], flt: dict[str, Any] | None) -> None:
    lasting, _ = two
    body: dict[str, Any] = {"user_id": "alice", "size": 50} | ({"filter": flt} if flt else {})
    code, answer = call("POST", f"{PREFIX}/get/memory", body=body)
    assert code == 200, answer
    assert [m["id"] for m in answer["data"]["memory_detail_list"]] == [lasting]
    assert answer["data"]["total"] == 1


def test_the_hosted_search_leaves_an_expired_memory_out(two: tuple[str, str]) -> None:
    lasting, _ = two
    body = {"user_id": "alice", "query": "Alice drinks coffee tea", "relativity": 0.0}
    code, answer = call("POST", f"{PREFIX}/search/memory", body=body)
    assert code == 200, answer
    assert [m["id"] for m in answer["data"]["memory_detail_list"]] == [lasting]


# --- /product/update_memory: expiration_date -----------------------------------------------------


def update(**body: Any) -> tuple[int, dict[str, Any]]:
    return call("POST", "/product/update_memory", body={"user_id": "alice", **body})


def test_update_memory_sets_an_expiry_as_a_new_version_with_history_and_undo_clears_it(api: Container) -> None:
    memory_id = add("Alice is in Rome this week.")
    code, answer = update(memory_id=memory_id, expiration_date="2099-06-30")
    assert code == 200, answer
    meta = answer["data"]["metadata"]
    assert (meta["version"], meta["expiration_date"]) == (2, "2099-07-01T00:00:00.000Z")
    assert "expires_at" in answer["message"]
    stored = api.memories.get_memory(memory_id)
    assert stored is not None and stored.metadata.expires_at == meta["expires_at"]
    [entry] = stored.metadata.history
    assert (entry["action"], entry["fields"], entry["previous"]["metadata"]["expires_at"]) == (
        "edited",
        ["expires_at"],
        None,
    )
    code, undone = call("POST", "/product/undo_memory", body={"user_id": "alice", "memory_id": memory_id})
    assert code == 200, undone
    restored = api.memories.get_memory(memory_id)
    assert restored is not None and (restored.metadata.expires_at, restored.metadata.version) == (None, 3)
    assert restored.metadata.expiration_date is None


def test_update_memory_with_a_null_expiration_date_clears_it_and_reindexes(api: Container) -> None:
    soon = datetime.fromtimestamp(time.time() + 3, UTC).isoformat(timespec="seconds")
    memory_id = add("Alice parks on level three today.", expiration_date=soon)
    code, answer = update(memory_id=memory_id, expiration_date=None, tags=["parking"])
    assert code == 200, answer
    assert answer["data"]["metadata"]["expiration_date"] is None and answer["data"]["metadata"]["tags"] == ["parking"]
    stored = api.memories.get_memory(memory_id)
    assert stored is not None and stored.metadata.expires_at is None
    assert stored.metadata.history[-1]["fields"] == ["tags", "expires_at"]
    time.sleep(3.2)  # past the old expiry: the memory lives on, in the store and in the index
    code, got = call("GET", f"/product/get_memory/{memory_id}", query="user_id=alice")
    assert code == 200 and "expired" not in got["data"]["metadata"]
    body = {"user_id": "alice", "query": "Alice parks on level three", "relativity": 0}
    hits = call("POST", "/product/search", body=body)[1]["data"]["text_mem"][0]["memories"]
    assert memory_id in [m["id"] for m in hits]
    assert api.index.expired_documents(int(time.time()), 10) == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [("2001-01-01", "is not in the future"), ("next week", "is not an ISO 8601 date or date-time")],
)
def test_update_memory_with_a_past_or_unreadable_expiration_date_is_a_422_naming_it_and_writes_nothing(
    api: Container, value: str, problem: str
) -> None:
    memory_id = add("Alice is in Rome this week.")
    before = api.memories.get_memory(memory_id)
    code, answer = update(memory_id=memory_id, expiration_date=value, memory="Alice is in Milan.")
    assert code == 422, answer
    assert answer["message"].startswith(f"expiration_date: {value!r} {problem}"), answer
    assert api.memories.get_memory(memory_id) == before


def test_update_memory_of_an_expired_memory_is_a_404_and_writes_nothing(api: Container) -> None:
    memory_id = add("Alice is in Rome this week.")
    expire(api, memory_id)
    before = api.memories.get_memory(memory_id)
    code, answer = update(memory_id=memory_id, expiration_date=None)
    assert code == 404, answer
    assert api.memories.get_memory(memory_id) == before
