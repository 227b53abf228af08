"""API keys through the Lambda entry: `Token` and `Bearer`, checked before the body is read; the
body's user_id must be the key's user unless the key is a service key; revoked and forged keys
answer 401 in the MemOS envelope, and nothing is written."""

from __future__ import annotations

from typing import Any

import pytest

from memcube.wiring import Container
from tests.api.conftest import assert_nothing_written, memory_container_with, serve
from tests.lambda_support import call


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Container:
    return serve(monkeypatch, memory_container_with(auth="keys"))


def key_for(container: Container, user: str, scope: str = "user") -> str:
    _, plaintext = container.keys.create(user, scope)  # type: ignore[arg-type]
    return plaintext


def add(headers: dict[str, str] | None, user: str = "alice", **extra: Any) -> tuple[int, dict[str, Any]]:
    return call("POST", "/product/add", body={"user_id": user, "messages": "I like tea.", **extra}, headers=headers)


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "token"])
def test_a_valid_key_is_accepted_with_either_scheme(keyed: Container, scheme: str) -> None:
    code, payload = add({"authorization": f"{scheme} {key_for(keyed, 'alice')}"})
    assert code == 200, payload


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (None, "missing"),
        ("Basic YWxpY2U6cHc=", "unsupported scheme"),
        ("Token not-a-key", "not a memcube API key"),
        ("Token mck_0123456789abcdef_" + "x" * 43, "invalid or revoked"),
    ],
)
def test_a_request_without_a_valid_key_is_401_and_writes_nothing(
    keyed: Container, header: str | None, problem: str
) -> None:
    code, payload = add({"authorization": header} if header else None)
    assert code == 401
    assert payload["code"] == 401 and problem in payload["message"] and payload["data"] is None
    assert_nothing_written(keyed)


def test_a_wrong_secret_for_a_real_key_id_is_401(keyed: Container) -> None:
    real = key_for(keyed, "alice")
    forged = real[:-43] + ("A" if real[-43] != "A" else "B") + real[-42:]
    assert add({"authorization": f"Token {forged}"})[0] == 401
    assert_nothing_written(keyed)


def test_the_key_is_checked_before_the_body_so_bad_input_reveals_nothing(keyed: Container) -> None:
    code, payload = call("POST", "/product/add", body={"user_id": 5})
    assert code == 401 and "user_id" not in payload["message"]


def test_a_user_key_may_not_act_for_another_user(keyed: Container) -> None:
    code, payload = add({"authorization": f"Token {key_for(keyed, 'mallory')}"}, user="alice")
    assert code == 403
    assert "user_id: 'alice' is not this API key's user ('mallory')" in payload["message"]
    assert_nothing_written(keyed)


def test_a_service_key_may_act_for_any_user(keyed: Container) -> None:
    headers = {"authorization": f"Bearer {key_for(keyed, 'ingest-bot', 'service')}"}
    code, payload = add(headers, user="alice")
    assert code == 200, payload
    code, payload = call("GET", "/product/scheduler/status", query=f"user_id=alice&task_id={payload['task_id']}",
                         headers=headers)  # fmt: skip
    assert code == 200 and payload["data"][0]["user_id"] == "alice"


def test_a_revoked_key_is_refused_from_then_on(keyed: Container) -> None:
    plaintext = key_for(keyed, "alice")
    headers = {"authorization": f"Token {plaintext}"}
    assert add(headers)[0] == 200
    keyed.keys.revoke(plaintext.split("_", 2)[1])
    code, payload = add(headers)
    assert code == 401 and "invalid or revoked" in payload["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "query"),
    [
        ("GET", "/product/scheduler/status", None, "user_id=alice"),
        ("GET", "/product/get_memory/m1", None, "user_id=alice"),
        ("GET", "/product/get_memory_history/m1", None, "user_id=alice"),
        ("POST", "/product/get_memory", {"user_id": "alice", "mem_cube_id": "alice"}, ""),
        ("POST", "/product/search", {"user_id": "alice", "query": "tea"}, ""),
        ("POST", "/product/delete_memory", {"user_id": "alice", "memory_ids": ["m1"]}, ""),
        ("POST", "/product/delete_cube", {"user_id": "alice", "cube_id": "alice"}, ""),
        ("POST", "/product/export_memory", {"user_id": "alice", "cube_id": "alice"}, ""),
        ("POST", "/product/undo_memory", {"user_id": "alice", "memory_id": "m1"}, ""),
    ],
)
def test_every_route_but_health_needs_a_key(
    keyed: Container, method: str, path: str, body: dict[str, Any] | None, query: str
) -> None:
    code, payload = call(method, path, body=body, query=query)
    assert code == 401, (path, payload)
    other = {"authorization": f"Token {key_for(keyed, 'mallory')}"}
    code, payload = call(method, path, body=body, query=query, headers=other)
    assert code == 403 and "not this API key's user" in payload["message"], (path, payload)


def test_import_needs_a_key_before_its_items_are_read(keyed: Container) -> None:
    body = {"user_id": "alice", "cube_id": "alice", "items": []}
    assert call("POST", "/product/import_memory", body=body)[0] == 401


def test_health_needs_no_key(keyed: Container) -> None:
    assert call("GET", "/health")[0] == 200


def test_the_aws_backend_always_requires_keys() -> None:
    from memcube.settings import Settings

    aws: dict[str, Any] = {"queue_url": "q", "table_name": "t", "opensearch_endpoint": "https://o"}
    assert Settings(backend="aws", auth="none", **aws).auth_mode == "keys"
    assert Settings(backend="embedded").auth_mode == "none"


def test_every_route_the_app_serves_but_health_answers_401_without_a_key(keyed: Container) -> None:
    from fastapi.routing import APIRoute

    from memcube_api.app import create_app

    app = create_app(lambda: keyed)
    routes = [
        (m, r.path) for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema for m in r.methods or ()
    ]
    assert len(routes) >= 14  # every route, derived from the app: a new route is covered as it is added
    for method, path in routes:
        concrete = path.replace("{memory_id}", "m1")
        code, payload = call(method, concrete, body={"user_id": "alice"} if method == "POST" else None)
        assert code == 401 and payload["code"] == 401, (method, path, payload)
    assert_nothing_written(keyed)


def test_refusals_are_logged_with_the_caller_and_reason_but_never_the_credential(
    keyed: Container, caplog: pytest.LogCaptureFixture
) -> None:
    mallory = key_for(keyed, "mallory")
    forged = mallory[:-4] + "AAAA"
    with caplog.at_level("WARNING", logger="memcube_api.errors"):
        assert add({"authorization": f"Token {forged}"})[0] == 401
        assert add({"authorization": f"Token {mallory}"}, user="alice")[0] == 403
    refused = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert [(r.status, r.caller, r.path) for r in refused] == [  # type: ignore[attr-defined]
        (401, None, "/product/add"),
        (403, "mallory", "/product/add"),
    ]
    assert "not this API key's user" in refused[1].reason  # type: ignore[attr-defined]
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert mallory.split("_", 2)[2] not in logged and forged.split("_", 2)[2] not in logged


def test_a_trailing_slash_is_a_404_not_a_redirect_built_from_the_host_header() -> None:
    from fastapi.testclient import TestClient

    from memcube_api.app import create_app
    from tests.api.conftest import memory_container_with

    container = memory_container_with(auth="keys")
    client = TestClient(create_app(lambda: container))
    answer = client.post("/product/add/", json={}, headers={"host": "evil.example"}, follow_redirects=False)
    assert answer.status_code == 404 and "location" not in answer.headers
    assert answer.json()["code"] == 404


def test_the_api_description_routes_answer_without_a_key_and_hold_no_data() -> None:
    """Deliberate (SECURITY.md S1): /docs, /redoc and /openapi.json describe the API only."""
    from fastapi.testclient import TestClient

    from memcube_api.app import create_app
    from tests.api.conftest import memory_container_with

    client = TestClient(create_app(lambda: memory_container_with(auth="keys")))
    assert [client.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [200, 200, 200]
    assert "paths" in client.get("/openapi.json").json()
