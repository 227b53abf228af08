"""Expiry through the Lambda entry and on the embedded default: `expiration_date` on add and
import, a cube's `default_ttl_days`, an expired memory gone from every read at once (and back,
marked, with `show_expired`), and the embedded worker's sweep erasing it from the SQLite store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from memcube.domain.expiry import DAY
from memcube.domain.model import MemoryItem
from memcube.settings import Settings
from memcube.wiring import Container
from memcube_api.schemas.views import memory_view
from memcube_local.embedded import EmbeddedWorker
from memcube_local.wiring import LocalContainer
from tests.api.conftest import assert_nothing_written, post_add, serve
from tests.lambda_support import call


def iso_in(seconds: float) -> str:
    return datetime.fromtimestamp(time.time() + seconds, UTC).isoformat(timespec="seconds")


def sync_add(text: str, **body: Any) -> dict[str, Any]:
    reply = post_add({"user_id": "alice", "messages": text, "async_mode": "sync", **body})
    assert reply.status == 200, reply.body
    [added] = reply.data
    return added  # type: ignore[no-any-return]


def searched(query: str, **body: Any) -> list[dict[str, Any]]:
    code, answer = call("POST", "/product/search", body={"user_id": "alice", "query": query, "relativity": 0, **body})
    assert code == 200, answer
    return [m for cube in answer["data"]["text_mem"] for m in cube["memories"]]


def listed(**body: Any) -> dict[str, Any]:
    code, answer = call("POST", "/product/get_memory", body={"user_id": "alice", "mem_cube_id": "alice", **body})
    assert code == 200, answer
    return answer["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("value", "problem"),
    [("2001-01-01", "is not in the future"), ("tomorrow", "is not an ISO 8601 date or date-time")],
)
def test_an_add_with_a_past_or_unreadable_expiration_date_is_refused_naming_it_and_writes_nothing(
    api: Container, value: str, problem: str
) -> None:
    reply = post_add({"user_id": "alice", "messages": "Alice likes tea.", "expiration_date": value})
    assert reply.status == 422, reply.body
    assert reply.message.startswith(f"expiration_date: {value!r} {problem}"), reply.message
    assert_nothing_written(api)


def test_an_expired_memory_is_gone_from_search_get_and_list_at_once_and_show_expired_returns_it(
    embedded_api: Container,
) -> None:
    added = sync_add("Alice likes green tea.", expiration_date=iso_in(3))
    lasting = sync_add("Bob plays the cello on Sundays.")
    memory_id = added["memory_id"]
    code, got = call("GET", f"/product/get_memory/{memory_id}", query="user_id=alice")
    assert code == 200 and got["data"]["metadata"]["expiration_date"].endswith("Z")
    assert "expired" not in got["data"]["metadata"]
    assert memory_id in [m["id"] for m in searched("green tea")]
    time.sleep(max(0.0, got["data"]["metadata"]["expires_at"] - time.time()) + 0.2)

    assert call("GET", f"/product/get_memory/{memory_id}", query="user_id=alice")[0] == 404
    assert memory_id not in [m["id"] for m in searched("green tea")]
    page = listed()
    assert ([m["id"] for m in page["text_mem"][0]["memories"]], page["total"]) == ([lasting["memory_id"]], 1)
    assert call("GET", f"/product/get_memory_history/{memory_id}", query="user_id=alice")[0] == 404
    code, exported = call("POST", "/product/export_memory", body={"user_id": "alice", "cube_id": "alice"})
    assert code == 200 and [i["id"] for i in exported["data"]["items"]] == [lasting["memory_id"]]

    code, shown = call("GET", f"/product/get_memory/{memory_id}", query="user_id=alice&show_expired=true")
    assert code == 200 and shown["data"]["metadata"]["expired"] is True
    hits = searched("green tea", show_expired=True)
    assert [m["metadata"].get("expired") for m in hits if m["id"] == memory_id] == [True]
    assert listed(show_expired=True)["total"] == 2
    code, history = call("GET", f"/product/get_memory_history/{memory_id}", query="user_id=alice&show_expired=true")
    assert code == 200 and history["data"]["memory_id"] == memory_id


def test_a_cubes_default_ttl_is_set_at_create_cube_readable_and_applied_unless_the_add_names_one(
    embedded_api: Container,
) -> None:
    code, created = call(
        "POST", "/product/create_cube", body={"user_id": "alice", "cube_id": "kb-news", "default_ttl_days": 7}
    )
    assert code == 200 and created["data"]["default_ttl_days"] == 7, created
    code, read = call("POST", "/product/get_cube", body={"user_id": "alice", "cube_id": "kb-news"})
    assert code == 200 and read["data"]["default_ttl_days"] == 7
    before = time.time()
    defaulted = sync_add("The election is on Sunday.", writable_cube_ids=["kb-news"])
    explicit = sync_add("The budget vote is in March.", writable_cube_ids=["kb-news"], expiration_date="2099-03-31")
    stored = {i.id: i for i in embedded_api.memories.get_memories([defaulted["memory_id"], explicit["memory_id"]])}
    expires = stored[defaulted["memory_id"]].metadata.expires_at
    assert expires is not None and before + 7 * DAY - 5 <= expires <= time.time() + 7 * DAY
    assert stored[explicit["memory_id"]].metadata.expiration_date == "2099-04-01T00:00:00.000Z"


def test_a_cubes_settings_are_read_by_its_readers_only_and_its_grants_by_its_owner(api: Container) -> None:
    body = {"user_id": "alice", "cube_id": "kb-news", "readers": ["bob"], "default_ttl_days": 30}
    assert call("POST", "/product/create_cube", body=body)[0] == 200
    code, seen = call("POST", "/product/get_cube", body={"user_id": "bob", "cube_id": "kb-news"})
    assert code == 200 and seen["data"] == {
        "cube_id": "kb-news",
        "owner_id": "alice",
        "created_at": seen["data"]["created_at"],
        "default_ttl_days": 30,
    }
    assert call("POST", "/product/get_cube", body={"user_id": "carol", "cube_id": "kb-news"})[0] == 403
    code, owned = call("POST", "/product/get_cube", body={"user_id": "alice", "cube_id": "kb-news"})
    assert code == 200 and owned["data"]["readers"] == ["bob"]


@pytest.mark.parametrize("days", [0, 36_501, "ten"])
def test_create_cube_refuses_a_default_ttl_out_of_range_naming_it(api: Container, days: object) -> None:
    code, answer = call(
        "POST", "/product/create_cube", body={"user_id": "alice", "cube_id": "kb-news", "default_ttl_days": days}
    )
    assert code == 422 and "default_ttl_days" in answer["message"], answer
    assert api.directory.get_cube("kb-news") is None


def test_an_import_holding_an_expired_item_is_refused_naming_it_and_writes_nothing(embedded_api: Container) -> None:
    added = sync_add("Alice likes green tea.")
    [item] = embedded_api.memories.get_memories([added["memory_id"]])
    row = memory_view(item)
    row["metadata"]["expires_at"] = int(time.time()) - 60
    body = {"user_id": "alice", "cube_id": "kb-copy", "items": [row]}
    code, answer = call("POST", "/product/import_memory", body=body)
    assert code == 422 and answer["message"].startswith("items[0].metadata.expires_at: "), answer
    assert list(embedded_api.memories.iter_memories("kb-copy")) == []


# --- the embedded worker's sweep -------------------------------------------------------------------


@pytest.fixture
def sweeping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Container]:
    """The embedded default with its worker sweeping every second."""
    settings = Settings(
        backend="embedded", embedder="hash", data_dir=tmp_path / "data", sync_timeout_seconds=20, expiry_sweep_seconds=1
    )
    container = LocalContainer(settings)
    worker = EmbeddedWorker(container)
    worker.start()
    serve(monkeypatch, container)
    yield container
    worker.stop()
    container.close()


def test_the_embedded_worker_sweeps_an_expired_memory_out_of_the_sqlite_store_and_index(sweeping: Container) -> None:
    added = sync_add("Alice likes green tea.", expiration_date=iso_in(2))
    lasting = sync_add("Bob plays the cello on Sundays.")
    memory_id = added["memory_id"]
    deadline = time.monotonic() + 15
    tomb: MemoryItem | None = None
    while time.monotonic() < deadline:
        tomb = sweeping.memories.get_memory(memory_id)
        if tomb is not None and tomb.metadata.status == "deleted":
            break
        time.sleep(0.2)
    assert tomb is not None and tomb.metadata.status == "deleted", "not swept within 15 s"
    assert tomb.memory == "" and "green tea" not in tomb.model_dump_json()
    assert sweeping.index.ids("alice") == {lasting["memory_id"]}
    code, history = call("GET", f"/product/get_memory_history/{memory_id}", query="user_id=alice")
    assert code == 200 and history["data"]["status"] == "deleted"
    assert history["data"]["history"][0]["action"] == "expired"
    assert call("GET", f"/product/get_memory/{memory_id}", query="user_id=alice&show_expired=true")[0] == 404
    assert [m["id"] for m in searched("tea cello", show_expired=True)] == [lasting["memory_id"]]
