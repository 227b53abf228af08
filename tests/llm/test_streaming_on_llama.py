"""Streaming on the real LLM server: the home of the chat tests (`/product/chat/complete`,
`/product/chat/stream`, an LLM port method that streams) once they exist. Until then it pins what
they will stand on: the tier's server streams chat completions as server-sent events that the
`openai` SDK memcube ships reads chunk by chunk, ending with a finish reason, and honours
`max_tokens` while streaming.

Extend it with the `memcube_with_llm` fixture (tests/llm/conftest.py: `memcube serve` in fine
mode on this server) and keep each generation short (`MAX_OUTPUT_TOKENS`)."""

from __future__ import annotations

import json

import openai

from tests.e2e.conftest import Server
from tests.llm.conftest import LlamaServer


def test_the_server_streams_a_chat_completion_that_the_openai_sdk_reads_chunk_by_chunk(
    llama_server: LlamaServer,
) -> None:
    client = openai.OpenAI(base_url=llama_server.base_url, api_key=llama_server.api_key, max_retries=0, timeout=90)
    stream = client.chat.completions.create(
        model=llama_server.model,
        messages=[{"role": "user", "content": "Count from one to twenty in words."}],
        temperature=0,
        max_tokens=8,
        stream=True,
    )
    pieces: list[str] = []
    finish: list[str] = []
    for chunk in stream:
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert len([p for p in pieces if p]) > 1, pieces  # several chunks, not one reply at the end
    assert "".join(pieces).strip()
    assert finish == ["length"], finish  # max_tokens 8 cuts the count short


def test_the_adapters_stream_yields_text_pieces_and_a_capped_answer_ends_cleanly(llama_server: LlamaServer) -> None:
    from memcube.adapters.openai_compat import OpenAICompatibleLLM
    from memcube.ports import ChatTurn, Sampling

    llm = OpenAICompatibleLLM(
        llama_server.base_url, llama_server.model, api_key=llama_server.api_key, max_retries=0, timeout=90
    )
    turns = [ChatTurn("system", "Answer briefly."), ChatTurn("user", "Count from one to twenty in words.")]
    pieces = list(llm.stream(turns, Sampling(max_tokens=8, temperature=0)))
    assert len([p for p in pieces if p]) > 1 and "".join(pieces).strip(), pieces


def test_chat_through_memcube_serve_streams_events_and_completes_with_its_exchange_added(
    memcube_with_llm: Server, llama_server: LlamaServer
) -> None:
    """The plumbing of both chat routes on a real model: events in order, a well-formed answer,
    the exchange added as a task that ends; not what the tiny model says."""
    server = memcube_with_llm
    server.add_ok({"user_id": "alice", "messages": "My dog is called Pixel.", "mode": "fast", "async_mode": "sync"})
    body = {"user_id": "alice", "query": "What is my dog called?", "session_id": "s-chat", "max_tokens": 16}
    with server.http.stream("POST", "/product/chat/stream", json=body, timeout=120) as response:
        assert response.status_code == 200, response.read()
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "reference" and kinds[-1] in {"end", "error"}, kinds
    if kinds[-1] == "end":
        assert "text" in kinds and events[-1]["data"]["response"].strip()
    answer = server.http.post("/product/chat/complete", json=body | {"session_id": "s-chat-2"}, timeout=120)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert isinstance(data["response"], str) and data["response"].strip()
    assert set(data["memory_ids"]) <= {r["memory_id"] for r in data["references"]} | set(data["memory_ids"])
    task = server.wait("alice", data["task_id"], timeout=100)
    assert task["status"] in {"completed", "failed"}, task
    said = server.http.post("/product/get_message", json={"user_id": "alice", "session_id": "s-chat-2"}).json()
    assert [m["role"] for m in said["data"]["messages"]][-2:] == ["user", "assistant"], said
