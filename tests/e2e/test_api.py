"""The README's round trip, sync adds, idempotency and bad input, over real HTTP against `memcube serve`."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.e2e.conftest import ServeFactory, Server

# The README's conversation, verbatim.
CONVERSATION: list[dict[str, Any]] = [
    {"role": "user", "content": "I moved to Lisbon last May.", "chat_time": "2025-06-01T09:00:00Z"},
    {"role": "assistant", "content": "Lisbon! Do you still work remotely?"},
    {"role": "user", "content": "Yes, for a Berlin startup."},
]


def test_readme_round_trip_add_status_read_back(server: Server) -> None:
    accepted = server.add_ok(
        {"user_id": "alice", "messages": CONVERSATION, "custom_tags": ["relocation"], "info": {"app_id": "demo"}}
    )
    task_id = accepted["task_id"]
    assert accepted["message"] == "Memory add task accepted"
    assert accepted["data"] == [{"cube_id": "alice", "task_id": task_id, "status": "waiting"}]

    task = server.wait("alice", task_id)
    assert task["status"] == "completed", task
    assert task["user_id"] == "alice"
    [part] = task["cubes"]
    assert (part["cube_id"], part["status"], part["error"]) == ("alice", "completed", None)
    [outcome] = part["outcomes"]
    assert outcome["outcome"] == "added"
    memory_id = outcome["memory_id"]
    assert memory_id

    one = server.memory(memory_id, "alice")
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["code"] == 200
    item = body["data"]
    assert item["id"] == memory_id
    assert item["memory"].splitlines() == [
        "[2025-06-01 09:00]",
        "user: I moved to Lisbon last May.",
        "assistant: Lisbon! Do you still work remotely?",
        "user: Yes, for a Berlin startup.",
    ]
    assert (item["metadata"]["event_time"], item["metadata"]["event_time_end"]) == ("2025-06-01T09:00:00.000Z",) * 2
    meta = item["metadata"]
    assert [(s["role"], s["chat_time"], s["content"]) for s in meta["sources"]] == [
        (m["role"], m.get("chat_time"), m["content"]) for m in CONVERSATION
    ]
    assert (meta["cube_id"], meta["user_id"], meta["task_id"]) == ("alice", "alice", task_id)
    assert meta["custom_tags"] == ["relocation"]
    assert meta["info"] == {"app_id": "demo"}
    assert meta["memory_type"] == outcome["memory_type"] == "LongTermMemory"
    assert "embedding" not in meta

    page = server.page("alice", "alice", page=1, page_size=20)
    [text_mem] = page["text_mem"]
    assert text_mem["cube_id"] == "alice"
    assert text_mem["total_nodes"] == 1
    assert [m["id"] for m in text_mem["memories"]] == [memory_id]
    assert "embedding" not in text_mem["memories"][0]["metadata"]
    beyond = server.page("alice", "alice", page=2, page_size=1)["text_mem"][0]
    assert (beyond["memories"], beyond["total_nodes"]) == ([], 1)

    # Without task_id: the user's recent tasks, ours among them.
    recent = server.http.get("/product/scheduler/status", params={"user_id": "alice"}).json()["data"]
    assert [t["task_id"] for t in recent] == [task_id]
    # Unknown ids are 404 in the envelope, over HTTP too.
    missing = server.http.get("/product/scheduler/status", params={"user_id": "alice", "task_id": "nope"})
    assert (missing.status_code, missing.json()["code"]) == (404, 404)
    gone = server.memory("no-such-memory", "alice")
    assert (gone.status_code, gone.json()["code"]) == (404, 404)


def test_sync_add_returns_memories_and_a_repeat_is_a_duplicate(server: Server) -> None:
    body = {"user_id": "bob", "messages": "Bob's sister lives in Porto.", "async_mode": "sync", "mode": "fast"}
    first = server.add_ok(body)
    [added] = first["data"]
    assert added["outcome"] == "added", first
    assert added["memory"] == "Bob's sister lives in Porto."
    assert (added["cube_id"], added["memory_type"]) == ("bob", "LongTermMemory")
    assert added["reason"]
    assert first["message"].startswith("Memory added successfully: 1 added")

    again = server.add_ok(body)
    [duplicate] = again["data"]
    assert duplicate["outcome"] == "duplicate", again
    assert duplicate["memory_id"] == added["memory_id"]
    assert duplicate["memory"] == added["memory"]
    assert again["task_id"] != first["task_id"]

    # The same content with other whitespace is the same content.
    spaced = server.add_ok(body | {"messages": "Bob's  sister lives\nin Porto. "})
    assert [(d["outcome"], d["memory_id"]) for d in spaced["data"]] == [("duplicate", added["memory_id"])]

    assert server.total("bob", "bob") == 1
    status = server.status("bob", again["task_id"])
    assert [(o["outcome"], o["memory_id"]) for o in status["cubes"][0]["outcomes"]] == [
        ("duplicate", added["memory_id"])
    ]


def test_same_task_id_or_idempotency_key_twice_is_one_task(server: Server) -> None:
    body = {"user_id": "cy", "messages": "Cy prefers green tea.", "task_id": "order-1"}
    first = server.add_ok(body)
    second = server.add_ok(body)
    assert first["task_id"] == second["task_id"] == "order-1"
    assert "repeated request" in second["message"]

    keyed = {"user_id": "cy", "messages": "Cy plays chess on Sundays."}
    headers = {"Idempotency-Key": "client-key-1"}
    a = server.add_ok(keyed, headers)
    b = server.add_ok(keyed, headers)
    assert a["task_id"] == b["task_id"]
    assert "repeated request" in b["message"]

    # The same key from many connections at once: still one task.
    raced = {"user_id": "cy", "messages": "Cy collects stamps."}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: server.add(raced, {"Idempotency-Key": "race"}), range(8)))
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
    assert len({r.json()["task_id"] for r in answers}) == 1

    # A task id or key reused for a different add is a conflict, and changes nothing.
    clash = server.add(body | {"messages": "something else"})
    assert (clash.status_code, clash.json()["code"]) == (409, 409), clash.text
    clash = server.add(keyed | {"messages": "something else"}, headers)
    assert (clash.status_code, clash.json()["code"]) == (409, 409), clash.text

    tasks = [first["task_id"], a["task_id"], answers[0].json()["task_id"]]
    finished = server.wait_all("cy", tasks)
    assert [t["status"] for t in finished] == ["completed"] * 3
    assert [[o["outcome"] for o in t["cubes"][0]["outcomes"]] for t in finished] == [["added"]] * 3
    assert [p["attempts"] for t in finished for p in t["cubes"]] == [1, 1, 1]
    items = server.items("cy", "cy")
    assert sorted(i["memory"] for i in items) == sorted(
        ["Cy prefers green tea.", "Cy plays chess on Sundays.", "Cy collects stamps."]
    )
    recent = server.http.get("/product/scheduler/status", params={"user_id": "cy"}).json()["data"]
    assert sorted(t["task_id"] for t in recent) == sorted(tasks)


BAD_INPUTS: list[tuple[str, str, dict[str, Any], int]] = [
    # (label, path, httpx.request kwargs, expected status)
    ("broken JSON", "/product/add", {"content": b'{"user_id": "x", "messages": ['}, 400),
    ("not JSON at all", "/product/add", {"content": b"user_id=x"}, 400),
    ("invalid UTF-8", "/product/add", {"content": b'{"user_id": "x", "messages": "\xff\xfe"}'}, 400),
    ("empty body", "/product/add", {"content": b""}, 400),
    ("JSON array", "/product/add", {"content": b"[1, 2]"}, 422),
    ("missing user_id", "/product/add", {"content": b'{"messages": "hi"}'}, 422),
    ("unknown field", "/product/add", {"content": b'{"user_id": "x", "messages": "hi", "usr": 1}'}, 422),
    ("bad role", "/product/add", {"content": b'{"user_id": "x", "messages": [{"role": "bot", "content": "a"}]}'}, 422),
    ("bad id", "/product/add", {"content": b'{"user_id": "../etc", "messages": "hi"}'}, 422),
    ("deep nesting", "/product/add", {"content": b"[" * 5000 + b"]" * 5000}, 400),
    ("text/plain", "/product/add", {"content": b'{"user_id": "x", "messages": "hi"}', "ctype": "text/plain"}, 415),
    ("form", "/product/add", {"content": b"user_id=x", "ctype": "application/x-www-form-urlencoded"}, 415),
    ("no content type", "/product/add", {"content": b'{"user_id": "x", "messages": "hi"}', "ctype": None}, 415),
    ("latin-1", "/product/add", {"content": b'{"user_id": "x"}', "ctype": "application/json; charset=latin-1"}, 415),
    ("too large", "/product/add", {"content": b'{"user_id": "x", "messages": "' + b"a" * 1_100_000 + b'"}'}, 413),
    (
        "too large, chunked",
        "/product/add",
        {"chunks": [b'{"user_id": "x", "messages": "', b"a" * 1_100_000, b'"}']},
        413,
    ),
    ("broken JSON, get_memory", "/product/get_memory", {"content": b'{"mem_cube_id": '}, 400),
    ("get_memory form", "/product/get_memory", {"content": b"mem_cube_id=x", "ctype": "text/plain"}, 415),
    ("get_memory page 0", "/product/get_memory", {"content": b'{"mem_cube_id": "x", "page": 0}'}, 422),
]


def _send(server: Server, path: str, spec: dict[str, Any]) -> httpx.Response:
    ctype = spec.get("ctype", "application/json")
    headers = {} if ctype is None else {"content-type": ctype}
    if "chunks" in spec:
        chunks: list[bytes] = spec["chunks"]
        return server.http.post(path, content=iter(chunks), headers=headers)  # no Content-Length: chunked
    return server.http.post(path, content=spec["content"], headers=headers)


def test_bad_input_over_http_is_a_4xx_envelope_never_5xx(server: Server) -> None:
    problems = []
    for label, path, spec, expected in BAD_INPUTS:
        response = _send(server, path, spec)
        try:
            body = response.json()
        except ValueError:
            problems.append(f"{label}: {response.status_code}, not JSON: {response.text[:200]!r}")
            continue
        if response.status_code != expected or body.get("code") != expected or not body.get("message"):
            problems.append(f"{label}: expected {expected}, got {response.status_code} {response.text[:300]}")
    # GET routes with bad query parameters: 4xx too.
    for params in ({}, {"user_id": ""}, {"user_id": "x", "task_id": ""}):
        response = server.http.get("/product/scheduler/status", params=params)
        if not 400 <= response.status_code < 500 or response.json().get("code") != response.status_code:
            problems.append(f"status {params}: {response.status_code} {response.text[:200]}")
    assert not problems, "\n".join(problems)

    # Nothing was accepted, and the server is still well.
    assert server.http.get("/health").status_code == 200
    assert server.http.get("/product/scheduler/status", params={"user_id": "x"}).json()["data"] == []
    assert server.add_ok({"user_id": "x", "messages": "still fine", "async_mode": "sync"})["data"][0]["outcome"] == (
        "added"
    )


def test_a_waiting_sync_add_does_not_block_other_requests(serve: ServeFactory) -> None:
    # No workers: the sync add can only wait out its (shortened) timeout and answer 202.
    server = serve(workers=0, env={"MEMCUBE_SYNC_TIMEOUT_SECONDS": "3"})
    answer: dict[str, Any] = {}

    def sync_add() -> None:
        started = time.monotonic()
        response = server.add({"user_id": "dan", "messages": "Dan waits.", "async_mode": "sync"})
        answer.update(status=response.status_code, body=response.json(), seconds=time.monotonic() - started)

    thread = threading.Thread(target=sync_add)
    thread.start()
    time.sleep(0.5)  # the sync add is now waiting for its task
    started = time.monotonic()
    health = server.http.get("/health", timeout=10)
    health_seconds = time.monotonic() - started
    thread.join(15)
    assert (answer["status"], answer["body"]["code"]) == (202, 202), answer
    assert answer["body"]["data"] == [{"cube_id": "dan", "task_id": answer["body"]["task_id"], "status": "waiting"}]
    assert health.status_code == 200
    assert health_seconds < 1.0, f"GET /health took {health_seconds:.1f}s while a sync add was waiting"
