"""Run every benchmark and rewrite the figures in BENCHMARKS.md: `python -m bench` (`make bench`).

    python -m bench                     # everything, full size, three runs of each
    python -m bench --quick             # fewer rounds and smaller cubes (about 6 minutes)
    python -m bench --only coldstart search
    python -m bench --only recall       # recall on LoCoMo's dev half (data: see BENCHMARKS.md; about
                                        # 10 minutes on a quiet machine, 29 under a load of 10, most of
                                        # it mem0's ingest); --quick: one conversation
    python -m bench --smoke             # tiny sizes, model-free embedder, no mem0: checks that
                                        # the scripts run (the test suite does this), saves nothing

A full run repeats every benchmark three times (`--runs N`), interleaved (A B C A B C A B C), and
keeps each run in `bench/results/runs/<name>/`; `bench/results/<name>.json` is their median with
the spread (`bench.runs`), and BENCHMARKS.md's generated section is rendered from those files
(`bench.report`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ORDER = ("coldstart", "add_overhead", "ingest", "dedup", "search", "recall")


def plans(mode: str) -> dict[str, list[str]]:
    """Each benchmark's arguments for a full, quick or smoke run."""
    if mode == "smoke":
        return {
            "coldstart": ["--rounds", "1", "--python", sys.executable, "--no-details"],
            "add_overhead": ["--calls", "20", "--warmup", "2"],
            "ingest": ["--sessions", "3", "--rounds", "1", "--embedder", "hash", "--no-mem0", "--synthetic"],
            "dedup": ["--sizes", "20", "60", "--adds", "2", "--embedder", "hash"],
            "search": ["--sizes", "20", "60", "--searches", "3", "--embedder", "hash", "--snapshot-rows", "10"],
            # a generated two-conversation LoCoMo-shaped file: no data, no model, no mem0
            "recall": ["--synthetic", "--embedder", "hash", "--no-mem0"],
        }
    if mode == "quick":
        return {
            "coldstart": ["--rounds", "12"],
            "add_overhead": ["--calls", "800"],
            "ingest": ["--sessions", "40", "--rounds", "2", "--no-locomo"],
            "dedup": ["--sizes", "1000", "10000", "--adds", "12"],
            "search": ["--sizes", "10000", "--searches", "80"],
            "recall": ["--conversations", "1"],
        }
    # full: every benchmark runs three times (--runs), so each run is one round of the slow ones
    return {name: [] for name in ORDER} | {
        "coldstart": ["--rounds", "10"],
        "ingest": ["--rounds", "1"],
        "search": ["--searches", "200"],
    }


def runner(name: str) -> Callable[[list[str]], dict[str, Any]]:
    from bench import add_overhead, coldstart, dedup, ingest, recall, search

    modules = {
        "coldstart": coldstart,
        "add_overhead": add_overhead,
        "ingest": ingest,
        "dedup": dedup,
        "search": search,
        "recall": recall,
    }
    main: Callable[[list[str]], dict[str, Any]] = modules[name].main
    return main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", nargs="+", choices=ORDER, default=list(ORDER))
    parser.add_argument("--no-report", action="store_true", help="do not rewrite BENCHMARKS.md")
    parser.add_argument("--runs", type=int, default=None, help="runs of each benchmark (full: 3; quick, smoke: 1)")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    repeats = args.runs or (3 if mode == "full" else 1)
    if repeats < 1:
        parser.error("--runs must be at least 1")
    if args.smoke:  # results and seeded cubes go to a scratch directory, never the repo's
        scratch = tempfile.mkdtemp(prefix="bench-smoke-")
        os.environ["BENCH_RESULTS_DIR"] = str(Path(scratch) / "results")
        os.environ["BENCH_CACHE_DIR"] = str(Path(scratch) / "cache")
    from bench.runs import BATCH_ENV, batch_id

    os.environ[BATCH_ENV] = batch_id()  # every run below is one batch: its median is reported
    for n in range(1, repeats + 1):
        for name in (b for b in ORDER if b in args.only):
            print(f"== {name} (run {n} of {repeats})", file=sys.stderr, flush=True)
            runner(name)(plans(mode)[name])
    from bench import report

    if args.smoke:
        rendered = report.render(report.load_results())
        missing = [title for title in report.TITLES.values() if title not in rendered]
        if missing:
            raise SystemExit(f"the report misses sections: {missing}")
        print(rendered)
    elif not args.no_report:
        path = report.rewrite()
        print(f"figures written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
