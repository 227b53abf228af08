"""Many async adds across cubes over real HTTP: each cube in order, cubes in parallel, counts exact."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.e2e.conftest import Server

CUBES = [f"kb-{n}" for n in range(6)]
PER_CUBE = 12


def test_many_adds_across_cubes_keep_per_cube_order_and_exact_counts(server: Server) -> None:
    def submit_cube(cube: str) -> list[str]:
        """One client per cube, posting its adds in order; the four clients run at once."""
        task_ids = []
        for k in range(PER_CUBE):
            # The last add repeats the first: it is a duplicate only if the cube was processed in order.
            fact = f"{cube} fact {k % (PER_CUBE - 1)}"
            body = {"user_id": "ops", "writable_cube_ids": [cube], "messages": [{"role": "user", "content": fact}]}
            task_ids.append(server.add_ok(body)["task_id"])
        return task_ids

    with ThreadPoolExecutor(len(CUBES)) as pool:
        submitted = dict(zip(CUBES, pool.map(submit_cube, CUBES), strict=True))
    # One add to every cube at once: one part per cube.
    fan_out = server.add_ok({"user_id": "ops", "writable_cube_ids": CUBES, "messages": "shared notice"})
    assert [d["cube_id"] for d in fan_out["data"]] == CUBES

    every = [t for tasks in submitted.values() for t in tasks] + [fan_out["task_id"]]
    assert len(set(every)) == len(CUBES) * PER_CUBE + 1
    finished = {t["task_id"]: t for t in server.wait_all("ops", every, timeout=40)}
    failed = [t for t in finished.values() if t["status"] != "completed"]
    assert not failed, failed

    for cube, task_ids in submitted.items():
        parts: list[dict[str, Any]] = [finished[t]["cubes"][0] for t in task_ids]
        assert all(p["cube_id"] == cube and p["attempts"] == 1 for p in parts), parts
        # In order: each add of a cube started after the previous one finished.
        for before, after in itertools.pairwise(parts):
            assert after["started_at"] >= before["finished_at"], (cube, before, after)
        outcomes = [[(o["outcome"], o["memory_id"]) for o in p["outcomes"]] for p in parts]
        assert [o[0][0] for o in outcomes] == ["added"] * (PER_CUBE - 1) + ["duplicate"], outcomes
        assert outcomes[-1][0][1] == outcomes[0][0][1]
        added = [o[0][1] for o in outcomes[:-1]]
        assert len(set(added)) == PER_CUBE - 1

        items = server.items(cube, "ops")
        assert len(items) == PER_CUBE, [i["memory"] for i in items]
        assert sorted(i["memory"] for i in items) == sorted(
            [f"user: {cube} fact {k}" for k in range(PER_CUBE - 1)] + ["shared notice"]
        )
        assert {i["id"] for i in items} >= set(added)

    [fan_out_task] = [finished[fan_out["task_id"]]]
    assert [(p["cube_id"], p["status"], len(p["outcomes"])) for p in fan_out_task["cubes"]] == [
        (c, "completed", 1) for c in CUBES
    ]
    assert len({p["outcomes"][0]["memory_id"] for p in fan_out_task["cubes"]}) == len(CUBES)
