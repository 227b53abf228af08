"""Search with the request defaults on the embedded default's own embedder (MiniLM): MemOS's
relativity 0.45 is calibrated for it (search.COSINE_SCALES), so a relevant memory comes back and
a question about something else gets nothing."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import ServeFactory, Server


def found(server: Server, query: str) -> list[dict[str, Any]]:
    reply = server.http.post("/product/search", json={"user_id": "alice", "query": query})
    assert reply.status_code == 200, reply.text
    [cube] = reply.json()["data"]["text_mem"]
    memories: list[dict[str, Any]] = cube["memories"]
    return memories


def test_the_default_relativity_keeps_a_relevant_memory_and_drops_an_unrelated_question(serve: ServeFactory) -> None:
    server = serve(env={"MEMCUBE_EMBEDDER": "minilm"})
    accepted = server.add_ok(
        {"user_id": "alice", "messages": [{"role": "user", "content": "I moved to Lisbon last May."}]}
    )
    assert server.wait("alice", accepted["task_id"])["status"] == "completed"
    [hit] = found(server, "where did I move to?")
    assert hit["memory"] == "user: I moved to Lisbon last May."
    assert hit["metadata"]["relativity"] >= 0.45
    assert found(server, "what goes into a banana bread?") == []
