"""`memcube serve` (the embedded default) configured with the real LLM server: a fine add, a
feedback and a fine search each go through the LLM and end well-formed, and a refused LLM ends
the task failed with the reason. What the tiny model extracted or decided is not judged."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import ServeFactory, Server
from tests.llm.conftest import LlamaServer

TIMEOUT = 100.0
"""A fine add is one extraction call (about 500 prompt tokens and a short reply), plus a judge
call when an existing memory is related: seconds on 2 idle cores, tens of seconds on a busy
machine. Under pytest's per-test timeout (120 s), so a stuck task fails with its status."""
OUTCOMES = {"added", "duplicate", "merged", "updated", "archived"}


def chat_completions(llama: LlamaServer) -> int:
    """How many chat completions the LLM server has answered (its access log)."""
    return llama.log.read_text(errors="replace").count("POST /v1/chat/completions")


def terminal_part(server: Server, task_id: str) -> dict[str, Any]:
    """The task's one part once the task is terminal, checked for the shape every part has."""
    task = server.wait("alice", task_id, timeout=TIMEOUT)
    [part] = task["cubes"]
    assert task["status"] == part["status"] in {"completed", "failed"}, task
    assert part["finished_at"] and part["attempts"] >= 1, part
    assert all(isinstance(note, str) and note for note in part["notes"]), part
    for outcome in part["outcomes"]:
        assert outcome["outcome"] in OUTCOMES and outcome["memory_id"] and isinstance(outcome["reason"], str), outcome
    if part["status"] == "failed":
        assert isinstance(part["error"], str) and part["error"].strip(), part
    return dict(part)


def assert_items_have_text(server: Server, part: dict[str, Any]) -> None:
    items = {item["id"]: item for item in server.items(part["cube_id"], "alice")}
    live = [o["memory_id"] for o in part["outcomes"] if o["outcome"] in {"added", "updated", "merged"}]
    assert set(live) <= set(items), (live, sorted(items))
    assert all(items[i]["memory"].strip() for i in live), [items[i] for i in live]


def remember_lisbon(server: Server, llama: LlamaServer) -> int:
    """A fast, sync add of one fact (no LLM call: the cube was empty); the LLM's count after it."""
    fact = {"user_id": "alice", "messages": "I live in Lisbon.", "mode": "fast", "async_mode": "sync"}
    server.add_ok(fact)
    return chat_completions(llama)


def test_a_fine_add_asks_the_llm_and_ends_completed_or_failed_with_a_reason(
    memcube_with_llm: Server, llama_server: LlamaServer
) -> None:
    before = chat_completions(llama_server)
    message = {"role": "user", "content": "I live in Lisbon and I drink green tea every morning."}
    task_id = memcube_with_llm.add_ok({"user_id": "alice", "messages": [message], "mode": "fine"})["task_id"]
    part = terminal_part(memcube_with_llm, task_id)
    assert part["mode"] == "fine"
    assert chat_completions(llama_server) > before, "the fine reader did not call the LLM"
    if part["status"] == "completed":
        assert part["outcomes"], part  # an extraction, or a fast item for a window that fell back
        assert_items_have_text(memcube_with_llm, part)


def test_a_feedback_asks_the_llm_and_ends_completed_or_failed_with_a_reason(
    memcube_with_llm: Server, llama_server: LlamaServer
) -> None:
    before = remember_lisbon(memcube_with_llm, llama_server)
    correction = [{"role": "user", "content": "That is wrong: I live in Porto now."}]
    task_id = memcube_with_llm.add_ok({"user_id": "alice", "messages": correction, "is_feedback": True})["task_id"]
    part = terminal_part(memcube_with_llm, task_id)
    assert chat_completions(llama_server) > before, "the feedback did not call the LLM"
    if part["status"] == "completed":
        assert_items_have_text(memcube_with_llm, part)


def test_a_fine_search_has_the_llm_rewrite_the_query_and_answers_either_way(
    memcube_with_llm: Server, llama_server: LlamaServer
) -> None:
    before = remember_lisbon(memcube_with_llm, llama_server)
    query = {"user_id": "alice", "query": "Where does the user live?", "mode": "fine", "relativity": 0.0}
    response = memcube_with_llm.http.post("/product/search", json=query, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert chat_completions(llama_server) > before, "the fine search did not call the LLM"
    [cube] = data["text_mem"]
    # The query as given is always searched besides the rewrites, so the fact is found either way.
    assert any("Lisbon" in m["memory"] for m in cube["memories"]), cube
    # A rewrite the model botched is reported, never acted on: the query is searched as given.
    failed = [n for n in data["notes"] if "could not rewrite" in n]
    assert all("searched as given" in n for n in failed), data["notes"]


def test_an_llm_that_refuses_the_key_fails_the_fine_add_with_the_reason_and_not_the_key(
    serve: ServeFactory, llama_server: LlamaServer
) -> None:
    env = {
        "MEMCUBE_LLM": "openai",
        "MEMCUBE_LLM_BASE_URL": llama_server.base_url,
        "MEMCUBE_LLM_MODEL": llama_server.model,
        "MEMCUBE_LLM_API_KEY": "sk-not-the-servers",
        "MEMCUBE_LLM_MAX_RETRIES": "0",
        "MEMCUBE_MAX_RECEIVE_COUNT": "1",
    }
    server = serve(env=env, workers=1)
    task_id = server.add_ok({"user_id": "alice", "messages": "I live in Lisbon.", "mode": "fine"})["task_id"]
    part = terminal_part(server, task_id)
    assert part["status"] == "failed" and part["outcomes"] == [], part
    assert "LLMUnavailable" in part["error"] and "HTTP 401" in part["error"], part["error"]
    assert "sk-not-the-servers" not in part["error"]
    assert server.total(part["cube_id"], "alice") == 0
