"""The worker poller as an OS process of its own, so a test can SIGKILL it (a Lambda worker's
death): `python -m tests.realserver.poller_process '<Tier JSON>'` builds the aws deployment's
container on the real servers the same way `aws_stack` does (DynamoDB Local table, LocalStack
queue and claim-check bucket, osmem-server index, hash embedder), makes the worker ready, then
loops `Poller.poll_once` invoking the worker Lambda handler in-process. It prints `ready`, and
`received <n>` / `handled <n>` around each batch (flushed), so the test can tell what a kill hit."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

import boto3

from memcube.adapters.dynamodb import open_stores
from memcube.adapters.dynamodb.table import DynamoTable
from memcube.adapters.opensearch_index import OpenSearchIndex
from memcube.adapters.sqs_queue import SqsQueue
from memcube.settings import Settings
from memcube.wiring import Container

CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class Tier:
    """Where one deployment's data lives on the real servers, and its worker's attempt limit."""

    dynamodb_endpoint: str
    table: str
    aws_endpoint: str
    """LocalStack: SQS and S3."""
    queue_url: str
    dlq_url: str
    bucket: str
    opensearch_url: str
    opensearch_index: str
    max_receive_count: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def container(tier: Tier) -> Container:
    """The aws deployment's container, as `tests.realserver.test_end_to_end.aws_stack` builds it
    (osmem-server has no k-NN engine: its index runs with vector search off)."""
    settings = Settings(
        backend="aws",
        embedder="hash",
        queue_url=tier.queue_url,
        dead_letter_queue_url=tier.dlq_url,
        table_name=tier.table,
        bucket_name=tier.bucket,
        opensearch_endpoint=tier.opensearch_url,
        opensearch_index=tier.opensearch_index,
        opensearch_service="es",
        opensearch_auth="none",
        max_receive_count=tier.max_receive_count,
        sync_timeout_seconds=30,
    )
    ddb = boto3.client("dynamodb", endpoint_url=tier.dynamodb_endpoint, **CREDS)
    sqs = boto3.client("sqs", endpoint_url=tier.aws_endpoint, **CREDS)
    s3 = boto3.client("s3", endpoint_url=tier.aws_endpoint, **CREDS)
    index = OpenSearchIndex(
        tier.opensearch_url, index=tier.opensearch_index, service="es", auth="none", vector_search=False
    )
    index.bootstrap()
    queue = SqsQueue(tier.queue_url, bucket=tier.bucket, sqs=sqs, s3=s3, inline_limit=4096)
    return Container(settings, stores=open_stores(DynamoTable(tier.table, ddb)), sqs_queue=queue, index=index)


def main(argv: list[str]) -> None:
    import memcube.wiring
    from memcube_worker.handler import lambda_handler
    from tests.lambda_support import FakeLambdaContext
    from tests.realserver.poller import Poller

    tier = Tier(**json.loads(argv[1]))
    worker = container(tier)
    worker.warm_worker()  # ready before the first receive, as the Lambda's init phase
    memcube.wiring._container = worker  # the handler's process-wide container
    poller = Poller(worker.sqs_queue.sqs, tier.queue_url, lambda_handler, FakeLambdaContext())
    real = poller._handler

    def handler(event: dict[str, object], context: object) -> dict[str, object]:
        records = len(event["Records"])  # type: ignore[arg-type]
        print(f"received {records}", flush=True)
        result = real(event, context)
        print(f"handled {records}", flush=True)
        return result

    poller._handler = handler
    print("ready", flush=True)
    while True:
        poller.poll_once(wait_seconds=1)


if __name__ == "__main__":
    main(sys.argv)
