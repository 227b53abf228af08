"""Point 5, concurrency, over real HTTP against `memcube serve`: identical adds at once to one
cube make one item; many cubes in parallel keep strict per-cube order. (The same on the
real-server tier: tests/realserver/test_reliability.py.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import Figures, Scale, Serve
from tests.reliability.load import check_load, run_load

pytestmark = pytest.mark.e2e


def identical_adds_at_once(
    base_url: str, n: int, headers: dict[str, str] | None = None, **extra: Any
) -> list[httpx.Response]:
    body = {"user_id": "zoe", "messages": "Zoe's passport number ends in 4471."} | extra
    with httpx.Client(base_url=base_url, timeout=60, headers=headers) as http, ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: http.post("/product/add", json=body), range(n)))


def test_identical_adds_at_once_to_one_cube_make_one_item(serve: Serve, scale: Scale, figures: Figures) -> None:
    server = serve(workers=4)
    answers = identical_adds_at_once(server.url, scale.identical_adds)
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers if a.status_code != 200]
    tasks = server.wait_all("zoe", [a.json()["task_id"] for a in answers], timeout=60)
    outcomes = [o for t in tasks for o in t["cubes"][0]["outcomes"]]
    assert sorted(o["outcome"] for o in outcomes) == ["added"] + ["duplicate"] * (scale.identical_adds - 1)
    assert len({o["memory_id"] for o in outcomes}) == 1
    assert server.total("zoe", "zoe") == 1
    # The same with one Idempotency-Key, sync: one task, one answer for all.
    synced = identical_adds_at_once(server.url, scale.identical_adds, {"Idempotency-Key": "k1"}, async_mode="sync",
                                    messages="Zoe's visa expires in May.")  # fmt: skip
    assert {a.status_code for a in synced} == {200}, {a.status_code for a in synced}
    assert len({a.json()["task_id"] for a in synced}) == 1
    assert server.total("zoe", "zoe") == 2
    figures.record("5 concurrency", embedded_identical_adds=scale.identical_adds, embedded_items=1,
                   embedded_same_key_sync_adds=scale.identical_adds, embedded_same_key_tasks=1)  # fmt: skip


def test_many_cubes_in_parallel_keep_strict_per_cube_order(serve: Serve, scale: Scale, figures: Figures) -> None:
    server = serve(workers=4)
    cubes = [f"kb-order-{n}" for n in range(scale.load_cubes)]
    result = run_load(server.url, cubes=cubes, per_cube=max(6, scale.load_adds_per_cube), clients=scale.load_clients)
    check_load(result, server.url)
    figures.record("5 concurrency", embedded_ordered_cubes=len(cubes), embedded_ordered_adds=len(result.sent))
