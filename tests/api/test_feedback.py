"""POST /product/feedback (MemOS's APIFeedbackRequest) through the Lambda entry on the embedded
default: the same feedback path an `is_feedback` add takes, async (a task whose status shows the
plan and each memory's outcome) and sync (`{answer, record: {add, update}}`), narrowed by
`retrieved_memory_ids`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memcube.settings import Settings
from memcube.wiring import Container
from memcube_local.embedded import EmbeddedWorker
from memcube_local.wiring import LocalContainer
from tests.api.conftest import assert_nothing_written
from tests.lambda_support import call, serving
from tests.unit.world import ScriptedLLM

LISBON = "Alice lives in Lisbon near the castle."
HISTORY = [{"role": "user", "content": "Where do I live?"}, {"role": "assistant", "content": "You live in Lisbon."}]


@pytest.fixture
def api(embedded_container: Container) -> Iterator[Container]:
    with serving(embedded_container) as container:
        yield container


def with_llm(tmp_path: Path, llm: ScriptedLLM) -> Iterator[Container]:
    settings = Settings(backend="embedded", embedder="hash", data_dir=tmp_path / "llm", sync_timeout_seconds=20)
    container = LocalContainer(settings, llm=llm)
    worker = EmbeddedWorker(container)
    worker.start()
    try:
        with serving(container):
            yield container
    finally:
        worker.stop()
        container.close()


def add(text: str, user: str = "alice", **extra: Any) -> str:
    body = {"user_id": user, "messages": text, "async_mode": "sync", "mode": "fast", **extra}
    code, payload = call("POST", "/product/add", body=body)
    assert code == 200, payload
    return str(payload["data"][0]["memory_id"])


def feedback(**body: Any) -> tuple[int, dict[str, Any]]:
    return call("POST", "/product/feedback", body={"user_id": "alice", "history": HISTORY, **body})


def test_sync_feedback_answers_memos_record_with_the_corrected_and_archived_memory(api: Container) -> None:
    old = add(LISBON)
    add("Bob plays the cello on Sundays.")
    correction = "No, Alice lives in Porto near the castle, not Lisbon."
    code, payload = feedback(feedback_content=correction, async_mode="sync")
    assert code == 200, payload
    assert payload["message"].startswith("Memory feedback successfully")
    [cube] = payload["data"]
    assert cube["answer"] == "" and cube["record"]["add"] == []
    [update] = cube["record"]["update"]
    assert (update["archived_id"], update["origin_memory"]) == (old, LISBON)
    assert update["text"] == "No, Alice lives in Porto near the castle, not Lisbon."
    assert {o["outcome"] for o in cube["outcomes"]} == {"updated", "archived"}
    code, payload = call("GET", f"/product/get_memory/{update['id']}", query="user_id=alice")
    assert code == 200 and payload["data"]["metadata"]["session_id"] == "default_session"


def test_async_feedback_is_a_task_whose_status_shows_the_candidates_and_outcomes(api: Container) -> None:
    old = add(LISBON, info={"app_id": "crm"})
    code, payload = feedback(
        feedback_content="No, Alice lives in Porto near the castle, not Lisbon.",
        feedback_time="2025-06-01T10:00:00Z",
        session_id="s1",
        task_id="fb-1",
        info={"app_id": "crm"},
    )
    assert code == 200, payload
    assert payload["task_id"] == "fb-1" and payload["data"][0]["status"] in {"waiting", "in_progress", "completed"}
    record = api.add.wait(api.status.get("fb-1", "alice").task.task_id, 20)
    [part] = record.parts
    assert part.status.value == "completed"
    assert any(f"candidate(s) to correct (the most similar items): ['{old}'" in n for n in part.notes)
    code, payload = call("GET", "/product/scheduler/status", query="user_id=alice&task_id=fb-1")
    assert code == 200, payload
    [status] = payload["data"]
    outcomes = {o["outcome"]: o for o in status["cubes"][0]["outcomes"]}
    assert set(outcomes) == {"updated", "archived"}
    assert outcomes["archived"]["memory_id"] == old and "superseded by" in outcomes["archived"]["reason"]
    new = api.memories.get_memory(outcomes["updated"]["memory_id"])
    assert new is not None
    assert (new.metadata.session_id, new.metadata.info, new.metadata.event_time) == (
        "s1", {"app_id": "crm"}, "2025-06-01T10:00:00.000Z"
    )  # fmt: skip
    assert "feedback_plan" not in status["cubes"][0]


def test_retrieved_memory_ids_narrow_what_the_feedback_may_correct(api: Container) -> None:
    lisbon = add(LISBON)
    other = add("Alice lives near the castle in a yellow house.")
    code, payload = feedback(
        feedback_content="No, Alice lives in Porto near the castle, not Lisbon.",
        retrieved_memory_ids=[other],
        async_mode="sync",
    )
    assert code == 200, payload
    [cube] = payload["data"]
    assert any(f"(retrieved_memory_ids): ['{other}']" in n for n in cube["notes"])
    lisbon_now = api.memories.get_memory(lisbon)
    assert lisbon_now is not None and lisbon_now.metadata.status == "activated"  # never offered, never archived


def test_retrieved_memory_ids_the_caller_cannot_read_are_a_404_and_nothing_is_written(api: Container) -> None:
    bobs = add("Bob plays the cello on Sundays.", user="bob")
    before = len(list(api.memories.iter_memories()))
    code, payload = feedback(feedback_content="No, I play the piano.", retrieved_memory_ids=[bobs], async_mode="sync")
    assert code == 404 and "retrieved_memory_ids" in payload["message"] and bobs in payload["message"]
    assert len(list(api.memories.iter_memories())) == before
    assert api.tasks.list_tasks("alice", 10) == []


def test_retrieved_memory_ids_outside_the_written_cubes_are_a_422(api: Container) -> None:
    call("POST", "/product/create_cube", body={"user_id": "alice", "cube_id": "kb"})
    in_kb = add(LISBON, writable_cube_ids=["kb"])
    code, payload = feedback(feedback_content="No, Porto.", retrieved_memory_ids=[in_kb])
    assert code == 422 and "retrieved_memory_ids" in payload["message"] and "kb" in payload["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "feedback_content"),
        ({"feedback_content": "   "}, "feedback_content"),
        ({"feedback_content": "x", "corrected_answer": True}, "corrected_answer"),
        ({"feedback_content": "x", "async_mode": "sync", "corrected_answer": True}, "corrected_answer"),
        ({"feedback_content": "x", "retrieved_memory_ids": []}, "retrieved_memory_ids"),
        ({"feedback_content": "x", "writable_cube_ids": ["bob"]}, "writable_cube_ids"),
        ({"feedback_content": "x", "is_feedback": True}, "is_feedback"),
        ({"feedback_content": "x", "info": {"memory": "clash"}}, "info"),
    ],
)
def test_a_bad_feedback_is_refused_naming_the_field_and_writes_nothing(
    memory_container: Container, body: dict[str, Any], field: str
) -> None:
    with serving(memory_container):
        if field == "writable_cube_ids":
            memory_container.directory.register_user("bob")
        code, payload = feedback(**body)
    assert code in {403, 422}, payload
    assert field in payload["message"]
    assert_nothing_written(memory_container, users=("alice",))


def test_with_an_llm_sync_feedback_returns_the_corrected_answer_and_the_llm_plan(tmp_path: Path) -> None:
    def decide(_: str, user: str) -> str:
        [related] = json.loads(user)["related"]
        update = {"operation": "UPDATE", "id": related["id"], "memory": "Alice lives in Porto.", "reason": "moved"}
        return json.dumps({"decisions": [update, {"operation": "ADD", "memory": "Alice's sister is Carla."}]})

    llm = ScriptedLLM(decide, "You live in Porto.")
    for _ in with_llm(tmp_path, llm):
        old = add(LISBON)
        code, payload = feedback(
            feedback_content="Wrong, I moved to Porto. My sister is Carla.",
            retrieved_memory_ids=[old],
            async_mode="sync",
            corrected_answer=True,
        )
        assert code == 200, payload
        [cube] = payload["data"]
        assert cube["answer"] == "You live in Porto."
        assert [a["text"] for a in cube["record"]["add"]] == ["Alice's sister is Carla."]
        [update] = cube["record"]["update"]
        assert (update["text"], update["archived_id"]) == ("Alice lives in Porto.", old)
        assert any(n.startswith("feedback plan: 1. UPDATE") and "2. ADD" in n for n in cube["notes"])
        system, user = llm.calls[-1]
        assert "FEEDBACK on your previous answer" in system and "Where do I live?" in user and "Porto" in user


def test_a_feedback_with_an_agent_id_in_info_corrects_only_that_agents_memories(api: Container) -> None:
    other = add(LISBON, info={"agent_id": "travel-bot"})
    correction = "No, Alice lives in Porto near the castle, not Lisbon."
    code, payload = feedback(feedback_content=correction, async_mode="sync", info={"agent_id": "desk-bot"})
    assert code == 200, payload
    [cube] = payload["data"]
    assert cube["record"]["update"] == [] and [a["text"] for a in cube["record"]["add"]] == [correction]
    assert "feedback: candidates are limited to memories with info {'agent_id': 'desk-bot'}" in cube["notes"]
    kept = api.memories.get_memory(other)
    assert kept is not None and kept.metadata.status == "activated"


def test_an_expired_retrieved_memory_id_is_a_404_like_an_unknown_one_and_nothing_is_written(api: Container) -> None:
    from tests.api.test_expiry_reads_and_edits import expire

    lisbon = add(LISBON)
    expire(api, lisbon)
    before = [i.model_dump() for i in api.memories.iter_memories()]
    code, payload = feedback(feedback_content="No, Porto.", retrieved_memory_ids=[lisbon], async_mode="sync")
    assert code == 404 and "retrieved_memory_ids" in payload["message"] and lisbon in payload["message"], payload
    assert [i.model_dump() for i in api.memories.iter_memories()] == before
    assert len(api.tasks.list_tasks("alice", 10)) == 1  # the add's alone
