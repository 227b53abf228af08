"""Point 3, dependency outages: the index down for a while (adds accepted and stored, the status
saying they are stored but not yet searchable, indexing caught up after recovery), the LLM failing
or timing out (retried with the reason shown, then completed). DynamoDB throttling: test_throttling."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from memcube.adapters.openai_compat import OpenAICompatibleLLM
from memcube.domain.organizer import INDEX_DOWN_NOTE
from memcube.settings import Settings
from memcube_api.app import create_app
from memcube_local.embedded import EmbeddedWorker
from memcube_local.sqlite.index import SqliteIndex
from memcube_local.wiring import LocalContainer
from tests.fakes import Reply, Seen, running_fake_openai
from tests.lambda_support import call
from tests.reliability.conftest import Figures
from tests.reliability.faults import Faulty
from tests.reliability.harness import Stack
from tests.reliability.test_crash_points import fine_rule

CUBES = ["kb-a", "kb-b", "kb-c"]


def notes_for(n: int, cube: str) -> str:
    return f"Outage note {n} for {cube}: the {cube} pump {n} was serviced on day {n + 1}."


def test_an_index_outage_accepts_and_stores_adds_tells_the_truth_and_catches_up(figures: Figures) -> None:
    stack = Stack()
    with stack.serving():
        stack.add({"user_id": "ops", "writable_cube_ids": ["kb-a"], "messages": notes_for(0, "kb-a"), "task_id": "pre"})
        stack.sqs.drain_all()
        stack.index.down()  # every index call fails: writes and searches
        tasks = {}
        for n in range(1, 7):
            cube = CUBES[n % 3]
            body = {"user_id": "ops", "writable_cube_ids": [cube], "messages": notes_for(n, cube), "task_id": f"t{n}"}
            assert stack.add(body)["code"] == 200  # accepted while the index is down
            tasks[f"t{n}"] = cube
        tasks["repeat"] = "kb-a"  # an exact repeat of an indexed item: still a duplicate, by the store's guard
        stack.add(
            {"user_id": "ops", "writable_cube_ids": ["kb-a"], "messages": notes_for(0, "kb-a"), "task_id": "repeat"}
        )
        stack.sqs.deliver()
        during = {t: stack.status("ops", t) for t in tasks}
        heads = {cube: next(t for t in tasks if tasks[t] == cube) for cube in CUBES}
        for task_id, task in during.items():
            [part] = task["cubes"]
            if task_id not in heads.values():  # behind its cube's first add, in order: not started
                assert (task["status"], part["attempts"], part["outcomes"]) == ("waiting", 0, []), task
                continue
            assert task["status"] == "in_progress", task
            assert part["error"].startswith("retrying: index write failed (IndexUnavailable"), part
            assert "the memories are stored but not yet searchable" in part["error"]
            [outcome] = part["outcomes"]
            assert outcome["outcome"] == "added", part
            code, got = call("GET", f"/product/get_memory/{outcome['memory_id']}", query="user_id=ops")
            assert code == 200, got  # stored: readable by id from the system of record
            assert INDEX_DOWN_NOTE in part["notes"]  # near duplicates were looked for by wording only
        code, answer = call(
            "POST", "/product/search", body={"user_id": "ops", "query": "pump", "readable_cube_ids": CUBES}
        )
        assert (code, answer["code"]) == (503, 503), answer  # a clear, retryable refusal, never a 500
        assert stack.differences() == 3  # each cube's stored first add, not yet indexed

        stack.index.up()
        stack.sqs.drain_all()
        for task_id in tasks:
            task = stack.status("ops", task_id)
            [part] = task["cubes"]
            attempts = 2 if task_id in heads.values() else 1
            assert (task["status"], part["error"], part["attempts"]) == ("completed", None, attempts), task
            if task_id in heads.values():  # the memory stored during the outage, now searchable
                assert part["outcomes"][0]["memory_id"] == during[task_id]["cubes"][0]["outcomes"][0]["memory_id"]
        repeat = stack.status("ops", "repeat")["cubes"][0]["outcomes"]
        assert [o["outcome"] for o in repeat] == ["duplicate"]
        assert stack.differences() == 0
        query = {"user_id": "ops", "query": "pump serviced", "readable_cube_ids": CUBES, "relativity": 0}
        code, answer = call("POST", "/product/search", body=query)
        found = {m["id"] for c in answer["data"]["text_mem"] for m in c["memories"]}
        outcomes = [o for n in range(1, 7) for o in stack.status("ops", f"t{n}")["cubes"][0]["outcomes"]]
        assert found >= {o["memory_id"] for o in outcomes}, found  # every add of the outage is searchable now
    figures.record("3 outages", index_down_adds_accepted=len(tasks), index_down_cube_heads_stored=len(CUBES),
                   differences_after_recovery=0)  # fmt: skip


def test_on_the_embedded_default_indexing_catches_up_after_an_outage_of_seconds(
    tmp_path: Path, figures: Figures
) -> None:
    """The real embedded worker threads and durable queue (retries with jittered backoff): the
    index of `memcube serve` refuses everything for two seconds, then comes back."""
    data = tmp_path / "data"
    index = Faulty(SqliteIndex(data / "index.db"))
    # Ten attempts: the jittered backoff of five could add up to less than the outage (a flaky test).
    settings = Settings(backend="embedded", embedder="hash", data_dir=data, max_receive_count=10)
    container = LocalContainer(settings, index=index)
    worker = EmbeddedWorker(container)
    worker.start()
    try:
        client = TestClient(create_app(lambda: container))

        def status(task_id: str) -> dict[str, Any]:
            answer = client.get("/product/scheduler/status", params={"user_id": "ops", "task_id": task_id})
            task: dict[str, Any] = answer.json()["data"][0]
            return task

        index.down()
        started = time.monotonic()
        ids = []
        for n in range(12):
            cube = CUBES[n % 3]
            body = {"user_id": "ops", "writable_cube_ids": [cube], "messages": notes_for(n, cube)}
            answer = client.post("/product/add", json=body)
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["task_id"])
        deadline = time.monotonic() + 10
        while True:  # each cube's first add stored and said to wait for the index; the rest wait in order
            parts = [status(t) for t in ids]
            stored = [
                p for p in parts if p["cubes"][0]["outcomes"] and "not yet searchable" in (p["cubes"][0]["error"] or "")
            ]
            if len(stored) == len(CUBES):
                break
            assert time.monotonic() < deadline, parts
            time.sleep(0.05)
        assert {p["task_id"] for p in stored} == set(ids[: len(CUBES)])
        assert all(p["status"] in {"in_progress", "waiting"} for p in parts)
        time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
        index.up()
        recovered = time.monotonic()
        while True:
            parts = [status(t) for t in ids]
            if all(p["status"] == "completed" for p in parts):
                break
            assert time.monotonic() < recovered + 30, [p for p in parts if p["status"] != "completed"]
            time.sleep(0.05)
        caught_up = time.monotonic() - recovered
        reconcile = [container.maintenance.reconcile(c).differences for c in CUBES]
        assert reconcile == [0, 0, 0]
        assert sum(container.memories.list_memories(c, 0, 100)[1] for c in CUBES) == 12
    finally:
        index.up()
        worker.stop()
        container.close()
    figures.record(
        "3 outages", embedded_index_down_seconds=2.0, embedded_caught_up_seconds_after_recovery=round(caught_up, 2)
    )


def _chat(content: str) -> Reply:
    return Reply(body={
        "id": "chatcmpl-r", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    })  # fmt: skip


@pytest.mark.parametrize("failure", ["503", "timeout"])
def test_an_llm_that_fails_or_times_out_is_retried_with_the_reason_then_completes(
    failure: str, figures: Figures
) -> None:
    """The OpenAI-compatible adapter against a local fake of the API: the model answers 503 (or
    more slowly than the timeout) for the first deliveries, then works: the part shows why it
    waits, then completes in fine mode with nothing doubled."""
    with running_fake_openai() as fake:
        bad = {"left": 2}

        def rule(seen: Seen) -> Reply:
            if bad["left"] > 0:
                bad["left"] -= 1
                if failure == "503":
                    return Reply(503, {"error": {"message": "model overloaded", "type": "server_error"}})
                return Reply(delay=1.5)
            system, user = (m["content"] for m in seen.body["messages"])
            return _chat(fine_rule(system, user))

        fake.rule = rule
        llm = OpenAICompatibleLLM(fake.base_url, "m", timeout=0.5, max_retries=0)
        stack = Stack(llm=llm)
        with stack.serving():
            stack.add({"user_id": "ann", "messages": "I live in Lisbon.", "task_id": "t1"})
            stack.sqs.deliver()
            [part] = stack.status("ann", "t1")["cubes"]
            assert part["status"] == "in_progress" and part["outcomes"] == []
            assert part["error"].startswith("retrying: LLMUnavailable"), part
            assert ("503" in part["error"]) if failure == "503" else ("timed out" in part["error"].lower()), part
            stack.sqs.drain_all()
            task = stack.status("ann", "t1")
            [part] = task["cubes"]
            assert (task["status"], part["mode"], part["attempts"], part["error"]) == ("completed", "fine", 3, None)
            assert [o["outcome"] for o in part["outcomes"]] == ["added"]
            assert [i.memory for i in stack.memory.memories.iter_memories()] == ["The user lives in Lisbon."]
            assert stack.differences() == 0
    figures.record("3 outages", **{f"llm_{failure}_deliveries_until_completed": 3})
