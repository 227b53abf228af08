"""A real `memcube serve` process on a free port and a tmp data dir, and HTTP helpers for it.

The server is the installed console script (the README's `make run`), talked to over real HTTP
with httpx. Its stdout and stderr go to a log file (never an undrained pipe, which would block the
server once full); every failure to start quotes that log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.net import free_port

MEMCUBE = Path(sys.executable).parent / "memcube"
START_TIMEOUT = 20.0
TERMINAL = frozenset({"completed", "failed"})


class Server:
    """One `memcube serve` subprocess."""

    def __init__(
        self,
        data_dir: Path,
        workers: int,
        log_path: Path,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.log_path = log_path
        self.port = port or free_port()  # a fixed port: restarts a client finds at the same address
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=30)
        cmd = [str(MEMCUBE), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--data-dir", str(data_dir), "--workers", str(workers)]
        # Hermetic: no MEMCUBE_* from the caller's shell leaks in; the test's own settings do. The
        # hash embedder unless a test asks for the local model (it loads in seconds, per server).
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MEMCUBE_")}
        environ |= {"MEMCUBE_EMBEDDER": "hash"} | (env or {})
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environ
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> Server:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(f"memcube serve exited with {code} before answering /health:\n{self.output()}")
            try:
                response = self.http.get("/health", timeout=1)
                if response.status_code == 200 and response.json() == {"status": "ok"}:
                    return self
                last = f"{response.status_code} {response.text}"
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.05)
        self.kill()
        raise AssertionError(
            f"memcube serve did not answer GET /health within {timeout:g}s (last: {last!r}):\n{self.output()}"
        )

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, leases and half-done work stay as they are on disk."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, grace: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within `grace` seconds; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self.http.close()
        code = self.proc.returncode
        assert code is not None
        return code

    # --- the API ---------------------------------------------------------------------------

    def add(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        return self.http.post("/product/add", json=body, headers=headers)

    def add_ok(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        """POST /product/add expecting 200 and the envelope; the parsed answer."""
        response = self.add(body, headers)
        assert response.status_code == 200, f"{response.status_code} {response.text}"
        answer: dict[str, Any] = response.json()
        assert answer["code"] == 200, answer
        assert isinstance(answer["data"], list), answer
        assert answer["task_id"], answer
        return answer

    def status(self, user_id: str, task_id: str) -> dict[str, Any]:
        response = self.http.get("/product/scheduler/status", params={"user_id": user_id, "task_id": task_id})
        assert response.status_code == 200, f"{response.status_code} {response.text}"
        [task] = response.json()["data"]
        assert task["task_id"] == task_id, task
        return dict(task)

    def wait(self, user_id: str, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll the task's status until it is completed or failed; fail the test on timeout."""
        deadline = time.monotonic() + timeout
        pause = 0.02
        while True:
            task = self.status(user_id, task_id)
            if task["status"] in TERMINAL:
                return task
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} still {task['status']} after {timeout:g}s: {task}")
            if self.proc.poll() is not None:
                raise AssertionError(f"memcube serve died while task {task_id} was {task['status']}:\n{self.output()}")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)

    def wait_all(self, user_id: str, task_ids: list[str], timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        return [self.wait(user_id, t, max(0.1, deadline - time.monotonic())) for t in task_ids]

    def memory(self, memory_id: str, user_id: str) -> httpx.Response:
        return self.http.get(f"/product/get_memory/{memory_id}", params={"user_id": user_id})

    def page(self, cube_id: str, user_id: str, page: int = 1, page_size: int = 100) -> dict[str, Any]:
        response = self.http.post(
            "/product/get_memory",
            json={"mem_cube_id": cube_id, "user_id": user_id, "page": page, "page_size": page_size},
        )
        assert response.status_code == 200, f"{response.status_code} {response.text}"
        data: dict[str, Any] = response.json()["data"]
        return data

    def total(self, cube_id: str, user_id: str) -> int:
        [text_mem] = self.page(cube_id, user_id, page_size=1)["text_mem"]
        assert text_mem["cube_id"] == cube_id
        return int(text_mem["total_nodes"])

    def items(self, cube_id: str, user_id: str) -> list[dict[str, Any]]:
        """Every memory of the cube, page by page."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            [text_mem] = self.page(cube_id, user_id, page=page)["text_mem"]
            out.extend(text_mem["memories"])
            if len(text_mem["memories"]) < 100:
                assert len(out) == text_mem["total_nodes"], (len(out), text_mem["total_nodes"])
                return out
            page += 1


ServeFactory = Callable[..., Server]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeFactory]:
    """Start servers on demand: `serve()`, `serve(data_dir=d, workers=0, env={...})`. Each waits for
    `/health`; every one still running is stopped at teardown (SIGTERM, then kill)."""
    started: list[Server] = []

    def start(data_dir: Path | None = None, workers: int = 2, env: dict[str, str] | None = None) -> Server:
        data_dir = data_dir or tmp_path / "data"
        server = Server(data_dir, workers, tmp_path / f"serve-{len(started)}.log", env)
        started.append(server)
        return server.wait_healthy()

    yield start
    for server in started:
        server.stop(grace=5.0)


@pytest.fixture
def server(serve: ServeFactory) -> Server:
    """One `memcube serve` with the default two workers on a fresh data dir."""
    return serve()
