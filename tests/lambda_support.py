"""Helpers to run the Lambda entry points in-process with real event shapes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import memcube.wiring
from memcube.wiring import Container
from tests.conftest import load_event
from tests.doubles import InMemoryIndex, InMemoryQueue


@dataclass
class FakeLambdaContext:
    function_name: str = "memcube-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:memcube-test"
    aws_request_id: str = "5b1c0f2e-0000-4000-8000-000000000001"
    log_group_name: str = "/aws/lambda/memcube-test"
    log_stream_name: str = "2026/11/25/[$LATEST]0000"

    remaining_ms: int = 290_000
    """A fresh invocation of the worker's 300 s timeout (the API's is 29 s; it does not ask)."""

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@contextmanager
def serving(container: Container) -> Iterator[Container]:
    """Make the Lambda handlers' process-wide container this one, for the duration."""
    before = memcube.wiring._container
    memcube.wiring._container = container
    try:
        yield container
    finally:
        memcube.wiring._container = before


BY_ID_ROUTE = "/product/get_memory/{memory_id}"
TEMPLATES = {
    ("POST", "/product/add"): "api_add_async.json",
    ("GET", "/product/scheduler/status"): "api_status.json",
    ("GET", BY_ID_ROUTE): "api_get_memory_by_id.json",
    ("POST", "/product/get_memory"): "api_get_memory.json",
    ("POST", "/product/delete_memory"): "api_delete_memory.json",
    ("POST", "/product/delete_cube"): "api_delete_cube.json",
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


def call(
    method: str, path: str, *, body: Any = None, query: str = "", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """`invoke(v2_event(...))` as (status, parsed body)."""
    reply = invoke(v2_event(method, path, body=body, query=query, headers=headers))
    return reply.status, reply.body


def invoke_worker(event: dict[str, Any]) -> dict[str, Any]:
    from memcube_worker.handler import lambda_handler

    result: dict[str, Any] = lambda_handler(event, FakeLambdaContext())
    return result


def queue_of(container: Container) -> InMemoryQueue:
    queue = container.queue
    assert isinstance(queue, InMemoryQueue)
    return queue


def index_of(container: Container) -> InMemoryIndex:
    index = container.index
    assert isinstance(index, InMemoryIndex)
    return index
