"""Cold start: whole Python processes that import a Lambda handler module, side by side.

What a Lambda cold start spends in Python is the interpreter's start plus the handler module's
import (the API's `memcube_api.handler` also builds the FastAPI app and the Mangum adapter at
import). Each contender is one `python -c ...` process, timed from spawn to exit, run once per
round in a shuffled order, many rounds; compiled bytecode is warmed first for all of them alike.

- `api`: `import memcube_api.handler` (imports + `create_app` + `Mangum`).
- `bare_api`: `import fastapi, mangum, pydantic, boto3`: what any FastAPI-on-Lambda function
  with AWS calls imports. Goal: `api` / `bare_api` <= 1.2.
- `api_first_request`: `api` plus what the first add on AWS adds: boto3 and the DynamoDB and SQS
  clients (built, no network). Context: Lambda runs this in the first invocation instead.
- `worker`: `import memcube_worker.handler`; `bare_worker`: `import pydantic, boto3,
  opensearchpy, aws_lambda_powertools.utilities.batch` (the worker's own libraries).
- `python`: `python -c pass`, the interpreter's floor.

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
import os
import subprocess
import sys
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
    }
    return env


def probe(python: str, module: str, env: dict[str, str]) -> dict[str, bool]:
    import json

    out = subprocess.run(
        [python, "-c", PROBE.format(module=module)], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def importtime_top(
    python: str, module: str, env: dict[str, str], baseline: str, limit: int = 12
) -> list[dict[str, Any]]:
    """The top-level packages `module` imports beyond `baseline`, by their own import time
    (`python -X importtime`, self times summed per top-level package)."""

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

    mine, base = by_package(code_for(module)), by_package(baseline)
    packages: dict[str, int] = {}
    for name, own in mine.items():
        if name not in base:
            top = name.split(".")[0]
            packages[top] = packages.get(top, 0) + own
    ranked = sorted(packages.items(), key=lambda kv: -kv[1])[:limit]
    return [{"package": p, "self_ms": round(us / 1000, 1)} for p, us in ranked]


def code_for(module: str) -> str:
    return f"import {module}"


def run(rounds: int, python: str, *, details: bool = True, baseline: Path | None = None) -> dict[str, Any]:
    env = lambda_env()
    runs = {name: ([python, "-c", code], env) for name, code in CONTENDERS.items()}
    if baseline is not None:  # the same handlers from another checkout, in the same rounds
        for name in BASELINE_CONTENDERS:
            runs[f"{name}@baseline"] = ([python, "-c", CONTENDERS[name]], lambda_env(baseline))
    if details:  # compile bytecode once for everyone, and fail early if one is broken
        for cmd, cmd_env in runs.values():
            whole_process(cmd, cmd_env)
    log(f"cold start: {len(runs)} contenders x {rounds} rounds, interleaved")
    samples = interleaved({name: functools.partial(whole_process, *run) for name, run in runs.items()}, rounds)
    stats = {name: summary(s) for name, s in samples.items()}
    floor = stats["python"]["p50_ms"]

    def ratio(a: str, b: str, *, minus_floor: bool = False) -> float:
        cut = floor if minus_floor else 0.0
        return round((stats[a]["p50_ms"] - cut) / (stats[b]["p50_ms"] - cut), 3)

    version = subprocess.run([python, "-V"], capture_output=True, text=True, check=True).stdout.strip()
    return {
        "rounds": rounds,
        "python": f"{python} ({version})",
        "stats": stats,
        "ratios": {
            "api/bare_api": ratio("api", "bare_api"),
            "api/bare_api (imports only, interpreter start subtracted)": ratio("api", "bare_api", minus_floor=True),
            "api_first_request/bare_api": ratio("api_first_request", "bare_api"),
            "worker/bare_worker": ratio("worker", "bare_worker"),
        }
        | (
            {f"{n}/{n}@baseline": ratio(n, f"{n}@baseline") for n in BASELINE_CONTENDERS}
            if baseline is not None
            else {}
        ),
        "baseline": str(baseline) if baseline is not None else None,
        "goal": {"api/bare_api <=": 1.2},
        "modules_loaded": {
            "api": probe(python, "memcube_api.handler", env),
            "worker": probe(python, "memcube_worker.handler", env),
        },
        "api_imports_beyond_bare": importtime_top(python, "memcube_api.handler", env, CONTENDERS["bare_api"]),
        "worker_imports_beyond_bare": importtime_top(python, "memcube_worker.handler", env, CONTENDERS["bare_worker"]),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--python", default=None, help="the interpreter (default: the Lambda-like bench venv)")
    parser.add_argument("--no-details", action="store_true", help="no warm-up pass, no -X importtime breakdown")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout (e.g. `git worktree add /tmp/base <rev>`): its api and worker run in the same rounds",
    )
    args = parser.parse_args(argv)
    python = args.python or (str(LAMBDA_PYTHON) if LAMBDA_PYTHON.exists() else sys.executable)
    command = f"python -m bench.coldstart --rounds {args.rounds}" + (
        f" --baseline {args.baseline}" if args.baseline else ""
    )
    return measured(
        "coldstart",
        command,
        lambda: run(args.rounds, python, details=not args.no_details, baseline=args.baseline),
        keep=not args.no_save,
    )


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
