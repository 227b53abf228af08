"""Per-principal rate limits and quotas through the Lambda entry: 429 in the envelope with a
Retry-After header; counted per API key principal (a service key is one principal)."""

from __future__ import annotations

import pytest

from memcube.wiring import Container
from tests.api.conftest import memory_container_with, serve
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


def test_the_daily_add_quota_is_counted_per_principal(limited: Container) -> None:
    alice = key(limited, "alice")
    statuses = [
        invoke(
            v2_event("POST", "/product/add", body={"user_id": "alice", "messages": f"fact {n}"}, headers=alice)
        ).status
        for n in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_a_service_key_is_one_principal_whoever_it_acts_for(limited: Container) -> None:
    bot = key(limited, "bot", "service")
    assert [search(bot, user) for user in ("u1", "u2", "u3", "u4")] == [200, 200, 200, 429]


def test_requests_refused_for_another_users_id_count_against_the_limit(limited: Container) -> None:
    """Probing other users' ids is rate limited like any request (issue 17, finding 8)."""
    alice = key(limited, "alice")
    assert [search(alice, "bob") for _ in range(3)] == [403, 403, 403]
    assert search(alice) == 429
