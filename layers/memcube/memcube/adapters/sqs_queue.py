"""SQS FIFO: the task queue on AWS, with an S3 claim check for bodies over the SQS size limit.

`MessageGroupId` is the cube id (per-cube order) and `MessageDeduplicationId` is derived from task
and cube (`QueuedAdd.group_id` / `.dedup_id`). Messages go out in SendMessageBatch calls of at
most 10 entries and 256 KiB; an entry SQS refuses raises `QueueSendError` naming it (nothing is
dropped silently, and no later batch is sent after a refusal, so a group's order holds).

A body larger than `inline_limit` is stored in S3 under `claims/<task_id>/<cube_id>/<sha256>.json`
and the message carries a claim check instead (schema version 1):

    {"v": 1, "claim_check": {"bucket": "...", "key": "claims/...", "sha256": "<hex>", "bytes": 123}}

`resolve_body` turns a claim check back into the original body (only from the configured bucket
and prefix, checking size and SHA-256) and returns any other body unchanged; the worker calls it
before parsing. The S3 key is a function of the content, so a retried send rewrites the same
object; the bucket's lifecycle rule removes claims (keep it longer than the DLQ's retention).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from memcube.domain.base import Model
from memcube.domain.errors import PermanentError
from memcube.domain.messages import QueuedAdd

SQS_BATCH_ENTRIES = 10
SQS_BATCH_BYTES = 256 * 1024
"""The most one SendMessageBatch may carry in total, and one message on a queue whose
MaximumMessageSize is the classic 256 KiB: a bound that is safe on every queue."""
ATTRIBUTE_MARGIN = 16 * 1024
"""Room left under the SQS limit for message attributes (the DLQ's `reason`)."""
DEFAULT_INLINE_LIMIT = SQS_BATCH_BYTES - ATTRIBUTE_MARGIN
CLAIM_PREFIX = "claims/"
MAX_CLAIM_BYTES = 64 * 1024 * 1024
"""Refuse claim checks announcing more than this (a queued add is far smaller)."""
REASON_BYTES = 1000

Entry = tuple[str, str, str]
"""(MessageGroupId, MessageDeduplicationId, body)"""


class QueueSendError(RuntimeError):
    """SQS refused messages (or one cannot be sent at all); none is silently dropped."""

    def __init__(self, message: str, failures: Sequence[SendFailure] = ()) -> None:
        super().__init__(message)
        self.failures = tuple(failures)


class ClaimCheckError(PermanentError):
    """A claim check that can never be resolved: foreign bucket or prefix, missing object, or
    content that does not match its size or SHA-256."""


@dataclass(frozen=True)
class SendFailure:
    group_id: str
    dedup_id: str
    code: str
    message: str
    sender_fault: bool

    def __str__(self) -> str:
        fault = "sender" if self.sender_fault else "service"
        return f"group {self.group_id} dedup {self.dedup_id[:16]}: {self.code} ({fault}) {self.message}".rstrip()


class ClaimCheck(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1, max_length=1024)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0, le=MAX_CLAIM_BYTES)


class ClaimCheckEnvelope(Model):
    """The message body that stands in for a body stored in S3."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    claim_check: ClaimCheck


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
        if not 0 < inline_limit <= SQS_BATCH_BYTES:
            raise ValueError(f"inline_limit must be between 1 and {SQS_BATCH_BYTES} bytes, got {inline_limit}")
        self._url = queue_url
        self._bucket = bucket
        self._sqs = sqs
        self._s3 = s3
        self._inline_limit = inline_limit
        self._lock = threading.Lock()

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            with self._lock:
                if self._sqs is None:
                    from memcube.adapters import aws_session

                    self._sqs = aws_session.client("sqs")
        return self._sqs

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            with self._lock:
                if self._s3 is None:
                    from memcube.adapters import aws_session

                    self._s3 = aws_session.client("s3")
        return self._s3

    def send(self, messages: Sequence[QueuedAdd]) -> None:
        """Enqueue each message in its cube's group. Every body is prepared (large ones stored in
        S3) before the first batch goes out, so a body that cannot be sent fails the whole call."""
        entries = [(m.group_id, m.dedup_id, self._inline(m.model_dump_json(), m.task_id, m.cube_id)) for m in messages]
        self.send_raw(entries)

    def send_raw(self, entries: Sequence[Entry]) -> None:
        """Send (group id, dedup id, body) triples in batches of at most 10 entries and 256 KiB;
        raise `QueueSendError` with the refused entries, sending no later batch after a refusal."""
        sent = 0
        for chunk in _batches(entries):
            response = self.sqs.send_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(n), "MessageBody": body, "MessageGroupId": group, "MessageDeduplicationId": dedup}
                    for n, (group, dedup, body) in enumerate(chunk)
                ],
            )
            failures = _failures(chunk, response)
            if failures:
                raise QueueSendError(
                    f"SQS refused {len(failures)} of {len(chunk)} messages in a batch "
                    f"({sent} sent before it, {len(entries) - sent - len(chunk)} not attempted): "
                    + "; ".join(str(f) for f in failures),
                    failures,
                )
            sent += len(chunk)

    def discard(self, cube_id: str, user_id: str | None) -> list[str] | None:
        """SQS cannot delete a group's messages without receiving them (which would block the
        group behind the receipts): the worker drops them on delivery by the erasure mark."""
        return None

    def resolve_body(self, body: str) -> str:
        """The message body itself, or the original body a claim check points to (verified)."""
        claim = parse_claim_check(body)
        if claim is None:
            return body
        if self._bucket is None or claim.bucket != self._bucket or not claim.key.startswith(CLAIM_PREFIX):
            raise ClaimCheckError(
                f"claim check for s3://{claim.bucket}/{claim.key} is outside the configured claim-check "
                f"location (s3://{self._bucket or '<none>'}/{CLAIM_PREFIX})"
            )
        try:
            obj = self.s3.get_object(Bucket=claim.bucket, Key=claim.key)
        except Exception as exc:
            if _error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                raise ClaimCheckError(f"claim check {claim.key} points to no object (expired?)") from exc
            raise  # throttling, 5xx, network: transient, the delivery is retried
        data: bytes = obj["Body"].read(claim.bytes + 1)
        if len(data) != claim.bytes or hashlib.sha256(data).hexdigest() != claim.sha256:
            read = f"{len(data)}" if len(data) <= claim.bytes else f"over {claim.bytes}"
            raise ClaimCheckError(
                f"claim check {claim.key} does not match its SHA-256 and size "
                f"({read} bytes read, {claim.bytes} announced)"
            )
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            raise ClaimCheckError(f"claim check {claim.key} is not UTF-8") from exc

    def dead_letter(self, body: str, reason: str, group_id: str, dead_letter_url: str) -> None:
        """Park a message that will never succeed in the DLQ, with its reason as an attribute. A
        body over the inline limit (a resolved claim check) is parked as a claim check again."""
        task_id, cube_id = _ids(body, group_id)
        self.sqs.send_message(
            QueueUrl=dead_letter_url,
            MessageBody=self._inline(body, task_id, cube_id),
            MessageGroupId=group_id or "unknown",
            MessageDeduplicationId=hashlib.sha256(f"{body}\x1f{reason}".encode()).hexdigest(),
            MessageAttributes={"reason": {"DataType": "String", "StringValue": _truncate(reason, REASON_BYTES)}},
        )

    def redrive(self, dead_letter_url: str, max_messages: int | None = None) -> int:
        """Move messages from the DLQ back to the task queue (new dedup ids, same groups) and
        delete them from the DLQ; safe to repeat because the worker's effects are idempotent."""
        moved = 0
        while max_messages is None or moved < max_messages:
            want = 10 if max_messages is None else min(10, max_messages - moved)
            got = self.sqs.receive_message(
                QueueUrl=dead_letter_url,
                MaxNumberOfMessages=want,
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

    def _inline(self, body: str, task_id: str, cube_id: str) -> str:
        """The body to send: itself when small enough, else a claim check to a copy in S3."""
        data = body.encode()
        if len(data) <= self._inline_limit:
            return body
        if self._bucket is None:
            raise QueueSendError(
                f"message of {len(data)} bytes (task {task_id}, cube {cube_id}) is over the inline limit of "
                f"{self._inline_limit} bytes and no claim-check bucket is configured (MEMCUBE_BUCKET_NAME)"
            )
        digest = hashlib.sha256(data).hexdigest()
        key = f"{CLAIM_PREFIX}{_key_part(task_id)}/{_key_part(cube_id)}/{digest}.json"
        self.s3.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType="application/json")
        claim = ClaimCheck(bucket=self._bucket, key=key, sha256=digest, bytes=len(data))
        return ClaimCheckEnvelope(claim_check=claim).model_dump_json()


def parse_claim_check(body: str) -> ClaimCheck | None:
    """The claim check a body carries, or None for any other body. A body shaped like a claim
    check (only `v` and `claim_check` at the top) that does not validate raises ClaimCheckError."""
    if '"claim_check"' not in body:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or "claim_check" not in parsed or set(parsed) - {"v", "claim_check"}:
        return None
    try:
        return ClaimCheckEnvelope.model_validate(parsed).claim_check
    except ValidationError as exc:
        raise ClaimCheckError(f"invalid claim check: {exc.errors()[0]['msg']}") from exc


def _batches(entries: Sequence[Entry]) -> Iterator[Sequence[Entry]]:
    """Consecutive runs of at most 10 entries and 256 KiB of bodies (one larger body goes alone)."""
    start, size = 0, 0
    for n, (_, _, body) in enumerate(entries):
        body_bytes = len(body.encode())
        if n > start and (n - start == SQS_BATCH_ENTRIES or size + body_bytes > SQS_BATCH_BYTES):
            yield entries[start:n]
            start, size = n, 0
        size += body_bytes
    if start < len(entries):
        yield entries[start:]


def _failures(chunk: Sequence[Entry], response: dict[str, Any]) -> list[SendFailure]:
    failures = []
    seen = {str(s.get("Id")) for s in response.get("Successful") or []}
    for f in response.get("Failed") or []:
        group, dedup, _ = chunk[int(f["Id"])]
        seen.add(str(f["Id"]))
        failures.append(
            SendFailure(group, dedup, str(f.get("Code")), str(f.get("Message", "")), bool(f.get("SenderFault", False)))
        )
    for n, (group, dedup, _) in enumerate(chunk):
        if str(n) not in seen:
            failures.append(SendFailure(group, dedup, "NotAcknowledged", "neither successful nor failed", False))
    return failures


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def _ids(body: str, group_id: str) -> tuple[str, str]:
    """Task and cube ids of a body, as far as it can be read (it may be a poison message)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    fields = parsed if isinstance(parsed, dict) else {}
    return str(fields.get("task_id") or "unknown"), str(fields.get("cube_id") or group_id or "unknown")


_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.:@\-]")


def _key_part(value: str) -> str:
    """An id as one S3 key segment (ids are validated; dead letters may carry anything)."""
    return _UNSAFE_KEY_CHARS.sub("_", value)[:128] or "_"


def _truncate(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore")


class SqsDeadLetters:
    """The DeadLetterSink port on an SQS DLQ: parks a message with its reason for operators."""

    def __init__(self, queue: SqsQueue, dead_letter_url: str) -> None:
        self._queue = queue
        self._url = dead_letter_url

    def park(self, body: str, reason: str, group_id: str | None) -> None:
        self._queue.dead_letter(body, reason, group_id or "unknown", self._url)
