"""The add path end to end on both deployments, through the Lambda entry points:

- aws: API handler -> LocalStack SQS FIFO -> a poller invoking the worker handler with the SQS
  events it receives -> DynamoDB Local + osmem-server; status and get_memory through the API.
  MEMCUBE_E2E_AWS_ENDPOINT_URL / MEMCUBE_E2E_OPENSEARCH_URL point it at servers you run (LocalStack
  in Docker, say) instead of the ones the tier installs.
- embedded: the same API handler on the SQLite store/queue/index with the in-process worker.
- deployed (only when MEMCUBE_E2E_API_URL is set, e.g. the stack's ApiUrl output): the same
  scenarios over HTTPS against a deployed stack; the ones that look inside adapters are skipped.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from memcube.adapters.dynamodb import open_stores
from memcube.adapters.dynamodb.table import DynamoTable
from memcube.adapters.opensearch_index import OpenSearchIndex
from memcube.adapters.sqs_queue import SqsQueue
from memcube.settings import Settings
from memcube.wiring import Container
from memcube_local.embedded import EmbeddedWorker
from memcube_local.wiring import LocalContainer
from memcube_worker.handler import lambda_handler as worker_handler
from tests.lambda_support import FakeLambdaContext, call, serving
from tests.realserver.conftest import CREDS, External, Queues
from tests.realserver.poller import Poller
from tests.realserver.servers import Running

CONVERSATION = [
    {"role": "user", "content": "I moved to Lisbon last May.", "chat_time": "2025-06-01T09:00:00Z"},
    {"role": "assistant", "content": "Do you still work remotely?", "chat_time": "2025-06-01T09:00:05Z"},
    {"role": "user", "content": "Yes, for a Berlin startup.", "chat_time": "2025-06-01T09:00:30Z"},
]


DEPLOYED_API = os.environ.get("MEMCUBE_E2E_API_URL")


class Stack:
    """One deployment behind the Lambda entry points, with a running consumer."""

    def __init__(
        self,
        container: Container | None,
        stop: Callable[[], None],
        headers: dict[str, str] | None = None,
        ddb: Any = None,
    ) -> None:
        self._container = container
        self._stop = stop
        self.headers = headers
        """Credentials every call sends (AWS always requires an API key: the tests use a service key)."""
        self.ddb = ddb
        """The raw DynamoDB client under the aws stack's stores (to look under the adapters)."""

    @property
    def container(self) -> Container:
        if self._container is None:
            pytest.skip("looks inside the adapters: not possible against a deployed stack")
        return self._container

    def call(self, method: str, path: str, *, body: Any = None, query: str = "") -> tuple[int, dict[str, Any]]:
        return call(method, path, body=body, query=query, headers=self.headers)

    def add(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self.call("POST", "/product/add", body=body)

    def create_cube(self, user_id: str, cube_id: str) -> None:
        """A knowledge-base cube owned by `user_id` (with API keys on, cubes must be created)."""
        code, payload = self.call("POST", "/product/create_cube", body={"user_id": user_id, "cube_id": cube_id})
        assert code == 200, payload

    def status(self, user_id: str, task_id: str) -> dict[str, Any]:
        code, payload = self.call("GET", "/product/scheduler/status", query=f"user_id={user_id}&task_id={task_id}")
        assert code == 200, payload
        task: dict[str, Any] = payload["data"][0]
        return task

    def wait(self, user_id: str, task_id: str, timeout: float = 45) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            task = self.status(user_id, task_id)
            if task["status"] in {"completed", "failed"} or time.monotonic() > deadline:
                return task
            time.sleep(0.1)

    def get(self, memory_id: str, user_id: str) -> dict[str, Any]:
        code, payload = self.call("GET", f"/product/get_memory/{memory_id}", query=f"user_id={user_id}")
        assert code == 200, payload
        item: dict[str, Any] = payload["data"]
        return item

    def cube_total(self, cube_id: str, user_id: str) -> int:
        body = {"mem_cube_id": cube_id, "user_id": user_id}
        code, payload = self.call("POST", "/product/get_memory", body=body)
        assert code == 200, payload
        return int(payload["data"]["text_mem"][0]["total_nodes"])


class DeployedStack(Stack):
    """A deployed stack over HTTPS (its worker runs in AWS)."""

    def __init__(self, api_url: str) -> None:
        key = os.environ.get("MEMCUBE_E2E_API_KEY", "")  # a service key: memcube keys create --scope service
        super().__init__(None, lambda: None, {"authorization": f"Token {key}"} if key else None)
        self._http = httpx.Client(base_url=api_url.rstrip("/"), timeout=35, headers=self.headers)

    def call(self, method: str, path: str, *, body: Any = None, query: str = "") -> tuple[int, dict[str, Any]]:
        response = self._http.request(method, f"{path}?{query}" if query else path, json=body)
        payload: dict[str, Any] = response.json()
        return response.status_code, payload


def aws_stack(
    dynamodb_local: Running | External, table: str, queues: Queues, osmem_url: str, pollers: int = 1
) -> Iterator[Stack]:
    """The aws deployment on the real servers, with `pollers` consumers of the queue at once."""
    settings = Settings(
        backend="aws",
        embedder="hash",
        queue_url=queues.url,
        dead_letter_queue_url=queues.dlq_url,
        table_name=table,
        bucket_name=queues.bucket,
        opensearch_endpoint=osmem_url,
        opensearch_service="es",
        opensearch_auth="none",
        max_receive_count=3,
        sync_timeout_seconds=30,
    )
    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_local.endpoint, **CREDS)
    # osmem-server has no k-NN engine: search runs its text half there (the k-NN body is pinned in tests/unit)
    index = OpenSearchIndex(osmem_url, service="es", auth="none", vector_search=False)
    index.bootstrap()
    sqs_queue = SqsQueue(queues.url, bucket=queues.bucket, sqs=queues.sqs, s3=queues.s3, inline_limit=4096)
    container = Container(settings, stores=open_stores(DynamoTable(table, ddb)), sqs_queue=sqs_queue, index=index)
    stop = threading.Event()

    def consume() -> None:
        poller = Poller(queues.sqs, queues.url, worker_handler, FakeLambdaContext())
        while not stop.is_set():
            poller.poll_once(wait_seconds=1)

    with serving(container):
        threads = [threading.Thread(target=consume, daemon=True) for _ in range(pollers)]
        for thread in threads:
            thread.start()
        _, service_key = container.keys.create("e2e-suite", "service")
        yield Stack(container, stop.set, {"authorization": f"Token {service_key}"}, ddb=ddb)
        stop.set()
        for thread in threads:
            thread.join(10)


def embedded_stack(data_dir: Path, **settings: Any) -> Iterator[Stack]:
    container = LocalContainer(
        Settings(backend="embedded", embedder="hash", data_dir=data_dir, max_receive_count=3, **settings)
    )
    worker = EmbeddedWorker(container)
    worker.start()
    with serving(container):
        yield Stack(container, worker.stop)
    worker.stop()
    container.close()


@pytest.fixture(params=["aws", "embedded", "deployed"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    if request.param == "embedded":
        yield from embedded_stack(tmp_path / "data")
        return
    if request.param == "deployed":
        if not DEPLOYED_API:
            pytest.skip("set MEMCUBE_E2E_API_URL (the stack's ApiUrl output) to run against a deployed stack")
        yield DeployedStack(DEPLOYED_API)
        return
    yield from aws_stack_of(request)


def aws_stack_of(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """`aws_stack` on the tier's servers (DynamoDB Local, LocalStack, osmem-server)."""
    return aws_stack(
        request.getfixturevalue("dynamodb_local"),
        request.getfixturevalue("table"),
        request.getfixturevalue("queues"),
        request.getfixturevalue("search_url"),
    )


def test_round_trip_add_status_get(stack: Stack) -> None:
    code, accepted = stack.add({"user_id": "alice", "messages": CONVERSATION, "custom_tags": ["move"]})
    assert code == 200, accepted
    task = stack.wait("alice", accepted["task_id"])
    assert task["status"] == "completed", task
    [outcome] = task["cubes"][0]["outcomes"]
    assert outcome["outcome"] == "added"
    item = stack.get(outcome["memory_id"], "alice")
    assert "Berlin startup" in item["memory"]
    assert item["metadata"]["custom_tags"] == ["move"]
    assert stack.cube_total("alice", "alice") == 1


def test_sync_add_and_duplicate(stack: Stack) -> None:
    body = {"user_id": "bob", "messages": "Bob's sister lives in Porto.", "async_mode": "sync", "mode": "fast"}
    code, first = stack.add(body)
    assert code == 200, first
    assert first["data"][0]["outcome"] == "added"
    _, second = stack.add(body)
    assert second["data"][0]["outcome"] == "duplicate"
    assert second["data"][0]["memory_id"] == first["data"][0]["memory_id"]
    assert stack.cube_total("bob", "bob") == 1


def test_fan_out_to_several_cubes_keeps_each_cube_exact(stack: Stack) -> None:
    stack.create_cube("ops", "kb-a")
    stack.create_cube("ops", "kb-b")
    tasks = []
    for n in range(6):
        body = {"user_id": "ops", "writable_cube_ids": ["kb-a", "kb-b"], "messages": f"runbook step {n}"}
        tasks.append(stack.add(body)[1]["task_id"])
    assert all(stack.wait("ops", t)["status"] == "completed" for t in tasks)
    assert (stack.cube_total("kb-a", "ops"), stack.cube_total("kb-b", "ops")) == (6, 6)


def test_a_large_body_is_processed_whole_via_a_claim_check_on_aws(stack: Stack) -> None:
    long = [{"role": "user", "content": f"line {i}: " + "details " * 40} for i in range(60)]
    code, accepted = stack.add({"user_id": "cy", "messages": long})
    assert code == 200, accepted
    task = stack.wait("cy", accepted["task_id"])
    assert task["status"] == "completed", task
    assert stack.cube_total("cy", "cy") == len(task["cubes"][0]["outcomes"]) > 1
    queue = stack.container.queue
    if isinstance(queue, SqsQueue):  # the body (~20 KB) was over the test's 4 KB inline limit
        listed = queue.s3.list_objects_v2(Bucket=queue._bucket, Prefix=f"claims/{accepted['task_id']}/")
        assert listed["KeyCount"] == 1


def test_poison_message_from_a_producer_is_dead_lettered_and_blocks_no_cube(stack: Stack) -> None:
    good = {"user_id": "dee", "messages": "Dee runs every morning."}
    poison_body = json.dumps({"v": 1, "task_id": "poison-1", "cube_id": "dee", "user_id": "dee", "messages": 7})
    if isinstance(stack.container.queue, SqsQueue):
        stack.container.queue.send_raw([("dee", "poison-1", poison_body)])
    else:
        assert isinstance(stack.container, LocalContainer)
        stack.container.local_queue.send_raw([("dee", "poison-1", poison_body)])
    _, accepted = stack.add(good)
    assert stack.wait("dee", accepted["task_id"])["status"] == "completed"
    deadline = time.monotonic() + 20
    while not stack.container.dead_letters.list_dead_letters() and time.monotonic() < deadline:
        time.sleep(0.1)
    [letter] = stack.container.dead_letters.list_dead_letters()
    assert letter.reason.startswith("invalid queued message")
    assert letter.task_id == "poison-1"
    if isinstance(stack.container.queue, SqsQueue):  # also parked in the SQS DLQ, reason attached
        dlq_url = stack.container.settings.dead_letter_queue_url
        got = stack.container.queue.sqs.receive_message(
            QueueUrl=dlq_url, MessageAttributeNames=["All"], WaitTimeSeconds=1
        )["Messages"]
        assert [m["Body"] for m in got] == [poison_body]
        assert got[0]["MessageAttributes"]["reason"]["StringValue"].startswith("invalid queued message")


def test_a_failing_cube_is_retried_then_failed_with_its_reason_while_other_cubes_complete(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = stack.container.index
    real_upsert = index.upsert

    def flaky(items: Any) -> None:
        if items and items[0].metadata.cube_id == "kb-broken":
            raise ConnectionError("index refused the write")
        real_upsert(items)

    monkeypatch.setattr(index, "upsert", flaky)
    stack.create_cube("eve", "kb-broken")
    stack.create_cube("eve", "kb-fine")
    _, broken = stack.add({"user_id": "eve", "writable_cube_ids": ["kb-broken"], "messages": "fact one"})
    _, fine = stack.add({"user_id": "eve", "writable_cube_ids": ["kb-fine"], "messages": "fact two"})
    assert stack.wait("eve", fine["task_id"])["status"] == "completed"
    task = stack.wait("eve", broken["task_id"], timeout=60)
    assert task["status"] == "failed"
    [part] = task["cubes"]
    assert part["attempts"] == 3
    assert part["error"] == (
        "gave up after 3 attempts: index write failed (ConnectionError: index refused the write); the memories "
        "are stored but not yet searchable; `memcube redrive` indexes them once the index is back"
    )
    assert [o["outcome"] for o in part["outcomes"]] == ["added"]
    [letter] = stack.container.dead_letters.list_dead_letters()
    assert letter.task_id == broken["task_id"]


def test_a_completed_add_is_searchable_at_once_with_filters(stack: Stack) -> None:
    for text, tag in [("Fay grows basil on her balcony.", "garden"), ("Fay grows tired of winter.", "mood")]:
        code, accepted = stack.add({"user_id": "fay", "messages": text, "custom_tags": [tag]})
        assert stack.wait("fay", accepted["task_id"])["status"] == "completed"
    query = {"user_id": "fay", "query": "grows", "relativity": 0.0}
    code, payload = stack.call("POST", "/product/search", body=query)
    assert code == 200, payload
    assert len(payload["data"]["text_mem"][0]["memories"]) == 2
    _, garden = stack.call("POST", "/product/search", body=query | {"filter": {"custom_tags": "garden"}})
    [hit] = garden["data"]["text_mem"][0]["memories"]
    assert "basil" in hit["memory"]


SECRET = "zanzibar7731"
"""A token only the erased memories hold, lower-case alphanumeric so the full-text index stores it verbatim."""


def _raw_storage_holds(stack: Stack, token: str) -> list[str]:
    """Where `token` is still stored, looking under the adapters: every DynamoDB item and every
    OpenSearch document of the cube (aws), or every byte of the data directory (embedded)."""
    c = stack.container
    places: list[str] = []
    if c.settings.backend == "aws":
        ddb = stack.ddb
        for page in ddb.get_paginator("scan").paginate(TableName=c.settings.table_name):
            places += [f"dynamodb {i['pk']['S']}/{i['sk']['S']}" for i in page["Items"] if token in repr(i)]
        assert isinstance(c.index, OpenSearchIndex)
        docs = c.index.client.search(index=c.settings.opensearch_index, body={"query": {"match_all": {}}, "size": 1000})
        places += [f"opensearch {h['_id']}" for h in docs["hits"]["hits"] if token in json.dumps(h["_source"])]
        return places
    for path in sorted(c.settings.data_dir.rglob("*")):
        if path.is_file() and token.encode() in path.read_bytes():
            places.append(str(path.relative_to(c.settings.data_dir)))
    return places


def test_erasing_a_cube_leaves_nothing_of_it_stored_or_searchable(stack: Stack) -> None:
    tasks = []
    for n in range(3):
        body = {"user_id": "gil", "messages": f"Gil's locker code at {SECRET} is {n}{n}{n}.", "custom_tags": ["ops"]}
        tasks.append(stack.add(body)[1]["task_id"])
    _, kept = stack.add({"user_id": "hal", "messages": "Hal keeps the spare keys."})
    assert all(stack.wait("gil", t)["status"] == "completed" for t in tasks)
    assert stack.wait("hal", kept["task_id"])["status"] == "completed"
    [memory_id] = [o["memory_id"] for o in stack.status("gil", tasks[0])["cubes"][0]["outcomes"]]
    if stack._container is not None:
        assert _raw_storage_holds(stack, SECRET)  # the probe sees the data before the erasure

    code, payload = stack.call("POST", "/product/delete_cube", body={"user_id": "gil", "cube_id": "gil"})
    assert code == 200, payload
    [receipt] = payload["data"]["cubes"]
    assert (receipt["cube_id"], receipt["memories"], receipt["erased"]) == ("gil", 3, True)
    assert receipt["index"] == 3

    search = {"user_id": "gil", "query": f"locker code {SECRET}", "relativity": 0.0}
    code, found = stack.call("POST", "/product/search", body=search)
    assert code == 200, found
    assert all(cube["memories"] == [] for cube in found["data"]["text_mem"])
    code, _ = stack.call("GET", f"/product/get_memory/{memory_id}", query="user_id=gil")
    assert code == 404
    assert stack.cube_total("gil", "gil") == 0
    assert stack.cube_total("hal", "hal") == 1
    if stack._container is not None:
        assert _raw_storage_holds(stack, SECRET) == []

    _, again = stack.add({"user_id": "gil", "messages": "Gil starts over."})  # the cube is usable again
    assert stack.wait("gil", again["task_id"])["status"] == "completed"
    assert stack.cube_total("gil", "gil") == 1


def test_a_small_pdf_that_inflates_to_megabytes_fails_its_task_naming_the_limit(stack: Stack) -> None:
    """A decompression bomb (issue 17, finding 4) is refused by the worker while it inflates the
    page, before parsing it: the task fails at once, naming the limit."""
    import base64

    from tests.pdfs import pdf_with_pages

    bomb = pdf_with_pages([["A" * 200] * 40_000], compressed=True)  # 8 MB of page text in some KB
    url = "data:application/pdf;base64," + base64.b64encode(bomb).decode()
    code, accepted = stack.add(
        {"user_id": "alice", "messages": [{"type": "file", "file": {"file_data": url, "filename": "bomb.pdf"}}]}
    )
    assert code == 200, accepted
    task = stack.wait("alice", accepted["task_id"])
    assert task["status"] == "failed", task
    assert "bomb.pdf: " in task["cubes"][0]["error"] and "the limit per stream" in task["cubes"][0]["error"]
