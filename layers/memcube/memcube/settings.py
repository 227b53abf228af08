"""Typed settings, read once from `MEMCUBE_*` environment variables (and validated there)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMCUBE_", frozen=True, extra="ignore")

    backend: Literal["embedded", "memory", "aws"] = "embedded"
    """embedded: SQLite files in `data_dir` with an in-process worker; memory: dicts (tests);
    aws: DynamoDB + SQS FIFO + OpenSearch."""

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

    sync_timeout_seconds: float = Field(default=25.0, gt=0, le=600)
    """How long a sync add waits for its task before answering `in_progress`."""

    embedder: Literal["hash"] = "hash"
    """Embedding model. `hash`: the deterministic offline feature-hashing embedder."""
    embedding_dimension: int = Field(default=384, ge=8, le=4096)

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
        return self
