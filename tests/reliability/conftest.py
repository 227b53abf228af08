"""The reliability suite (issue 7): faults, load and bad input. It runs in the default `pytest` run
at a small size; `MEMCUBE_RELIABILITY=full` (or `make reliability`) runs it at full size. Every
test asserts correctness only; the figures it measures (counts, throughput, latencies) are
printed at the end of the run and, with `MEMCUBE_RELIABILITY_REPORT=<file>`, written as JSON:
RELIABILITY.md quotes them."""

from __future__ import annotations

import json
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server

FULL = os.environ.get("MEMCUBE_RELIABILITY", "").lower() == "full"
FUZZ_SEED = int(os.environ.get("MEMCUBE_FUZZ_SEED") or secrets.randbelow(2**32))
"""The fuzzing's seed: new on every run, so each run draws new examples; printed at the start and
end of the run, and `MEMCUBE_FUZZ_SEED=<seed>` replays that run's examples."""


@dataclass(frozen=True)
class Scale:
    """How much work each test does: small in CI, full for the figures in RELIABILITY.md."""

    name: str
    workload_adds: int
    """Adds in the at-least-once and crash workloads (in-process)."""
    fuzz_examples: int
    """Hypothesis examples per API operation (valid and invalid each)."""
    identical_adds: int
    load_cubes: int
    load_adds_per_cube: int
    load_clients: int
    kills: int
    """kill -9s during the restart run."""


SCALE = (
    Scale("full", workload_adds=400, fuzz_examples=300, identical_adds=50, load_cubes=40, load_adds_per_cube=25,
          load_clients=8, kills=4)
    if FULL
    else Scale("small", workload_adds=60, fuzz_examples=25, identical_adds=50, load_cubes=8, load_adds_per_cube=6,
               load_clients=4, kills=2)
)  # fmt: skip


class Figures:
    """Measured figures, keyed by the issue's point: printed at the end, optionally saved."""

    def __init__(self) -> None:
        self.points: dict[str, dict[str, Any]] = {}

    def record(self, point: str, **values: Any) -> None:
        self.points.setdefault(point, {}).update(values)


FIGURES = Figures()


@pytest.fixture(scope="session")
def figures() -> Figures:
    return FIGURES


@pytest.fixture(scope="session")
def scale() -> Scale:
    return SCALE


_STARTED: dict[str, Any] = {}


def pytest_sessionstart() -> None:
    _STARTED.update(at=time.time(), load=[round(x, 2) for x in os.getloadavg()], commit=_commit())


def _commit() -> str:
    """The commit the run measured, `+changes` if the work tree differed from it."""
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                           text=True, check=False)  # fmt: skip
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _run_facts(terminalreporter: Any) -> dict[str, Any]:
    """What makes the report traceable: the code, the command, when, how long, under what load,
    and the one test count of the run its figures come from."""
    stats = terminalreporter.stats
    counts = {k: len([r for r in stats.get(k, []) if getattr(r, "when", "call") in ("call", "setup")])
              for k in ("passed", "failed", "error", "skipped")}  # fmt: skip
    started = _STARTED.get("at", time.time())
    return {
        "commit": _STARTED.get("commit") or _commit(),  # the code as the run began
        "command": " ".join(["pytest", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 1),
        "load_before": _STARTED.get("load"),
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "tests": counts,
        "fuzz_seed": FUZZ_SEED,
    }


def pytest_report_header() -> str:
    return f"fuzz seed: {FUZZ_SEED} (replay with MEMCUBE_FUZZ_SEED={FUZZ_SEED})"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES.points:
        return
    terminalreporter.section(f"reliability figures ({SCALE.name} size)")
    terminalreporter.write_line(f"fuzz seed: {FUZZ_SEED} (replay with MEMCUBE_FUZZ_SEED={FUZZ_SEED})")
    for point in sorted(FIGURES.points):
        values = ", ".join(f"{k}={v}" for k, v in FIGURES.points[point].items())
        terminalreporter.write_line(f"{point}: {values}")
    target = os.environ.get("MEMCUBE_RELIABILITY_REPORT")
    if target:
        machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
        run = _run_facts(terminalreporter)
        report = {"scale": SCALE.name, "run": run, "machine": machine, "points": FIGURES.points}
        Path(target).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


Serve = Callable[..., Server]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """`memcube serve` processes on demand (the e2e tier's Server), stopped at teardown."""
    started: list[Server] = []

    def start(data_dir: Path | None = None, workers: int = 2, env: dict[str, str] | None = None) -> Server:
        server = Server(data_dir or tmp_path / "data", workers, tmp_path / f"serve-{len(started)}.log", env)
        started.append(server)
        return server.wait_healthy()

    yield start
    for server in started:
        server.stop(grace=5.0)
