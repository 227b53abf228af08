"""The LLM and Embedder ports over any OpenAI-compatible HTTP API (OpenAI, vLLM, Ollama, DeepSeek,
Qwen, LiteLLM...), through the official `openai` SDK.

The SDK owns timeouts and retries: it retries 408/409/429/5xx and connection errors with
exponential backoff and honours Retry-After. What is still failing after that is mapped here to
the domain's `LLMUnavailable` (chat) or `Unavailable` (embeddings), so the worker leaves the
message for redelivery and the task part says why. Error messages name the endpoint, model, HTTP
status and the provider's own message, never the API key.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from memcube.domain.errors import LLMUnavailable, Unavailable
from memcube.ports import ChatTurn, Sampling

_PROVIDER = "OpenAI-compatible"
_MAX_DETAIL = 300
"""Characters of the provider's error message kept in ours (a task part is not a log)."""
MAX_TOKENS = 2048
"""OpenAI's embedding models read 8,191 tokens; servers of smaller models (BERT-sized: 512) less.
2048 of the reader's tokens is what a memory ever needs (its windows and chunks are smaller), so
only a document chunk on a 512-token model could run over, and such a server reports it."""


def _safe_url(url: str) -> str:
    """The base URL without any user:password part, fit for an error message."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # IPv6 literal
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _describe(error: openai.OpenAIError, api_key: str | None) -> str:
    """`HTTP <status>: <provider message>` for a status error, the SDK's message otherwise."""
    if isinstance(error, openai.APIStatusError):
        body = error.body
        detail: str
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            detail = body["message"]
        elif isinstance(body, str) and body.strip():
            detail = body.strip()
        else:
            detail = error.message
        text = f"HTTP {error.status_code}: {detail[:_MAX_DETAIL]}"
    elif isinstance(error, openai.APITimeoutError):
        text = "timed out"
    elif isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        text = f"connection failed ({cause})" if cause else "connection failed"
    else:
        text = str(error)[:_MAX_DETAIL]
    if api_key:
        text = text.replace(api_key, "***")  # a provider may echo the key back
    return text


def _unit(vector: list[float]) -> list[float]:
    """L2-normalized: the index ranks by cosine and the Embedder contract promises unit vectors."""
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm > 0 else vector


class OpenAICompatibleLLM:
    """`LLM` over `POST {base_url}/chat/completions`, temperature 0, JSON mode where asked."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        client: openai.OpenAI | None = None,
    ) -> None:
        self._model = model
        self._api_key = api_key
        self._where = f"{_PROVIDER} LLM at {_safe_url(base_url)} (model {model})"
        # Local servers (vLLM, Ollama) take no key, but the SDK insists on one.
        self._client = client or openai.OpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=max_retries
        )
        self._json_mode = True
        """False once the server refused `response_format` (older vLLM/Ollama builds answer 400)."""

    @property
    def model_id(self) -> str:
        return f"openai:{self._model}"

    def complete(self, system: str, user: str, *, json_output: bool = True) -> str:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        try:
            try:
                reply = self._create(messages, json_mode=json_output and self._json_mode)
            except openai.BadRequestError as error:
                if not (json_output and self._json_mode and _mentions_response_format(error)):
                    raise
                # The prompt still asks for JSON; the caller validates the reply either way.
                self._json_mode = False
                reply = self._create(messages, json_mode=False)
        except openai.OpenAIError as error:
            self._fail(error)
        choice = reply.choices[0] if reply.choices else None
        content = choice.message.content if choice else None
        if not content or not content.strip():
            reason = choice.finish_reason if choice else "no choices"
            raise LLMUnavailable(f"{self._where}: empty reply (finish_reason {reason})")
        return content

    def _create(self, messages: list[ChatCompletionMessageParam], *, json_mode: bool) -> ChatCompletion:
        if json_mode:
            return self._client.chat.completions.create(
                model=self._model, messages=messages, temperature=0, response_format={"type": "json_object"}
            )
        return self._client.chat.completions.create(model=self._model, messages=messages, temperature=0)

    def stream(self, turns: Sequence[ChatTurn], sampling: Sampling) -> Iterator[str]:
        """`stream: true`: the answer's text deltas as the server sends them. The client's timeout
        bounds each read, so a server that stops sending ends the stream with `LLMUnavailable`."""
        messages: list[ChatCompletionMessageParam] = [
            {"role": t.role, "content": t.content}  # type: ignore[misc]  # a role literal per TypedDict
            for t in turns
        ]
        wrote = finished = False
        try:
            chunks = self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                stream=True,
                max_tokens=_given(sampling.max_tokens),
                temperature=_given(sampling.temperature),
                top_p=_given(sampling.top_p),
            )
            for chunk in chunks:
                choice = chunk.choices[0] if chunk.choices else None
                finished = finished or bool(choice and choice.finish_reason)
                if choice and choice.delta.content:
                    wrote = True
                    yield choice.delta.content
        except openai.OpenAIError as error:
            self._fail(error)
        except httpx.HTTPError as error:  # a transport error while reading the stream's body
            raise LLMUnavailable(f"{self._where}: the answer's stream broke off ({type(error).__name__})") from error
        if not finished:  # the connection closed before the model said it was done
            raise LLMUnavailable(f"{self._where}: the answer's stream ended before the model finished")
        if not wrote:
            raise LLMUnavailable(f"{self._where}: empty answer")

    def _fail(self, error: openai.OpenAIError) -> NoReturn:
        raise LLMUnavailable(f"{self._where}: {_describe(error, self._api_key)}") from error


def _given(value: float | None) -> Any:
    """The value, or the SDK's marker for a parameter left out of the request (not sent as null)."""
    return openai.omit if value is None else value


def _mentions_response_format(error: openai.BadRequestError) -> bool:
    return "response_format" in f"{error.message} {error.body}".lower()


class OpenAICompatibleEmbedder:
    """`Embedder` over `POST {base_url}/embeddings`, in batches of `batch_size` texts."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        dimension: int,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        batch_size: int = 96,
        client: openai.OpenAI | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._model = model
        self._dimension = dimension
        self._batch_size = batch_size
        self._api_key = api_key
        self._where = f"{_PROVIDER} embeddings at {_safe_url(base_url)} (model {model})"
        self._client = client or openai.OpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=max_retries
        )

    @property
    def model_id(self) -> str:
        return f"openai:{self._model}:{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int | None:
        return MAX_TOKENS

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors += self._batch(texts[start : start + self._batch_size])
        return vectors

    def _batch(self, texts: Sequence[str]) -> list[list[float]]:
        # OpenAI refuses an empty input string; a lone "." embeds "nothing" without failing the batch.
        inputs = [text if text.strip() else "." for text in texts]
        try:
            # "float" explicitly: the SDK would otherwise ask for base64, which not every
            # compatible server implements.
            response = self._client.embeddings.create(model=self._model, input=inputs, encoding_format="float")
        except openai.OpenAIError as error:
            raise Unavailable(f"{self._where}: {_describe(error, self._api_key)}") from error
        data = sorted(response.data, key=lambda datum: datum.index)
        if [datum.index for datum in data] != list(range(len(inputs))):
            raise Unavailable(
                f"{self._where}: asked for {len(inputs)} vectors, got indexes {[d.index for d in data][:10]}"
            )
        for datum in data:
            if len(datum.embedding) != self._dimension:
                raise Unavailable(
                    f"{self._where}: the endpoint returned {len(datum.embedding)}-d vectors but "
                    f"the embedding dimension setting is {self._dimension}"
                )
        return [_unit([float(v) for v in datum.embedding]) for datum in data]
