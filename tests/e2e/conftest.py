"""A real `memcube serve` process on a free port, and HTTP helpers for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.net import free_port

MEMCUBE = Path(sys.executable).parent / "memcube"


@dataclass
class Server:
    data_dir: Path
    port: int = field(default_factory=free_port)
    workers: int = 2
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Server:
        cmd = [str(MEMCUBE), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        cmd += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"memcube serve exited early: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("memcube serve did not answer /health in time")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def add(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        return httpx.post(f"{self.url}/product/add", json=body, headers=headers, timeout=30)

    def status(self, user_id: str, task_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url}/product/scheduler/status", params={"user_id": user_id, "task_id": task_id}, timeout=10
        )
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()["data"][0]
        return task

    def wait(self, user_id: str, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            task = self.status(user_id, task_id)
            if task["status"] in {"completed", "failed"} or time.monotonic() > deadline:
                return task
            time.sleep(0.05)

    def cube(self, cube_id: str, user_id: str, page_size: int = 100) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/product/get_memory",
            json={"mem_cube_id": cube_id, "user_id": user_id, "page_size": page_size},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()["data"]["text_mem"][0]
        return page


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers on demand (`serve(workers=0)`); every one is stopped at teardown."""
    started: list[Server] = []

    def start(data_dir: Path | None = None, workers: int = 2) -> Server:
        server = Server(data_dir=data_dir or tmp_path / "data", workers=workers).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
