"""Streaming on the real LLM server: the home of the chat tests (`/product/chat/complete`,
`/product/chat/stream`, an LLM port method that streams) once they exist. Until then it pins what
they will stand on: the tier's server streams chat completions as server-sent events that the
`openai` SDK memcube ships reads chunk by chunk, ending with a finish reason, and honours
`max_tokens` while streaming.

Extend it with the `memcube_with_llm` fixture (tests/llm/conftest.py: `memcube serve` in fine
mode on this server) and keep each generation short (`MAX_OUTPUT_TOKENS`)."""

from __future__ import annotations

import openai

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
