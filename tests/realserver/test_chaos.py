"""Issue 19, point 4 on the real-server tier: the worker poller killed. The aws deployment on
DynamoDB Local, SQS FIFO on LocalStack and osmem-server; the API handler runs in the test
process (through Mangum, as elsewhere in this tier), the worker poller in a process of its own
(`tests/realserver/poller_process.py`: receive a batch, invoke the worker Lambda handler with the
real SQS event, delete what succeeded). While a paced replay of adds over a few cubes goes on, the
poller is SIGKILLed at seeded random moments (most during a batch) and restarted; what it held
comes back after the queue's visibility timeout (3 s). The oracle is the same replay into a second
deployment (its own table, queues and index) whose poller is never killed. Checked: every task
`completed` with the oracle's outcomes, every cube's items in DynamoDB equal to the oracle's, no
memory added by two tasks, no content twice in a cube, nothing dead-lettered (task store, SQS DLQ).

How the Lambda side tells a kill apart (RELIABILITY.md section 9): an invocation runs one record
at a time and starts it only when ready, so a death during a record is charged to that record as
a crash (`TaskPart.crashes`, reset by any attempt that ends); records of the batch it had not
started are redelivered with no attempt recorded. Each kill therefore charges at most one crash,
to one message, and a message gives up only after `MEMCUBE_MAX_RECEIVE_COUNT` consecutive ones:
with KILLS kills and the limit at KILLS + 2, no message can reach it, however the kills land. The
SQS redrive policy counts receives instead: a message's receive count grows by one per receive,
i.e. once, plus once per kill that found it in the poller's batch, plus once per visibility expiry
while a slow batch held it; 4 x the worker's limit (28, as the template sets it) leaves room for
all of those, so SQS cannot dead-letter one either."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from memcube.domain.model import MemoryItem, TaskState
from memcube.domain.tasks import scoped_task_id
from memcube.wiring import Container
from tests.aws_support import create_table
from tests.lambda_support import call, serving
from tests.realserver.conftest import External, fifo_queues
from tests.realserver.poller_process import Tier, container
from tests.realserver.servers import Running
from tests.reliability.conftest import FIGURES
from tests.reliability.harness import _salt_of
from tests.reliability.test_chaos import words
from tests.services import add_service

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("MEMCUBE_CHAOS_SEED", "1"))
USER = "rex"
ADDS = 36
CUBES = 4
KILLS = 5
VISIBILITY = 3
"""Seconds before a killed poller's messages come back (LocalStack: about 1 s granularity)."""
MAX_RECEIVE_COUNT = KILLS + 2
"""The worker's limit of consecutive crashes charged to one message: more than there are kills."""
QUEUE_MAX_RECEIVES = 4 * MAX_RECEIVE_COUNT


def workload(seed: int) -> list[dict[str, Any]]:
    """Conversations of 1-2 sessions over the cubes, a fifth of them long (more work in a batch
    for the kills to find); about one in ten repeats an earlier
    add of its cube word for word (a duplicate, which holds only if per-cube order held)."""
    rng = random.Random(seed)
    bodies: list[dict[str, Any]] = []
    for n in range(ADDS):
        cube = f"kb-rchaos{n % CUBES}"
        task_id = f"rs{seed}-add{n}"
        earlier = [b for b in bodies if b["writable_cube_ids"] == [cube]]
        if len(earlier) >= 2 and rng.random() < 0.1:
            bodies.append(rng.choice(earlier) | {"task_id": task_id})
            continue
        long = rng.random() < 0.2
        messages = [
            {
                "role": "user" if turn % 2 == 0 else "assistant",
                "content": f"add {n} session {session} turn {turn}: " + words(rng),
                "chat_time": f"2026-0{session + 1}-{1 + n % 28:02d}T10:{turn:02d}:00Z",
            }
            for session in range(rng.randint(1, 2))
            for turn in range(rng.randint(20, 40) if long else rng.randint(2, 8))
        ]  # fmt: skip
        bodies.append({"user_id": USER, "task_id": task_id, "writable_cube_ids": [cube], "messages": messages})
    return bodies


@dataclass
class Deployment:
    """One aws deployment on the tier's servers: its API container (in this process) and its
    worker poller (a process, killed and restarted by the test)."""

    tier: Tier
    api: Container
    logs: Path
    proc: subprocess.Popen[bytes] | None = None
    spawned: int = 0
    kills: int = 0
    kills_in_batch: int = 0
    live: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.logs / f"poller-{self.tier.table}-{self.spawned}.log"

    def spawn(self) -> None:
        self.spawned += 1
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.realserver.poller_process", self.tier.to_json()],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.live.append(self.proc)
        deadline = time.monotonic() + 60
        while "ready" not in self.lines():
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.05)

    def lines(self) -> list[str]:
        return [
            line for line in self.log.read_text().splitlines() if line.startswith(("ready", "received ", "handled "))
        ]

    def in_batch(self) -> bool:
        """The poller holds a batch it has not finished: killed now, its records come back."""
        batch = [line for line in self.lines() if line.startswith(("received", "handled"))]
        return bool(batch) and batch[-1].startswith("received")

    def kill9(self) -> None:
        assert self.proc is not None
        in_batch = self.in_batch()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1
        self.kills_in_batch += int(in_batch)

    def stop(self) -> None:
        for proc in self.live:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def deployments(
    dynamodb_local: Running | External, dynamodb: Any, localstack: Running | External, search_url: str, tmp_path: Path
) -> Iterator[dict[str, Deployment]]:
    """Two deployments on the same servers: `clean` (the oracle) and `chaos`."""
    made: dict[str, Deployment] = {}
    try:
        for name in ("clean", "chaos"):
            table = f"memcube-{name}-{uuid.uuid4().hex[:8]}"
            create_table(dynamodb, table)
            queues = fifo_queues(localstack, visibility=VISIBILITY, max_receives=QUEUE_MAX_RECEIVES)
            tier = Tier(
                dynamodb_endpoint=dynamodb_local.endpoint, table=table, aws_endpoint=localstack.endpoint,
                queue_url=queues.url, dlq_url=queues.dlq_url, bucket=queues.bucket, opensearch_url=search_url,
                opensearch_index=f"memcube-{name}", max_receive_count=MAX_RECEIVE_COUNT,
            )  # fmt: skip
            api = container(tier)
            # Memory ids are derived from a random salt per task; here from the task id, so runs compare.
            api.__dict__["add"] = add_service(api.stores, api.queue, fine_available=False, salt=_salt_of)
            made[name] = Deployment(tier, api, tmp_path)
        yield made
    finally:
        for deployment in made.values():
            deployment.stop()


@dataclass
class Replay:
    """One client sending the adds in order (so each cube's in order), paced, each again with the
    same task_id and body until it is accepted."""

    api: Container
    headers: dict[str, str]
    bodies: list[dict[str, Any]]
    pace: float
    resent: int = 0
    refused: list[str] = field(default_factory=list)

    def run(self) -> None:
        with serving(self.api):
            for body in self.bodies:
                while True:
                    code, reply = call("POST", "/product/add", body=body, headers=self.headers)
                    if code == 200:
                        break
                    if code < 500:
                        self.refused.append(f"{body['task_id']}: {code} {reply}")
                        break
                    self.resent += 1
                    time.sleep(0.2)
                time.sleep(self.pace)


def replay(deployment: Deployment, bodies: list[dict[str, Any]], pace: float) -> Replay:
    """The replay, in this (the main) thread: the API handler's container is process-wide
    (`serving`), so one replay at a time."""
    api = deployment.api
    _, key = api.keys.create("chaos-suite", "service")
    headers = {"authorization": f"Token {key}"}
    with serving(api):
        for cube in sorted({b["writable_cube_ids"][0] for b in bodies}):
            code, reply = call("POST", "/product/create_cube", body={"user_id": USER, "cube_id": cube}, headers=headers)
            assert code == 200, reply
    client = Replay(api, headers, bodies, pace)
    client.run()
    assert client.refused == [], client.refused
    return client


def kill_and_restart(deployment: Deployment, rng: random.Random) -> None:
    """KILLS times: a random moment, then (within 3 s, if one comes) a random moment during a
    batch; SIGKILL, and a new poller process at once."""
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.3, 2.0))
        deadline = time.monotonic() + 3
        while not deployment.in_batch() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        deployment.kill9()
        deployment.spawn()


def wait_all(deployment: Deployment, bodies: list[dict[str, Any]], timeout: float) -> dict[str, Any]:
    """Every task's part, once none is waiting or in progress (or at the deadline)."""
    tasks = deployment.api.tasks
    deadline = time.monotonic() + timeout
    while True:
        parts = {}
        for body in bodies:
            record = tasks.get_task(scoped_task_id(USER, body["task_id"]))
            parts[body["task_id"]] = record.parts[0] if record is not None else None
        settled = {TaskState.COMPLETED, TaskState.FAILED}
        if all(p is not None and p.status in settled for p in parts.values()) or time.monotonic() > deadline:
            return parts
        time.sleep(0.3)


def items(deployment: Deployment, cubes: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every cube's items in DynamoDB, as compared: everything but timestamps and vectors."""
    memories = deployment.api.memories
    return {cube: sorted(_essence(i) for i in memories.iter_memories(cube)) for cube in cubes}


def _essence(item: MemoryItem) -> tuple[Any, ...]:
    meta = item.metadata
    return (
        item.id, item.memory, meta.content_hash, meta.status, meta.task_id, meta.key, tuple(meta.tags), meta.version,
        tuple(meta.merged_from), len(meta.sources),
    )  # fmt: skip


def outcomes(part: Any) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(o.outcome, o.memory_id, tuple(o.related_ids)) for o in part.outcomes]


def dlq_depth(deployment: Deployment) -> int:
    sqs = deployment.api.sqs_queue.sqs
    attributes = sqs.get_queue_attributes(
        QueueUrl=deployment.tier.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.mark.timeout(240)
def test_sigkilled_pollers_fail_no_add_and_change_no_item(deployments: dict[str, Deployment]) -> None:
    started = time.monotonic()
    print(f"chaos seed {SEED} (MEMCUBE_CHAOS_SEED to change it)")
    rng = random.Random(SEED)
    bodies = workload(SEED)
    cubes = sorted({b["writable_cube_ids"][0] for b in bodies})
    clean, chaos = deployments["clean"], deployments["chaos"]
    clean.spawn()
    chaos.spawn()
    replay(clean, bodies, pace=0.0)  # its poller works on while the chaos replay runs
    errors: list[BaseException] = []

    def kills() -> None:
        try:
            kill_and_restart(chaos, rng)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    killer = threading.Thread(target=kills, daemon=True)
    killer.start()
    client = replay(chaos, bodies, pace=0.1)  # paced: it lasts through the kills
    killer.join(90)
    assert not killer.is_alive() and errors == [], errors
    clean_parts = wait_all(clean, bodies, timeout=60)
    chaos_parts = wait_all(chaos, bodies, timeout=90)

    not_completed = {t: p for t, p in chaos_parts.items() if p is None or p.status is not TaskState.COMPLETED}
    assert not_completed == {}, not_completed
    assert all(p is not None and p.status is TaskState.COMPLETED for p in clean_parts.values()), clean_parts
    assert {t: outcomes(p) for t, p in chaos_parts.items()} == {t: outcomes(p) for t, p in clean_parts.items()}
    chaos_items, clean_items = items(chaos, cubes), items(clean, cubes)
    assert chaos_items == clean_items
    added = [o[1] for p in chaos_parts.values() for o in outcomes(p) if o[0] == "added"]
    assert len(added) == len(set(added)), "a memory added by two tasks"
    for cube_items in chaos_items.values():
        hashes = [i[2] for i in cube_items]
        assert len(hashes) == len(set(hashes)), "two items with one content in a cube"
    assert chaos.api.dead_letters.list_dead_letters() == []
    assert dlq_depth(chaos) == 0
    assert chaos.kills == KILLS
    parts = [p for p in chaos_parts.values() if p is not None]
    figures = {
        "seed": SEED,
        "kills": chaos.kills,
        "kills_during_a_batch": chaos.kills_in_batch,
        "adds": len(bodies),
        "tasks_completed": len(parts),
        "items_compared": sum(len(v) for v in chaos_items.values()),
        "items_clean": sum(len(v) for v in clean_items.values()),
        "add_requests_resent": client.resent,
        "attempts": sum(p.attempts for p in parts),
        "attempts_interrupted": sum(p.interrupted for p in parts),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(figures)
    FIGURES.record("19 chaos on the real-server tier (pollers killed)", **figures)
