"""Every run kept, and the figure reported is the median of the runs with their spread.

One run of a benchmark on a shared machine can be lucky or unlucky, so a figure in BENCHMARKS.md
is never one run: `python -m bench --runs 3` runs each selected benchmark three times (the
benchmarks interleaved, A B C A B C A B C, so a change of load hits all of them alike), keeps
every run as `bench/results/runs/<name>/<when>.json`, and writes `bench/results/<name>.json` as
their aggregate: the same shape as one run, with every number replaced by the median of the
runs' values, plus `per_run` (the same shape again, each number replaced by the list of the
runs' values, for the spread) and `runs` (which files, when, under what load).

A run belongs to the batch named by `BENCH_BATCH` (set once by `python -m bench`); a benchmark
started alone is a batch of one, and its aggregate says so.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

BATCH_ENV = "BENCH_BATCH"


def batch_id() -> str:
    """The current batch: set by `python -m bench` for all its runs, or a new one per run."""
    return os.environ.get(BATCH_ENV) or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _median(values: list[Any]) -> Any:
    if all(isinstance(v, bool) for v in values):
        return statistics.median_low(sorted(values))
    if all(isinstance(v, int) for v in values) and len(set(values)) == 1:
        return values[0]
    return statistics.median(values)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def median_of(values: list[Any]) -> Any:
    """The runs' values merged: numbers by their median, dicts and equal-length lists element by
    element, anything else (text, a list whose length differs between runs) from the last run."""
    last = values[-1]
    if all(_is_number(v) for v in values):
        return _median(values)
    if all(isinstance(v, dict) for v in values):
        keys = [k for k in last if all(k in v for v in values)]
        return {k: median_of([v[k] for v in values]) for k in keys}
    if all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
        return [median_of(list(col)) for col in zip(*values, strict=True)]
    return last


def values_of(values: list[Any]) -> Any:
    """The same shape as `median_of`, each number replaced by the list of the runs' values."""
    if all(_is_number(v) for v in values):
        return list(values)
    if all(isinstance(v, dict) for v in values):
        keys = [k for k in values[-1] if all(k in v for v in values)]
        merged = {k: values_of([v[k] for v in values]) for k in keys}
        return {k: m for k, m in merged.items() if m is not None}
    if all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
        return [values_of(list(col)) for col in zip(*values, strict=True)]
    return None


def aggregate(runs: list[dict[str, Any]], files: list[str]) -> dict[str, Any]:
    """The aggregate result of a batch of runs of one benchmark (oldest first)."""
    last = runs[-1]
    return {
        "benchmark": last["benchmark"],
        "command": last["command"],
        "when": runs[0]["when"],
        "until": last["when"],
        "machine": last["machine"],
        "load_before": runs[0]["load_before"],
        "load_after": last["load_after"],
        "runs": [
            {"file": f, "when": r["when"], "load_before": r["load_before"], "load_after": r["load_after"]}
            for f, r in zip(files, runs, strict=True)
        ],
        "figures": median_of([r["figures"] for r in runs]),
        "per_run": values_of([r["figures"] for r in runs]),
    }


def keep(results: Path, body: dict[str, Any]) -> Path:
    """Store one run under `runs/<name>/`, then rewrite `<name>.json` as its batch's aggregate."""
    name, batch = body["benchmark"], body["batch"]
    folder = results / "runs" / name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = body["when"].replace(":", "").replace("-", "")
    path = folder / f"{stamp}.json"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{n}.json"
    path.write_text(json.dumps(body, indent=2) + "\n")
    batch_runs = sorted(
        (p for p in folder.glob("*.json") if json.loads(p.read_text()).get("batch") == batch),
        key=lambda p: (json.loads(p.read_text())["when"], p.name),
    )
    bodies = [json.loads(p.read_text()) for p in batch_runs]
    out = results / f"{name}.json"
    files = [str(p.relative_to(results)) for p in batch_runs]
    out.write_text(json.dumps(aggregate(bodies, files), indent=2) + "\n")
    return out


def spread(r: dict[str, Any], *path: str) -> list[float]:
    """The runs' values of one figure (`per_run` at `path` under `figures`), or [] if unknown."""
    node: Any = r.get("per_run")
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return []
        node = node[key]
    return list(node) if isinstance(node, list) and all(_is_number(v) for v in node) else []
