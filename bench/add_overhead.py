"""Add overhead: one `POST /product/add` through the API Lambda's entry, in-process.

The request is a typical add: 10 chat messages of two speakers with timestamps, an API Gateway
HTTP API (payload 2.0) event shaped like `events/api_add_async.json`. Contenders, interleaved
call by call in a shuffled order:

- `memcube`: `memcube_api.handler.lambda_handler` (powertools logger + metrics decorators,
  Mangum, the FastAPI app, validation, authorization, the task record and one queued message)
  on the tests' in-memory doubles (`tests/doubles`: store, queue and index), as the API tests run it.
  After each timed call, untimed, the doubles are emptied of what it stored (`forgetting`): a
  deployed function sends that to DynamoDB and SQS, and its heap does not grow add by add.
- `memcube_asgi`: the same Mangum adapter without the powertools decorators (to split the cost).
- `bare`: a bare FastAPI + Mangum handler whose one route parses the same body with the same
  pydantic model (`AddRequest`) and answers a small JSON envelope.

Then `parts_us`: the add's own steps timed alone on the same body and doubles (p50 in µs;
each step is one more contender of the same interleaved rounds, so all see one load), which
itemises what memcube does beyond the bare route. `powertools` is memcube - memcube_asgi, and
`dispatch` what is left of memcube_asgi over bare once the steps are taken out (FastAPI's
resolution of the route's dependencies, the body checks before the parse, the container).

Goal: memcube / bare <= 1.5 at p50 and p99. Powertools' tracer is off here (no X-Ray daemon);
its metrics and log lines go to stdout, which is sent to /dev/null as Lambda sends it to
CloudWatch.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from mangum import Mangum

from bench.common import ROOT, interleaved, log, measured, percentile, summary
from bench.corpus import generate
from bench.first_request import Context


def add_body(messages: int = 10) -> dict[str, Any]:
    session = next(s for s in generate(40, seed=3) if len(s.messages) >= messages)
    return {
        "user_id": "alice",
        "session_id": session.session_id,
        "messages": [
            {"role": m.role, "content": m.content, "chat_time": m.chat_time, "message_id": m.message_id}
            for m in session.messages[:messages]
        ],
        "custom_tags": ["bench"],
        "info": {"app_id": "bench"},
    }


def v2_event(body: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / "api_add_async.json").read_text())
    event["body"] = json.dumps(body)
    event["headers"]["content-length"] = str(len(event["body"].encode()))
    return event


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Powertools writes metrics and logs to stdout (CloudWatch on Lambda): discard them."""
    saved = sys.stdout
    with Path(os.devnull).open("w") as sink:
        sys.stdout = sink
        try:
            yield
        finally:
            sys.stdout = saved


def memcube_handlers() -> tuple[Callable[[dict[str, Any], Any], dict[str, Any]], Any]:
    """The real API entry on the tests' in-memory doubles, and its bare Mangum adapter."""
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    from tests.doubles import doubles_container

    import memcube.wiring

    memcube.wiring._container = doubles_container()
    from memcube_api.handler import _asgi, lambda_handler

    return lambda_handler, _asgi


def bare_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """FastAPI + Mangum with one route that parses the body with `AddRequest`, nothing else."""
    import uuid

    from memcube_api.schemas.product import AddRequest

    app = FastAPI()

    # FastAPI reads the annotations from the module's globals (this module imports Request).
    @app.post("/product/add")
    async def add(request: Request) -> JSONResponse:
        req = AddRequest.model_validate_json(await request.body())
        task_id = f"task-{uuid.uuid4()}"
        data = [{"cube_id": req.user_id, "task_id": task_id, "status": "waiting"}]
        return JSONResponse({"code": 200, "message": "Memory add task accepted", "data": data, "task_id": task_id})

    asgi = Mangum(app, lifespan="off", api_gateway_base_path="/")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        response: dict[str, Any] = asgi(event, context)
        return response

    return handler


def timed(handler: Callable[[dict[str, Any], Any], dict[str, Any]], event: dict[str, Any]) -> Callable[[], float]:
    context = Context()

    def once() -> float:
        fresh = copy.deepcopy(event)  # Mangum and powertools may annotate the event
        start = time.perf_counter()
        response = handler(fresh, context)
        elapsed = time.perf_counter() - start
        if response["statusCode"] != 200:
            raise RuntimeError(f"add answered {response['statusCode']}: {response.get('body')}")
        return elapsed

    return once


def forgetting(once: Callable[[], float], container: Any) -> Callable[[], float]:
    """`once`, then (untimed) the doubles emptied of what the adds stored: task records, queued
    messages, the conversation log. On Lambda those go to DynamoDB and SQS, and the function's
    heap does not grow add by add. Kept, they left about 75 more objects per add for the
    garbage collector, which then ran in 458 of 3,000 memcube adds (in each of three runs),
    three times a full collection of 61-139 ms; the bare route, keeping nothing, never set it off."""

    def call() -> float:
        try:
            return once()
        finally:
            container.stores.tasks.clear()
            container.stores.messages.clear()
            container.queue.clear()

    return call


def stopwatch(fn: Callable[[], object]) -> Callable[[], float]:
    def once() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return once


def part_timers(body: dict[str, Any]) -> dict[str, Callable[[], float]]:
    """The add's steps, each alone, as the route and its dependencies run them (`routes.product._add`,
    `deps.acting`); the doubles' `create_task` includes building an empty double (a lock, two dicts)."""
    from memcube.domain.tasks import fingerprint
    from memcube.wiring import container_from_env
    from memcube_api.errors import envelope
    from memcube_api.schemas.product import AddRequest, to_command

    c = container_from_env()  # the doubles' container `memcube_handlers` installed
    raw = json.dumps(body).encode()
    req = AddRequest.model_validate_json(raw)
    cmd = to_command(req)
    principal = c.authority.acting_for(None, req.user_id, adding=True)
    sub = c.add.submit(cmd, principal)
    data = [{"cube_id": p.cube_id, "task_id": sub.public_id, "status": p.status.value} for p in sub.record.parts]
    return {
        "parse AddRequest (also in bare)": stopwatch(lambda: AddRequest.model_validate_json(raw)),
        "authenticate + rate limit": stopwatch(lambda: c.authority.acting_for(None, req.user_id, adding=True)),
        "to_command (MemOS conversions)": stopwatch(lambda: to_command(req)),
        "submit (task record, queued message)": stopwatch(lambda: c.add.submit(cmd, principal)),
        "of which fingerprint": stopwatch(lambda: fingerprint(cmd)),
        "of which the doubles' create_task": stopwatch(
            lambda: type(c.tasks)().create_task(sub.record.task, sub.record.parts)
        ),
        "remember_add (conversation log)": stopwatch(
            lambda: c.conversations.remember_add(cmd, sub.public_id, sub.record.task.created_at)
        ),
        "envelope (JSONResponse)": stopwatch(
            lambda: envelope(200, "Memory add task accepted", data, task_id=sub.public_id)
        ),
    }


def parts(samples: dict[str, list[float]], stats: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each step's p50 in µs, and what the contenders' p50s (same rounds) leave to powertools and dispatch."""
    us = {name: round(percentile([x * 1e6 for x in s], 50), 1) for name, s in samples.items()}
    steps = sum(v for k, v in us.items() if not k.startswith(("of which", "parse")))
    p50 = {name: s["p50_ms"] * 1000 for name, s in stats.items()}
    us["powertools (memcube - memcube_asgi)"] = round(p50["memcube"] - p50["memcube_asgi"], 1)
    us["dispatch (memcube_asgi - bare - steps)"] = round(p50["memcube_asgi"] - p50["bare"] - steps, 1)
    return us


def run(calls: int, warmup: int) -> dict[str, Any]:
    lambda_handler, asgi = memcube_handlers()
    event = v2_event(add_body())
    contenders = {
        "memcube": timed(lambda_handler, event),
        "memcube_asgi": timed(asgi, event),
        "bare": timed(bare_handler(), event),
    }
    steps = part_timers(add_body())  # in the same rounds as the contenders: one load for all
    from memcube.wiring import container_from_env

    doubles = container_from_env()
    timers = {name: forgetting(once, doubles) for name, once in (contenders | steps).items()}
    with quiet_stdout():
        interleaved(timers, warmup, seed=2)
        log(f"add overhead: {len(contenders)} contenders and {len(steps)} steps x {calls} calls, interleaved")
        samples = interleaved(timers, calls, seed=3)
    stats = {name: summary(samples[name]) for name in contenders}
    parts_us = parts({name: samples[name] for name in steps}, stats)
    return {
        "calls": calls,
        "body_bytes": len(event["body"].encode()),
        "messages": 10,
        "stats": stats,
        "ratios": {
            "memcube/bare p50": round(stats["memcube"]["p50_ms"] / stats["bare"]["p50_ms"], 3),
            "memcube/bare p99": round(stats["memcube"]["p99_ms"] / stats["bare"]["p99_ms"], 3),
            "memcube_asgi/bare p50": round(stats["memcube_asgi"]["p50_ms"] / stats["bare"]["p50_ms"], 3),
        },
        "goal": {"memcube/bare <=": 1.5},
        "parts_us": parts_us,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    command = f"python -m bench.add_overhead --calls {args.calls}"
    return measured("add_overhead", command, lambda: run(args.calls, args.warmup), keep=not args.no_save)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
