"""What every benchmark shares: order statistics, interleaved rounds, the machine, the results file.

These machines are shared and noisy, so a benchmark never compares two numbers taken at
different times: it runs the contenders side by side, interleaved (A B B A ... in a shuffled
order each round), takes many samples of each and compares medians (and tails). The load
average before and after each benchmark is recorded with the figures.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or ROOT / "bench" / "results")
"""Where each benchmark keeps its runs (`runs/<name>/`) and their median (`<name>.json`);
BENCHMARKS.md is made from the medians."""
CACHE = Path(os.environ.get("BENCH_CACHE_DIR") or ROOT / ".bench-cache")
"""Seeded databases and corpora, reused between runs (git-ignored); safe to delete."""


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the two nearest ranks."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, p99, min, max and count of a list of seconds (reported in ms)."""
    ms = [s * 1000 for s in samples]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p25_ms": percentile(ms, 25),
        "p75_ms": percentile(ms, 75),
        "p99_ms": percentile(ms, 99),
        "min_ms": min(ms) if ms else math.nan,
        "max_ms": max(ms) if ms else math.nan,
    }


def interleaved(contenders: Mapping[str, Callable[[], float]], rounds: int, *, seed: int = 1) -> dict[str, list[float]]:
    """Run each contender once per round, in a shuffled order each round; each call returns its
    own measured seconds (so set-up outside the timed part is not counted)."""
    rng = random.Random(seed)
    names = list(contenders)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            samples[name].append(contenders[name]())
    return samples


def whole_process(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one process from spawn to exit (it must exit 0)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode()[-2000:]}")
    return elapsed


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_model() -> str:
    lscpu = shutil.which("lscpu")
    if lscpu:
        out = subprocess.run([lscpu], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return math.nan


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=False)
    changed = any(line and not line[3:].startswith("bench/results") for line in dirty.stdout.splitlines())
    return out.stdout.strip() + ("+changes" if changed else "")


def machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "commit": _commit(),
        "packages": {
            n: _version(n)
            for n in ("fastapi", "mangum", "pydantic", "boto3", "aws-lambda-powertools", "numpy", "torch")
        },
    }


def save(name: str, figures: dict[str, Any], *, command: str, started_load: list[float]) -> Path:
    """Keep this run in `bench/results/runs/<name>/` and rewrite `bench/results/<name>.json` as the
    median of its batch's runs (`bench.runs`): the figures, how they were made, machine and load."""
    from bench import runs

    body = {
        "benchmark": name,
        "command": command,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "batch": runs.batch_id(),
        "machine": machine(),
        "load_before": started_load,
        "load_after": load(),
        "figures": figures,
    }
    return runs.keep(RESULTS, body)


def measured(name: str, command: str, run: Callable[[], dict[str, Any]], *, keep: bool = True) -> dict[str, Any]:
    """Run a benchmark between two load readings and save its figures (`keep`) as `name`."""
    started = load()
    figures = run()
    if keep:
        save(name, figures, command=command, started_load=started)
    return figures


def python() -> str:
    return sys.executable


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env(threads: int, *, fresh: bool = False) -> dict[str, str]:
    """The environment of a contender's process: offline model loading, `threads` for torch and
    BLAS, the repository importable; `fresh` drops the caller's MEMCUBE_* settings (a default
    `memcube serve`)."""
    env = {k: v for k, v in os.environ.items() if not (fresh and k.startswith("MEMCUBE_"))}
    env |= {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "MEM0_TELEMETRY": "False",
        "PYTHONPATH": str(ROOT),
    }
    return env


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Torch on `threads` threads inside, and back on its count from before after. `python -m
    bench` runs every benchmark in one process: recall's count, once left set, put the embedding
    of the later runs of dedup and search on one thread of two (their first runs had two)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def embedding_threads(embedder: str) -> int | None:
    """The torch threads this process embeds on with `embedder` (None unless it is the local
    model, which alone runs on torch)."""
    if embedder != "minilm":
        return None
    import torch

    return int(torch.get_num_threads())
