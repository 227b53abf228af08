"""Point 8, restart safety of the embedded default, beyond tests/e2e/test_restart.py (one kill
with queued and in-flight work): `kill -9` again and again while adds across cubes are queued
and in progress, each restart picking up where the last left off; then the client, which never
saw some answers, sends every add again. All complete, none doubled, store and index agree."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import MEMCUBE
from tests.e2e.test_restart import lines
from tests.reliability.conftest import Figures, Scale, Serve

pytestmark = pytest.mark.e2e


def test_repeated_kill9_with_work_queued_and_in_flight_loses_and_doubles_nothing(
    serve: Serve, tmp_path: Path, scale: Scale, figures: Figures
) -> None:
    data = tmp_path / "kills"
    cubes = [f"kb-r{n}" for n in range(4)]
    rng = random.Random(5)
    bodies: list[dict[str, Any]] = []
    interrupted = 0
    for round_ in range(scale.kills):
        server = serve(data_dir=data, workers=2)
        batch = [
            {"user_id": "rex", "task_id": f"r{round_}-{n}", "writable_cube_ids": [cubes[n % 4]],
             "messages": lines(f"r{round_}n{n}", 150 if n % 4 == 0 else 2, 60)}
            for n in range(12)
        ]  # fmt: skip
        for body in batch:
            server.add_ok(body)
        bodies += batch
        time.sleep(rng.uniform(0.02, 0.2))  # some work done, some in flight, some queued
        states = {server.status("rex", b["task_id"])["status"] for b in bodies}
        server.kill9()
        interrupted += int(states != {"completed"})
    assert interrupted >= 1, "the kills must find work queued or in progress; make the rounds larger"
    server = serve(data_dir=data, workers=2)
    for body in bodies:  # the client retries everything it sent: replays, nothing new
        server.add_ok(body)
    finished = server.wait_all("rex", [b["task_id"] for b in bodies], timeout=120)
    assert [t["status"] for t in finished] == ["completed"] * len(bodies), [
        t for t in finished if t["status"] != "completed"
    ]
    added = [o["memory_id"] for t in finished for o in t["cubes"][0]["outcomes"] if o["outcome"] == "added"]
    assert len(added) == len(set(added)), "a memory added twice"
    total = 0
    for cube in cubes:
        items = server.items(cube, "rex")
        assert len({i["metadata"]["content_hash"] for i in items}) == len(items)
        assert {i["id"] for i in items} <= set(added)
        total += len(items)
    assert total == len(added)
    server.stop()
    for cube in cubes:
        check = subprocess.run([str(MEMCUBE), "reconcile", "--data-dir", str(data), "--cube", cube],
                               capture_output=True, text=True, timeout=60, check=False,
                               env={"MEMCUBE_EMBEDDER": "hash", "PATH": "/usr/bin:/bin"})  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
    figures.record("8 restart", kill9s=scale.kills, adds=len(bodies), memories=total, doubled=0,
                   rounds_with_unfinished_work=interrupted, reconcile_differences=0)  # fmt: skip
