"""Typed settings, read once from `MEMCUBE_*` environment variables (and validated there)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMCUBE_", frozen=True, extra="ignore")

    backend: Literal["embedded", "memory", "aws"] = "embedded"
    """embedded: SQLite files in `data_dir` with an in-process worker (built by `memcube_local`);
    aws: DynamoDB + SQS FIFO + OpenSearch; memory: the tests', whose adapters no container builds
    (the tests pass their in-memory doubles, `tests/doubles`)."""

    data_dir: Path = Field(default_factory=lambda: Path.home() / ".memcube")
    workers: int = Field(default=2, ge=0, le=32)
    """Embedded worker threads: cubes are processed in parallel, each cube in order. 0 runs the
    API alone: adds are accepted and queued durably, and processed by the next serve with workers."""

    max_receive_count: int = Field(default=5, ge=1, le=100)
    """Processing attempts of one message before the worker dead-letters it and fails its task
    part. Keep the SQS redrive policy's maxReceiveCount well above it (the template uses 4x): on
    a FIFO queue, messages skipped behind a failing one of their cube are received too."""

    lease_seconds: float = Field(default=900.0, gt=0)
    """Embedded queue visibility timeout (SQS: the queue's VisibilityTimeout)."""

    suspect_grace_seconds: float = Field(default=5.0, ge=0, le=600)
    """Embedded worker: a message that was in flight when the process died (a suspect) runs
    alone only once the restarted worker has been taking messages this long, so kills that come
    again and again while the server is starting (a liveness probe, a crash loop elsewhere)
    never land on a suspect's lone run, the only death blamed on a message."""

    record_budget_seconds: float = Field(default=120.0, ge=0, le=900)
    """Worker Lambda: a message is only started with at least this much of the invocation left
    (fine mode calls an LLM per window); later ones of the batch go back to the queue unstarted."""

    sync_timeout_seconds: float = Field(default=25.0, gt=0, le=600)
    """How long a sync add waits for its task before answering `in_progress`."""

    wait_max_seconds: float | None = Field(default=None, gt=0, le=3600)
    """The longest `/product/scheduler/wait` (and its stream) may block; a longer timeout asked
    for is cut to it, and the answer says so. Default: 20 s on aws (API Gateway ends a request
    at 30 s), 600 s otherwise."""

    embedder: Literal["minilm", "hash", "bedrock", "openai"] | None = None
    """Embedding model; by default `minilm` embedded, `bedrock` on aws, `hash` on memory.
    `minilm`: all-MiniLM-L6-v2 run locally (offline, 384-d); `hash`: the deterministic
    feature-hashing embedder (tests); `bedrock`: Amazon Titan text embeddings; `openai`: any
    OpenAI-compatible /embeddings endpoint. An index records the model it was built with and
    refuses vectors of another (reindex to switch)."""
    embedding_model: str | None = None
    """The provider's model id (bedrock: amazon.titan-embed-text-v2:0; openai: e.g. text-embedding-3-small)."""
    embedding_dimension: int = Field(default=384, ge=8, le=4096)
    embedding_base_url: str | None = None
    embedding_api_key: SecretStr | None = None

    auth: Literal["none", "keys"] | None = None
    """`keys`: every request needs an API key (`Authorization: Token <key>` or `Bearer <key>`),
    created with `memcube keys create`. Default: `keys` on aws (always on there), `none` for the
    embedded default, which listens on 127.0.0.1 only; set `keys` before exposing it."""

    jwt_api_id: str | None = None
    """aws: the id of the stack's JWT HTTP API (template parameter `JwtIssuer`). A request that
    arrives through that API was verified by its JWT authorizer and acts as the token's
    `jwt_user_claim`; the token's scopes `jwt_service_scope` / `jwt_admin_scope` give service or
    admin rights. Requests through any other API still need an API key."""
    jwt_user_claim: str = "sub"
    jwt_service_scope: str = "memcube/service"
    jwt_admin_scope: str = "memcube/admin"

    rate_limit_per_minute: int = Field(default=0, ge=0, le=1_000_000)
    """Requests per minute per principal (the API key's user; with keys off, the body's user_id);
    0 = unlimited. Over it: 429 with Retry-After."""
    daily_add_quota: int = Field(default=0, ge=0, le=100_000_000)
    """Adds per day per principal; 0 = unlimited."""

    llm: Literal["none", "bedrock", "openai"] = "none"
    """The LLM for fine mode, feedback decisions and the organizer's judge. `none`: fast mode
    only (a fine request says so); `openai`: any OpenAI-compatible chat endpoint (vLLM, Ollama,
    DeepSeek, Qwen, OpenAI) at `llm_base_url`; `bedrock`: the Bedrock Converse API."""
    llm_model: str | None = None
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_max_output_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    """`openai` only: the `max_tokens` of each completion (a reply cut there is still read and
    repaired). Unset: not sent, the server's own limit applies."""

    reranker: Literal["none", "llm", "http", "bedrock"] | None = None
    """What `rerank: true` on a search uses. `http`: a Cohere-style `POST {reranker_base_url}/rerank`
    (Cohere, Jina, vLLM, Hugging Face TEI, LiteLLM); `bedrock`: Bedrock's Rerank API
    (`reranker_model`, default amazon.rerank-v1:0); `llm`: the configured LLM. Default: `llm` when
    an LLM is configured, else `none` (a search then says it was not reranked)."""
    reranker_model: str | None = None
    reranker_base_url: str | None = None
    reranker_api_key: SecretStr | None = None

    near_duplicate_jaccard: float = Field(default=0.7, gt=0, le=1)
    """Organizer: word-shingle Jaccard similarity at or above which a new item is merged into an
    existing one (lexical, so consistent the moment an item is written)."""
    near_duplicate_cosine: float = Field(default=0.9, gt=0, le=1)
    """Organizer: embedding cosine at or above which a new item is merged into an existing one."""
    related_cosine: float = Field(default=0.6, gt=0, le=1)
    """Organizer and feedback: cosine at or above which an existing item is offered to the LLM
    as related (redundant / contradictory / independent; ADD / UPDATE / NONE)."""

    feedback_cosine: float = Field(default=0.45, gt=0, le=1)
    """Feedback without an LLM: the cosine at or above which the single clearly related item
    (ahead of the next by 0.1, sharing a content word) is superseded by the correction."""
    expiry_sweep_seconds: float = Field(default=60.0, ge=1, le=86_400)
    """Embedded: how often the worker erases expired memories (`domain.expiry`). Reads leave an
    expired memory out at once; this bounds how long it stays stored. (AWS: the template's schedule.)"""

    @property
    def wait_cap_seconds(self) -> float:
        if self.wait_max_seconds is not None:
            return self.wait_max_seconds
        return 20.0 if self.backend == "aws" else 600.0

    @property
    def auth_mode(self) -> Literal["none", "keys"]:
        if self.backend == "aws":
            return "keys"  # not configurable off on AWS
        return self.auth or "none"

    @property
    def embedder_kind(self) -> Literal["minilm", "hash", "bedrock", "openai"]:
        if self.embedder is not None:
            return self.embedder
        return {"embedded": "minilm", "aws": "bedrock", "memory": "hash"}[self.backend]  # type: ignore[return-value]

    @property
    def models_over_http(self) -> bool:
        """A model client that calls over httpx is configured (the OpenAI-compatible LLM or
        embedder, the HTTP reranker): the worker's tracer then traces httpx too."""
        return self.llm == "openai" or self.embedder_kind == "openai" or self.reranker == "http"

    queue_url: str | None = None
    dead_letter_queue_url: str | None = None
    table_name: str | None = None
    bucket_name: str | None = None
    """S3 bucket for claim checks (queued bodies over the SQS size limit)."""
    opensearch_endpoint: str | None = None
    opensearch_service: Literal["es", "aoss"] = "aoss"
    opensearch_index: str = "memcube-memories"
    opensearch_auth: Literal["sigv4", "none"] = "sigv4"
    """`none` only for a local OpenSearch-API test server."""

    @model_validator(mode="after")
    def _aws_needs_resources(self) -> Settings:
        if self.backend == "aws":
            missing = [
                f"MEMCUBE_{name.upper()}"
                for name in ("queue_url", "table_name", "opensearch_endpoint")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"the aws backend needs {', '.join(missing)} (the stack's Outputs)")
        if self.llm != "none" and not self.llm_model:
            raise ValueError(f"MEMCUBE_LLM={self.llm} needs MEMCUBE_LLM_MODEL")
        if self.llm == "openai" and not self.llm_base_url:
            raise ValueError("MEMCUBE_LLM=openai needs MEMCUBE_LLM_BASE_URL (e.g. http://localhost:11434/v1)")
        if self.reranker == "http" and not (self.reranker_base_url and self.reranker_model):
            raise ValueError("MEMCUBE_RERANKER=http needs MEMCUBE_RERANKER_BASE_URL and MEMCUBE_RERANKER_MODEL")
        if self.reranker == "llm" and self.llm == "none":
            raise ValueError("MEMCUBE_RERANKER=llm needs an LLM (MEMCUBE_LLM)")
        if self.embedder == "openai" and not (self.embedding_base_url and self.embedding_model):
            raise ValueError("MEMCUBE_EMBEDDER=openai needs MEMCUBE_EMBEDDING_BASE_URL and MEMCUBE_EMBEDDING_MODEL")
        return self
