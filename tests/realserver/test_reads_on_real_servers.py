"""MemOS's other reads on both deployments through the Lambda entry: on aws the filtered listing
pages through osmem-server (`OpenSearchIndex.select`) and reads the items from DynamoDB Local, and
`allstatus`/`wait` read the user's tasks from DynamoDB Local's user index (gsi1); embedded, the
same scenarios run on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realserver.test_end_to_end import Stack, aws_stack_of, embedded_stack


@pytest.fixture(params=["aws", "embedded"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    if request.param == "embedded":
        yield from embedded_stack(tmp_path / "data")
        return
    yield from aws_stack_of(request)


FACTS = [
    ("Gus flew to Lisbon in May.", ["travel"], {"year": "2023"}),
    ("Gus loves grilled sardines.", ["food"], {"year": "2023"}),
    ("Gus took the night train to Vienna.", ["travel"], {"year": "2024"}),
    ("Gus hiked the Camino in autumn.", ["travel"], {"year": "2023"}),
]


def _remember(deployment: Stack, user: str) -> list[str]:
    """The facts, one task each, in order (so their creation times are in order)."""
    ids: list[str] = []
    for text, tags, info in FACTS:
        code, accepted = deployment.add({"user_id": user, "messages": text, "custom_tags": tags, "info": info})
        assert code == 200, accepted
        task = deployment.wait(user, accepted["task_id"])
        assert task["status"] == "completed", task
        ids += [o["memory_id"] for c in task["cubes"] for o in c["outcomes"]]
    return ids


def _page(deployment: Stack, user: str, flt: Any, page: int, size: int) -> dict[str, Any]:
    body = {"mem_cube_id": user, "user_id": user, "filter": flt, "page": page, "page_size": size}
    code, payload = deployment.call("POST", "/product/get_memory", body=body)
    assert code == 200, payload
    data: dict[str, Any] = payload["data"]
    return data


def test_a_filtered_listing_pages_exactly_the_memories_that_pass(deployment: Stack) -> None:
    ids = _remember(deployment, "gus")
    first, second = (
        _page(deployment, "gus", {"custom_tags": "travel"}, 1, 2),
        _page(deployment, "gus", {"custom_tags": "travel"}, 2, 2),
    )
    assert (first["total"], second["total"]) == (3, 3)
    listed = [m["id"] for d in (first, second) for m in d["text_mem"][0]["memories"]]
    assert listed == [ids[0], ids[2], ids[3]]
    narrow = _page(deployment, "gus", {"and": [{"custom_tags": "travel"}, {"info.year": {"ne": "2024"}}]}, 1, 10)
    assert [m["id"] for m in narrow["text_mem"][0]["memories"]] == [ids[0], ids[3]]
    either = _page(deployment, "gus", {"or": [{"year": "2024"}, {"custom_tags": {"in": ["food"]}}]}, 1, 10)
    assert (either["total"], [m["id"] for m in either["text_mem"][0]["memories"]]) == (2, [ids[1], ids[2]])
    code, hosted = deployment.call(
        "POST", "/api/openmem/v1/get/memory", body={"user_id": "gus", "filter": {"custom_tags": "food"}}
    )
    assert code == 200, hosted
    assert [m["id"] for m in hosted["data"]["memory_detail_list"]] == [ids[1]]
    code, refused = deployment.call(
        "POST", "/product/get_memory", body={"mem_cube_id": "gus", "user_id": "gus", "filter": {"tags": {"near": 1}}}
    )
    assert code == 422 and "filter.tags" in refused["message"]


def test_reads_by_ids_and_get_all_answer_from_the_store(deployment: Stack) -> None:
    ids = _remember(deployment, "hal")
    code, payload = deployment.call(
        "POST", "/product/get_memory_by_ids", body=[ids[2], "no-such-id"], query="user_id=hal"
    )
    assert code == 200, payload
    assert ([m["id"] for m in payload["data"]["memories"]], payload["data"]["not_found"]) == ([ids[2]], ["no-such-id"])
    code, payload = deployment.call(
        "POST", "/product/get_all", body={"user_id": "hal", "memory_type": "text_mem", "page_size": 3}
    )
    assert code == 200, payload
    [cube] = payload["data"]
    assert (cube["total"], [m["id"] for m in cube["memories"]]) == (4, ids[:3])
    body = {"user_id": "hal", "memory_type": "text_mem", "search_query": "night train"}
    code, payload = deployment.call("POST", "/product/get_all", body=body)
    assert code == 200, payload
    assert payload["data"][0]["memories"][0]["id"] == ids[2]


def test_allstatus_and_wait_read_only_the_users_tasks(deployment: Stack) -> None:
    accepted = [
        deployment.add({"user_id": "ida", "messages": text})[1]["task_id"] for text in ("Ida rows.", "Ida swims.")
    ]
    deployment.add({"user_id": "jon", "messages": "Jon runs."})
    code, waited = deployment.call(
        "POST", "/product/scheduler/wait", query="user_name=ida&timeout_seconds=15&poll_interval=0.2"
    )
    assert (code, waited["message"]) == (200, "idle"), waited
    assert sorted(t["task_id"] for t in waited["data"]["tasks"]) == sorted(accepted)
    assert {t["status"] for t in waited["data"]["tasks"]} == {"completed"}
    code, counted = deployment.call("GET", "/product/scheduler/allstatus", query="user_id=ida")
    assert code == 200, counted
    summary = counted["data"]["all_tasks_summary"]
    assert (summary["completed"], summary["waiting"], summary["in_progress"], summary["total"]) == (2, 0, 0, 2)
    code, counted = deployment.call("GET", "/product/scheduler/allstatus", query="user_id=kim")
    assert (code, counted["data"]["all_tasks_summary"]["total"]) == (200, 0)
