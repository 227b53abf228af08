"""The llm tier: memcube's LLM paths against a real OpenAI-compatible server on loopback,
llama-cpp-python's server with SmolLM2-135M-Instruct (tests/llm/venv.py installs both; `make test`
does it before pytest). One server for the whole session: it loads the model once (about a
second) and answers one request at a time, so the tests keep every generation short.

The model is tiny: the tests check the plumbing (requests, JSON mode and repair, timeouts,
refusals, task outcomes), never what it judged or extracted.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ServeFactory, Server, serve  # noqa: F401 - `serve` is a fixture used here
from tests.llm.venv import PYTHON, installed, model_path
from tests.net import free_port

MODEL = "smollm2-135m-instruct"
"""The alias the server answers to (its /v1/models lists only this)."""
API_KEY = "sk-llm-tier"
"""The server requires it, so the tier can check that a wrong key is refused and never echoed."""
CONTEXT = 2048
"""Tokens of context: the fine reader's prompt (about 500) plus a reply, and a bound on any
runaway generation."""
MAX_OUTPUT_TOKENS = 160
"""Every completion memcube asks for in this tier: room for a small JSON reply."""
START_TIMEOUT = 90.0


@dataclass(frozen=True)
class LlamaServer:
    base_url: str
    """`http://127.0.0.1:<port>/v1`, as MEMCUBE_LLM_BASE_URL takes it."""
    model: str
    api_key: str
    log: Path
    proc: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def idle(self, timeout: float = 120.0) -> None:
        """Wait until the server answers a one-token completion: it serves one request at a time,
        and a request whose client gave up still runs to its end (bounded by the context)."""
        body = {"model": self.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
        headers = {"Authorization": f"Bearer {self.api_key}"}
        response = httpx.post(f"{self.base_url}/chat/completions", json=body, headers=headers, timeout=timeout)
        assert response.status_code == 200, f"{response.status_code} {response.text}\n{self.output()}"


def _wait_ready(server: LlamaServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last: object = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"the llama server exited with {server.proc.returncode}:\n{server.output()}")
        try:
            response = httpx.get(
                f"{server.base_url}/models", headers={"Authorization": f"Bearer {server.api_key}"}, timeout=2
            )
            if response.status_code == 200 and [m["id"] for m in response.json()["data"]] == [server.model]:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(
        f"the llama server did not list its model within {START_TIMEOUT:g}s ({last!r}):\n{server.output()}"
    )


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's server on a free loopback port: 2 threads, a small context, a key."""
    if not installed():
        pytest.fail(
            "the llm tier's server is not installed (or is out of date): run `make test-llm-server` "
            "(`make test` does); it builds llama-cpp-python from source, about 20 minutes on 2 cores"
        )
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "llama-server.log"
    cmd = [str(PYTHON), "-m", "llama_cpp.server", "--model", str(model_path()), "--model_alias", MODEL]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--api_key", API_KEY, "--n_ctx", str(CONTEXT)]
    cmd += ["--n_threads", "2", "--n_threads_batch", "2", "--seed", "7", "--verbose", "false"]
    # HOST and PORT in the environment would override --host and --port (its __main__ reads them).
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "CONFIG_FILE")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env | {"PYTHONUNBUFFERED": "1"}
        )
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", MODEL, API_KEY, log, proc)
    try:
        _wait_ready(server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def memcube_with_llm(serve: ServeFactory, llama_server: LlamaServer) -> Server:  # noqa: F811 - the imported fixture
    """`memcube serve` (embedded default, hash embedder) in fine mode on the real server; one worker,
    since the server answers one request at a time anyway."""
    env = {
        "MEMCUBE_LLM": "openai",
        "MEMCUBE_LLM_BASE_URL": llama_server.base_url,
        "MEMCUBE_LLM_MODEL": llama_server.model,
        "MEMCUBE_LLM_API_KEY": llama_server.api_key,
        "MEMCUBE_LLM_MAX_OUTPUT_TOKENS": str(MAX_OUTPUT_TOKENS),
        "MEMCUBE_LLM_TIMEOUT_SECONDS": "90",
        "MEMCUBE_LLM_MAX_RETRIES": "0",
        "MEMCUBE_MAX_RECEIVE_COUNT": "1",
        "MEMCUBE_SYNC_TIMEOUT_SECONDS": "5",
    }
    return serve(env=env, workers=1)
