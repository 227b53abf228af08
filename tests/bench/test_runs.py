"""How repeated benchmark runs become one reported figure (bench/runs.py): every run kept, the
median of the runs reported with each run's value beside it, and only one batch's runs counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.runs import aggregate, keep, median_of, spread


def _run(when: str, ratio: float, p99: float, *, batch: str = "b1", label: str = "x") -> dict[str, Any]:
    return {
        "benchmark": "search",
        "command": "python -m bench.search",
        "when": when,
        "batch": batch,
        "machine": {"cores": 2},
        "load_before": [1.0, 1.0, 1.0],
        "load_after": [1.5, 1.0, 1.0],
        "figures": {
            "label": label,
            "sizes": [10, 100],
            "ratios": {"a/b": ratio},
            "stats": {"a": {"n": 300, "p99_ms": p99}},
        },
    }


def test_the_reported_figure_is_the_median_of_the_runs_never_the_best() -> None:
    runs = [_run("t1", 1.1, 49.5), _run("t2", 1.4, 62.0), _run("t3", 1.2, 54.0, label="y")]
    out = aggregate(runs, ["r1", "r2", "r3"])
    assert out["figures"]["ratios"]["a/b"] == 1.2
    assert out["figures"]["stats"]["a"]["p99_ms"] == 54.0  # not the best run's 49.5
    assert out["figures"]["stats"]["a"]["n"] == 300
    assert out["figures"]["sizes"] == [10, 100]
    assert out["figures"]["label"] == "y"  # text comes from the last run
    assert spread(out, "stats", "a", "p99_ms") == [49.5, 62.0, 54.0]
    assert [r["file"] for r in out["runs"]] == ["r1", "r2", "r3"]
    assert (out["when"], out["until"]) == ("t1", "t3")


def test_an_even_number_of_runs_takes_the_mean_of_the_middle_two() -> None:
    assert median_of([1.0, 3.0]) == 2.0
    assert median_of([{"a": 1, "b": "k"}, {"a": 3, "b": "k"}]) == {"a": 2, "b": "k"}


def test_every_run_is_kept_and_the_aggregate_counts_only_its_own_batch(tmp_path: Path) -> None:
    keep(tmp_path, _run("2026-12-06T10:00:00Z", 9.0, 900.0, batch="old"))
    keep(tmp_path, _run("2026-12-06T11:00:00Z", 1.0, 40.0))
    keep(tmp_path, _run("2026-12-06T11:00:00Z", 2.0, 60.0))  # same second: kept under another name
    out = keep(tmp_path, _run("2026-12-06T11:05:00Z", 3.0, 50.0))
    assert len(list((tmp_path / "runs" / "search").glob("*.json"))) == 4
    body = json.loads(out.read_text())
    assert body["figures"]["ratios"]["a/b"] == 2.0
    assert sorted(spread(body, "ratios", "a/b")) == [1.0, 2.0, 3.0]
    assert len(body["runs"]) == 3
