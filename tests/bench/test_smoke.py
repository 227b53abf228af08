"""The benchmarks run from a clean checkout: `python -m bench --smoke` runs every script at a tiny
size (model-free embedder, no mem0, results in a scratch directory) and renders the report.
Figures are never asserted here: benchmarks are not timed tests (BENCHMARKS.md has the figures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _committed_results() -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in (ROOT / "bench" / "results").rglob("*.json")}


def test_every_benchmark_runs_at_a_tiny_size_and_the_report_renders() -> None:
    before = _committed_results()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMCUBE_", "BENCH_"))}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=ROOT,
        env=env | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    for section in ("### Goals", "### Cold start", "### Add overhead", "### Ingest throughput", "### Dedup scaling"):
        assert section in done.stdout
    assert "### Search latency" in done.stdout
    assert "| snapshot current (the cube searched before; the goal's figure) |" in done.stdout
    assert "a file was there" not in done.stdout  # the smoke cube (--snapshot-rows 10) had its snapshot
    assert "### Recall (LoCoMo dev half)" in done.stdout
    assert "| memcube, request defaults |" in done.stdout  # the recall table, from the synthetic file
    for contender in ("api_first_add", "bare_api_first_add", "worker_first_batch", "bare_worker_first_batch"):
        assert f"| `{contender}` |" in done.stdout  # the first request, served with the AWS stubs
    assert "| `api_after_restore` | restore_hooks |" in done.stdout  # SnapStart, emulated
    assert "cold start as a caller sees it: first add, api vs bare" in done.stdout
    assert _committed_results() == before  # the smoke run wrote its figures elsewhere
