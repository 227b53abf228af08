"""POST /product/delete_memory and /product/delete_cube through the Lambda entry: every MemOS mode
on the embedded default (SQLite store and index, worker running), receipts, and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from memcube.wiring import Container
from tests.api.conftest import memory_container_with, post_add
from tests.lambda_support import call, queue_of, serving


@pytest.fixture
def api(embedded_container: Container) -> Iterator[Container]:
    with serving(embedded_container) as container:
        yield container


def add(text: Any, *, user: str = "alice", cubes: list[str] | None = None, **extra: Any) -> list[str]:
    body = {"user_id": user, "messages": text, "async_mode": "sync", "mode": "fast", **extra}
    if cubes is not None:
        body["writable_cube_ids"] = cubes
    code, payload = call("POST", "/product/add", body=body)
    assert code == 200, payload
    return [m["memory_id"] for m in payload["data"]]


def delete(**body: Any) -> tuple[int, dict[str, Any]]:
    return call("POST", "/product/delete_memory", body={"user_id": "alice", **body})


def searchable(query: str, user: str = "alice", cubes: list[str] | None = None) -> list[str]:
    body = {"user_id": user, "query": query, "relativity": 0.0, "readable_cube_ids": cubes or [user]}
    code, payload = call("POST", "/product/search", body=body)
    assert code == 200, payload
    return [m["id"] for cube in payload["data"]["text_mem"] for m in cube["memories"]]


def gettable(memory_id: str, user: str = "alice") -> bool:
    code, _ = call("GET", f"/product/get_memory/{memory_id}", query=f"user_id={user}")
    return code == 200


def receipt(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["cube_id"]: c for c in payload["data"]["cubes"]}


def test_delete_by_ids_removes_the_memory_from_store_and_index_and_frees_its_content(api: Container) -> None:
    [tea] = add("Alice drinks green tea every morning.")
    [coffee] = add("Alice drinks black coffee at work.")
    code, payload = delete(memory_ids=[tea])
    assert code == 200, payload
    assert payload["data"]["status"] == "success"
    assert payload["data"]["deleted"] == 1
    assert receipt(payload)["alice"] | {} == {
        "cube_id": "alice", "memories": 1, "history": 0, "index": 1, "queued": 0, "dead_letters": 0, "erased": False,
    }  # fmt: skip
    assert payload["data"]["not_found"] == []
    assert not gettable(tea)
    assert gettable(coffee)
    assert searchable("drinks") == [coffee]  # relativity 0: every remaining item
    [again] = add("Alice drinks green tea every morning.")  # a new item, not a duplicate of a deleted one
    assert again != tea and gettable(again)


def test_ids_of_unknown_or_other_users_memories_are_not_found_and_untouched(api: Container) -> None:
    [bobs] = add("Bob keeps bees.", user="bob")
    [mine] = add("Alice keeps cats.")
    code, payload = delete(memory_ids=[bobs, "no-such-id", mine])
    assert code == 200, payload
    assert payload["data"]["not_found"] == [bobs, "no-such-id"]
    assert payload["data"]["deleted"] == 1
    assert gettable(bobs, user="bob")


def test_delete_by_file_ids_removes_the_memories_read_from_that_file(api: Container) -> None:
    file_part = {"type": "file", "file": {"file_id": "f-42", "filename": "notes.txt", "file_data": "Lisbon notes."}}
    from_file = add([{"role": "user", "content": [file_part]}])
    [kept] = add("Alice likes Porto too.")
    code, payload = delete(file_ids=["f-42"])
    assert code == 200, payload
    assert payload["data"]["deleted"] == len(from_file) >= 1
    assert [gettable(m) for m in from_file] == [False] * len(from_file)
    assert gettable(kept)


def test_delete_by_filter_and_by_session(api: Container) -> None:
    [tagged] = add("Alice moved to Lisbon.", custom_tags=["relocation"], session_id="s1")
    [other] = add("Alice plays chess.", custom_tags=["hobby"], session_id="s1")
    [later] = add("Alice plays go.", custom_tags=["hobby"], session_id="s2")
    code, payload = delete(filter={"custom_tags": "relocation"})
    assert (code, payload["data"]["deleted"]) == (200, 1), payload
    assert (gettable(tagged), gettable(other), gettable(later)) == (False, True, True)
    code, payload = delete(session_id="s1")
    assert (code, payload["data"]["deleted"]) == (200, 1), payload
    assert (gettable(other), gettable(later)) == (False, True)
    code, payload = delete(conversation_id="s2", filter={"custom_tags": "nothing-like-this"})
    assert (code, payload["data"]["deleted"]) == (200, 0), payload
    assert gettable(later)


def test_user_erasure_removes_what_the_user_wrote_and_nothing_of_others(api: Container) -> None:
    team = "team-notes"
    mine = add("Alice: the deploy is on Friday.", cubes=["alice", team])
    [theirs] = add("Bob: the retro is on Monday.", user="bob", cubes=[team])
    code, payload = delete(writable_cube_ids=["alice", team])  # user_id and no selector: erase alice's data
    assert code == 200, payload
    cubes = receipt(payload)
    assert (cubes["alice"]["memories"], cubes[team]["memories"]) == (1, 1)
    assert cubes["alice"]["erased"] and cubes[team]["erased"]
    assert cubes["alice"]["index"] == 1 and cubes["alice"]["queued"] == 0
    assert [gettable(m) for m in mine] == [False, False]
    assert searchable("deploy", cubes=["alice", team]) == [theirs]  # relativity 0: every remaining item
    assert searchable("retro", user="bob", cubes=[team]) == [theirs]
    assert [i.id for i in api.memories.iter_memories()] == [theirs]


def test_delete_cube_erases_every_writers_memories_of_that_cube_only(api: Container) -> None:
    team = "team-notes"
    add("Alice: the deploy is on Friday.", cubes=[team])
    add("Bob: the retro is on Monday.", user="bob", cubes=[team])
    [private] = add("Alice: my own note.")
    code, payload = call("POST", "/product/delete_cube", body={"user_id": "alice", "cube_id": team})
    assert code == 200, payload
    assert receipt(payload)[team] | {} == {
        "cube_id": team, "memories": 2, "history": 0, "index": 2, "queued": 0, "dead_letters": 0, "erased": True,
    }  # fmt: skip
    assert searchable("deploy retro Friday Monday", cubes=[team]) == []
    assert [i.id for i in api.memories.iter_memories()] == [private]


def test_an_add_after_an_erasure_is_stored_again(api: Container) -> None:
    add("Alice likes tea.")
    assert delete()[0] == 200
    [fresh] = add("Alice likes tea.")
    assert gettable(fresh)
    assert searchable("tea") == [fresh]


def test_erasure_discards_queued_adds_and_their_tasks_end_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    container = memory_container_with()  # no worker: the add stays queued
    with serving(container):
        reply = post_add({"user_id": "alice", "messages": "Alice moved to Lisbon."})
        assert reply.status == 200, reply.body
        task_id = reply.body["task_id"]
        code, payload = delete()
        assert code == 200, payload
        assert receipt(payload)["alice"]["queued"] == 1
        assert queue_of(container).sent == []
        code, status = call("GET", "/product/scheduler/status", query=f"user_id=alice&task_id={task_id}")
        assert code == 200, status
        [task] = status["data"]
        assert task["status"] == "cancelled"
        assert "erased" in task["cubes"][0]["notes"][-1]


# --- bad input: a 4xx naming the field, and nothing deleted ---------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        ({"memory_ids": ["m1"], "filter": {"custom_tags": "x"}}, 422, "memory_ids and filter"),
        ({"memory_ids": ["m1"], "file_ids": ["f1"]}, 422, "memory_ids and file_ids"),
        ({"memory_ids": ["m1"], "session_id": "s1"}, 422, "session_id"),
        ({"filter": {}}, 422, "filter: empty"),
        ({"filter": {"custom_tags": {"$where": "1"}}}, 422, "filter"),
        ({"filter": {"drop table": "x"}}, 422, "filter"),
        ({"memory_ids": []}, 422, "memory_ids"),
        ({"memory_ids": ["bad id!"]}, 422, "memory_ids"),
        ({"session_id": "s1", "conversation_id": "s2"}, 422, "conversation_id"),
        ({"writable_cube_ids": ["bob"]}, 403, "writable_cube_ids"),
        ({"writable_cube_ids": ["alice", "bob"], "memory_ids": ["m1"]}, 403, "writable_cube_ids"),
        ({"everything": True}, 422, "everything"),
    ],
)
def test_bad_delete_is_a_clear_4xx_and_deletes_nothing(
    api: Container, body: dict[str, Any], status: int, names: str
) -> None:
    add("Bob keeps bees.", user="bob")
    [mine] = add("Alice keeps cats.", custom_tags=["x"], session_id="s1")
    code, payload = delete(**body)
    assert code == status, payload
    assert names in payload["message"]
    assert payload["code"] == status
    assert len(list(api.memories.iter_memories())) == 2
    assert gettable(mine)


def test_delete_cube_of_another_users_personal_cube_is_forbidden(api: Container) -> None:
    [bobs] = add("Bob keeps bees.", user="bob")
    code, payload = call("POST", "/product/delete_cube", body={"user_id": "alice", "cube_id": "bob"})
    assert code == 403, payload
    assert gettable(bobs, user="bob")
