"""The API tier: the real Lambda entry (`memcube_api.handler.lambda_handler`, Mangum) driven by
API Gateway HTTP API payload 2.0 events copied from `events/` and modified per test."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest

import memcube.wiring
from memcube.adapters.inmemory import InMemoryIndex, InMemoryQueue, InMemoryStore
from memcube.settings import Settings
from memcube.wiring import Container
from tests.conftest import load_event
from tests.lambda_support import FakeLambdaContext

BY_ID_ROUTE = "/product/get_memory/{memory_id}"
TEMPLATES = {
    ("POST", "/product/add"): "api_add_async.json",
    ("GET", "/product/scheduler/status"): "api_status.json",
    ("GET", BY_ID_ROUTE): "api_get_memory_by_id.json",
    ("POST", "/product/get_memory"): "api_get_memory.json",
}


@dataclass(frozen=True)
class Reply:
    """What the Lambda returned to API Gateway, with the JSON body parsed."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def message(self) -> str:
        message: str = self.body["message"]
        return message

    @property
    def data(self) -> Any:
        return self.body["data"]


def _route(method: str, path: str) -> str:
    if method == "GET" and path.startswith("/product/get_memory/"):
        return BY_ID_ROUTE
    return path


def v2_event(
    method: str,
    path: str,
    *,
    query: str = "",
    body: Any = None,
    raw_body: bytes | None = None,
    headers: dict[str, str] | None = None,
    drop_headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A payload 2.0 event for `method path`, copied from the route's sample in `events/`.

    `body` is sent as JSON unless it is already a string; `raw_body` is sent base64-encoded (as
    API Gateway does for binary bodies). Like API Gateway, a body comes with its content-length.
    """
    route = _route(method, path)
    sample = TEMPLATES.get((method, route), "api_add_async.json" if method != "GET" else "api_status.json")
    event = load_event(sample)
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {route}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = query
    params = parse_qs(query, keep_blank_values=True)
    if params:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in params.items()}
    else:
        event.pop("queryStringParameters", None)
    if route == BY_ID_ROUTE:
        event["pathParameters"] = {"memory_id": unquote(path.rsplit("/", 1)[1])}
    else:
        event.pop("pathParameters", None)
    event.pop("body", None)
    event["isBase64Encoded"] = False
    sent: bytes | None = None
    if raw_body is not None:
        sent = raw_body
        event["body"] = base64.b64encode(raw_body).decode()
        event["isBase64Encoded"] = True
    elif body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
        sent = event["body"].encode()
    if sent is not None:
        event["headers"].setdefault("content-type", "application/json")
        event["headers"]["content-length"] = str(len(sent))
    event["headers"].update(headers or {})
    for name in drop_headers:
        event["headers"].pop(name, None)
    return event


def invoke(event: dict[str, Any]) -> Reply:
    """Call the API Lambda as API Gateway would, and parse its answer."""
    from memcube_api.handler import lambda_handler

    context: Any = FakeLambdaContext()  # the attributes powertools reads from a LambdaContext
    response = lambda_handler(event, context)
    raw = response["body"]
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return Reply(int(response["statusCode"]), json.loads(raw), headers)


def post_add(body: Any, headers: dict[str, str] | None = None) -> Reply:
    return invoke(v2_event("POST", "/product/add", body=body, headers=headers))


def serve(monkeypatch: pytest.MonkeyPatch, container: Container) -> Container:
    """Make the handler's process-wide container this one (restored when the test ends)."""
    monkeypatch.setattr(memcube.wiring, "_container", container)
    return container


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, memory_container: Container) -> Container:
    """In-memory ports; the queue records what was sent and no worker runs."""
    return serve(monkeypatch, memory_container)


@pytest.fixture
def embedded_api(monkeypatch: pytest.MonkeyPatch, embedded_container: Container) -> Container:
    """The embedded default (SQLite files, worker running): sync adds complete."""
    return serve(monkeypatch, embedded_container)


def memory_container_with(**settings: Any) -> Container:
    return Container(
        Settings(backend="memory", **settings), store=InMemoryStore(), queue=InMemoryQueue(), index=InMemoryIndex()
    )


def queue_of(container: Container) -> InMemoryQueue:
    queue = container.queue
    assert isinstance(queue, InMemoryQueue)
    return queue


def store_of(container: Container) -> InMemoryStore:
    store = container.store
    assert isinstance(store, InMemoryStore)
    return store


def assert_nothing_written(container: Container, users: tuple[str, ...] = ("alice", "a", "bob")) -> None:
    """No message queued, no task, no item, no dead letter, no user registered."""
    store = store_of(container)
    assert queue_of(container).sent == []
    assert list(store.iter_memories()) == []
    assert store.list_dead_letters() == []
    for user in users:
        assert store.list_tasks(user, 100) == []
        assert not store.is_user(user)
