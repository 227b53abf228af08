"""moto tier for SqsQueue: an in-process FIFO queue (explicit dedup, like the template's), a FIFO
DLQ and a claim-check bucket per test, and a recorder of the SendMessageBatch calls made.

moto's FIFO send cost grows with queue depth, so tests keep queues shallow; redelivery order is
proven on LocalStack (tests/realserver/test_sqs_localstack.py), not here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from memcube.domain.messages import QueuedAdd
from memcube.domain.model import SourceMessage

REGION = "us-east-1"


def queued(task_id: str, cube_id: str, text: str = "I like green tea.") -> QueuedAdd:
    return QueuedAdd(
        task_id=task_id, cube_id=cube_id, user_id="u1", messages=[SourceMessage(type="text", content=text)]
    )


@dataclass
class Aws:
    sqs: Any
    s3: Any
    url: str
    dlq_url: str
    bucket: str
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    """The Entries of every SendMessageBatch call, in order."""

    def receive_all(self, url: str | None = None) -> list[dict[str, Any]]:
        """Every message now visible (each group's head first, then the rest as SQS hands them out),
        deleted as received so a group's next message becomes available."""
        got: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=url or self.url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                return got
            got.extend(batch)
            self.sqs.delete_message_batch(
                QueueUrl=url or self.url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)],
            )

    def depth(self) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        dlq = sqs.create_queue(QueueName="memcube-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        url = sqs.create_queue(
            QueueName="memcube-tasks.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
        )["QueueUrl"]
        s3.create_bucket(Bucket="memcube-claims")
        env = Aws(sqs, s3, url, dlq, "memcube-claims")

        def record(params: dict[str, Any], **_: Any) -> None:
            env.batches.append(list(params["Entries"]))

        sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", record)
        yield env


class RefusingSqs:
    """The moto client, except that SQS reports the entries of `groups` as `Failed` (as it does for
    a throttled or invalid entry) while the rest of the batch is sent. moto cannot produce a
    partial failure on a FIFO queue by itself; LocalStack's is tested in tests/realserver/test_sqs_localstack.py."""

    def __init__(self, client: Any, groups: set[str], code: str = "InternalError") -> None:
        self._client = client
        self._groups = groups
        self._code = code
        self.calls: list[list[str]] = []
        """The group ids of every SendMessageBatch call, refused entries included."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        entries = kwargs["Entries"]
        self.calls.append([e["MessageGroupId"] for e in entries])
        keep = [e for e in entries if e["MessageGroupId"] not in self._groups]
        refused = [e for e in entries if e["MessageGroupId"] in self._groups]
        sent: dict[str, Any] = self._client.send_message_batch(**{**kwargs, "Entries": keep}) if keep else {}
        return {
            "Successful": sent.get("Successful", []),
            "Failed": [
                {"Id": e["Id"], "SenderFault": False, "Code": self._code, "Message": "try again"} for e in refused
            ],
        }
