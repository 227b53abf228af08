"""The API Gateway samples in events/ are real HTTP API payload 2.0 events (they are also what
`sam local invoke -e` sends), and they say what their names promise."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

from tests.conftest import EVENTS, load_event

API_EVENTS = {
    "api_add_async.json": ("POST", "/product/add"),
    "api_add_sync.json": ("POST", "/product/add"),
    "api_add_invalid.json": ("POST", "/product/add"),
    "api_status.json": ("GET", "/product/scheduler/status"),
    "api_get_memory_by_id.json": ("GET", "/product/get_memory/{memory_id}"),
    "api_get_memory.json": ("POST", "/product/get_memory"),
    "api_delete_memory.json": ("POST", "/product/delete_memory"),
    "api_delete_cube.json": ("POST", "/product/delete_cube"),
    "api_get_memory_history.json": ("GET", "/product/get_memory_history/{memory_id}"),
    "api_undo_memory.json": ("POST", "/product/undo_memory"),
}


def test_every_api_sample_is_listed_here() -> None:
    assert {p.name for p in EVENTS.glob("api_*.json")} == set(API_EVENTS)


@pytest.mark.parametrize("name", sorted(API_EVENTS))
def test_api_sample_is_a_consistent_payload_v2_event(name: str) -> None:
    method, route = API_EVENTS[name]
    event = load_event(name)
    APIGatewayProxyEventV2Model.model_validate(event)
    ctx = event["requestContext"]
    assert (event["version"], ctx["stage"], event["isBase64Encoded"]) == ("2.0", "$default", False)
    assert event["routeKey"] == ctx["routeKey"] == f"{method} {route}"
    assert ctx["http"]["method"] == method
    assert event["rawPath"] == ctx["http"]["path"]
    assert ctx["http"]["sourceIp"]
    assert ctx["requestId"]
    params = {k: ",".join(v) for k, v in parse_qs(event["rawQueryString"]).items()}
    assert event.get("queryStringParameters", {}) == params
    if "{memory_id}" in route:
        assert event["rawPath"] == route.replace("{memory_id}", event["pathParameters"]["memory_id"])
    else:
        assert "pathParameters" not in event
    if method == "POST":
        assert event["headers"]["content-type"] == "application/json"
        assert isinstance(json.loads(event["body"]), dict)
    else:
        assert "body" not in event


def body(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(load_event(name)["body"])
    return parsed


def test_async_sample_is_a_multi_turn_conversation_for_alice() -> None:
    add = body("api_add_async.json")
    assert add["user_id"] == "alice"
    assert add.get("async_mode", "async") == "async"
    assert len(add["messages"]) >= 3
    assert {m["role"] for m in add["messages"]} == {"user", "assistant"}
    assert all(m["chat_time"] for m in add["messages"])
    assert add["custom_tags"]
    assert add["info"]


def test_sync_sample_is_a_fast_sync_add_and_the_status_sample_asks_for_its_task() -> None:
    add = body("api_add_sync.json")
    assert (add["async_mode"], add["mode"]) == ("sync", "fast")
    status = load_event("api_status.json")["queryStringParameters"]
    assert status == {"user_id": add["user_id"], "task_id": add["task_id"]}
