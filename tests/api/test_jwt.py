"""The optional JWT front door on AWS, through the Lambda entry: a request that came through the
stack's JWT API carries claims API Gateway's authorizer verified, and acts as the token's subject
without an API key; the same claims on an event from any other API count for nothing."""

from __future__ import annotations

from typing import Any

import pytest

from memcube.wiring import Container
from tests.api.conftest import memory_container_with, serve
from tests.lambda_support import invoke, v2_event

JWT_API = "jwtapi0001"


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Container:
    return serve(monkeypatch, memory_container_with(auth="keys", jwt_api_id=JWT_API))


def through(api_id: str, claims: dict[str, str] | None, scopes: list[str] | None = None, **body: Any) -> Any:
    """An add as API Gateway delivers it from API `api_id`, with its authorizer's verified JWT."""
    event = v2_event("POST", "/product/add", body={"messages": "I like tea.", **body})
    event["requestContext"]["apiId"] = api_id
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": scopes}}
    return invoke(event)


def test_a_verified_token_acts_as_its_subject_without_an_api_key(gated: Container) -> None:
    reply = through(JWT_API, {"sub": "alice", "iss": "https://issuer.example"}, user_id="alice")
    assert reply.status == 200, reply.body
    [task] = gated.tasks.list_tasks("alice", 10)
    assert task.task.user_id == "alice"


def test_a_token_user_may_not_act_for_another_user(gated: Container) -> None:
    reply = through(JWT_API, {"sub": "alice"}, user_id="bob")
    assert reply.status == 403 and "not this API key's user" in reply.message
    assert gated.tasks.list_tasks("bob", 10) == []


def test_the_service_scope_may_act_for_any_user(gated: Container) -> None:
    reply = through(JWT_API, {"sub": "ingest-bot"}, ["memcube/service"], user_id="bob")
    assert reply.status == 200, reply.body
    assert [t.task.user_id for t in gated.tasks.list_tasks("bob", 10)] == ["bob"]


def test_claims_on_an_event_from_another_api_count_for_nothing(gated: Container) -> None:
    reply = through("keysapi0001", {"sub": "alice"}, user_id="alice")
    assert reply.status == 401 and "Authorization: missing" in reply.message
    assert gated.tasks.list_tasks("alice", 10) == []


def test_without_a_jwt_api_configured_claims_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, memory_container_with(auth="keys"))
    assert through(JWT_API, {"sub": "alice"}, user_id="alice").status == 401


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": "-starts-with-a-symbol"}, {"sub": "x" * 129}])
def test_a_token_without_a_usable_subject_is_401(gated: Container, claims: dict[str, str]) -> None:
    reply = through(JWT_API, claims, user_id="alice")
    assert reply.status == 401 and "'sub' claim is not a usable user id" in reply.message


def test_api_keys_still_work_beside_tokens(gated: Container) -> None:
    _, plaintext = gated.keys.create("alice")
    event = v2_event(
        "POST",
        "/product/add",
        body={"user_id": "alice", "messages": "hi"},
        headers={"authorization": f"Token {plaintext}"},
    )
    assert invoke(event).status == 200


def test_a_token_subject_exists_from_its_first_request_so_its_cube_cannot_be_claimed(gated: Container) -> None:
    def as_token(sub: str, path: str, **body: Any) -> Any:
        event = v2_event("POST", path, body={"user_id": sub, **body})
        event["requestContext"]["apiId"] = JWT_API
        event["requestContext"]["authorizer"] = {"jwt": {"claims": {"sub": sub}, "scopes": None}}
        return invoke(event)

    # Given dora's first request through the JWT API is a search (she has written nothing)
    assert as_token("dora", "/product/search", query="tea").status == 200
    # When mallory's token tries to create a cube with dora's id, Then it is taken
    reply = as_token("mallory", "/product/create_cube", cube_id="dora")
    assert reply.status == 409, reply.body
    assert gated.directory.get_cube("dora") is None
