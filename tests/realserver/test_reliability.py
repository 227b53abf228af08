"""The reliability suite (issue 7) on the real-server tier: the aws deployment on DynamoDB Local,
SQS FIFO on LocalStack and osmem-server, its API served over real HTTP (uvicorn) and its queue
consumed by several pollers at once, as Lambda's event source mapping runs concurrent batches.

- point 4: poison and dead-lettered adds go to the SQS DLQ with their reason, block no cube, and
  redriving the DLQ twice after the fix completes each add once;
- point 5: 50 identical adds at once make one item; many cubes in parallel keep per-cube order;
- point 7: a sustained run of adds over many cubes, every task completed, counts exact (figures
  printed, never asserted);
- point 3: the index unreachable (a proxy in front of osmem-server refusing connections), then
  back: adds stored, the status truthful, indexing caught up.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from memcube.adapters.sqs_queue import SqsQueue
from memcube.wiring import Container
from memcube_api.app import create_app
from tests.net import free_port
from tests.realserver.conftest import External, fifo_queues
from tests.realserver.servers import Running
from tests.realserver.test_end_to_end import Stack, aws_stack
from tests.reliability.conftest import FIGURES, SCALE
from tests.reliability.load import check_load, run_load

pytestmark = pytest.mark.reliability


@contextmanager
def http_api(container: Container) -> Iterator[str]:
    """The API app over real HTTP on a free loopback port."""
    config = uvicorn.Config(create_app(lambda: container), host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, dynamodb_local: Running | External, table: str, localstack: Running | External,
    search_url: str,
) -> Iterator[Stack]:  # fmt: skip
    """Three pollers; visibility 10 s (longer than any batch takes here), redrive limit well above
    the worker's attempts, as deployed."""
    queues = fifo_queues(localstack, visibility=getattr(request, "param", 10), max_receives=12)
    yield from aws_stack(dynamodb_local, table, queues, search_url, pollers=3)


def create_cubes(base: str, headers: dict[str, str] | None, owner: str, cubes: list[str]) -> None:
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        for cube in cubes:
            answer = http.post("/product/create_cube", json={"user_id": owner, "cube_id": cube})
            assert answer.status_code == 200, answer.text


def test_identical_adds_at_once_make_one_item(stack: Stack) -> None:
    from concurrent.futures import ThreadPoolExecutor

    n = SCALE.identical_adds
    with http_api(stack.container) as base, httpx.Client(base_url=base, headers=stack.headers, timeout=60) as http:
        body = {"user_id": "zoe", "messages": "Zoe's passport number ends in 4471."}
        with ThreadPoolExecutor(n) as pool:
            answers = list(pool.map(lambda _: http.post("/product/add", json=body), range(n)))
        assert {a.status_code for a in answers} == {200}, [a.text for a in answers if a.status_code != 200]
        tasks = [stack.wait("zoe", a.json()["task_id"], timeout=120) for a in answers]
        outcomes = [o for t in tasks for o in t["cubes"][0]["outcomes"]]
        assert sorted(o["outcome"] for o in outcomes) == ["added"] + ["duplicate"] * (n - 1), tasks[:2]
        assert len({o["memory_id"] for o in outcomes}) == 1
        assert stack.cube_total("zoe", "zoe") == 1
        keyed = {"user_id": "zoe", "messages": "Zoe's visa expires in May."}
        with ThreadPoolExecutor(n) as pool:  # one Idempotency-Key: DynamoDB's conditional writes race
            same = list(pool.map(lambda _: http.post("/product/add", json=keyed, headers={"Idempotency-Key": "k"}),
                                 range(n)))  # fmt: skip
        assert {a.status_code for a in same} == {200}
        assert len({a.json()["task_id"] for a in same}) == 1
    FIGURES.record("5 concurrency", realserver_identical_adds=n, realserver_items=1, realserver_same_key_tasks=1)


def test_a_sustained_run_over_many_cubes_completes_every_task_exactly_and_in_order(
    stack: Stack,
) -> None:
    cubes = [f"kb-rs-{n}" for n in range(SCALE.load_cubes)]
    with http_api(stack.container) as base:
        create_cubes(base, stack.headers, "loader", cubes)
        result = run_load(base, cubes=cubes, per_cube=SCALE.load_adds_per_cube, clients=SCALE.load_clients,
                          headers=stack.headers, timeout=600)  # fmt: skip
        check_load(result, base, headers=stack.headers)
    FIGURES.record("5 concurrency", realserver_ordered_cubes=len(cubes), realserver_pollers=3)
    FIGURES.record("7 load (real-server tier)", clients=SCALE.load_clients, pollers=3, **result.figures())


@pytest.mark.parametrize("stack", [2], indirect=True, ids=["visibility 2 s"])
def test_poison_and_failed_adds_reach_the_sqs_dlq_with_reasons_and_a_double_redrive_completes_each_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = stack.container
    queue = container.queue
    assert isinstance(queue, SqsQueue)
    dlq = container.settings.dead_letter_queue_url
    assert dlq
    index = container.index
    real_upsert = index.upsert
    broken = {"on": True}

    def refusing(items: Any) -> None:
        if broken["on"] and any(i.metadata.cube_id == "kb-down" for i in items):
            raise ConnectionError("index refused the write")
        real_upsert(items)

    monkeypatch.setattr(index, "upsert", refusing)
    stack.create_cube("eve", "kb-down")
    stack.create_cube("eve", "kb-up")
    poison = json.dumps({"v": 1, "task_id": "poison-9", "cube_id": "kb-up", "user_id": "eve", "messages": 7})
    queue.send_raw([("kb-up", "poison-9", poison)])
    down = [stack.add({"user_id": "eve", "writable_cube_ids": ["kb-down"], "messages": f"down {n}"})[1]["task_id"]
            for n in range(2)]  # fmt: skip
    up = [stack.add({"user_id": "eve", "writable_cube_ids": ["kb-up"], "messages": f"up {n}"})[1]["task_id"]
          for n in range(3)]  # fmt: skip
    assert all(stack.wait("eve", t, timeout=60)["status"] == "completed" for t in up)  # behind the poison, in order
    failed = [stack.wait("eve", t, timeout=90) for t in down]
    assert [t["status"] for t in failed] == ["failed", "failed"], failed
    assert all("not yet searchable" in t["cubes"][0]["error"] for t in failed)
    parked = _drain_dlq_view(queue, dlq)
    assert parked.pop(poison).startswith("invalid queued message: messages")
    assert sorted(parked.values()) == sorted(t["cubes"][0]["error"] for t in failed), parked

    broken["on"] = False
    moved = [queue.redrive(dlq), queue.redrive(dlq)]  # the second finds only what the first sent back
    deadline = time.monotonic() + 90
    while any(stack.status("eve", t)["status"] != "completed" for t in down):
        assert time.monotonic() < deadline, [stack.status("eve", t) for t in down]
        time.sleep(0.2)
    time.sleep(2)  # the poison, redriven too, is dead-lettered again
    moved.append(queue.redrive(dlq))
    assert moved[0] == 3, moved
    texts = [i.memory for i in container.memories.iter_memories("kb-down")]
    assert sorted(texts) == ["down 0", "down 1"]
    assert [d.task_id for d in container.dead_letters.list_dead_letters()] == [
        "poison-9"
    ]  # one record, the resolved gone
    assert container.maintenance.reconcile("kb-down").differences == 0
    FIGURES.record("4 poison", realserver_dlq_messages_with_reason=3, realserver_redrives=len(moved),
                   realserver_items_after_redrive=len(texts))  # fmt: skip


def _drain_dlq_view(queue: SqsQueue, dlq: str) -> dict[str, str]:
    """Body -> reason attribute of the DLQ's messages (received with a zero visibility timeout,
    so they stay for the redrive)."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 10
    while len(seen) < 3 and time.monotonic() < deadline:
        got = queue.sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=0, MessageAttributeNames=["All"]
        )
        for m in got.get("Messages", []):
            seen[m["Body"]] = m["MessageAttributes"]["reason"]["StringValue"]
    return seen


class Proxy:
    """A TCP proxy on loopback; `down()` makes it drop every connection (the index unreachable)."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.refused = 0
        self._down = False
        self._stop = False
        self._open: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones (a client's keep-alive pool included)."""
        self._down = True
        for end in list(self._open):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def up(self) -> None:
        self._down = False

    def close(self) -> None:
        self._stop = True
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self._down:
                self.refused += 1
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()  # a reset: what a dead or unreachable cluster looks like to the client
                continue
            upstream = socket.create_connection(self._target)
            self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for end in (src, dst):
                self._open.discard(end)
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxied(
    dynamodb_local: Running | External, table: str, localstack: Running | External, search_url: str, tmp_path: Path
) -> Iterator[tuple[Stack, Proxy]]:
    proxy = Proxy(search_url)
    queues = fifo_queues(localstack, visibility=2, max_receives=12)
    try:
        for stack in aws_stack(dynamodb_local, table, queues, proxy.url, pollers=1):
            yield stack, proxy
    finally:
        proxy.close()


def test_an_unreachable_index_then_back_stores_adds_says_so_and_catches_up(
    proxied: tuple[Stack, Proxy],
) -> None:
    stack, proxy = proxied
    proxy.down()
    tasks = [
        stack.add({"user_id": "ivy", "messages": f"Ivy's note {n} about the harbour."})[1]["task_id"] for n in range(3)
    ]
    deadline = time.monotonic() + 30
    while True:
        first = stack.status("ivy", tasks[0])
        if first["cubes"][0]["outcomes"]:
            break
        assert time.monotonic() < deadline, first
        time.sleep(0.1)
    part = first["cubes"][0]
    assert first["status"] == "in_progress"
    assert part["error"].startswith("retrying: index write failed (IndexUnavailable: OpenSearch unreachable"), part
    assert stack.get(part["outcomes"][0]["memory_id"], "ivy")["memory"] == "Ivy's note 0 about the harbour."
    assert proxy.refused > 0
    proxy.up()
    recovered = time.monotonic()
    done = [stack.wait("ivy", t, timeout=60) for t in tasks]
    assert [t["status"] for t in done] == ["completed"] * 3, done
    caught_up = time.monotonic() - recovered
    assert stack.container.maintenance.reconcile("ivy").differences == 0
    FIGURES.record("3 outages", realserver_index_unreachable_connections_refused=proxy.refused,
                   realserver_caught_up_seconds_after_recovery=round(caught_up, 1))  # fmt: skip
