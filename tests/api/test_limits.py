"""Per-principal rate limits and quotas through the Lambda entry: 429 in the envelope with a
Retry-After header; counted per API key principal (a service key is one principal)."""

from __future__ import annotations

from typing import Any

import pytest

from memcube.wiring import Container
from tests.api.conftest import Reply, memory_container_with, queue_of, serve
from tests.lambda_support import invoke, v2_event


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch) -> Container:
    return serve(monkeypatch, memory_container_with(auth="keys", rate_limit_per_minute=3, daily_add_quota=2))


def key(container: Container, user: str, scope: str = "user") -> dict[str, str]:
    _, plaintext = container.keys.create(user, scope)  # type: ignore[arg-type]
    return {"authorization": f"Token {plaintext}"}


def search(headers: dict[str, str], user: str = "alice") -> int:
    body = {"user_id": user, "query": "tea"}
    return invoke(v2_event("POST", "/product/search", body=body, headers=headers)).status


def test_requests_over_the_per_minute_limit_get_429_with_retry_after(limited: Container) -> None:
    alice = key(limited, "alice")
    assert [search(alice) for _ in range(3)] == [200, 200, 200]
    reply = invoke(v2_event("POST", "/product/search", body={"user_id": "alice", "query": "tea"}, headers=alice))
    assert reply.status == 429
    assert reply.body["code"] == 429 and "3 requests per minute for 'alice'" in reply.body["message"]
    assert 1 <= int(reply.headers["retry-after"]) <= 61
    assert search(key(limited, "bob"), "bob") == 200  # another principal is not affected


def add(headers: dict[str, str], user: str, text: str, **extra: object) -> Reply:
    return invoke(v2_event("POST", "/product/add", body={"user_id": user, "messages": text, **extra}, headers=headers))


def test_the_daily_add_quota_is_counted_per_principal(limited: Container) -> None:
    alice, bob = key(limited, "alice"), key(limited, "bob")
    replies = [add(alice, "alice", f"fact {n}") for n in range(3)]
    assert [r.status for r in replies] == [200, 200, 429]
    refused = replies[2]
    assert refused.body["code"] == 429 and "2 adds per day for 'alice'" in refused.body["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 86_400
    # The refused add wrote nothing: two tasks, two queued messages, no third of either.
    assert len(limited.tasks.list_tasks("alice", 100)) == 2
    assert len(queue_of(limited).sent) == 2
    assert all("fact 2" not in m.model_dump_json() for m in queue_of(limited).sent)
    # Another principal has its own quota.
    assert [add(bob, "bob", f"fact {n}").status for n in range(2)] == [200, 200]


def test_a_refused_add_still_counts_against_the_daily_quota(limited: Container) -> None:
    """S15: an add refused by its cube permissions counts, so refusals cannot probe for free."""
    alice = key(limited, "alice")
    forbidden = add(alice, "alice", "into bob's cube", writable_cube_ids=["bob"])
    assert forbidden.status == 403
    assert queue_of(limited).sent == [] and limited.tasks.list_tasks("alice", 100) == []
    assert add(alice, "alice", "fact 1").status == 200
    assert add(alice, "alice", "fact 2").status == 429


def test_a_service_key_is_one_principal_whoever_it_acts_for(limited: Container) -> None:
    bot = key(limited, "bot", "service")
    assert [search(bot, user) for user in ("u1", "u2", "u3", "u4")] == [200, 200, 200, 429]


def test_requests_refused_for_another_users_id_count_against_the_limit(limited: Container) -> None:
    """Probing other users' ids is rate limited like any request (issue 17, finding 8)."""
    alice = key(limited, "alice")
    assert [search(alice, "bob") for _ in range(3)] == [403, 403, 403]
    assert search(alice) == 429


def test_the_rate_limit_counter_and_the_user_directory_are_never_written_on_the_event_loop() -> None:
    """A store write on the event loop would stall every other request the server is serving."""
    import asyncio

    from fastapi.testclient import TestClient

    from memcube_api.app import create_app

    container = memory_container_with(auth="keys", rate_limit_per_minute=100, daily_add_quota=100)
    _, plaintext = container.keys.create("bot", "service")
    on_loop: list[str] = []

    def spy(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
                on_loop.append(name)
            except RuntimeError:
                pass  # a worker thread: no loop running here
            return real(*args, **kwargs)

        return call

    container.counter.hit = spy("counter.hit", container.counter.hit)  # type: ignore[method-assign]
    directory = container.directory
    directory.register_user = spy("register_user", directory.register_user)  # type: ignore[method-assign]
    client = TestClient(create_app(lambda: container))
    headers = {"authorization": f"Token {plaintext}"}
    assert client.post("/product/add", json={"user_id": "u1", "messages": "hi"}, headers=headers).status_code == 200
    assert client.post("/product/search", json={"user_id": "u2", "query": "hi"}, headers=headers).status_code == 200
    assert container.directory.is_user("u1") and container.directory.is_user("u2")
    assert on_loop == []
