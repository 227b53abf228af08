"""Shared fixtures: containers on in-memory and embedded (SQLite) adapters, event loaders; and the
tiers: each test is marked with its folder (`pytest -m unit` runs tests/unit), and the unit tier
runs without the network."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3  # noqa: F401 - it probes for IPv6 with a socket when imported: before the unit tier blocks sockets
from fastapi.testclient import TestClient

from memcube.settings import Settings
from memcube.wiring import Container
from memcube_api.app import create_app
from memcube_local.embedded import EmbeddedWorker
from memcube_local.wiring import LocalContainer
from tests.doubles import doubles_container

TESTS = Path(__file__).resolve().parent
EVENTS = TESTS.parent / "events"

# Lambda handlers run in-process: no X-Ray daemon, metrics in a test namespace.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MemcubeTests")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the folder it lives in (tests/unit -> `unit`), so a marker
    cannot drift from the folder; a folder with no marker registered in pyproject.toml fails the
    run (--strict-markers). Unit tests cannot open network sockets (pytest-socket); unix sockets
    stay open, since asyncio's event loops (the TestClient's) need a socket pair."""
    for item in items:
        parts = item.path.relative_to(TESTS).parts
        if len(parts) < 2:
            continue
        item.add_marker(parts[0])
        if parts[0] == "unit":
            item.add_marker(pytest.mark.disable_socket)


def by_id_event(memory_id: str, name: str = "api_get_memory_by_id.json") -> dict[str, Any]:
    """A sample by-id event naming `memory_id` (memory ids are random per task: the samples' own id
    names no memory of a test's store)."""
    event = load_event(name)
    old = event["pathParameters"]["memory_id"]
    event["rawPath"] = event["rawPath"].replace(old, memory_id)
    event["requestContext"]["http"]["path"] = event["requestContext"]["http"]["path"].replace(old, memory_id)
    event["pathParameters"]["memory_id"] = memory_id
    return event


def load_event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


@pytest.fixture(autouse=True)
def _main_thread_keeps_an_event_loop() -> Iterator[None]:
    """After each test the main thread has an event loop again. `asyncio.run` (anyio, the MCP
    and Playwright tests) leaves it with none, and Mangum (the Lambda entry, driven in-process by
    later tests) asks for the thread's loop, as the Lambda runtime's main thread always has one."""
    yield
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


@pytest.fixture
def event() -> Callable[[str], dict[str, Any]]:
    return load_event


@pytest.fixture
def memory_container() -> Container:
    """In-memory ports: the queue only records what was sent (no worker runs)."""
    return doubles_container()


@pytest.fixture
def embedded_container(tmp_path: Path) -> Iterator[Container]:
    """The embedded default on SQLite files in a temporary data dir, worker running."""
    container = LocalContainer(
        Settings(backend="embedded", embedder="hash", data_dir=tmp_path / "data", sync_timeout_seconds=20)
    )
    worker = EmbeddedWorker(container)
    worker.start()
    yield container
    worker.stop()
    container.close()


@pytest.fixture
def client(embedded_container: Container) -> TestClient:
    return TestClient(create_app(lambda: embedded_container))
