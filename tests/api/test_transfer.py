"""POST /product/export_memory and /product/import_memory through the Lambda entry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from memcube.domain.model import ItemStatus
from memcube.domain.transfer import exported
from memcube.wiring import Container
from tests.contract.support import memory
from tests.lambda_support import call, serving


@pytest.fixture
def api(embedded_container: Container) -> Iterator[Container]:
    with serving(embedded_container) as container:
        yield container


def add(text: str, user: str = "alice") -> None:
    code, payload = call("POST", "/product/add", body={"user_id": user, "messages": text, "async_mode": "sync"})
    assert code == 200, payload


def export(user: str, cube: str, **extra: object) -> tuple[int, dict[str, object]]:
    return call("POST", "/product/export_memory", body={"user_id": user, "cube_id": cube, **extra})


def exported_items(user: str, cube: str) -> list[dict[str, Any]]:
    code, payload = export(user, cube)
    assert code == 200, payload
    data = payload["data"]
    assert isinstance(data, dict)
    items: list[dict[str, Any]] = data["items"]
    return items


def test_export_pages_follow_the_cursor_to_the_end(api: Container) -> None:
    for n in range(5):
        add(f"fact number {n}")
    seen: list[str] = []
    cursor = None
    while True:
        code, payload = export("alice", "alice", limit=2, cursor=cursor)
        assert code == 200, payload
        data = payload["data"]
        assert isinstance(data, dict)
        seen += [i["id"] for i in data["items"]]
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5


def test_an_invalid_item_is_a_422_naming_it_and_nothing_is_imported(api: Container) -> None:
    add("Alice likes tea.")
    [item] = exported_items("alice", "alice")
    broken = {**item, "metadata": {**item["metadata"], "memory_type": "NotAType"}}
    good = {**item, "id": "another-id"}
    code, reply = call(
        "POST", "/product/import_memory", body={"user_id": "alice", "cube_id": "kb", "items": [good, broken]}
    )
    assert code == 422, reply
    assert "items[1].metadata.memory_type" in str(reply["message"])
    assert list(api.memories.iter_memories("kb")) == []


def test_another_users_personal_cube_can_be_neither_exported_nor_imported_into(api: Container) -> None:
    add("Bob keeps bees.", user="bob")
    assert export("alice", "bob")[0] == 403
    code, _ = call("POST", "/product/import_memory", body={"user_id": "alice", "cube_id": "bob", "items": [{}]})
    assert code == 403


def test_an_import_is_written_by_the_importer_and_keeps_the_author_as_provenance(api: Container) -> None:
    # Given an export of alice's memory, and bob, a writer of the shared cube kb
    add("Alice approved the budget.")
    [item] = exported_items("alice", "alice")
    assert item["metadata"]["user_id"] == "alice"
    # When bob imports it (marked as alice's) into kb
    code, reply = call("POST", "/product/import_memory", body={"user_id": "bob", "cube_id": "kb", "items": [item]})
    assert code == 200, reply
    # Then it is bob's, with alice as its original author, and bob's erasure removes it
    [stored] = api.memories.iter_memories("kb")
    assert (stored.metadata.user_id, stored.metadata.original_user_id) == ("bob", "alice")
    code, _ = call("POST", "/product/delete_memory", body={"user_id": "bob", "writable_cube_ids": ["kb"]})
    assert code == 200
    assert list(api.memories.iter_memories("kb")) == []


def test_a_users_own_import_keeps_them_as_writer_with_no_provenance(api: Container) -> None:
    add("Alice likes tea.")
    items = exported_items("alice", "alice")
    code, reply = call("POST", "/product/import_memory", body={"user_id": "alice", "cube_id": "kb", "items": items})
    assert code == 200, reply
    [stored] = api.memories.iter_memories("kb")
    assert (stored.metadata.user_id, stored.metadata.original_user_id) == ("alice", None)


def _stored(memory_id: str, text: str, tag: str, status: ItemStatus) -> dict[str, Any]:
    item = memory(memory_id, text, cube="alice")
    item.metadata.custom_tags = [tag]
    item.metadata.status = status
    return exported(item)


def test_a_filtered_export_answers_only_the_items_that_pass_it_of_every_status(api: Container) -> None:
    # Given alice's cube holding an activated and an archived travel memory, and a food memory
    rows = [
        _stored("lisbon", "She flew to Lisbon in May.", "travel", "activated"),
        _stored("vienna", "She took the night train to Vienna.", "travel", "archived"),
        _stored("sardines", "She loves grilled sardines.", "food", "activated"),
    ]
    code, reply = call("POST", "/product/import_memory", body={"user_id": "alice", "cube_id": "alice", "items": rows})
    assert code == 200, reply
    assert {i["id"] for i in exported_items("alice", "alice")} == {"lisbon", "vienna", "sardines"}
    # When she exports it with the search's filter, one stored item a page, to the last page
    seen: dict[str, str] = {}
    cursor = None
    while True:
        code, payload = export("alice", "alice", limit=1, cursor=cursor, filter={"custom_tags": "travel"})
        assert code == 200, payload
        data = payload["data"]
        assert isinstance(data, dict)
        seen |= {i["id"]: i["metadata"]["status"] for i in data["items"]}
        cursor = data["next_cursor"]
        if cursor is None:
            break
    # Then both travel memories come, the archived one too, and the food one does not
    assert seen == {"lisbon": "activated", "vienna": "archived"}


@pytest.mark.parametrize(
    ("flt", "named"),
    [
        ({"tags": {"near": "x"}}, "filter.tags: unknown operator 'near'"),
        ({"and": []}, "filter.and: must be a non-empty list"),
        ("travel", "filter"),
    ],
)
def test_an_invalid_export_filter_is_a_422_naming_filter(api: Container, flt: object, named: str) -> None:
    add("Alice likes tea.")
    code, reply = export("alice", "alice", filter=flt)
    assert code == 422 and named in str(reply["message"]), reply
