"""The OpenAI-compatible adapters against a local HTTP fake of the OpenAI API: request shapes,
the SDK's retries, the response_format fallback, and every failure mapped to the domain's errors."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from memcube.adapters.openai_compat import OpenAICompatibleEmbedder, OpenAICompatibleLLM
from memcube.domain.errors import LLMUnavailable, Unavailable
from memcube.settings import Settings
from memcube.wiring import Container
from tests.fakes import FakeOpenAI, Reply, Seen, fake_vector, running_fake_openai, unit
from tests.net import free_port

KEY = "sk-test-0123456789secret"


def error_body(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)  # loopback must not go through a proxy
    with running_fake_openai() as server:
        yield server


def llm(fake: FakeOpenAI, **options: Any) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(fake.base_url, "qwen2.5-7b", **{"api_key": KEY, "max_retries": 0, **options})


def embedder(fake: FakeOpenAI, **options: Any) -> OpenAICompatibleEmbedder:
    settings = {"dimension": 4, "api_key": KEY, "max_retries": 0, **options}
    return OpenAICompatibleEmbedder(fake.base_url, "bge-m3", **settings)


# --- chat -------------------------------------------------------------------------------------


def test_the_chat_request_carries_model_both_messages_temperature_0_and_json_mode(fake: FakeOpenAI) -> None:
    assert llm(fake).complete("You extract memories.", "I moved to Lisbon.") == '{"ok": true}'
    [seen] = fake.requests("/v1/chat/completions")
    assert seen.body["model"] == "qwen2.5-7b"
    assert seen.body["messages"] == [
        {"role": "system", "content": "You extract memories."},
        {"role": "user", "content": "I moved to Lisbon."},
    ]
    assert seen.body["temperature"] == 0
    assert seen.body["response_format"] == {"type": "json_object"}


def test_without_json_output_no_response_format_is_sent(fake: FakeOpenAI) -> None:
    fake.chat_content = "plain words"
    assert llm(fake).complete("s", "u", json_output=False) == "plain words"
    [seen] = fake.requests("/v1/chat/completions")
    assert "response_format" not in seen.body


def test_the_api_key_is_sent_as_a_bearer_token(fake: FakeOpenAI) -> None:
    llm(fake).complete("s", "u")
    assert fake.seen[0].headers["authorization"] == f"Bearer {KEY}"


def test_without_an_api_key_a_placeholder_is_sent_for_keyless_local_servers(fake: FakeOpenAI) -> None:
    llm(fake, api_key=None).complete("s", "u")
    assert fake.seen[0].headers["authorization"] == "Bearer not-needed"


def test_the_model_id_names_the_provider_and_model(fake: FakeOpenAI) -> None:
    assert llm(fake).model_id == "openai:qwen2.5-7b"


def test_a_429_with_retry_after_is_retried_and_then_succeeds(fake: FakeOpenAI) -> None:
    fake.script["/v1/chat/completions"].append(
        Reply(429, error_body("Rate limit reached", "requests", "rate_limit_exceeded"), {"Retry-After": "0"})
    )
    assert llm(fake, max_retries=1).complete("s", "u") == '{"ok": true}'
    assert len(fake.requests("/v1/chat/completions")) == 2


def test_a_503_on_every_attempt_raises_llm_unavailable_naming_status_and_model_but_not_the_key(
    fake: FakeOpenAI,
) -> None:
    # The provider echoes the key back: the adapter must not pass it on.
    fake.rule = lambda seen: Reply(503, error_body(f"overloaded, try later (key {KEY})"), {"retry-after-ms": "5"})
    with pytest.raises(LLMUnavailable) as caught:
        llm(fake, max_retries=2).complete("s", "u")
    message = caught.value.message
    assert "503" in message
    assert "qwen2.5-7b" in message
    assert "overloaded, try later" in message
    assert KEY not in message
    assert KEY not in str(caught.value)
    assert len(fake.requests("/v1/chat/completions")) == 3


@pytest.mark.parametrize(
    ("status", "provider_message"),
    [
        (401, "Incorrect API key provided."),
        (403, "You are not allowed to sample from this model."),
        (404, "The model `qwen2.5-7b` does not exist or you do not have access to it."),
    ],
)
def test_a_refused_request_raises_llm_unavailable_with_status_and_provider_message(
    fake: FakeOpenAI, status: int, provider_message: str
) -> None:
    fake.rule = lambda seen: Reply(status, error_body(provider_message))
    with pytest.raises(LLMUnavailable) as caught:
        llm(fake, max_retries=3).complete("s", "u")
    assert f"HTTP {status}" in caught.value.message
    assert provider_message in caught.value.message
    assert len(fake.seen) == 1  # 4xx other than 408/409/429 are not retried


def test_a_server_refusing_response_format_is_asked_again_without_it_and_remembers(fake: FakeOpenAI) -> None:
    def refuse_json_mode(seen: Seen) -> Reply | None:
        if "response_format" in seen.body:
            return Reply(400, error_body("response_format is not supported by this server"))
        return None

    fake.rule = refuse_json_mode
    model = llm(fake)
    assert model.complete("s", "u") == '{"ok": true}'
    assert model.complete("s", "again") == '{"ok": true}'
    sent = [("response_format" in seen.body) for seen in fake.requests("/v1/chat/completions")]
    assert sent == [True, False, False]


def test_a_400_about_something_else_is_not_retried_without_json_mode(fake: FakeOpenAI) -> None:
    fake.rule = lambda seen: Reply(400, error_body("This model's maximum context length is 8192 tokens."))
    with pytest.raises(LLMUnavailable, match="HTTP 400: This model's maximum context length"):
        llm(fake).complete("s", "u")
    assert len(fake.seen) == 1


def test_a_reply_slower_than_the_timeout_raises_llm_unavailable(fake: FakeOpenAI) -> None:
    fake.script["/v1/chat/completions"].append(Reply(delay=3.0))
    with pytest.raises(LLMUnavailable, match="timed out") as caught:
        llm(fake, timeout=0.5, max_retries=0).complete("s", "u")
    assert "qwen2.5-7b" in caught.value.message


def test_an_unreachable_server_raises_llm_unavailable() -> None:
    model = OpenAICompatibleLLM(f"http://127.0.0.1:{free_port()}/v1", "m", max_retries=0, timeout=2)
    with pytest.raises(LLMUnavailable, match="connection failed"):
        model.complete("s", "u")


@pytest.mark.parametrize("content", ["", None, "  \n"])
def test_an_empty_reply_raises_llm_unavailable(fake: FakeOpenAI, content: str | None) -> None:
    fake.chat_content = content
    with pytest.raises(LLMUnavailable, match="empty reply"):
        llm(fake).complete("s", "u")


def test_a_reply_without_choices_raises_llm_unavailable(fake: FakeOpenAI) -> None:
    fake.rule = lambda seen: Reply(body={**fake.success(seen), "choices": []})
    with pytest.raises(LLMUnavailable, match="empty reply"):
        llm(fake).complete("s", "u")


# --- embeddings -------------------------------------------------------------------------------


def test_the_embeddings_request_carries_the_model_the_texts_and_asks_for_floats(fake: FakeOpenAI) -> None:
    embedder(fake).embed(["alice likes tea", "bob"])
    [seen] = fake.requests("/v1/embeddings")
    assert seen.body["model"] == "bge-m3"
    assert seen.body["input"] == ["alice likes tea", "bob"]
    assert seen.body["encoding_format"] == "float"
    assert seen.headers["authorization"] == f"Bearer {KEY}"


def test_vectors_come_back_in_input_order_even_when_the_server_shuffles_them(fake: FakeOpenAI) -> None:
    fake.shuffle = True
    texts = ["a", "bb", "ccc"]
    assert embedder(fake).embed(texts) == [unit(fake_vector(t, 4)) for t in texts]


def test_vectors_are_unit_length_with_the_configured_dimension(fake: FakeOpenAI) -> None:
    fake.dimension = 8
    vectors = embedder(fake, dimension=8).embed(["alice likes tea", "我喜欢北京", "👍"])
    for vector in vectors:
        assert len(vector) == 8
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-9)


def test_texts_are_sent_in_batches_of_batch_size(fake: FakeOpenAI) -> None:
    texts = ["a", "bb", "ccc"]
    assert embedder(fake, batch_size=2).embed(texts) == [unit(fake_vector(t, 4)) for t in texts]
    assert [seen.body["input"] for seen in fake.requests("/v1/embeddings")] == [["a", "bb"], ["ccc"]]


def test_an_empty_text_is_sent_as_a_dot_because_the_api_refuses_empty_input(fake: FakeOpenAI) -> None:
    embedder(fake).embed(["", "  ", "x"])
    assert fake.seen[0].body["input"] == [".", ".", "x"]


def test_embedding_nothing_makes_no_request(fake: FakeOpenAI) -> None:
    assert embedder(fake).embed([]) == []
    assert fake.seen == []


def test_vectors_of_another_dimension_raise_unavailable_naming_both(fake: FakeOpenAI) -> None:
    fake.dimension = 6
    with pytest.raises(Unavailable, match="returned 6-d vectors but the embedding dimension setting is 4"):
        embedder(fake, dimension=4).embed(["alice"])


def test_a_reply_missing_vectors_raises_unavailable(fake: FakeOpenAI) -> None:
    def drop_last(seen: Seen) -> Reply:
        body = fake.success(seen)
        return Reply(body={**body, "data": body["data"][:-1]})

    fake.rule = drop_last
    with pytest.raises(Unavailable, match="asked for 2 vectors"):
        embedder(fake).embed(["a", "b"])


def test_an_embeddings_failure_after_retries_raises_unavailable_with_the_status(fake: FakeOpenAI) -> None:
    fake.rule = lambda seen: Reply(500, error_body(f"internal error for {KEY}", "server_error"))
    with pytest.raises(Unavailable) as caught:
        embedder(fake).embed(["a"])
    assert not isinstance(caught.value, LLMUnavailable)
    assert "HTTP 500: internal error" in caught.value.message
    assert "bge-m3" in caught.value.message
    assert KEY not in caught.value.message


def test_the_embedder_model_id_names_model_and_dimension(fake: FakeOpenAI) -> None:
    model = embedder(fake, dimension=4)
    assert model.model_id == "openai:bge-m3:4"
    assert model.dimension == 4


# --- the output limit ------------------------------------------------------------------------


def test_max_output_tokens_is_sent_as_max_tokens_in_both_modes(fake: FakeOpenAI) -> None:
    limited = llm(fake, max_output_tokens=64)
    limited.complete("s", "u")
    limited.complete("s", "u", json_output=False)
    assert [seen.body["max_tokens"] for seen in fake.requests("/v1/chat/completions")] == [64, 64]


def test_without_max_output_tokens_no_max_tokens_is_sent(fake: FakeOpenAI) -> None:
    llm(fake).complete("s", "u")
    [seen] = fake.requests("/v1/chat/completions")
    assert "max_tokens" not in seen.body


def test_the_max_output_tokens_setting_reaches_the_llm_the_container_builds(fake: FakeOpenAI) -> None:
    settings = Settings(
        backend="memory", llm="openai", llm_base_url=fake.base_url, llm_model="qwen2.5-7b", llm_max_output_tokens=96
    )
    llm = Container(settings).llm
    assert llm is not None
    llm.complete("s", "u")
    [seen] = fake.requests("/v1/chat/completions")
    assert seen.body["max_tokens"] == 96
