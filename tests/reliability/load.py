"""A load driver over real HTTP, shared by the embedded default (`memcube serve`) and the real-server
tier: clients post adds to many cubes (each cube's adds in order, cubes in parallel), then every
task is awaited and checked. Each cube's sequence repeats earlier content, so the outcomes also
prove per-cube order: a repeat is a duplicate of the first occurrence only if it was processed
after it. Figures: throughput, and p50/p99 of add latency and of time-to-completed."""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx


def fact(cube: str, k: int) -> tuple[str, int | None]:
    """The k-th add of a cube: a new fact, or (every fifth) a repeat of the add two before."""
    if k % 5 == 4:
        return fact(cube, k - 2)[0], k - 2
    return f"{cube} fact {k}: the {cube} sensor {k} reads {k * 7 % 101} units.", None


@dataclass
class Sent:
    cube: str
    k: int
    task_id: str
    submitted: float
    latency: float


@dataclass
class LoadResult:
    sent: list[Sent] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall: float = 0.0

    def figures(self) -> dict[str, Any]:
        latencies = sorted(s.latency * 1000 for s in self.sent)
        done = sorted(_epoch(self.tasks[s.task_id]["cubes"][0]["finished_at"]) - s.submitted for s in self.sent)
        return {
            "adds": len(self.sent),
            "cubes": len({s.cube for s in self.sent}),
            "throughput_adds_per_s": round(len(self.sent) / self.wall, 1),
            "add_latency_ms_p50": round(_pct(latencies, 50), 1),
            "add_latency_ms_p99": round(_pct(latencies, 99), 1),
            "time_to_completed_ms_p50": round(_pct([d * 1000 for d in done], 50), 1),
            "time_to_completed_ms_p99": round(_pct([d * 1000 for d in done], 99), 1),
        }


def _pct(values: list[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_load(
    base_url: str,
    *,
    cubes: list[str],
    per_cube: int,
    clients: int,
    user: str = "loader",
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> LoadResult:
    result = LoadResult()
    lock = threading.Lock()
    started = time.time()
    mine = [cubes[n::clients] for n in range(clients)]

    def client(my_cubes: list[str]) -> None:
        with httpx.Client(base_url=base_url, timeout=60, headers=headers) as http:
            for k, cube in itertools.product(range(per_cube), my_cubes):
                body = {"user_id": user, "writable_cube_ids": [cube], "messages": fact(cube, k)[0]}
                t0 = time.time()
                answer = http.post("/product/add", json=body)
                latency = time.time() - t0
                assert answer.status_code == 200, answer.text
                with lock:
                    result.sent.append(Sent(cube, k, answer.json()["task_id"], t0, latency))

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, [m for m in mine if m]))
    with httpx.Client(base_url=base_url, timeout=60, headers=headers) as http:
        deadline = time.monotonic() + timeout
        for s in result.sent:
            while True:
                answer = http.get("/product/scheduler/status", params={"user_id": user, "task_id": s.task_id})
                task = answer.json()["data"][0]
                if task["status"] in {"completed", "failed"}:
                    result.tasks[s.task_id] = task
                    break
                assert time.monotonic() < deadline, f"task {s.task_id} still {task['status']}"
                time.sleep(0.05)
    result.wall = max(_epoch(t["cubes"][0]["finished_at"]) for t in result.tasks.values()) - started
    return result


def check_load(
    result: LoadResult, base_url: str, *, user: str = "loader", headers: dict[str, str] | None = None
) -> None:
    """Every task completed, exact outcomes (repeats are duplicates of their first occurrence),
    each cube's adds processed one after another in order, exact item counts."""
    failed = [t for t in result.tasks.values() if t["status"] != "completed"]
    assert not failed, failed[:3]
    by_cube: dict[str, list[Sent]] = {}
    for s in sorted(result.sent, key=lambda s: s.k):
        by_cube.setdefault(s.cube, []).append(s)
    with httpx.Client(base_url=base_url, timeout=60, headers=headers) as http:
        for cube, sends in by_cube.items():
            parts = [result.tasks[s.task_id]["cubes"][0] for s in sends]
            memory = {}
            for s, part in zip(sends, parts, strict=True):
                [outcome] = part["outcomes"]
                _, repeat_of = fact(cube, s.k)
                if repeat_of is None:
                    assert outcome["outcome"] == "added", (cube, s.k, part)
                    memory[s.k] = outcome["memory_id"]
                else:  # only true if the repeated add was processed first: per-cube order
                    assert (outcome["outcome"], outcome["memory_id"]) == ("duplicate", memory[repeat_of]), (cube, s.k)
            for before, after in itertools.pairwise(parts):
                assert after["started_at"] >= before["finished_at"], (cube, before, after)
            page = {"mem_cube_id": cube, "user_id": user, "page": 1, "page_size": 1}
            total = http.post("/product/get_memory", json=page).json()["data"]["text_mem"][0]["total_nodes"]
            assert total == len(memory), (cube, total, len(memory))
