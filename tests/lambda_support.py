"""Helpers to run the Lambda entry points in-process with real event shapes."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import memcube.wiring
from memcube.wiring import Container
from tests.conftest import load_event


@dataclass
class FakeLambdaContext:
    function_name: str = "memcube-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:memcube-test"
    aws_request_id: str = "5b1c0f2e-0000-4000-8000-000000000001"
    log_group_name: str = "/aws/lambda/memcube-test"
    log_stream_name: str = "2026/11/25/[$LATEST]0000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@contextmanager
def serving(container: Container) -> Iterator[Container]:
    """Make the Lambda handlers' process-wide container this one, for the duration."""
    before = memcube.wiring._container
    memcube.wiring._container = container
    try:
        yield container
    finally:
        memcube.wiring._container = before


def http_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: bytes | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, built from events/api_add_async.json's shape."""
    event = copy.deepcopy(load_event("api_add_async.json"))
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {path}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = query
    event.pop("queryStringParameters", None)
    event["headers"].update(headers or {})
    if raw_body is not None:
        event["body"] = base64.b64encode(raw_body).decode()
        event["isBase64Encoded"] = True
    elif body is None:
        event.pop("body", None)
    else:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


def invoke_api(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    from memcube_api.handler import lambda_handler

    response = lambda_handler(event, FakeLambdaContext())  # type: ignore[arg-type]
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    parsed: dict[str, Any] = json.loads(body)
    return int(response["statusCode"]), parsed


def invoke_worker(event: dict[str, Any]) -> dict[str, Any]:
    from memcube_worker.handler import lambda_handler

    result: dict[str, Any] = lambda_handler(event, FakeLambdaContext())  # type: ignore[arg-type]
    return result
