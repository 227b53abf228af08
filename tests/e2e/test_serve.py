"""End to end over real HTTP against `memcube serve` (the README's run command)."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import MEMCUBE, Server
from tests.net import free_port

pytestmark = pytest.mark.e2e

CONVERSATION = [
    {"role": "user", "content": "I moved to Lisbon last May.", "chat_time": "2025-06-01T09:00:00Z"},
    {"role": "assistant", "content": "Do you still work remotely?", "chat_time": "2025-06-01T09:00:05Z"},
    {"role": "user", "content": "Yes, for a Berlin startup.", "chat_time": "2025-06-01T09:00:30Z"},
]


def test_readme_round_trip_add_status_get(serve: Callable[..., Server]) -> None:
    server = serve()
    response = server.add({"user_id": "alice", "messages": CONVERSATION, "custom_tags": ["move"]})
    assert response.status_code == 200
    task_id = response.json()["task_id"]
    task = server.wait("alice", task_id)
    assert task["status"] == "completed"
    [outcome] = task["cubes"][0]["outcomes"]
    assert outcome["outcome"] == "added"
    item = httpx.get(f"{server.url}/product/get_memory/{outcome['memory_id']}", params={"user_id": "alice"}).json()
    assert "Berlin startup" in item["data"]["memory"]
    assert [(s["role"], s["chat_time"]) for s in item["data"]["metadata"]["sources"]] == [
        (m["role"], m["chat_time"]) for m in CONVERSATION
    ]
    assert server.cube("alice", "alice")["total_nodes"] == 1


def test_sync_add_returns_memories_and_a_repeat_is_reported_duplicate(serve: Callable[..., Server]) -> None:
    server = serve()
    body = {"user_id": "bob", "messages": "Bob's sister lives in Porto.", "async_mode": "sync", "mode": "fast"}
    first = server.add(body).json()
    assert first["data"][0]["outcome"] == "added"
    second = server.add(body).json()
    assert second["data"][0]["outcome"] == "duplicate"
    assert second["data"][0]["memory_id"] == first["data"][0]["memory_id"]
    assert server.cube("bob", "bob")["total_nodes"] == 1


def test_task_id_and_idempotency_key_replays_store_nothing_new(serve: Callable[..., Server]) -> None:
    server = serve()
    body = {"user_id": "cy", "messages": "Cy prefers tea.", "task_id": "order-1"}
    assert server.add(body).json()["task_id"] == server.add(body).json()["task_id"] == "order-1"
    keyed = {"user_id": "cy", "messages": "Cy plays chess."}
    a = server.add(keyed, **{"Idempotency-Key": "k1"}).json()["task_id"]
    b = server.add(keyed, **{"Idempotency-Key": "k1"}).json()["task_id"]
    assert a == b
    for task_id in ("order-1", a):
        assert server.wait("cy", task_id)["status"] == "completed"
    assert server.cube("cy", "cy")["total_nodes"] == 2


def test_many_cubes_in_parallel_all_complete_with_exact_counts(serve: Callable[..., Server]) -> None:
    server = serve()
    tasks = []
    for n in range(24):
        cube = f"kb-{n % 4}"
        body = {"user_id": "ops", "writable_cube_ids": [cube], "messages": f"fact number {n} about {cube}"}
        tasks.append(server.add(body).json()["task_id"])
    assert all(server.wait("ops", t)["status"] == "completed" for t in tasks)
    assert [server.cube(f"kb-{c}", "ops")["total_nodes"] for c in range(4)] == [6, 6, 6, 6]


def test_tasks_queued_before_kill9_complete_after_restart(serve: Callable[..., Server], tmp_path: Path) -> None:
    data = tmp_path / "restart"
    api_only = serve(data_dir=data, workers=0)
    tasks = [
        api_only.add({"user_id": "dee", "writable_cube_ids": [f"c{n % 3}"], "messages": f"note {n}"}).json()["task_id"]
        for n in range(15)
    ]
    assert {api_only.status("dee", t)["status"] for t in tasks} == {"waiting"}
    api_only.kill9()
    server = serve(data_dir=data)
    assert all(server.wait("dee", t)["status"] == "completed" for t in tasks)
    assert [server.cube(f"c{c}", "dee")["total_nodes"] for c in range(3)] == [5, 5, 5]


def queued_messages(data_dir: Path) -> int:
    """Messages still in the durable queue file (waiting, or leased by a worker)."""
    with sqlite3.connect(data_dir / "queue.db") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM messages").fetchone()
    return int(count)


def test_kill9_with_work_in_progress_loses_and_doubles_nothing(serve: Callable[..., Server], tmp_path: Path) -> None:
    data = tmp_path / "inflight"
    server = serve(data_dir=data, workers=1)
    tasks = []
    for n in range(8):  # ~400 KB each: seconds of work for one worker on one cube
        long = [{"role": "user", "content": f"task {n} line {i} " + "lorem ipsum " * 70} for i in range(450)]
        tasks.append(server.add({"user_id": "eve", "messages": long}).json()["task_id"])
    server.kill9()
    assert queued_messages(data) > 0, "the kill must find work still queued or running"
    restarted = serve(data_dir=data)
    finished = [restarted.wait("eve", t, timeout=90) for t in tasks]
    assert {t["status"] for t in finished} == {"completed"}
    ids = [o["memory_id"] for t in finished for o in t["cubes"][0]["outcomes"] if o["outcome"] == "added"]
    assert len(ids) == len(set(ids))
    assert restarted.cube("eve", "eve", page_size=100)["total_nodes"] == len(ids)
    assert queued_messages(data) == 0


def test_a_second_server_on_the_same_data_dir_refuses_to_start(serve: Callable[..., Server], tmp_path: Path) -> None:
    server = serve()
    proc = subprocess.run(
        [str(MEMCUBE), "serve", "--port", str(free_port()), "--data-dir", str(server.data_dir)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert str(server.data_dir) in proc.stderr.decode()


def test_bad_input_over_http_is_4xx_never_5xx(serve: Callable[..., Server]) -> None:
    server = serve()
    broken = httpx.post(
        f"{server.url}/product/add", content=b'{"user_id":', headers={"content-type": "application/json"}
    )
    assert (broken.status_code, broken.json()["code"]) == (400, 400)
    form = httpx.post(f"{server.url}/product/add", data={"user_id": "x"})
    assert form.status_code == 415
