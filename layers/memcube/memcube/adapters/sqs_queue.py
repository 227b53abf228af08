"""SQS FIFO: the task queue on AWS, with an S3 claim check for bodies over the SQS size limit.

`MessageGroupId` is the cube id (per-cube order), `MessageDeduplicationId` is derived from task and
cube. A body larger than `inline_limit` is stored in S3 and the message carries a small claim
check (`{"v": 1, "claim_check": {...}}`) that `resolve_body` turns back into the original body,
verifying its SHA-256, before the worker parses it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from memcube.domain.messages import QueuedAdd

SQS_BATCH = 10
DEFAULT_INLINE_LIMIT = 240 * 1024
"""SQS accepts 256 KiB per message (attributes included); leave room for them."""


class QueueSendError(RuntimeError):
    """SQS refused some messages of a batch; none is silently dropped."""


class SqsQueue:
    def __init__(
        self,
        queue_url: str,
        *,
        bucket: str | None = None,
        sqs: Any | None = None,
        s3: Any | None = None,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
    ) -> None:
        self._url = queue_url
        self._bucket = bucket
        self._sqs = sqs
        self._s3 = s3
        self._inline_limit = inline_limit

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            import boto3

            self._sqs = boto3.client("sqs")
        return self._sqs

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def send(self, messages: Sequence[QueuedAdd]) -> None:
        self.send_raw([(m.group_id, m.dedup_id, self._inline(m)) for m in messages])

    def send_raw(self, entries: Sequence[tuple[str, str, str]]) -> None:
        """Send (group id, dedup id, body) triples in batches of 10; raise if SQS refuses any."""
        for start in range(0, len(entries), SQS_BATCH):
            chunk = entries[start : start + SQS_BATCH]
            response = self.sqs.send_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(n), "MessageBody": body, "MessageGroupId": group, "MessageDeduplicationId": dedup}
                    for n, (group, dedup, body) in enumerate(chunk)
                ],
            )
            failed = response.get("Failed") or []
            if failed:
                detail = ", ".join(f"{chunk[int(f['Id'])][0]}: {f.get('Code')} {f.get('Message', '')}" for f in failed)
                raise QueueSendError(f"SQS refused {len(failed)} of {len(chunk)} messages ({detail})")

    def _inline(self, msg: QueuedAdd) -> str:
        body = msg.model_dump_json()
        data = body.encode()
        if len(data) <= self._inline_limit:
            return body
        if self._bucket is None:
            raise QueueSendError(
                f"message of {len(data)} bytes is over the SQS limit and no claim-check bucket is configured "
                "(MEMCUBE_BUCKET_NAME)"
            )
        digest = hashlib.sha256(data).hexdigest()
        key = f"claims/{msg.task_id}/{msg.cube_id}/{digest}.json"
        self.s3.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType="application/json")
        return json.dumps(
            {"v": 1, "claim_check": {"bucket": self._bucket, "key": key, "sha256": digest, "bytes": len(data)}}
        )

    def resolve_body(self, body: str) -> str:
        """The message body itself, or the original body a claim check points to (verified)."""
        claim = _claim_check(body)
        if claim is None:
            return body
        data: bytes = self.s3.get_object(Bucket=claim["bucket"], Key=claim["key"])["Body"].read()
        if hashlib.sha256(data).hexdigest() != claim["sha256"]:
            raise ClaimCheckError(f"claim check {claim['key']} does not match its SHA-256")
        return data.decode()

    def dead_letter(self, body: str, reason: str, group_id: str, dead_letter_url: str) -> None:
        """Park a message that will never succeed in the DLQ, with its reason as an attribute."""
        self.sqs.send_message(
            QueueUrl=dead_letter_url,
            MessageBody=body,
            MessageGroupId=group_id or "unknown",
            MessageDeduplicationId=hashlib.sha256(f"{body}\x1f{reason}".encode()).hexdigest(),
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000]}},
        )

    def redrive(self, dead_letter_url: str, max_messages: int | None = None) -> int:
        """Move messages from the DLQ back to the task queue (new dedup ids, same groups) and
        delete them from the DLQ; safe to repeat because the worker's effects are idempotent."""
        moved = 0
        while max_messages is None or moved < max_messages:
            got = self.sqs.receive_message(
                QueueUrl=dead_letter_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                MessageSystemAttributeNames=["MessageGroupId", "MessageDeduplicationId"],
            ).get("Messages", [])
            if not got:
                return moved
            self.send_raw(
                [
                    (
                        m["Attributes"].get("MessageGroupId", "unknown"),
                        hashlib.sha256(f"redrive\x1f{m['MessageId']}".encode()).hexdigest(),
                        m["Body"],
                    )
                    for m in got
                ]
            )
            self.sqs.delete_message_batch(
                QueueUrl=dead_letter_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)],
            )
            moved += len(got)
        return moved


class ClaimCheckError(RuntimeError):
    pass


def _claim_check(body: str) -> dict[str, Any] | None:
    if not body.startswith('{"v": 1, "claim_check"'):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    claim = parsed.get("claim_check")
    return claim if isinstance(claim, dict) else None
