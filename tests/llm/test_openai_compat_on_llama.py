"""The OpenAI-compatible LLM adapter against a real server (llama-cpp-python, SmolLM2-135M):
a completion round trip, JSON mode, the reader's repair of what the model really returns,
a timeout, and refusals, each ending in a reply or in our own `LLMUnavailable`.

A model name the server lacks cannot be refused here: llama-cpp-python's server answers any name
with its one model (its LlamaProxy falls back to the default alias). A wrong base URL (404) stands
for an endpoint that refuses the request outright."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest
from openai.types.chat.chat_completion import Choice

from memcube.adapters.openai_compat import OpenAICompatibleLLM
from memcube.domain.errors import LLMUnavailable
from memcube.domain.extraction import Extraction, Extractor, prompts
from memcube.domain.llm_json import parse_reply
from memcube.domain.model import SourceMessage
from memcube.domain.reader import windows
from tests.llm.conftest import MAX_OUTPUT_TOKENS, LlamaServer

CONVERSATION = [
    SourceMessage(type="chat", role="user", chat_time="2026-12-01T10:00:00Z", content="I live in Lisbon."),
    SourceMessage(type="chat", role="user", chat_time="2026-12-01T10:01:00Z", content="I drink green tea."),
]
NOW = "2026-12-06T12:00:00Z"


def adapter(server: LlamaServer, **options: Any) -> OpenAICompatibleLLM:
    settings: dict[str, Any] = {"api_key": server.api_key, "max_retries": 0, "timeout": 90.0}
    settings["max_output_tokens"] = MAX_OUTPUT_TOKENS
    return OpenAICompatibleLLM(server.base_url, server.model, **(settings | options))


def extraction_prompt() -> tuple[str, str]:
    """The fine reader's own system and user prompt for CONVERSATION."""
    [window] = windows(CONVERSATION)
    return prompts(window, custom_tags=[], now=NOW)


def raw_json_reply(server: LlamaServer, max_tokens: int) -> Choice:
    """The server's own reply to the fine reader's prompt in JSON mode, as the SDK reads it (the
    adapter hides the finish reason)."""
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0, timeout=90)
    system, user = extraction_prompt()
    reply = client.chat.completions.create(
        model=server.model,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        temperature=0,
        response_format={"type": "json_object"},
        max_tokens=max_tokens,
    )
    [choice] = reply.choices
    return choice


def test_a_completion_round_trips_through_the_adapter(llama_server: LlamaServer) -> None:
    reply = adapter(llama_server, max_output_tokens=16).complete(
        "You answer in one short sentence.", "What colour is the sky on a clear day?", json_output=False
    )
    assert isinstance(reply, str) and reply.strip()
    assert adapter(llama_server).model_id == f"openai:{llama_server.model}"


def test_json_mode_makes_the_server_reply_with_a_json_object(llama_server: LlamaServer) -> None:
    """`response_format: json_object` is honoured (llama.cpp constrains the sampling with a JSON
    grammar): a reply that ended by itself parses as one JSON object without any repair."""
    choice = raw_json_reply(llama_server, max_tokens=400)
    assert choice.message.content
    if choice.finish_reason == "stop":
        assert isinstance(json.loads(choice.message.content), dict)
    else:  # the model ran to the token limit: what it wrote is still repairable into an object
        assert choice.finish_reason == "length"
        assert isinstance(parse_reply(choice.message.content, list_key="memory_list"), dict)


def test_a_json_reply_cut_off_by_the_token_limit_is_repaired_into_an_object(llama_server: LlamaServer) -> None:
    """Real malformed output: the model's JSON cut mid-way by max_tokens is not JSON, and the
    reader's parsing still recovers an object from it."""
    choice = raw_json_reply(llama_server, max_tokens=12)
    text = choice.message.content or ""
    assert choice.finish_reason == "length", text
    with pytest.raises(ValueError):
        json.loads(text)
    repaired = parse_reply(text, list_key="memory_list")
    assert isinstance(repaired, dict) and repaired


def test_the_fine_reader_reads_a_reply_cut_short_into_items_or_a_reason(llama_server: LlamaServer) -> None:
    """The Extractor on the real model with the reply cut by the output limit (a whole reply goes
    through it in test_serve_on_llama's fine add): validated items with text, or the reason the
    window falls back to a fast item; never an exception."""
    [window] = windows(CONVERSATION)
    result = Extractor(adapter(llama_server, max_output_tokens=24)).extract(window, custom_tags=[], now=NOW)
    if isinstance(result, Extraction):
        assert all(item.value.strip() and item.key.strip() for item in result.items)
        assert all(item.memory_type in ("UserMemory", "LongTermMemory") for item in result.items)
        assert all(isinstance(note, str) for note in result.notes)
    else:
        assert isinstance(result, str) and result.strip()


def test_a_free_text_reply_is_parsed_into_an_object_or_refused_with_value_error(llama_server: LlamaServer) -> None:
    """Without JSON mode the model writes what it likes (prose, fences, half objects): the
    parsing either finds an object or raises ValueError, which the callers turn into a reason."""
    system, user = extraction_prompt()
    reply = adapter(llama_server).complete(system, user, json_output=False)
    try:
        parsed = parse_reply(reply, list_key="memory_list")
    except ValueError:
        return
    assert isinstance(parsed, dict) and parsed


def test_a_client_timeout_on_a_long_generation_raises_llm_unavailable_promptly(llama_server: LlamaServer) -> None:
    slow = adapter(llama_server, timeout=0.5, max_output_tokens=120)
    started = time.monotonic()
    with pytest.raises(LLMUnavailable, match="timed out") as raised:
        slow.complete("You are a novelist.", "Write a long story about a lighthouse keeper.", json_output=False)
    assert time.monotonic() - started < 10
    assert llama_server.model in str(raised.value)
    llama_server.idle()  # the server finishes the abandoned generation before serving the next test


def test_a_wrong_api_key_raises_llm_unavailable_with_401_and_never_the_key(llama_server: LlamaServer) -> None:
    with pytest.raises(LLMUnavailable) as raised:
        adapter(llama_server, api_key="sk-wrong-key-123").complete("s", "Hi", json_output=False)
    assert "HTTP 401" in str(raised.value) and "Invalid API key" in str(raised.value)
    assert "sk-wrong-key-123" not in str(raised.value)


def test_a_prompt_over_the_context_raises_llm_unavailable_naming_the_limit(llama_server: LlamaServer) -> None:
    """A 400 that is not about response_format is not retried without JSON mode: it surfaces."""
    with pytest.raises(LLMUnavailable) as raised:
        adapter(llama_server).complete("You summarize.", "lighthouse " * 5000)
    assert "HTTP 400" in str(raised.value) and "context length" in str(raised.value)


def test_a_base_url_without_the_api_raises_llm_unavailable_with_404(llama_server: LlamaServer) -> None:
    wrong = llama_server.base_url.removesuffix("/v1") + "/not-the-api/v1"
    with pytest.raises(LLMUnavailable) as raised:
        OpenAICompatibleLLM(wrong, llama_server.model, api_key=llama_server.api_key, max_retries=0).complete("s", "u")
    assert "HTTP 404" in str(raised.value)
