"""What the Lambda functions write to stdout (CloudWatch): powertools' JSON lines, read as the
runtime would see them, in a child process, not through the `logging` module (S17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

API = r"""
import memcube.wiring
from memcube.settings import Settings
from tests.doubles import doubles_container
from tests.lambda_support import invoke, v2_event

container = doubles_container(Settings(backend="memory", auth="keys", rate_limit_per_minute=3))
memcube.wiring._container = container
_, key = container.keys.create("alice", "user")
alice = {"authorization": f"Token {key}"}
secret = key.split("_", 2)[2]
print("SECRET=" + secret, flush=True)
body = {"user_id": "alice", "messages": "BODY-TEXT-7f3a my bank pin is 4711"}
query = {"user_id": "alice", "query": "BODY-TEXT-7f3a"}
statuses = [
    invoke(v2_event("POST", "/product/add", body=body, headers={"authorization": "Token mck_0_wrong"})).status,
    invoke(v2_event("POST", "/product/add", body=body, headers=alice)).status,
    invoke(v2_event("POST", "/product/add", body={**body, "user_id": "bob"}, headers=alice)).status,
    invoke(v2_event("POST", "/product/search", body=query, headers=alice)).status,
    invoke(v2_event("POST", "/product/search", body=query, headers=alice)).status,
]
print("STATUSES=" + ",".join(map(str, statuses)), flush=True)
"""

WORKER = r"""
import memcube.wiring
from memcube.settings import Settings
from tests.conftest import load_event
from tests.doubles import doubles_container
from tests.lambda_support import invoke_worker

memcube.wiring._container = doubles_container(Settings(backend="memory"))
event = load_event("sqs_fifo_batch_with_poison_record.json")
print("FAILURES=" + str(len(invoke_worker(event)["batchItemFailures"])), flush=True)
"""


def run(script: str) -> tuple[list[dict[str, Any]], str]:
    """The JSON lines and the whole stdout of `script` run as a fresh process, as Lambda runs it."""
    env = {**os.environ, "POWERTOOLS_LOG_LEVEL": "INFO", "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_CURRENT_TEST", None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return lines, done.stdout


def test_refusals_reach_stdout_as_json_with_their_fields_and_no_body_or_credential() -> None:
    lines, stdout = run(API)
    assert "STATUSES=401,200,403,200,429" in stdout
    secret = stdout.split("SECRET=", 1)[1].split()[0]
    refused = [line for line in lines if line.get("message") == "request refused"]
    assert [(r["status"], r.get("caller"), r["method"], r["path"]) for r in refused] == [
        (401, None, "POST", "/product/add"),
        (403, "alice", "POST", "/product/add"),
        (429, "alice", "POST", "/product/search"),
    ]
    assert all(r["level"] == "WARNING" and r["service"] == "memcube" and r["reason"] and r["code"] for r in refused)
    assert "not this API key's user" in refused[1]["reason"] and "requests per minute" in refused[2]["reason"]
    logged = "\n".join(json.dumps(line) for line in lines)
    assert "BODY-TEXT-7f3a" not in logged and "4711" not in logged  # bodies and queries are never logged
    assert secret not in logged and "mck_0_wrong" not in logged and "Token " not in logged


def test_a_dead_letter_reaches_stdout_as_json_with_its_task_cube_and_reason() -> None:
    lines, stdout = run(WORKER)
    assert "FAILURES=0" in stdout  # the poison is dead-lettered, not retried
    [dead] = [line for line in lines if line.get("message") == "dead-lettered"]
    assert dead["level"] == "ERROR" and dead["service"] == "memcube"
    assert dead["reason"].startswith("invalid queued message: body: Invalid JSON")
    # its body is unreadable, so it names no task; its cube is the FIFO group it came in
    assert (dead["cube_id"], dead["message_id"]) == ("dave", "0b1c2d3e-0000-4000-8000-000000000002")
