"""The API tier: the real Lambda entry (`memcube_api.handler.lambda_handler`, Mangum) driven by
API Gateway HTTP API payload 2.0 events copied from `events/` and modified per test."""

from __future__ import annotations

from typing import Any

import pytest

import memcube.wiring
from memcube.settings import Settings
from memcube.wiring import Container
from tests.doubles import doubles_container
from tests.lambda_support import (  # noqa: F401 - the api tier's helpers, shared with other tiers
    BY_ID_ROUTE,
    Reply,
    invoke,
    queue_of,
    v2_event,
)


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
    return doubles_container(Settings(backend="memory", **settings))


def assert_nothing_written(container: Container, users: tuple[str, ...] = ("alice", "a", "bob")) -> None:
    """No message queued, no task, no item, no dead letter, no user registered (but the users
    with a key: a user exists from the moment their key is made)."""
    assert queue_of(container).sent == []
    assert list(container.memories.iter_memories()) == []
    assert container.dead_letters.list_dead_letters() == []
    for user in users:
        assert container.tasks.list_tasks(user, 100) == []
        assert not container.directory.is_user(user) or container.api_keys.list_keys(user)
