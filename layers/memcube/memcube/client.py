"""A small HTTP client for a running memcube (local or on AWS), used by the `memcube` CLI.

It speaks the `/product/*` API, retries 429 and 5xx answers with exponential backoff (honouring
`Retry-After`), and raises `ApiError` with the server's MemOS envelope message on a 4xx. It
imports nothing of the server: httpx only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

RETRYABLE = frozenset({429, 500, 502, 503, 504})


class ApiError(Exception):
    """The server refused the request (its envelope's code and message)."""

    def __init__(self, status: int, message: str, data: Any = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.data = data


class MemcubeClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 35.0,
        retries: int = 4,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Authorization": f"Token {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers, transport=transport)
        self._retries = retries
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MemcubeClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None) -> Any:
        """The envelope's `data` (`envelope` returns the whole envelope, with `task_id`)."""
        return self.envelope(method, path, body=body, params=params).get("data")

    def envelope(
        self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        for attempt in range(self._retries + 1):
            try:
                response = self._http.request(method, path, json=body, params=params)
            except httpx.TransportError:
                if attempt == self._retries:
                    raise
                self._sleep(_backoff(attempt, None))
                continue
            if response.status_code in RETRYABLE and attempt < self._retries:
                self._sleep(_backoff(attempt, response.headers.get("retry-after")))
                continue
            try:
                payload: dict[str, Any] = response.json()
            except ValueError:
                payload = {"message": response.text[:200]}
            if response.status_code >= 400:
                raise ApiError(response.status_code, str(payload.get("message", "")), payload.get("data"))
            return payload
        raise AssertionError("unreachable: the last attempt returns or raises")

    # --- the API, one method per route -----------------------------------------------------

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.envelope("POST", "/product/add", body=body)

    def status(self, user_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        params = {"user_id": user_id} | ({"task_id": task_id} if task_id else {})
        data: list[dict[str, Any]] = self.request("GET", "/product/scheduler/status", params=params)
        return data

    def wait(self, user_id: str, task_id: str, timeout: float = 120.0, poll: float = 0.2) -> dict[str, Any]:
        """Poll a task until it is finished (completed, failed or cancelled) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            [task] = self.status(user_id, task_id)
            if task["status"] in {"completed", "failed", "cancelled"} or time.monotonic() >= deadline:
                return task
            self._sleep(poll)
            poll = min(poll * 1.5, 2.0)

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self.request("POST", "/product/search", body=body)
        return data

    def get(self, memory_id: str, user_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", f"/product/get_memory/{memory_id}", params={"user_id": user_id})
        return data

    def history(self, memory_id: str, user_id: str) -> dict[str, Any]:
        path = f"/product/get_memory_history/{memory_id}"
        data: dict[str, Any] = self.request("GET", path, params={"user_id": user_id})
        return data

    def undo(self, memory_id: str, user_id: str) -> dict[str, Any]:
        body = {"user_id": user_id, "memory_id": memory_id}
        data: dict[str, Any] = self.request("POST", "/product/undo_memory", body=body)
        return data

    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self.request("POST", "/product/delete_memory", body=body)
        return data

    def delete_cube(self, user_id: str, cube_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.request(
            "POST", "/product/delete_cube", body={"user_id": user_id, "cube_id": cube_id}
        )
        return data

    def export(self, user_id: str, cube_id: str, page_size: int = 200) -> Iterator[dict[str, Any]]:
        """Every item of the cube, page by page."""
        cursor: str | None = None
        while True:
            body = {"user_id": user_id, "cube_id": cube_id, "limit": page_size, "cursor": cursor}
            data = self.request("POST", "/product/export_memory", body=body)
            yield from data["items"]
            cursor = data["next_cursor"]
            if cursor is None:
                return

    def import_items(self, user_id: str, cube_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        body = {"user_id": user_id, "cube_id": cube_id, "items": items}
        data: dict[str, Any] = self.request("POST", "/product/import_memory", body=body)
        return data


def _backoff(attempt: int, retry_after: str | None) -> float:
    """The server's Retry-After when it gives one (seconds), else full-jitter exponential."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), 60.0)
        except ValueError:
            pass
    return random.uniform(0, min(8.0, 0.25 * 2**attempt))
