"""The test side of the SDK bridge: starts driver.py under the SDK venv's Python and calls
`memos.api.client.MemOSClient` methods through it (see driver.py for what each call checks)."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.sdk.venv import DRIVER, install_memos_sdk

START_TIMEOUT = 120.0
"""Importing `memos` loads scikit-learn and transformers: seconds on a quiet machine."""
CALL_TIMEOUT = 60.0
"""The SDK's own timeout is 30 s per request and it makes up to three."""


class SdkError(AssertionError):
    pass


class SdkBridge:
    def __init__(self, workdir: Path) -> None:
        python = install_memos_sdk()
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "memos-sdk-driver.log"
        # Hermetic: no MEMOS_* of the caller's shell (MEMOS_BASE_URL would redirect the SDK); the
        # SDK's log files go under workdir.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMOS_", "CUSTOM_LOGGER"))}
        env |= {"MEMOS_BASE_PATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(python), str(DRIVER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=workdir,
                env=env,
                text=True,
                bufsize=1,
            )
        self._selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.versions = self._read(START_TIMEOUT)
        assert self.versions.get("ready"), self.versions

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._selector.select(timeout=0.2):
                line = self.proc.stdout.readline()
                if line:
                    answer: dict[str, Any] = json.loads(line)
                    return answer
            if self.proc.poll() is not None:
                break
        self.close()
        raise SdkError(f"the SDK driver gave no answer within {timeout:g}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def call(self, base_url: str, api_key: str, method: str, **kwargs: Any) -> dict[str, Any]:
        """The driver's answer for `MemOSClient(api_key, base_url).<method>(**kwargs)`."""
        assert self.proc.stdin is not None
        line = {"base_url": base_url, "api_key": api_key, "method": method, "kwargs": kwargs}
        self.proc.stdin.write(json.dumps(line) + "\n")
        self.proc.stdin.flush()
        return self._read(CALL_TIMEOUT)

    def ok(self, base_url: str, api_key: str, method: str, **kwargs: Any) -> dict[str, Any]:
        """A call that must succeed in exactly one HTTP request; its validated result."""
        answer = self.call(base_url, api_key, method, **kwargs)
        if not answer["ok"]:
            raise SdkError(f"{method} failed: {answer['error']}\nrequests: {answer['requests']}")
        assert len(answer["requests"]) == 1, f"{method} took {len(answer['requests'])} requests: {answer['requests']}"
        self.last_body: dict[str, Any] = answer["requests"][0]["body"]
        """The server's JSON as sent (the SDK's models drop fields they do not declare)."""
        result: dict[str, Any] = answer["result"]
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._selector.close()
