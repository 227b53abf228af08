"""MemOS's other reads through the Lambda entry: `filter` on the cube listings, `get_memory_by_ids`,
`get_all`, and the scheduler's `wait`, `wait/stream` (server-sent events) and `allstatus`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from memcube.domain import reads
from memcube.domain.commands import NewCube
from memcube.domain.model import Principal
from memcube.wiring import Container
from memcube_api.app import create_app
from tests.api.conftest import assert_nothing_written, memory_container_with, post_add, serve
from tests.contract.support import memory
from tests.lambda_support import call

OPENMEM = "/api/openmem/v1"


def _remember(user: str, text: str, *, cube: str | None = None, **fields: Any) -> str:
    body = {"user_id": user, "messages": text, "async_mode": "sync", "writable_cube_ids": [cube or user]} | fields
    reply = post_add(body)
    assert reply.status == 200, reply.body
    memory_id: str = reply.data[0]["memory_id"]
    return memory_id


def _trips(user: str = "alice") -> list[str]:
    """Five memories: three tagged travel (one of them with info.year 2024), two tagged food."""
    facts = [
        ("She flew to Lisbon in May.", ["travel"], {"year": "2023"}),
        ("She loves grilled sardines.", ["food"], {}),
        ("She took the night train to Vienna.", ["travel"], {"year": "2024"}),
        ("She bakes sourdough on Sundays.", ["food"], {}),
        ("She hiked the Camino in autumn.", ["travel"], {"year": "2023"}),
    ]
    return [_remember(user, text, custom_tags=tags, info=info) for text, tags, info in facts]


def _listing(flt: Any, page: int = 1, page_size: int = 2, user: str = "alice") -> tuple[int, dict[str, Any]]:
    body = {"mem_cube_id": "alice", "user_id": user, "filter": flt, "page": page, "page_size": page_size}
    return call("POST", "/product/get_memory", body=body)


# --- filter on /product/get_memory and the hosted /get/memory ----------------------------------


def test_get_memory_pages_only_the_memories_that_pass_the_filter(embedded_api: Container) -> None:
    ids = _trips()
    seen: list[str] = []
    for page, size in [(1, 2), (2, 1), (3, 0)]:
        code, answer = _listing({"custom_tags": "travel"}, page)
        assert code == 200, answer
        data = answer["data"]
        assert (data["page"], data["page_size"], data["total"]) == (page, 2, 3)
        [cube] = data["text_mem"]
        assert (cube["cube_id"], cube["total_nodes"], len(cube["memories"])) == ("alice", 3, size)
        seen += [m["id"] for m in cube["memories"]]
    assert seen == [ids[0], ids[2], ids[4]]  # oldest first, as the unfiltered listing


def test_get_memory_filter_takes_the_search_languages_and_or_and_info_keys(embedded_api: Container) -> None:
    ids = _trips()
    code, answer = _listing({"and": [{"custom_tags": "travel"}, {"info.year": {"ne": "2024"}}]}, page_size=10)
    assert code == 200, answer
    assert [m["id"] for m in answer["data"]["text_mem"][0]["memories"]] == [ids[0], ids[4]]
    code, answer = _listing({"or": [{"year": "2024"}, {"custom_tags": {"in": ["food"]}}]}, page_size=10)
    assert [m["id"] for m in answer["data"]["text_mem"][0]["memories"]] == [ids[1], ids[2], ids[3]]
    code, answer = _listing({"custom_tags": "music"})
    assert (code, answer["data"]["total"], answer["data"]["text_mem"][0]["memories"]) == (200, 0, [])


def test_the_hosted_get_memory_applies_the_filter_too(embedded_api: Container) -> None:
    ids = _trips()
    body = {"user_id": "alice", "filter": {"custom_tags": "food"}, "size": 1, "page": 2}
    code, answer = call("POST", OPENMEM + "/get/memory", body=body)
    assert code == 200, answer
    data = answer["data"]
    assert (data["total"], data["pages"], data["current"], data["size"]) == (2, 2, 2, 1)
    assert [m["id"] for m in data["memory_detail_list"]] == [ids[3]]


@pytest.mark.parametrize(
    ("flt", "named"),
    [
        ({"tags": {"near": "x"}}, "filter.tags: unknown operator 'near'"),
        ({"bad key!": "x"}, "'bad key!' is not a valid field or info key"),
        ({"and": []}, "filter.and: must be a non-empty list"),
        ({"event_time": {"gte": "someday"}}, "filter.event_time.gte: 'someday' is not a time"),
    ],
)
def test_an_invalid_filter_is_a_422_naming_the_bad_key_on_both_listings(
    api: Container, flt: dict[str, Any], named: str
) -> None:
    code, answer = _listing(flt)
    assert code == 422 and named in answer["message"], answer
    code, answer = call("POST", OPENMEM + "/get/memory", body={"user_id": "alice", "filter": flt})
    assert code == 422 and named in answer["message"], answer
    assert_nothing_written(api)


def test_a_filtered_page_past_the_window_is_refused_naming_page(api: Container) -> None:
    code, answer = _listing({"custom_tags": "travel"}, page=reads.WINDOW // 100 + 1, page_size=100)
    assert code == 422 and answer["message"].startswith("page: a filtered listing reaches the first 10000")


def test_a_filtered_listing_of_another_users_cube_is_403_and_shows_nothing(embedded_api: Container) -> None:
    _trips()
    code, answer = _listing({"custom_tags": "travel"}, user="mallory")
    assert code == 403 and answer["data"] is None


def test_a_filtered_listing_never_shows_a_memory_the_store_no_longer_holds_active(embedded_api: Container) -> None:
    ids = _trips()
    item = embedded_api.memories.get_memory(ids[0])
    assert item is not None  # archived in the store, its index document left behind (a lagging index)
    archived = item.model_copy(update={"metadata": item.metadata.model_copy(update={"status": "archived"})})
    assert embedded_api.memories.update_memory(archived, item.metadata.version)
    code, answer = _listing({"custom_tags": "travel"}, page_size=10)
    assert code == 200
    assert [m["id"] for m in answer["data"]["text_mem"][0]["memories"]] == [ids[2], ids[4]]


# --- /product/get_memory_by_ids -------------------------------------------------------------


def test_get_memory_by_ids_returns_the_readable_ones_in_order_and_names_the_rest(embedded_api: Container) -> None:
    ids = _trips()
    bobs = _remember("bob", "Bob keeps bees.")
    asked = [ids[3], "no-such-id", bobs, ids[0], ids[3]]
    code, answer = call("POST", "/product/get_memory_by_ids", body=asked, query="user_id=alice")
    assert code == 200, answer
    data = answer["data"]
    assert [m["id"] for m in data["memories"]] == [ids[3], ids[0]]
    assert all("embedding" not in m["metadata"] for m in data["memories"])
    # Another user's memory answers like an unknown id: its existence does not leak.
    assert data["not_found"] == ["no-such-id", bobs]
    assert answer["message"] == "Memories retrieved successfully: 2 of 4"


def test_get_memory_by_ids_without_a_user_reads_each_as_its_writer_as_memos(embedded_api: Container) -> None:
    alices, bobs = _remember("alice", "Alice rows."), _remember("bob", "Bob keeps bees.")
    code, answer = call("POST", "/product/get_memory_by_ids", body=[alices, bobs])
    assert code == 200, answer
    assert [m["id"] for m in answer["data"]["memories"]] == [alices, bobs]


def test_get_memory_by_ids_with_keys_reads_only_the_key_users_cubes(monkeypatch: pytest.MonkeyPatch) -> None:
    keyed = serve(monkeypatch, memory_container_with(auth="keys"))
    [alice, bob] = [{"authorization": f"Token {keyed.keys.create(u, 'user')[1]}"} for u in ("alice", "bob")]
    item = memory("m-alice", "Alice rows.", cube="alice")
    item.metadata.user_id = "alice"
    keyed.memories.put_memory(item)
    assert call("POST", "/product/get_memory_by_ids", body=["m-alice"], headers=alice)[1]["data"]["not_found"] == []
    code, answer = call("POST", "/product/get_memory_by_ids", body=["m-alice"], headers=bob)
    assert (code, answer["data"]) == (200, {"memories": [], "not_found": ["m-alice"]})
    code, answer = call("POST", "/product/get_memory_by_ids", body=["m-alice"], headers=bob, query="user_id=alice")
    assert code == 403 and answer["data"] is None  # a user key never reads as another user


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([], "body: List should have at least 1 item"),
        ({"memory_ids": ["a"]}, "body: Input should be a valid array"),
        (["a"] * (reads.MAX_IDS + 1), f"at most {reads.MAX_IDS} items"),
        (["a", ""], "memory_ids[1]: an id of 1-200 characters"),
    ],
)
def test_get_memory_by_ids_refuses_what_is_not_a_list_of_ids(api: Container, body: Any, named: str) -> None:
    code, answer = call("POST", "/product/get_memory_by_ids", body=body)
    assert code == 422 and named in answer["message"], answer


# --- /product/get_all ---------------------------------------------------------------------------


def test_get_all_pages_each_asked_cube(embedded_api: Container) -> None:
    ids = _trips()
    kb_1 = NewCube(cube_id="kb-1", readers=["alice"], writers=[])  # bob's, alice reads it
    embedded_api.cubes.create(kb_1, Principal(user_id="bob"))
    kb = _remember("bob", "The office opens at nine.", cube="kb-1")
    body = {"user_id": "alice", "memory_type": "text_mem", "mem_cube_ids": ["alice", "kb-1"], "page": 2, "page_size": 2}
    code, answer = call("POST", "/product/get_all", body=body)
    assert code == 200, answer
    [mine, shared] = answer["data"]
    assert (mine["cube_id"], mine["total"], mine["page"], mine["page_size"]) == ("alice", 5, 2, 2)
    assert [m["id"] for m in mine["memories"]] == ids[2:4]
    assert (shared["cube_id"], shared["total_nodes"], shared["memories"]) == ("kb-1", 1, [])
    body = {"user_id": "alice", "memory_type": "text_mem", "mem_cube_ids": ["kb-1"]}
    code, answer = call("POST", "/product/get_all", body=body)
    assert [m["id"] for m in answer["data"][0]["memories"]] == [kb]


def test_get_all_by_default_pages_the_users_own_cube(embedded_api: Container) -> None:
    ids = _trips()
    code, answer = call("POST", "/product/get_all", body={"user_id": "alice", "memory_type": "text_mem"})
    assert code == 200
    [cube] = answer["data"]
    assert (cube["cube_id"], [m["id"] for m in cube["memories"]]) == ("alice", ids)


def test_get_all_with_a_search_query_ranks_the_related_memories_by_text(embedded_api: Container) -> None:
    ids = _trips()
    body = {"user_id": "alice", "memory_type": "text_mem", "search_query": "night train", "page_size": 3}
    code, answer = call("POST", "/product/get_all", body=body)
    assert code == 200, answer
    [cube] = answer["data"]
    assert cube["search_type"] == "fulltext"
    assert cube["memories"][0]["id"] == ids[2]
    assert all(m["metadata"]["relativity"] > 0 for m in cube["memories"])
    body |= {"search_type": "embedding"}
    code, answer = call("POST", "/product/get_all", body=body)
    assert code == 200 and len(answer["data"][0]["memories"]) == 3


@pytest.mark.parametrize("kind", ["act_mem", "param_mem", "para_mem"])
def test_get_all_of_a_kind_memcube_never_holds_is_the_memos_empty_answer_saying_why(api: Container, kind: str) -> None:
    code, answer = call("POST", "/product/get_all", body={"user_id": "alice", "memory_type": kind})
    assert (code, answer["data"]) == (200, [])
    assert "memcube keeps no" in answer["message"] and kind in answer["message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"user_id": "alice"}, "memory_type"),
        ({"user_id": "alice", "memory_type": "pref_mem"}, "memory_type"),
        ({"user_id": "alice", "memory_type": "text_mem", "search_query": "x", "page": 2}, "page: the memories related"),
        ({"user_id": "alice", "memory_type": "text_mem", "search_type": "graph"}, "search_type"),
        ({"user_id": "alice", "memory_type": "text_mem", "page_size": 101}, "page_size"),
        ({"user_id": "alice", "memory_type": "text_mem", "mem_cube_ids": ["c"] * 11}, "mem_cube_ids"),
        ({"user_id": "alice", "memory_type": "text_mem", "top_k": 5}, "top_k"),
    ],
)
def test_get_all_refuses_bad_input_naming_the_field(api: Container, body: dict[str, Any], named: str) -> None:
    code, answer = call("POST", "/product/get_all", body=body)
    assert code == 422 and named in answer["message"], answer
    assert_nothing_written(api)


@pytest.mark.parametrize("kind", ["text_mem", "act_mem"])
def test_get_all_of_another_users_cube_is_403_and_shows_nothing(embedded_api: Container, kind: str) -> None:
    _trips()
    body = {"user_id": "mallory", "memory_type": kind, "mem_cube_ids": ["alice"]}
    code, answer = call("POST", "/product/get_all", body=body)
    assert code == 403 and answer["data"] is None
    code, answer = call("POST", "/product/get_all", body=body | {"search_query": "train"})
    assert code == 403 and answer["data"] is None


# --- /product/scheduler/allstatus ----------------------------------------------------------------


def test_allstatus_counts_only_the_callers_tasks_by_state(api: Container) -> None:
    for text in ("one", "two"):
        assert post_add({"user_id": "alice", "messages": text}).status == 200
    assert post_add({"user_id": "bob", "messages": "three"}).status == 200
    code, answer = call("GET", "/product/scheduler/allstatus", query="user_id=alice")
    assert code == 200, answer
    data = answer["data"]
    expected = {"waiting": 2, "in_progress": 0, "pending": 2, "completed": 0, "failed": 0, "cancelled": 0, "total": 2}
    assert data["all_tasks_summary"] == data["scheduler_summary"] == expected
    assert (data["user_id"], data["truncated"]) == ("alice", False)
    code, answer = call("GET", "/product/scheduler/allstatus", query="user_id=carol")
    assert answer["data"]["all_tasks_summary"]["total"] == 0


def test_allstatus_counts_finished_tasks(embedded_api: Container) -> None:
    _remember("alice", "Alice rows.")
    code, answer = call("GET", "/product/scheduler/allstatus", query="user_id=alice")
    summary = answer["data"]["all_tasks_summary"]
    assert (code, summary["completed"], summary["waiting"], summary["total"]) == (200, 1, 0, 1)


def test_allstatus_without_a_user_is_a_422_with_keys_off(api: Container) -> None:
    code, answer = call("GET", "/product/scheduler/allstatus")
    assert code == 422 and answer["message"].startswith("user_id: required")


# --- /product/scheduler/wait ---------------------------------------------------------------------


def test_wait_answers_idle_once_the_users_tasks_have_ended(embedded_api: Container) -> None:
    task_id = post_add({"user_id": "alice", "messages": "Alice rows at dawn."}).body["task_id"]
    code, answer = call("POST", "/product/scheduler/wait", query="user_name=alice&timeout_seconds=20")
    assert code == 200, answer
    assert answer["message"] == "idle"
    data = answer["data"]
    assert (data["running_tasks"], data["timed_out"], data["user_name"]) == (0, False, "alice")
    assert data["tasks"] == [{"task_id": task_id, "status": "completed"}]
    assert data["timeout_seconds"] == 20


def test_wait_times_out_while_tasks_are_still_waiting_and_says_so(api: Container) -> None:
    task_id = post_add({"user_id": "alice", "messages": "x"}).body["task_id"]
    query = f"user_id=alice&task_id={task_id}&timeout_seconds=0.4&poll_interval=0.2"
    code, answer = call("POST", "/product/scheduler/wait", query=query)
    assert (code, answer["message"]) == (200, "timeout")
    data = answer["data"]
    assert (data["running_tasks"], data["timed_out"]) == (1, True)
    assert data["tasks"] == [{"task_id": task_id, "status": "waiting"}]
    assert 0.4 <= data["waited_seconds"] < 2


def test_a_timeout_above_the_deployments_cap_is_cut_to_it_and_the_answer_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serve(monkeypatch, memory_container_with(wait_max_seconds=0.3))
    post_add({"user_id": "alice", "messages": "x"})
    code, answer = call("POST", "/product/scheduler/wait", query="user_name=alice")  # MemOS's default: 120 s
    assert (code, answer["message"]) == (200, "timeout")
    data = answer["data"]
    assert (data["timeout_seconds"], data["timeout_capped"]) == (0.3, True)
    assert data["note"].startswith("timeout_seconds: 120 asked, this deployment waits at most 0.3")


@pytest.mark.parametrize(
    ("query", "status", "named"),
    [
        ("user_name=alice&poll_interval=0.01", 422, "poll_interval"),
        ("user_name=alice&poll_interval=60", 422, "poll_interval"),
        ("user_name=alice&timeout_seconds=-1", 422, "timeout_seconds"),
        ("user_name=alice&user_id=bob", 422, "user_name: names the same user as user_id"),
        ("timeout_seconds=1", 422, "user_id: required"),
        ("user_name=alice&task_id=no-such-task", 404, "task_id: 'no-such-task' not found"),
    ],
)
def test_wait_refuses_bad_parameters_naming_them(api: Container, query: str, status: int, named: str) -> None:
    code, answer = call("POST", "/product/scheduler/wait", query=query)
    assert code == status and named in answer["message"], answer


def test_waiting_for_another_users_task_is_404_like_an_unknown_one(api: Container) -> None:
    task_id = post_add({"user_id": "bob", "messages": "x"}).body["task_id"]
    code, answer = call("POST", "/product/scheduler/wait", query=f"user_name=alice&task_id={task_id}")
    assert code == 404 and "not found" in answer["message"]


# --- /product/scheduler/wait/stream (server-sent events) -----------------------------------------


def _events(client: TestClient, query: str) -> list[dict[str, Any]]:
    with client.stream("GET", f"/product/scheduler/wait/stream?{query}") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [line for line in response.iter_lines() if line]
    assert all(f.startswith("data: ") for f in frames)
    return [json.loads(f.removeprefix("data: ")) for f in frames]


def test_the_wait_stream_sends_state_changes_until_the_users_tasks_end(client: TestClient) -> None:
    code = client.post("/product/add", json={"user_id": "alice", "messages": "Alice rows."}).status_code
    assert code == 200
    events = _events(client, "user_name=alice&timeout_seconds=20&poll_interval=0.2")
    last = events[-1]
    assert (last["status"], last["active_tasks"], last["timed_out"], last["user_name"]) == ("idle", 0, False, "alice")
    assert [t["status"] for t in last["tasks"]] == ["completed"]
    assert all(e["status"] == "running" for e in events[:-1])
    assert len({json.dumps(e["tasks"]) for e in events[:-1]}) == len(events[:-1])  # each frame is a change


def test_the_wait_stream_ends_with_a_timeout_event(monkeypatch: pytest.MonkeyPatch) -> None:
    container = memory_container_with()
    client = TestClient(create_app(lambda: container))
    assert client.post("/product/add", json={"user_id": "alice", "messages": "x"}).status_code == 200
    events = _events(client, "user_name=alice&timeout_seconds=0.4&poll_interval=0.2")
    assert [e["status"] for e in events] == ["running", "timeout"]
    assert (events[-1]["timed_out"], events[-1]["active_tasks"]) == (True, 1)


def test_the_wait_stream_of_an_unknown_task_is_a_404_envelope_not_a_stream(client: TestClient) -> None:
    response = client.get("/product/scheduler/wait/stream?user_name=alice&task_id=nope")
    assert response.status_code == 404
    assert response.json()["message"] == "task_id: 'nope' not found"


def test_the_wait_stream_through_the_lambda_entry_arrives_whole_as_event_frames(api: Container) -> None:
    """Behind API Gateway and Mangum a response is buffered: the frames arrive together at the end."""
    from memcube_api.handler import lambda_handler
    from tests.lambda_support import FakeLambdaContext, v2_event

    post_add({"user_id": "alice", "messages": "x"})
    event = v2_event("GET", "/product/scheduler/wait/stream", query="user_name=alice&timeout_seconds=0.4")
    response = lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/event-stream")
    frames = [json.loads(f.removeprefix("data: ")) for f in response["body"].split("\n\n") if f]
    assert [f["status"] for f in frames] == ["running", "timeout"]
