"""Runs the official MemOS SDK, unmodified, for the SDK suite: a JSON-lines bridge.

Run by the SDK venv's Python (tests/sdk/venv.py), never imported by memcube's tests. Each line on
stdin is a call `{"base_url", "api_key", "method", "kwargs"}` of `memos.api.client.MemOSClient`;
each answer line is `{"ok": true, "model", "result", "requests"}` or `{"ok": false, "error",
"requests"}`. For every call the driver checks what the suite relies on:

- the SDK returned its own response model for the method (it validated the body itself), and
  each HTTP body the server sent validates against that model again, here;
- `requests` lists every HTTP exchange the call made: the SDK retries any failure silently (three
  times), so a call that needed more than one request hid an error.

Protocol lines go to a duplicate of the original stdout; everything else written to stdout (the
SDK's logging prints there) goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

_protocol = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)

import requests  # noqa: E402 - after the stdout switch, so import-time prints stay off the protocol
from memos.api import product_models as models  # noqa: E402
from memos.api.client import MemOSClient  # noqa: E402
from pydantic import BaseModel  # noqa: E402

EXPECTED: dict[str, type[BaseModel] | None] = {
    "add_message": models.MemOSAddResponse,
    "get_task_status": models.MemOSGetTaskStatusResponse,
    "search_memory": models.MemOSSearchResponse,
    "get_memory": models.MemOSGetMemoryResponse,
    "get_memory_by_id": None,  # the SDK returns the raw JSON: its data is checked as a MemoryDetail
    "delete_memory": models.MemOSDeleteMemoryResponse,
    "add_feedback": models.MemOSAddFeedBackResponse,
    "create_knowledgebase": models.MemOSCreateKnowledgebaseResponse,
    "delete_knowledgebase": models.MemOSDeleteKnowledgebaseResponse,
    "add_knowledgebase_file_json": models.MemOSAddKnowledgebaseFileResponse,
    "add_knowledgebase_file_form": models.MemOSAddKnowledgebaseFileResponse,
    "delete_knowledgebase_file": models.MemOSDeleteKnowledgebaseResponse,
    "chat": models.MemOSChatResponse,  # stream=True: the SDK's iterator of SSE data strings instead
    "get_message": models.MemOSGetMessagesResponse,
    "update_memory": None,  # the SDK returns the raw JSON: its data is checked as a MemoryDetail
}

exchanges: list[dict[str, Any]] = []
_send = requests.Session.send


def _recording_send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
    response = _send(self, request, **kwargs)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:500]
    exchanges.append({"method": request.method, "url": request.url, "status": response.status_code, "body": body})
    return response


requests.Session.send = _recording_send  # type: ignore[method-assign]  # observe, not change, the SDK's HTTP


def _check(method: str, result: Any, raw: list[dict[str, Any]]) -> str:
    """The name of the model `result` is, after re-validating every raw body against it."""
    if isinstance(result, list):  # a streamed chat, read to its end: every data line is a JSON event
        for data in result:
            assert isinstance(json.loads(data).get("type"), str), data
        return "SSE data lines"
    model = EXPECTED[method]
    if model is None:
        assert isinstance(result, dict), type(result)
        for exchange in raw:
            models.MemoryDetail.model_validate(exchange["body"]["data"])
        return "dict (data: MemoryDetail)"
    assert isinstance(result, model), f"{method} returned {type(result).__name__}, not {model.__name__}"
    for exchange in raw:
        body = exchange["body"]
        if method == "get_task_status":  # the SDK's own normalization before it validates
            body = MemOSClient._normalize_task_status_response(body, result.data.task_id)  # type: ignore[attr-defined]
        model.model_validate(body)
    return model.__name__


def _call(line: dict[str, Any]) -> dict[str, Any]:
    exchanges.clear()
    client = MemOSClient(api_key=line["api_key"], base_url=line["base_url"])
    method = line["method"]
    try:
        result = getattr(client, method)(**line.get("kwargs", {}))
        if method == "chat" and not isinstance(result, BaseModel):
            result = list(result)  # `_iter_sse_data`: the stream's data payloads, as the SDK yields them
        name = _check(method, result, [e for e in exchanges if e["status"] < 400])
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "requests": list(exchanges)}
    dumped = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    return {"ok": True, "model": name, "result": dumped, "requests": list(exchanges)}


def main() -> None:
    import importlib.metadata

    hello = {"ready": True, "memoryos": importlib.metadata.version("MemoryOS"), "python": sys.version.split()[0]}
    _protocol.write(json.dumps(hello) + "\n")
    for raw in sys.stdin:
        if raw.strip():
            _protocol.write(json.dumps(_call(json.loads(raw))) + "\n")


if __name__ == "__main__":
    main()
