"""The HTTP client the CLI uses: retries on 429/5xx honouring Retry-After, clean errors on 4xx."""

from __future__ import annotations

import httpx
import pytest

from memcube.client import ApiError, MemcubeClient


def client_answering(*responses: httpx.Response) -> tuple[MemcubeClient, list[float], list[httpx.Request]]:
    pending = list(responses)
    seen: list[httpx.Request] = []
    slept: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return pending.pop(0)

    client = MemcubeClient(
        "http://memcube.test/", api_key="k1", transport=httpx.MockTransport(handler), sleep=slept.append
    )
    return client, slept, seen


def test_a_429_is_retried_after_the_servers_retry_after() -> None:
    ok = httpx.Response(200, json={"code": 200, "message": "ok", "data": {"text_mem": []}})
    client, slept, seen = client_answering(httpx.Response(429, headers={"Retry-After": "3"}, json={}), ok)
    assert client.search({"user_id": "a", "query": "q"}) == {"text_mem": []}
    assert slept == [3.0]
    assert len(seen) == 2
    assert seen[0].headers["authorization"] == "Token k1"


def test_5xx_is_retried_with_backoff_until_the_attempts_run_out() -> None:
    client, slept, seen = client_answering(*[httpx.Response(503, json={"code": 503, "message": "down"})] * 5)
    with pytest.raises(ApiError) as raised:
        client.get("m1", "alice")
    assert (raised.value.status, raised.value.message) == (503, "down")
    assert len(seen) == 5 and len(slept) == 4
    assert all(0 <= s <= 8 for s in slept)


def test_a_4xx_is_not_retried_and_carries_the_envelope_message() -> None:
    client, slept, _ = client_answering(httpx.Response(422, json={"code": 422, "message": "filter: bad", "data": None}))
    with pytest.raises(ApiError, match="422: filter: bad"):
        client.delete({"user_id": "a", "filter": {}})
    assert slept == []
