"""`LLM.stream` (chat's answers) on both adapters: the OpenAI-compatible one against the local HTTP
fake streaming `chat.completion.chunk` events, Bedrock's ConverseStream on a stand-in client. Every
way a stream can fail part-way (an error event, a stalled server, a cut connection, an empty
answer) ends it with `LLMUnavailable`, never a hang or a silently short answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EventStreamError, ReadTimeoutError

from memcube.adapters.bedrock import BedrockLLM
from memcube.adapters.openai_compat import OpenAICompatibleLLM
from memcube.domain.errors import LLMUnavailable
from memcube.ports import ChatTurn, Sampling
from tests.fakes import FakeOpenAI, Reply, running_fake_openai

TURNS = [ChatTurn("system", "Answer from memories."), ChatTurn("user", "Where do I live?")]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    with running_fake_openai() as server:
        yield server


def openai_llm(fake: FakeOpenAI, timeout: float = 10.0) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(fake.base_url, "qwen2.5-7b", api_key="sk-x", max_retries=0, timeout=timeout)


def test_openai_streams_each_piece_with_the_turns_and_sampling_sent(fake: FakeOpenAI) -> None:
    fake.script["/v1/chat/completions"].append(Reply(chunks=["You live ", "in Lisbon."]))
    pieces = list(openai_llm(fake).stream(TURNS, Sampling(max_tokens=64, temperature=0.7, top_p=0.9)))
    assert pieces == ["You live ", "in Lisbon."]
    [seen] = fake.requests("/v1/chat/completions")
    assert seen.body["stream"] is True
    assert seen.body["messages"] == [{"role": "system", "content": "Answer from memories."},
                                     {"role": "user", "content": "Where do I live?"}]  # fmt: skip
    assert (seen.body["max_tokens"], seen.body["temperature"], seen.body["top_p"]) == (64, 0.7, 0.9)


def test_openai_leaves_unset_sampling_out_of_the_request(fake: FakeOpenAI) -> None:
    fake.script["/v1/chat/completions"].append(Reply(chunks=["ok"]))
    assert list(openai_llm(fake).stream(TURNS, Sampling())) == ["ok"]
    [seen] = fake.requests("/v1/chat/completions")
    assert not {"max_tokens", "temperature", "top_p"} & set(seen.body)


def test_openai_an_error_event_part_way_raises_after_the_pieces_already_sent(fake: FakeOpenAI) -> None:
    fake.script["/v1/chat/completions"].append(Reply(chunks=["You live "], stream_error="model overloaded"))
    got: list[str] = []
    with pytest.raises(LLMUnavailable, match="model overloaded"):
        got.extend(openai_llm(fake).stream(TURNS, Sampling()))
    assert got == ["You live "]


def test_openai_a_stalled_stream_times_out_instead_of_hanging(fake: FakeOpenAI) -> None:
    fake.script["/v1/chat/completions"].append(Reply(chunks=["You ", "live"], chunk_delay=5.0))
    started = time.monotonic()
    with pytest.raises(LLMUnavailable, match=r"stream broke off|timed out"):
        list(openai_llm(fake, timeout=0.5).stream(TURNS, Sampling()))
    assert time.monotonic() - started < 4.0


def test_openai_a_stream_cut_before_the_model_finished_is_not_taken_as_the_answer(fake: FakeOpenAI) -> None:
    fake.script["/v1/chat/completions"].append(Reply(chunks=["You live in"], unfinished=True))
    with pytest.raises(LLMUnavailable, match="ended before the model finished"):
        list(openai_llm(fake).stream(TURNS, Sampling()))


def test_openai_an_empty_answer_raises(fake: FakeOpenAI) -> None:
    fake.script["/v1/chat/completions"].append(Reply(chunks=[]))
    with pytest.raises(LLMUnavailable, match="empty answer"):
        list(openai_llm(fake).stream(TURNS, Sampling()))


def test_openai_a_refusal_before_the_stream_names_the_status(fake: FakeOpenAI) -> None:
    body = {"error": {"message": "model not found", "type": "invalid_request_error"}}
    fake.script["/v1/chat/completions"].append(Reply(status=404, body=body))
    with pytest.raises(LLMUnavailable, match="HTTP 404: model not found"):
        list(openai_llm(fake).stream(TURNS, Sampling()))


# --- Bedrock ConverseStream ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


class ConverseStream:
    """Stands in for `bedrock-runtime`: `converse_stream` answers with these events (an exception
    among them is raised there, as botocore raises a stream's error event)."""

    def __init__(self, *events: dict[str, Any] | Exception) -> None:
        self.events = events
        self.params: dict[str, Any] = {}

    def converse_stream(self, **params: Any) -> dict[str, Any]:
        self.params = params

        def stream() -> Iterator[dict[str, Any]]:
            for event in self.events:
                if isinstance(event, Exception):
                    raise event
                yield event

        return {"stream": stream()}


def delta(text: str) -> dict[str, Any]:
    return {"contentBlockDelta": {"delta": {"text": text}, "contentBlockIndex": 0}}


START = {"messageStart": {"role": "assistant"}}
STOP = {"messageStop": {"stopReason": "end_turn"}}


def test_bedrock_streams_the_text_deltas_with_system_messages_and_inference_config() -> None:
    client = ConverseStream(START, delta("You live "), delta("in Lisbon."), STOP)
    history = [*TURNS[:1], ChatTurn("assistant", "Hi!"), ChatTurn("user", "Hello"), TURNS[1]]
    pieces = list(BedrockLLM("claude", client=client).stream(history, Sampling(max_tokens=64, temperature=0.2)))
    assert pieces == ["You live ", "in Lisbon."]
    assert client.params["system"] == [{"text": "Answer from memories."}]
    roles = [m["role"] for m in client.params["messages"]]
    assert roles == ["user", "assistant", "user"]  # Converse starts with the user and alternates
    assert client.params["messages"][-1]["content"] == [{"text": "Hello"}, {"text": "Where do I live?"}]
    assert client.params["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.2}


def test_bedrock_an_error_event_part_way_raises_llm_unavailable_naming_it() -> None:
    error = EventStreamError({"Error": {"Code": "throttlingException", "Message": "Too many tokens"}}, "ConverseStream")
    client = ConverseStream(START, delta("You live "), error)
    got: list[str] = []
    with pytest.raises(LLMUnavailable, match="throttlingException"):
        got.extend(BedrockLLM("claude", client=client).stream(TURNS, Sampling()))
    assert got == ["You live "]


def test_bedrock_a_read_timeout_part_way_raises_llm_unavailable() -> None:
    client = ConverseStream(START, delta("You "), ReadTimeoutError(endpoint_url="https://bedrock/converse-stream"))
    with pytest.raises(LLMUnavailable, match="ReadTimeoutError"):
        list(BedrockLLM("claude", client=client).stream(TURNS, Sampling()))


def test_bedrock_an_answer_without_text_raises() -> None:
    with pytest.raises(LLMUnavailable, match="empty answer"):
        list(BedrockLLM("claude", client=ConverseStream(START, STOP)).stream(TURNS, Sampling()))
