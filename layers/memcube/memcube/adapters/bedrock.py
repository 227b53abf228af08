"""The LLM and Embedder ports on Amazon Bedrock: chat through the Converse API, embeddings
through Titan Text Embeddings v2 (InvokeModel).

botocore owns timeouts and retries ("adaptive" mode: backoff plus client-side rate limiting
when Bedrock throttles). Whatever still fails is mapped to the domain's `LLMUnavailable` (chat)
or `Unavailable` (embeddings) naming the model, the error code and Bedrock's message, so the
worker leaves the message for redelivery and the task part says why.

Only the worker's composition root imports this module, when Bedrock is selected.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from memcube.domain.errors import LLMUnavailable, Unavailable
from memcube.ports import ChatTurn, Sampling

JSON_INSTRUCTION = (
    "Answer with a single JSON object and nothing else: no prose before or after it, no Markdown code fences."
)
"""Appended to the system prompt when JSON is asked for: Converse has no JSON mode."""

TITAN_V2_DIMENSIONS = (256, 512, 1024)
MAX_TOKENS = 4096
"""Titan v2 reads 8,192 tokens (50,000 characters): half that in the reader's count leaves room
for word pieces of any script."""


def _describe(error: Exception) -> str:
    """`<code> (HTTP <status>): <message>` for a service error, the botocore message otherwise."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = info.get("Code", "UnknownError")
        where = f" (HTTP {status})" if status else ""
        return f"{code}{where}: {info.get('Message', '')}"
    return f"{type(error).__name__}: {error}"


class _LazyClient:
    """One Bedrock client (`bedrock-runtime` unless told), built once, on first use, from the
    process's shared session (`aws_session.client`)."""

    def __init__(
        self, region: str | None, timeout: float, max_retries: int, client: Any, service: str = "bedrock-runtime"
    ) -> None:
        self._service = service
        self._region = region
        self._config = Config(
            read_timeout=timeout,
            connect_timeout=10,
            retries={"total_max_attempts": max_retries + 1, "mode": "adaptive"},
        )
        self._client = client
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._client is None:
                from memcube.adapters import aws_session

                self._client = aws_session.client(self._service, region_name=self._region, config=self._config)
            return self._client


class BedrockLLM:
    """`LLM` through Bedrock's Converse API (any chat model Bedrock serves, one request format)."""

    def __init__(
        self,
        model_id: str,
        *,
        region: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        client: Any = None,
    ) -> None:
        self._model = model_id
        self._client = _LazyClient(region, timeout, max_retries, client)

    @property
    def model_id(self) -> str:
        return f"bedrock:{self._model}"

    def _runtime(self) -> Any:
        return self._client.get()

    def complete(self, system: str, user: str, *, json_output: bool = True) -> str:
        prompt = f"{system.rstrip()}\n\n{JSON_INSTRUCTION}" if json_output else system
        try:
            response = self._runtime().converse(
                modelId=self._model,
                system=[{"text": prompt}],
                messages=[{"role": "user", "content": [{"text": user}]}],
                inferenceConfig={"temperature": 0, "maxTokens": 4096},
            )
        except (ClientError, BotoCoreError) as error:
            raise LLMUnavailable(f"Bedrock model {self._model}: {_describe(error)}") from error
        blocks = response.get("output", {}).get("message", {}).get("content", [])
        # Reasoning and tool blocks carry no `text`; only the answer's text blocks are the reply.
        text = "".join(block["text"] for block in blocks if isinstance(block.get("text"), str))
        if not text.strip():
            raise LLMUnavailable(f"Bedrock model {self._model}: empty reply (stopReason {response.get('stopReason')})")
        # A `max_tokens` stop still returns its text: the caller validates (and may repair) it.
        return text

    def stream(self, turns: Sequence[ChatTurn], sampling: Sampling) -> Iterator[str]:
        """ConverseStream: the answer's text deltas. An error event of the stream (throttling, a
        model error) and a read that times out (botocore's read timeout) end it with
        `LLMUnavailable`."""
        system = [{"text": t.content} for t in turns if t.role == "system"]
        messages = _alternating([t for t in turns if t.role != "system"])
        config = {
            name: value
            for name, value in (
                ("maxTokens", sampling.max_tokens),
                ("temperature", sampling.temperature),
                ("topP", sampling.top_p),
            )
            if value is not None
        }
        wrote = False
        try:
            response = self._runtime().converse_stream(
                modelId=self._model, system=system, messages=messages, inferenceConfig=config
            )
            for event in response.get("stream", []):
                text = event.get("contentBlockDelta", {}).get("delta", {}).get("text")
                if isinstance(text, str) and text:
                    wrote = True
                    yield text
        except (ClientError, BotoCoreError) as error:  # EventStreamError is a ClientError
            raise LLMUnavailable(f"Bedrock model {self._model}: {_describe(error)}") from error
        if not wrote:
            raise LLMUnavailable(f"Bedrock model {self._model}: empty answer")


def _alternating(turns: Sequence[ChatTurn]) -> list[dict[str, Any]]:
    """Converse's messages: consecutive turns of one role joined (Converse requires the roles to
    alternate, starting with the user's)."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        if messages and messages[-1]["role"] == turn.role:
            messages[-1]["content"].append({"text": turn.content})
        else:
            messages.append({"role": turn.role, "content": [{"text": turn.content}]})
    if messages and messages[0]["role"] != "user":
        messages.insert(0, {"role": "user", "content": [{"text": "(earlier conversation)"}]})
    return messages


class TitanEmbedder:
    """`Embedder` on Titan Text Embeddings v2, which embeds one text per InvokeModel call: a batch
    runs on a small thread pool (results in input order)."""

    def __init__(
        self,
        model_id: str = "amazon.titan-embed-text-v2:0",
        *,
        dimension: int = 1024,
        region: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        client: Any = None,
        max_workers: int = 8,
    ) -> None:
        if dimension not in TITAN_V2_DIMENSIONS:
            raise ValueError(f"Titan v2 embeddings have {TITAN_V2_DIMENSIONS} dimensions, not {dimension}")
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._model = model_id
        self._dimension = dimension
        self._max_workers = max_workers
        self._client = _LazyClient(region, timeout, max_retries, client)

    @property
    def model_id(self) -> str:
        return f"bedrock:{self._model}:{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int | None:
        return MAX_TOKENS

    def _runtime(self) -> Any:
        return self._client.get()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if len(texts) <= 1 or self._max_workers == 1:
            return [self._one(text) for text in texts]
        with ThreadPoolExecutor(max_workers=min(self._max_workers, len(texts))) as pool:
            futures = [pool.submit(self._one, text) for text in texts]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()  # one failure fails the batch: don't spend calls on the rest
                raise

    def _one(self, text: str) -> list[float]:
        # Titan rejects empty input with a ValidationException, which would fail (and redeliver)
        # the whole message forever; "." embeds "nothing" near other contentless texts instead.
        body = {"inputText": text.strip() or ".", "dimensions": self._dimension, "normalize": True}
        try:
            response = self._runtime().invoke_model(
                modelId=self._model,
                body=json.dumps(body).encode(),
                contentType="application/json",
                accept="application/json",
            )
            payload = json.loads(response["body"].read())
        except (ClientError, BotoCoreError) as error:
            raise Unavailable(f"Bedrock embeddings {self._model}: {_describe(error)}") from error
        except ValueError as error:  # a body that is not JSON
            raise Unavailable(f"Bedrock embeddings {self._model}: unreadable response ({error})") from error
        vector = payload.get("embedding") if isinstance(payload, dict) else None
        if not isinstance(vector, list):
            raise Unavailable(f"Bedrock embeddings {self._model}: the response has no embedding")
        if len(vector) != self._dimension:
            raise Unavailable(
                f"Bedrock embeddings {self._model}: returned {len(vector)}-d vectors but the "
                f"embedding dimension setting is {self._dimension}"
            )
        # Titan normalizes already; normalizing again only removes rounding drift.
        norm = math.sqrt(sum(float(v) * float(v) for v in vector))
        return [float(v) / norm for v in vector] if norm > 0 else [float(v) for v in vector]


class BedrockReranker:
    """`Reranker` through Bedrock's Rerank API (`bedrock-agent-runtime`), with Amazon's or
    Cohere's rerank model: one call scores every candidate against the query."""

    def __init__(
        self,
        model_id: str = "amazon.rerank-v1:0",
        *,
        region: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 2,
        client: Any = None,
    ) -> None:
        self._model = model_id
        self._region = region
        self._client = _LazyClient(region, timeout, max_retries, client, service="bedrock-agent-runtime")

    @property
    def model_id(self) -> str:
        return f"bedrock:{self._model}"

    def _arn(self) -> str:
        region = self._region or self._client.get().meta.region_name
        return f"arn:aws:bedrock:{region}::foundation-model/{self._model}"

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        if not documents:
            return []
        sources = [
            {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": d}}} for d in documents
        ]
        config = {"numberOfResults": len(documents), "modelConfiguration": {"modelArn": self._arn()}}
        try:
            response = self._client.get().rerank(
                queries=[{"type": "TEXT", "textQuery": {"text": query}}],
                sources=sources,
                rerankingConfiguration={"type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": config},
            )
        except (ClientError, BotoCoreError) as error:
            raise Unavailable(f"Bedrock rerank model {self._model}: {_describe(error)}") from error
        scores = [0.0] * len(documents)
        for result in response.get("results", []):
            index = result.get("index")
            if isinstance(index, int) and 0 <= index < len(documents):
                scores[index] = float(result.get("relevanceScore", 0.0))
        return scores
