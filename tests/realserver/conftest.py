"""Session-wide real servers (installed on first use) and an AWS stack made of them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.aws_support import create_table
from tests.realserver.servers import Running, start_dynamodb_local, start_localstack

CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


EXTERNAL_AWS = os.environ.get("MEMCUBE_E2E_AWS_ENDPOINT_URL")
"""Set it (e.g. http://localhost:4566 for LocalStack in Docker) to run this tier against servers you
started yourself instead of the ones it installs: DynamoDB, SQS and S3 all at that endpoint."""


@dataclass
class External:
    endpoint: str

    def stop(self) -> None:
        return None


def _server(start: Callable[[Path], Running], workdir: Callable[[], Path]) -> Iterator[Running | External]:
    """MEMCUBE_E2E_AWS_ENDPOINT_URL when set, else a server this session starts (and stops)."""
    if EXTERNAL_AWS:
        yield External(EXTERNAL_AWS)
        return
    server = start(workdir())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dynamodb_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running | External]:
    yield from _server(start_dynamodb_local, lambda: tmp_path_factory.mktemp("ddb"))


@pytest.fixture(scope="session")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running | External]:
    yield from _server(start_localstack, lambda: tmp_path_factory.mktemp("localstack"))


@pytest.fixture
def search_url(request: pytest.FixtureRequest) -> str:
    """An OpenSearch-API endpoint: MEMCUBE_E2E_OPENSEARCH_URL (no auth), else an osmem-server clone."""
    external = os.environ.get("MEMCUBE_E2E_OPENSEARCH_URL")
    if external:
        return external
    url: str = request.getfixturevalue("osmem_url")
    return url


@pytest.fixture
def dynamodb(dynamodb_local: Running) -> Any:
    return boto3.client("dynamodb", endpoint_url=dynamodb_local.endpoint, **CREDS)


@pytest.fixture
def table(dynamodb: Any) -> str:
    """A fresh table per test, created from template.yaml's definition."""
    name = f"memcube-{uuid.uuid4().hex[:10]}"
    create_table(dynamodb, name)
    return name


@dataclass
class Queues:
    sqs: Any
    s3: Any
    url: str
    dlq_url: str
    bucket: str


@pytest.fixture
def queues(localstack: Running) -> Queues:
    """A FIFO queue with a FIFO DLQ (redrive after 3 receives), and a claim-check bucket."""
    return fifo_queues(localstack)


def fifo_queues(localstack: Running | External, visibility: int = 2, max_receives: int = 3) -> Queues:
    """A FIFO task queue (redrive to a FIFO DLQ after `max_receives`), and a claim-check bucket."""
    sqs = boto3.client("sqs", endpoint_url=localstack.endpoint, **CREDS)
    s3 = boto3.client("s3", endpoint_url=localstack.endpoint, **CREDS)
    suffix = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"dlq-{suffix}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=f"tasks-{suffix}.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receives}"}}',
        },
    )["QueueUrl"]
    bucket = f"memcube-claims-{suffix}"
    s3.create_bucket(Bucket=bucket)
    return Queues(sqs, s3, url, dlq, bucket)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
