"""Drives a worker handler from a real SQS queue the way Lambda's SQS event source mapping does:
receive a batch with its system attributes, invoke the handler with a real SQS event, delete the
records it did not report as failed, and leave the reported ones for redelivery."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Poller:
    def __init__(self, sqs: Any, queue_url: str, handler: Handler, context: Any) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._handler = handler
        self._context = context
        self._arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.batches = 0
        self.failures = 0

    def poll_once(self, wait_seconds: int = 1) -> int:
        """One receive + invoke + delete round; the number of records handled."""
        got = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            return 0
        event = {"Records": [self._record(m) for m in got]}
        try:
            result = self._handler(event, self._context)
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        except Exception:  # a function error: Lambda returns the whole batch to the queue
            failed = {m["MessageId"] for m in got}
        self.batches += 1
        self.failures += len(failed)
        done = [m for m in got if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)],
            )
        return len(got)

    def drain(self, until: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError("the queue did not drain in time")
            self.poll_once()

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        body = message["Body"]
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": body,
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._arn,
            "awsRegion": "us-east-1",
        }
