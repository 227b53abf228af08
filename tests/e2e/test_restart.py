"""Restart safety of `memcube serve`: `kill -9` with work queued and in flight loses nothing and
doubles nothing; one server per data dir."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from memcube.domain.ingest import content_hash
from memcube.domain.reader import windows
from memcube.domain.tasks import scoped_task_id
from memcube_api.schemas.product import AddRequest, to_command
from tests.e2e.conftest import MEMCUBE, ServeFactory, free_port


def note(n: int, cube: str) -> dict[str, Any]:
    return {
        "user_id": "dee",
        "task_id": f"note-{n}",
        "writable_cube_ids": [cube],
        "messages": [{"role": "user", "content": f"note {n} for {cube}", "chat_time": f"2025-01-01T00:00:{n:02d}Z"}],
    }


def test_adds_accepted_without_workers_complete_after_kill9_and_restart(serve: ServeFactory, tmp_path: Path) -> None:
    data = tmp_path / "restart"
    cubes = [f"c{n}" for n in range(4)]
    bodies = [note(n, cubes[n % 4]) for n in range(20)]
    api_only = serve(data_dir=data, workers=0)
    for body in bodies:
        assert api_only.add_ok(body)["task_id"] == body["task_id"]
    time.sleep(0.3)  # were there a worker, it would have started by now
    waiting = [api_only.status("dee", b["task_id"]) for b in bodies]
    assert {(t["status"], t["cubes"][0]["attempts"]) for t in waiting} == {("waiting", 0)}
    api_only.kill9()
    assert api_only.proc.returncode == -signal.SIGKILL

    server = serve(data_dir=data, workers=2)
    finished = server.wait_all("dee", [b["task_id"] for b in bodies], timeout=30)
    assert [t["status"] for t in finished] == ["completed"] * 20, finished
    assert [p["attempts"] for t in finished for p in t["cubes"]] == [1] * 20
    outcomes = [[(o["outcome"], o["memory_id"]) for o in t["cubes"][0]["outcomes"]] for t in finished]
    assert [[o for o, _ in per_task] for per_task in outcomes] == [["added"]] * 20
    assert len({m for per_task in outcomes for _, m in per_task}) == 20

    # A client that never saw its answers retries every add after the crash: nothing new.
    for body in bodies:
        assert "repeated request" in server.add_ok(body)["message"]
    for cube in cubes:
        items = server.items(cube, "dee")
        assert sorted(i["metadata"]["task_id"] for i in items) == sorted(  # the stored ids, scoped to dee
            scoped_task_id("dee", b["task_id"]) for b in bodies if b["writable_cube_ids"] == [cube]
        ), items
        assert len({i["metadata"]["content_hash"] for i in items}) == 5


def lines(tag: str, count: int, words: int) -> list[dict[str, Any]]:
    """`count` distinct chat messages of about `words` + 3 tokens each."""
    return [
        {"role": "user", "content": f"{tag} line {i}: " + " ".join(f"{tag}w{i}x{j}" for j in range(words))}
        for i in range(count)
    ]


def window_hashes(body: dict[str, Any]) -> list[str]:
    """The oracle: the content of each memory the fast reader makes from this add."""
    return [content_hash(w.text) for w in windows(to_command(AddRequest.model_validate(body)).messages)]


def test_kill9_with_work_in_flight_and_queued_loses_and_doubles_nothing(serve: ServeFactory, tmp_path: Path) -> None:
    data = tmp_path / "inflight"
    # A large add (hundreds of messages, ~50 memories, about a second of work) and more queued
    # behind it in the same cube; a second cube keeps the other worker busy.
    bodies: list[dict[str, Any]] = [{"user_id": "eve", "task_id": "big-0", "messages": lines("big", 450, 60)}]
    bodies += [{"user_id": "eve", "task_id": f"behind-{n}", "messages": lines(f"behind{n}", 80, 60)} for n in range(5)]
    journal: dict[str, Any] = {"user_id": "eve", "writable_cube_ids": ["journal"]}
    bodies += [journal | {"task_id": f"journal-{n}", "messages": lines(f"j{n}", 200, 60)} for n in range(2)]
    task_ids = [b["task_id"] for b in bodies]
    expected = {"eve": set[str](), "journal": set[str]()}
    for body in bodies:
        expected[body.get("writable_cube_ids", ["eve"])[0]].update(window_hashes(body))

    server = serve(data_dir=data, workers=2)
    for body in bodies:
        server.add_ok(body)
    # Kill as soon as the big add has written its first memories (or a while after it started).
    deadline = time.monotonic() + 15
    started_at = None
    while True:
        state = server.status("eve", "big-0")["status"]
        if state == "in_progress":
            started_at = started_at or time.monotonic()
            if server.total("eve", "eve") > 0 or time.monotonic() - started_at > 3:
                break
        elif state != "waiting":
            break  # finished already: the adds behind it are still queued
        assert time.monotonic() < deadline, "the big add never started"
    server.kill9()

    # Look at what the kill left, with an API-only server (it processes nothing).
    inspector = serve(data_dir=data, workers=0)
    before = {t: inspector.status("eve", t) for t in task_ids}
    written_before = inspector.total("eve", "eve")
    inspector.stop()
    unfinished = [t for t, task in before.items() if task["status"] != "completed"]
    assert unfinished, f"the kill must find work queued or in progress; make the batch larger: {before}"
    assert before["behind-4"]["status"] == "waiting", before["behind-4"]

    server = serve(data_dir=data, workers=2)
    finished = {t["task_id"]: t for t in server.wait_all("eve", task_ids, timeout=40)}
    assert {t["status"] for t in finished.values()} == {"completed"}, finished
    all_added: list[str] = []
    for body in bodies:
        [part] = finished[body["task_id"]]["cubes"]
        [was] = before[body["task_id"]]["cubes"]
        # Interrupted work was delivered once more; work that had not started, or had finished, once.
        assert part["attempts"] == (2 if was["status"] == "in_progress" else 1), (was, part)
        assert [o["outcome"] for o in part["outcomes"]] == ["added"] * len(window_hashes(body))
        added = [o["memory_id"] for o in part["outcomes"]]
        assert len(set(added)) == len(added), "a memory added twice by one task"
        all_added += added
        if was["status"] == "in_progress" and body["task_id"] == "big-0":
            rewritten = [o for o in part["outcomes"] if "redelivery" in o["reason"]]
            assert len(rewritten) == written_before, (written_before, rewritten)
    assert len(set(all_added)) == len(all_added), "a memory added by two tasks"

    for cube, hashes in expected.items():
        items = server.items(cube, "eve")
        assert len(items) == len(hashes), (cube, len(items), len(hashes))
        assert {i["metadata"]["content_hash"] for i in items} == hashes
        assert {i["id"] for i in items} <= set(all_added)
    assert {i["id"] for c in expected for i in server.items(c, "eve")} == set(all_added)

    # The derived index agrees with the store after the crash (the operator's check).
    for cube in expected:
        check = subprocess.run(
            [str(MEMCUBE), "reconcile", "--data-dir", str(data), "--cube", cube],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert f"cube {cube}: 0 missing from the index, 0 in the index but not the store" in check.stdout


def test_sigterm_lets_the_in_flight_add_finish(serve: ServeFactory, tmp_path: Path) -> None:
    data = tmp_path / "term"
    body = {"user_id": "gus", "task_id": "big", "messages": lines("term", 450, 60)}
    server = serve(data_dir=data, workers=1)
    server.add_ok(body)
    deadline = time.monotonic() + 15
    while server.status("gus", "big")["status"] == "waiting":
        assert time.monotonic() < deadline, "the add never started"
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(30)

    inspector = serve(data_dir=data, workers=0)
    task = inspector.status("gus", "big")
    assert task["status"] == "completed", f"exit {server.proc.returncode}, task after SIGTERM: {task}"
    assert inspector.total("gus", "gus") == len(window_hashes(body))


def test_a_second_serve_on_the_same_data_dir_exits_naming_it(serve: ServeFactory) -> None:
    first = serve()
    second = subprocess.run(
        [str(MEMCUBE), "serve", "--port", str(free_port()), "--data-dir", str(first.data_dir), "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert second.returncode != 0, second.stdout + second.stderr
    assert str(first.data_dir) in second.stderr, second.stderr
    assert "another memcube process" in second.stderr
    # The first server is unharmed and still works.
    answer = first.add_ok({"user_id": "fay", "messages": "still serving", "async_mode": "sync"})
    assert [d["outcome"] for d in answer["data"]] == ["added"]


def test_a_data_dir_indexed_with_another_embedder_is_re_embedded_at_start(serve: ServeFactory, tmp_path: Path) -> None:
    """Upgrading from the hash embedder (or changing MEMCUBE_EMBEDDER) never mixes two models'
    vectors: `memcube serve` re-embeds the data dir first, and search works on the new model."""
    data = tmp_path / "data"
    first = serve(data_dir=data)  # the hash embedder
    body = {"user_id": "alice", "messages": "Alice adopted a grey cat called Miso.", "async_mode": "sync"}
    [memory] = first.add_ok(body)["data"]
    first.stop()
    second = serve(data_dir=data, env={"MEMCUBE_EMBEDDER": "minilm"})
    query = {"user_id": "alice", "query": "Which pet does Alice have?", "relativity": 0.3}
    found = second.http.post("/product/search", json=query).json()["data"]["text_mem"][0]["memories"]
    assert [m["id"] for m in found] == [memory["memory_id"]]
    log = second.log_path.read_text()
    assert "the index was built with hash-v1-384; re-embedding with minilm-l6-v2-384" in log
    assert "1 memories re-embedded and indexed" in log
