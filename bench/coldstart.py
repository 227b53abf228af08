"""Cold start: whole Python processes that import a Lambda handler module, side by side.

What a Lambda cold start spends in Python is the interpreter's start plus the handler module's
import (the API's `memcube_api.handler` also builds the FastAPI app and the Mangum adapter at
import). Each contender is one `python -c ...` process, timed from spawn to exit, run once per
round in a shuffled order, many rounds; compiled bytecode is warmed first for all of them alike
(an inherited `PYTHONDONTWRITEBYTECODE` is dropped: with it, memcube's own modules were compiled
in every round while the libraries came compiled by pip). `--no-bytecode` measures the other
fair case: every contender compiles everything it imports in every round (an empty
`PYTHONPYCACHEPREFIX`, nothing written), as on Lambda when the deployment package holds no
bytecode; SAM's Python builder copies no `.pyc` of the function's own code.

- `api`: `import memcube_api.handler` (imports + `create_app` + `Mangum`).
- `bare_api`: `import fastapi, mangum, pydantic, boto3`: what any FastAPI-on-Lambda function
  with AWS calls imports. Goal: `api` / `bare_api` <= 1.2.
- `api_first_request`: `api` plus what the first add on AWS adds: boto3 and the DynamoDB and SQS
  clients (built, no network). Context: Lambda runs this in the first invocation instead.
- `worker`: `import memcube_worker.handler`; `bare_worker`: `import pydantic, boto3,
  opensearchpy, aws_lambda_powertools.utilities.batch` (the worker's own libraries).
- `python`: `python -c pass`, the interpreter's floor.

Cold start as a caller sees it (`bench.first_request`): the process also serves its first
request through the Lambda entry, with the AWS endpoints answered in-process (`bench.aws_stub`:
the socket replaced; clients, signing and parsing real; their round trips are not in the figures,
`aws_calls` counts them). These are timed from spawn to the response (the process stamps it on
the machine-wide monotonic clock): a caller waits for the interpreter's start, the init and the
first request, but not for the interpreter's shutdown after it, which Lambda never runs on a
request's path (the process stays for the next invocation). Their time to exit is kept as
context (`to_exit`, `to_exit_ratios`): the shutdown of a process holding more modules and
objects takes longer (at p50, about 50 ms more for the worker than for its bare contender).

- `api_first_add` vs `bare_api_first_add`: import, app build and the first `/product/add` (an API
  Gateway v2 event, `events/api_add_async.json`), the DynamoDB and SQS clients created by it, vs
  FastAPI + Mangum + `AddRequest` + the same clients, one put_item and one send_message. Goal <= 1.3.
- `worker_first_batch` vs `bare_worker_first_batch`: the worker's first SQS batch (one add
  message) with its DynamoDB, Bedrock and OpenSearch clients vs powertools' batch processor +
  `QueuedAdd` + the same clients, one embedding, one put_item, one `_bulk`. Goal <= 1.3.
- `api_after_restore`, `worker_after_restore`: SnapStart emulated in one process (no Firecracker,
  no snapshot): after init and the before-snapshot hooks, the time of the after-restore hooks plus
  the first add (batch), measured inside the process (`measured_in_process`); the microVM's own
  resume is not in it.

The processes run in `.tools/bench-lambda-venv` (made by `make bench`): Python 3.12 like the
Lambda runtime, holding exactly the deployed packages (the shared layer's and the functions'
requirements, plus boto3, which the runtime provides), with the code on `PYTHONPATH` as the
layer puts it; `--python` picks another interpreter (the project's .venv holds far more, which
changes what some libraries import). They run with the Lambda function's environment (template.yaml's variables, the AWS
backend's settings, `LAMBDA_TASK_ROOT`, so powertools behaves as on Lambda) but no network.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.common import ROOT, interleaved, log, measured, summary, whole_process

LAMBDA_PYTHON = ROOT / ".tools" / "bench-lambda-venv" / "bin" / "python"

CONTENDERS = {
    "python": "pass",
    "bare_api": "import fastapi, mangum, pydantic, boto3",
    "api": "import memcube_api.handler",
    "api_first_request": (
        "import memcube_api.handler\n"
        "from memcube.wiring import container_from_env\n"
        "c = container_from_env(); c.tasks._t.client; c.queue.sqs"
    ),
    "bare_worker": "import pydantic, boto3, opensearchpy, aws_lambda_powertools.utilities.batch",
    "worker": "import memcube_worker.handler",
}
FIRST_CONTENDERS = (
    "api_first_add",
    "bare_api_first_add",
    "worker_first_batch",
    "bare_worker_first_batch",
    "api_after_restore",
    "worker_after_restore",
)
"""Whole processes serving their first request (`bench.first_request`)."""
IN_PROCESS = ("api_after_restore", "worker_after_restore")
"""The first-request contenders that report the time a caller waits after an (emulated)
SnapStart restore, measured inside the process."""
BASELINE_FIRST = ("api_first_add", "worker_first_batch")
"""With `--baseline`, these first requests also run on the other checkout's code."""
FIRST_GOAL = 1.3
BASELINE_CONTENDERS = ("api", "worker")
"""What `--baseline` runs again from another checkout (their code is the same in every version)."""
PROBE = (
    "import sys, json, {module}\n"
    "print(json.dumps({{m: m in sys.modules for m in "
    "('fastapi', 'starlette', 'mangum', 'boto3', 'botocore', 'aws_xray_sdk', 'numpy', 'openai', 'opensearchpy')}}))"
)


def lambda_env(root: Path = ROOT) -> dict[str, str]:
    """The environment a deployed function sees (template.yaml), pointing nowhere real, with the
    code of the checkout at `root` where the layer and the functions put it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMCUBE_", "POWERTOOLS_", "AWS_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the warm-up compiles every contender's modules alike
    env |= {
        "PYTHONPATH": os.pathsep.join(str(root / p) for p in ("layers/memcube", "functions/api", "functions/worker")),
        "LAMBDA_TASK_ROOT": str(root),
        "AWS_LAMBDA_FUNCTION_NAME": "memcube-bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "memcube",
        "POWERTOOLS_METRICS_NAMESPACE": "Memcube",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "MEMCUBE_BACKEND": "aws",
        "MEMCUBE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/memcube.fifo",
        "MEMCUBE_TABLE_NAME": "memcube",
        "MEMCUBE_OPENSEARCH_ENDPOINT": "https://example.us-east-1.aoss.amazonaws.com",
        # template.yaml's defaults for the rest of what the functions are given
        "MEMCUBE_DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/memcube-dlq.fifo",
        "MEMCUBE_BUCKET_NAME": "memcube-large-bodies",
        "MEMCUBE_EMBEDDER": "bedrock",
        "MEMCUBE_EMBEDDING_MODEL": "amazon.titan-embed-text-v2:0",
        "MEMCUBE_EMBEDDING_DIMENSION": "1024",
    }
    return env


def first_env(state: Path, name: str, root: Path = ROOT) -> dict[str, str]:
    """`lambda_env` (the code of the checkout at `root`) plus this repository (for
    `bench.first_request`), the seeded state, where the contender `name` writes its report, and
    the SnapStart runtime hooks module (`state/hooks`)."""
    env = lambda_env(root)
    env["PYTHONPATH"] = os.pathsep.join((str(ROOT), env["PYTHONPATH"], str(state / "hooks")))
    env |= {"BENCH_FIRST_STATE": str(state), "BENCH_FIRST_REPORT": str(state / f"{name}.report.json")}
    return env


def first_code(name: str) -> str:
    return f"from bench.first_request import {name}; {name}()"


def prepare_first(python: str, state: Path) -> None:
    """Seed the state the first-request processes start from, and put the SnapStart hooks module
    (`snapshot_restore_py`, which Lambda's runtime provides) where they import it."""
    hooks = importlib.util.find_spec("snapshot_restore_py")
    if hooks is None or hooks.origin is None:
        raise SystemExit("snapshot-restore-py is needed to emulate a SnapStart restore (pip install -e '.[dev]')")
    (state / "hooks").mkdir(parents=True, exist_ok=True)
    shutil.copy(hooks.origin, state / "hooks" / "snapshot_restore_py.py")
    subprocess.run([python, "-c", first_code("seed")], env=first_env(state, "seed"), check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def first_process(argv: list[str], env: dict[str, str], reports: list[dict[str, Any]], *, inside: bool) -> float:
    """One first-request process: the time from its spawn to its response, or with `inside` the
    time it measured itself (`total`: restore hooks plus the first request). Its report is kept,
    with its time to exit (`to_exit_s`)."""
    spawned = time.monotonic()
    elapsed = whole_process(argv, env)
    path = Path(env["BENCH_FIRST_REPORT"])
    reports.append(json.loads(path.read_text()) | {"to_exit_s": elapsed})
    path.unlink()
    if inside:
        return float(reports[-1]["phases_ms"]["total"]) / 1000
    response = float(reports[-1]["responded_at"]) - spawned
    if not 0 < response <= elapsed:  # the two processes' clocks disagree: no figure is right
        raise RuntimeError(f"{argv[-1]}: response at {response:.3f} s after spawn, exit at {elapsed:.3f} s")
    return response


def p50_ratios(stats: dict[str, dict[str, float]], pairs: Iterable[tuple[str, str]]) -> dict[str, float]:
    """`a/b` of each pair's p50s."""
    return {f"{a}/{b}": round(stats[a]["p50_ms"] / stats[b]["p50_ms"], 3) for a, b in pairs}


def first_figures(reports: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each first-request contender's phases (ms, over the rounds) and the AWS calls its first
    request made (the stubs' count; the same every round)."""
    phases = {
        name: {p: summary([r["phases_ms"][p] / 1000 for r in runs]) for p in runs[0]["phases_ms"]}
        for name, runs in reports.items()
    }
    calls = {name: dict(sorted(runs[-1]["calls"].items())) for name, runs in reports.items()}
    to_exit = {
        name: summary([r["to_exit_s"] for r in runs]) for name, runs in reports.items() if name not in IN_PROCESS
    }
    return {
        "first_request_phases": phases,
        "to_exit": to_exit,
        "to_exit_ratios": p50_ratios(to_exit, FIRST_RATIOS[:2]),
        "aws_calls": calls,
        "aws_calls_total": {name: sum(c.values()) for name, c in calls.items()},
    }


def probe(python: str, module: str, env: dict[str, str]) -> dict[str, bool]:
    import json

    out = subprocess.run(
        [python, "-c", PROBE.format(module=module)], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def importtime_top(
    python: str, module: str, env: dict[str, str], baseline: str, limit: int = 12, *, code: str | None = None
) -> list[dict[str, Any]]:
    """The top-level packages `module` (or the program `code`) imports beyond `baseline`, by their
    own import time (`python -X importtime`, self times summed per top-level package)."""

    def by_package(code: str) -> dict[str, int]:
        err = subprocess.run(
            [python, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, check=True
        ).stderr
        modules: dict[str, int] = {}
        for line in err.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            own, _cumulative, name = line.removeprefix("import time:").split("|", 2)
            modules[name.strip()] = int(own)
        return modules

    mine, base = by_package(code or code_for(module)), by_package(baseline)
    packages: dict[str, int] = {}
    for name, own in mine.items():
        if name not in base:
            top = name.split(".")[0]
            packages[top] = packages.get(top, 0) + own
    ranked = sorted(packages.items(), key=lambda kv: -kv[1])[:limit]
    return [{"package": p, "self_ms": round(us / 1000, 1)} for p, us in ranked]


def code_for(module: str) -> str:
    return f"import {module}"


def run(
    rounds: int,
    python: str,
    *,
    details: bool = True,
    baseline: Path | None = None,
    first: bool = True,
    bytecode: bool = True,
) -> dict[str, Any]:
    env = lambda_env()
    runs = {name: ([python, "-c", code], env) for name, code in CONTENDERS.items()}
    if baseline is not None:  # the same handlers from another checkout, in the same rounds
        for name in BASELINE_CONTENDERS:
            runs[f"{name}@baseline"] = ([python, "-c", CONTENDERS[name]], lambda_env(baseline))
    with tempfile.TemporaryDirectory(prefix="bench-first-") as scratch:
        state = Path(scratch)
        reports: dict[str, list[dict[str, Any]]] = {name: [] for name in FIRST_CONTENDERS} if first else {}
        if first:
            prepare_first(python, state)
            runs |= {name: ([python, "-c", first_code(name)], first_env(state, name)) for name in FIRST_CONTENDERS}
        if first and baseline is not None:
            for name in BASELINE_FIRST:
                key = f"{name}@baseline"
                runs[key] = ([python, "-c", first_code(name)], first_env(state, key, root=baseline))
                reports[key] = []
        if not bytecode:  # nobody finds or writes bytecode: every round compiles what it imports
            (state / "no-pycache").mkdir()
            for _cmd, cmd_env in runs.values():
                cmd_env |= {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(state / "no-pycache")}
        if details:  # compile bytecode once for everyone, and fail early if one is broken
            for cmd, cmd_env in runs.values():
                whole_process(cmd, cmd_env)
        for runs_of in reports.values():
            runs_of.clear()  # the warm-up's reports are not the rounds'
        log(f"cold start: {len(runs)} contenders x {rounds} rounds, interleaved")
        timers = {name: functools.partial(whole_process, *run) for name, run in runs.items()}
        for name, kept in reports.items():
            timers[name] = functools.partial(first_process, *runs[name], kept, inside=name in IN_PROCESS)
        samples = interleaved(timers, rounds)
        stats = {name: summary(s) for name, s in samples.items()}
        extra = first_section(python, state, stats, reports, details=details) if first else {}
    floor = stats["python"]["p50_ms"]

    def ratio(a: str, b: str, *, minus_floor: bool = False) -> float:
        cut = floor if minus_floor else 0.0
        return round((stats[a]["p50_ms"] - cut) / (stats[b]["p50_ms"] - cut), 3)

    version = subprocess.run([python, "-V"], capture_output=True, text=True, check=True).stdout.strip()
    return {
        "rounds": rounds,
        "bytecode": "warm for every contender" if bytecode else "none: every round compiles what it imports",
        "python": f"{python} ({version})",
        "stats": stats,
        "ratios": {
            "api/bare_api": ratio("api", "bare_api"),
            "api/bare_api (imports only, interpreter start subtracted)": ratio("api", "bare_api", minus_floor=True),
            "api_first_request/bare_api": ratio("api_first_request", "bare_api"),
            "worker/bare_worker": ratio("worker", "bare_worker"),
        }
        | extra.pop("ratios", {})
        | p50_ratios(stats, ((n, f"{n}@baseline") for n in stats if f"{n}@baseline" in stats)),
        "baseline": str(baseline) if baseline is not None else None,
        "goal": {"api/bare_api <=": 1.2} | extra.pop("goal", {}),
        "modules_loaded": {
            "api": probe(python, "memcube_api.handler", env),
            "worker": probe(python, "memcube_worker.handler", env),
        },
        "api_imports_beyond_bare": importtime_top(python, "memcube_api.handler", env, CONTENDERS["bare_api"]),
        "worker_imports_beyond_bare": importtime_top(python, "memcube_worker.handler", env, CONTENDERS["bare_worker"]),
    } | extra


FIRST_RATIOS = (
    ("api_first_add", "bare_api_first_add"),
    ("worker_first_batch", "bare_worker_first_batch"),
    ("api_after_restore", "api_first_add"),
    ("worker_after_restore", "worker_first_batch"),
)
"""The first two have the goal (`FIRST_GOAL`); the others say what SnapStart leaves a caller."""


def first_section(
    python: str,
    state: Path,
    stats: dict[str, dict[str, float]],
    reports: dict[str, list[dict[str, Any]]],
    *,
    details: bool,
) -> dict[str, Any]:
    """The first-request contenders' ratios (p50), goals, phases and AWS calls, and (`details`)
    what the first add imports beyond the bare one's."""
    out: dict[str, Any] = {
        "ratios": p50_ratios(stats, FIRST_RATIOS),
        "goal": {f"{a}/{b} <=": FIRST_GOAL for a, b in FIRST_RATIOS[:2]},
        **first_figures(reports),
        "measured_in_process": list(IN_PROCESS),
        "snapstart": "emulated in one process (no Firecracker, no snapshot): init and the before-snapshot hooks "
        "untimed, then the after-restore hooks and the first request timed inside the process; the "
        "microVM's resume is not included",
    }
    if details:
        for fn in ("api_first_add", "worker_first_batch"):
            bare = first_code(f"bare_{fn}")
            out[f"{fn}_imports_beyond_bare"] = importtime_top(
                python, fn, first_env(state, fn), bare, code=first_code(fn)
            )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--python", default=None, help="the interpreter (default: the Lambda-like bench venv)")
    parser.add_argument("--no-details", action="store_true", help="no warm-up pass, no -X importtime breakdown")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--no-first", action="store_true", help="imports only: no first-request contenders")
    parser.add_argument("--no-bytecode", action="store_true", help="no contender finds or writes compiled bytecode")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout (e.g. `git worktree add /tmp/base <rev>`): its api and worker, and their first "
        "requests, run in the same rounds",
    )
    args = parser.parse_args(argv)
    python = args.python or (str(LAMBDA_PYTHON) if LAMBDA_PYTHON.exists() else sys.executable)
    command = (
        f"python -m bench.coldstart --rounds {args.rounds}"
        + (f" --baseline {args.baseline}" if args.baseline else "")
        + (" --no-first" if args.no_first else "")
        + (" --no-bytecode" if args.no_bytecode else "")
    )
    return measured(
        "coldstart",
        command,
        lambda: run(
            args.rounds,
            python,
            details=not args.no_details,
            baseline=args.baseline,
            first=not args.no_first,
            bytecode=not args.no_bytecode,
        ),
        keep=not args.no_save,
    )


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
