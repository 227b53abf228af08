"""The Bedrock adapters on a real `bedrock-runtime` client under botocore's Stubber: the exact
Converse and InvokeModel requests, reply handling, and service errors mapped to the domain's."""

from __future__ import annotations

import io
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from memcube.adapters.bedrock import JSON_INSTRUCTION, BedrockLLM, TitanEmbedder
from memcube.domain.errors import LLMUnavailable, Unavailable

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials and no shared config: nothing here may reach (or sign for) real AWS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def runtime() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def converse_reply(*content: dict[str, Any], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": list(content)}},
        "stopReason": stop,
        "usage": {"inputTokens": 12, "outputTokens": 7, "totalTokens": 19},
        "metrics": {"latencyMs": 42},
    }


def converse_request(system: str, user: str) -> dict[str, Any]:
    return {
        "modelId": CLAUDE,
        "system": [{"text": system}],
        "messages": [{"role": "user", "content": [{"text": user}]}],
        "inferenceConfig": {"temperature": 0, "maxTokens": 4096},
    }


# --- Converse ---------------------------------------------------------------------------------


def test_the_converse_request_carries_model_system_user_and_temperature_0(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    stubber.add_response(
        "converse", converse_reply({"text": "plain"}), converse_request("You summarize.", "I moved to Lisbon.")
    )
    reply = BedrockLLM(CLAUDE, client=client).complete("You summarize.", "I moved to Lisbon.", json_output=False)
    assert reply == "plain"


def test_json_output_appends_the_json_instruction_to_the_system_prompt(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    expected_system = f"You extract memories.\n\n{JSON_INSTRUCTION}"
    stubber.add_response("converse", converse_reply({"text": "{}"}), converse_request(expected_system, "u"))
    assert BedrockLLM(CLAUDE, client=client).complete("You extract memories.", "u") == "{}"
    assert "single JSON object" in JSON_INSTRUCTION


def test_the_reply_is_the_text_blocks_concatenated_skipping_reasoning(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    stubber.add_response(
        "converse",
        converse_reply(
            {"reasoningContent": {"reasoningText": {"text": "let me think", "signature": "sig"}}},
            {"text": '{"memories": '},
            {"text": "[]}"},
        ),
    )
    assert BedrockLLM(CLAUDE, client=client).complete("s", "u") == '{"memories": []}'


def test_a_max_tokens_stop_still_returns_the_text(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    stubber.add_response("converse", converse_reply({"text": '{"memories": [{"key": "a'}, stop="max_tokens"))
    assert BedrockLLM(CLAUDE, client=client).complete("s", "u") == '{"memories": [{"key": "a'


def test_a_reply_without_text_raises_llm_unavailable(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    stubber.add_response("converse", converse_reply(stop="content_filtered"))
    with pytest.raises(LLMUnavailable, match=r"empty reply.*content_filtered"):
        BedrockLLM(CLAUDE, client=client).complete("s", "u")


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("ThrottlingException", 429, "Too many requests, please wait before trying again."),
        ("AccessDeniedException", 403, "You don't have access to the model with the specified model ID."),
        ("ModelTimeoutException", 408, "Model has timed out in processing the request."),
        ("ServiceUnavailableException", 503, "Service is unavailable."),
        ("ValidationException", 400, "The provided model identifier is invalid."),
        ("ResourceNotFoundException", 404, "Model not found."),
    ],
)
def test_a_service_error_raises_llm_unavailable_naming_model_code_and_message(
    runtime: tuple[Any, Stubber], code: str, status: int, message: str
) -> None:
    client, stubber = runtime
    stubber.add_client_error("converse", code, message, status, expected_params=converse_request(ANY, "u"))
    with pytest.raises(LLMUnavailable) as caught:
        BedrockLLM(CLAUDE, client=client).complete("s", "u")
    assert code in caught.value.message
    assert message in caught.value.message
    assert CLAUDE in caught.value.message
    assert f"HTTP {status}" in caught.value.message


class Unreachable:
    """A client whose every call fails in botocore itself (no service answer at all)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def converse(self, **params: Any) -> Any:
        raise self.error

    def invoke_model(self, **params: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com/model/x/converse"),
        EndpointConnectionError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com"),
    ],
)
def test_a_timeout_or_connection_failure_raises_llm_unavailable(error: Exception) -> None:
    with pytest.raises(LLMUnavailable, match=type(error).__name__):
        BedrockLLM(CLAUDE, client=Unreachable(error)).complete("s", "u")


def test_the_client_is_built_lazily_with_timeouts_and_adaptive_retries() -> None:
    llm = BedrockLLM(CLAUDE, region="eu-west-1", timeout=12, max_retries=2)
    client = llm._runtime()
    assert client is llm._runtime()
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.read_timeout == 12
    assert client.meta.config.connect_timeout == 10
    assert client.meta.config.retries == {"total_max_attempts": 3, "mode": "adaptive"}


def test_the_llm_model_id_names_bedrock_and_the_model() -> None:
    assert BedrockLLM(CLAUDE).model_id == f"bedrock:{CLAUDE}"


# --- Titan embeddings -------------------------------------------------------------------------


def titan_reply(vector: list[float]) -> dict[str, Any]:
    raw = json.dumps({"embedding": vector, "inputTextTokenCount": 3}).encode()
    return {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"}


def titan_request() -> dict[str, Any]:
    return {"modelId": TITAN, "body": ANY, "contentType": "application/json", "accept": "application/json"}


def record_bodies(client: Any) -> list[dict[str, Any]]:
    """The JSON bodies of the client's InvokeModel calls, in call order."""
    bodies: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        bodies.append(json.loads(params["body"]))

    client.meta.events.register("provide-client-params.bedrock-runtime.InvokeModel", record)
    return bodies


def vector_for(seed: float, dimension: int = 256) -> list[float]:
    return [seed, *([1.0] * (dimension - 1))]


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


def test_the_invoke_model_request_carries_text_dimensions_and_normalize(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    bodies = record_bodies(client)
    stubber.add_response("invoke_model", titan_reply(vector_for(1.0)), titan_request())
    TitanEmbedder(dimension=256, client=client).embed(["  alice likes tea \n"])
    assert bodies == [{"inputText": "alice likes tea", "dimensions": 256, "normalize": True}]


def test_an_empty_text_is_sent_as_a_dot_because_titan_refuses_empty_input(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    bodies = record_bodies(client)
    for _ in range(2):
        stubber.add_response("invoke_model", titan_reply(vector_for(1.0)), titan_request())
    TitanEmbedder(dimension=256, client=client, max_workers=1).embed(["", " \t"])
    assert [body["inputText"] for body in bodies] == [".", "."]


def test_vectors_come_back_in_input_order_and_unit_length(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    for seed in (1.0, 2.0, 3.0):
        stubber.add_response("invoke_model", titan_reply(vector_for(seed)), titan_request())
    vectors = TitanEmbedder(dimension=256, client=client, max_workers=1).embed(["a", "b", "c"])
    assert vectors == [unit(vector_for(seed)) for seed in (1.0, 2.0, 3.0)]
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-9)


class SlowTitan:
    """Answers each text with a vector made from it, the first texts slowest: a thread pool that
    lost the order would return them shuffled."""

    def __init__(self) -> None:
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    def invoke_model(self, *, modelId: str, body: bytes, contentType: str, accept: str) -> dict[str, Any]:
        text = json.loads(body)["inputText"]
        with self._lock:
            self.threads.add(threading.get_ident())
        time.sleep(0.01 * (10 - int(text)))
        return titan_reply(vector_for(float(text)))


def test_a_batch_on_the_thread_pool_keeps_the_input_order() -> None:
    client = SlowTitan()
    texts = [str(i) for i in range(8)]
    vectors = TitanEmbedder(dimension=256, client=client, max_workers=4).embed(texts)
    assert vectors == [unit(vector_for(float(t))) for t in texts]
    assert len(client.threads) > 1


def test_a_vector_of_another_length_raises_unavailable(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    stubber.add_response("invoke_model", titan_reply(vector_for(1.0, dimension=512)), titan_request())
    with pytest.raises(Unavailable, match="returned 512-d vectors but the embedding dimension setting is 256"):
        TitanEmbedder(dimension=256, client=client).embed(["a"])


def test_a_service_error_raises_unavailable_naming_the_code(runtime: tuple[Any, Stubber]) -> None:
    client, stubber = runtime
    stubber.add_client_error("invoke_model", "ThrottlingException", "Too many requests", 429)
    with pytest.raises(Unavailable, match=r"ThrottlingException.*Too many requests") as caught:
        TitanEmbedder(client=client).embed(["a"])
    assert not isinstance(caught.value, LLMUnavailable)
    assert TITAN in caught.value.message


def test_a_connection_failure_raises_unavailable() -> None:
    error = EndpointConnectionError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com")
    with pytest.raises(Unavailable, match="EndpointConnectionError"):
        TitanEmbedder(client=Unreachable(error)).embed(["a", "b"])


def test_embedding_nothing_makes_no_call(runtime: tuple[Any, Stubber]) -> None:
    client, _ = runtime
    assert TitanEmbedder(client=client).embed([]) == []


@pytest.mark.parametrize("dimension", [0, 100, 384, 1536])
def test_a_dimension_titan_v2_does_not_offer_raises_value_error(dimension: int) -> None:
    with pytest.raises(ValueError, match="256, 512, 1024"):
        TitanEmbedder(dimension=dimension)


def test_the_embedder_model_id_names_model_and_dimension() -> None:
    embedder = TitanEmbedder(dimension=512)
    assert embedder.model_id == f"bedrock:{TITAN}:512"
    assert embedder.dimension == 512
