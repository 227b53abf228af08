"""SqsQueue on moto: FIFO group and dedup ids, batching, refused entries, S3 claim checks."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from memcube.adapters import sqs_queue
from memcube.adapters.sqs_queue import (
    SQS_BATCH_BYTES,
    ClaimCheckError,
    QueueSendError,
    SqsQueue,
    parse_claim_check,
)
from memcube.domain.errors import PermanentError
from memcube.domain.messages import QueuedAdd
from tests.integration.sqs.conftest import Aws, RefusingSqs, queued


def task_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [QueuedAdd.model_validate_json(m["Body"]).task_id for m in messages]


def test_each_message_carries_its_cube_as_group_and_a_task_cube_hash_as_dedup_id(aws: Aws) -> None:
    sent = [queued("t1", "alice"), queued("t1", "bob"), queued("t2", "alice")]
    SqsQueue(aws.url, sqs=aws.sqs).send(sent)

    got = aws.receive_all()

    assert sorted(task_ids(got)) == ["t1", "t1", "t2"]
    by_dedup = {m["Attributes"]["MessageDeduplicationId"]: m for m in got}
    for msg in sent:
        received = by_dedup[hashlib.sha256(f"{msg.task_id}\x1f{msg.cube_id}".encode()).hexdigest()]
        assert received["Attributes"]["MessageGroupId"] == msg.cube_id
        assert QueuedAdd.model_validate_json(received["Body"]) == msg


def test_the_same_task_and_cube_sent_again_is_not_queued_twice(aws: Aws) -> None:
    queue = SqsQueue(aws.url, sqs=aws.sqs)
    queue.send([queued("t1", "alice")])
    queue.send([queued("t1", "alice", "a retried request with other text")])

    assert task_ids(aws.receive_all()) == ["t1"]


def test_more_than_ten_messages_go_out_in_batches_of_at_most_ten(aws: Aws) -> None:
    SqsQueue(aws.url, sqs=aws.sqs).send([queued("t1", f"cube-{n:02d}") for n in range(12)])

    assert [len(batch) for batch in aws.batches] == [10, 2]
    assert [[e["Id"] for e in batch] for batch in aws.batches][1] == ["0", "1"]
    assert sorted(m["Attributes"]["MessageGroupId"] for m in aws.receive_all()) == [f"cube-{n:02d}" for n in range(12)]


def test_a_batch_never_carries_more_than_the_sqs_batch_payload(aws: Aws) -> None:
    text = "x" * (100 * 1024)  # about 100 KiB per body: two fit in 256 KiB, three do not
    SqsQueue(aws.url, sqs=aws.sqs).send([queued("t1", f"cube-{n}", text) for n in range(5)])

    assert [len(batch) for batch in aws.batches] == [2, 2, 1]
    assert all(sum(len(e["MessageBody"].encode()) for e in batch) <= SQS_BATCH_BYTES for batch in aws.batches)
    assert aws.depth() == 5


def test_an_entry_sqs_refuses_raises_with_its_group_and_code(aws: Aws) -> None:
    queue = SqsQueue(aws.url, sqs=RefusingSqs(aws.sqs, {"bob"}, code="ThrottlingException"))

    with pytest.raises(QueueSendError, match="1 of 3") as raised:
        queue.send([queued("t1", "alice"), queued("t1", "bob"), queued("t1", "carol")])

    [failure] = raised.value.failures
    assert (failure.group_id, failure.code, failure.sender_fault) == ("bob", "ThrottlingException", False)
    assert failure.dedup_id == queued("t1", "bob").dedup_id
    assert "group bob" in str(raised.value)
    assert aws.depth() == 2  # the others went out; a retry of the task re-sends all, dedup absorbs them


def test_no_later_batch_is_sent_after_a_refusal(aws: Aws) -> None:
    refusing = RefusingSqs(aws.sqs, {"cube-03"})
    queue = SqsQueue(aws.url, sqs=refusing)

    with pytest.raises(QueueSendError, match=r"2 not attempted"):
        queue.send([queued("t1", f"cube-{n:02d}") for n in range(12)])

    assert len(refusing.calls) == 1
    assert aws.depth() == 9


def test_an_entry_neither_successful_nor_failed_counts_as_refused(aws: Aws) -> None:
    class Silent(RefusingSqs):
        def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
            return {"Successful": [], "Failed": []}

    with pytest.raises(QueueSendError, match="NotAcknowledged"):
        SqsQueue(aws.url, sqs=Silent(aws.sqs, set())).send([queued("t1", "alice")])


def test_a_large_body_goes_by_claim_check_through_s3_and_resolves_byte_for_byte(aws: Aws) -> None:
    queue = SqsQueue(aws.url, bucket=aws.bucket, sqs=aws.sqs, s3=aws.s3, inline_limit=2048)
    big, small = queued("t1", "alice", "é" * 5000), queued("t1", "bob")

    queue.send([big, small])

    got = {m["Attributes"]["MessageGroupId"]: m["Body"] for m in aws.receive_all()}
    assert got["bob"] == small.model_dump_json()
    assert queue.resolve_body(got["bob"]) == got["bob"]
    claim = parse_claim_check(got["alice"])
    assert claim is not None
    original = big.model_dump_json().encode()
    digest = hashlib.sha256(original).hexdigest()
    assert json.loads(got["alice"]) == {
        "v": 1,
        "claim_check": {
            "bucket": aws.bucket,
            "key": f"claims/t1/alice/{digest}.json",
            "sha256": digest,
            "bytes": len(original),
        },
    }
    assert len(got["alice"]) < 300
    assert queue.resolve_body(got["alice"]) == big.model_dump_json()


def test_resending_a_claimed_body_rewrites_the_same_object(aws: Aws) -> None:
    queue = SqsQueue(aws.url, bucket=aws.bucket, sqs=aws.sqs, s3=aws.s3, inline_limit=1024)
    queue.send([queued("t1", "alice", "y" * 3000)])
    queue.send([queued("t1", "alice", "y" * 3000)])

    assert len(aws.s3.list_objects_v2(Bucket=aws.bucket)["Contents"]) == 1
    assert aws.depth() == 1


def test_a_claim_whose_object_changed_is_refused(aws: Aws) -> None:
    queue = SqsQueue(aws.url, bucket=aws.bucket, sqs=aws.sqs, s3=aws.s3, inline_limit=1024)
    queue.send([queued("t1", "alice", "z" * 3000)])
    [got] = aws.receive_all()
    claim = parse_claim_check(got["Body"])
    assert claim is not None
    tampered = queued("t1", "alice", "Z" * 3000).model_dump_json().encode()  # same size, other bytes
    aws.s3.put_object(Bucket=aws.bucket, Key=claim.key, Body=tampered)

    with pytest.raises(ClaimCheckError, match="SHA-256"):
        queue.resolve_body(got["Body"])
    aws.s3.put_object(Bucket=aws.bucket, Key=claim.key, Body=b"{}")
    with pytest.raises(ClaimCheckError, match=r"SHA-256 and size \(2 bytes read"):
        queue.resolve_body(got["Body"])


def test_a_claim_whose_object_is_gone_is_a_permanent_error(aws: Aws) -> None:
    queue = SqsQueue(aws.url, bucket=aws.bucket, sqs=aws.sqs, s3=aws.s3, inline_limit=1024)
    queue.send([queued("t1", "alice", "w" * 3000)])
    [got] = aws.receive_all()
    aws.s3.delete_object(Bucket=aws.bucket, Key=json.loads(got["Body"])["claim_check"]["key"])

    with pytest.raises(PermanentError, match="no object"):
        queue.resolve_body(got["Body"])


@pytest.mark.parametrize(
    ("bucket", "key"),
    [("someone-elses-bucket", "claims/t1/alice/x.json"), ("memcube-claims", "secrets/config.json")],
)
def test_a_claim_outside_the_claim_check_location_is_refused_without_reading_it(
    aws: Aws, bucket: str, key: str
) -> None:
    forged = json.dumps({"v": 1, "claim_check": {"bucket": bucket, "key": key, "sha256": "0" * 64, "bytes": 2}})
    queue = SqsQueue(aws.url, bucket=aws.bucket, sqs=aws.sqs, s3=None)

    with pytest.raises(ClaimCheckError, match="outside the configured claim-check location"):
        queue.resolve_body(forged)


@pytest.mark.parametrize(
    "body",
    [
        '{"v": 2, "claim_check": {"bucket": "memcube-claims", "key": "claims/k", "sha256": "0", "bytes": 1}}',
        '{"v": 1, "claim_check": {"bucket": "memcube-claims", "key": "claims/k"}}',
    ],
)
def test_a_malformed_claim_check_is_refused(aws: Aws, body: str) -> None:
    with pytest.raises(ClaimCheckError, match="invalid claim check"):
        SqsQueue(aws.url, bucket=aws.bucket, sqs=aws.sqs, s3=aws.s3).resolve_body(body)


@pytest.mark.parametrize(
    "body",
    [
        queued("t1", "alice", 'please remember "claim_check" is a word').model_dump_json(),
        '{"claim_check": {"bucket": "memcube-claims"}, "task_id": "t1"}',  # not a claim check: the worker rejects it
        "not json at all",
    ],
)
def test_any_other_body_resolves_to_itself_without_touching_s3(aws: Aws, body: str) -> None:
    assert SqsQueue(aws.url, bucket=aws.bucket, sqs=aws.sqs, s3=None).resolve_body(body) == body


def test_a_large_body_without_a_bucket_fails_the_send_before_anything_is_sent(aws: Aws) -> None:
    queue = SqsQueue(aws.url, sqs=aws.sqs, inline_limit=1024)

    with pytest.raises(QueueSendError, match="no claim-check bucket is configured"):
        queue.send([queued("t1", "alice"), queued("t1", "bob", "v" * 3000)])

    assert aws.batches == []
    assert aws.depth() == 0


def test_a_dead_letter_over_the_limit_is_parked_as_a_claim_check_with_its_reason(aws: Aws) -> None:
    queue = SqsQueue(aws.url, bucket=aws.bucket, sqs=aws.sqs, s3=aws.s3, inline_limit=1024)
    body = queued("t7", "alice", "u" * 3000).model_dump_json()

    queue.dead_letter(body, "gave up after 3 attempts: " + "é" * 2000, "alice", aws.dlq_url)

    [parked] = aws.receive_all(aws.dlq_url)
    assert parked["Attributes"]["MessageGroupId"] == "alice"
    assert parse_claim_check(parked["Body"]) is not None
    assert queue.resolve_body(parked["Body"]) == body
    reason = parked["MessageAttributes"]["reason"]["StringValue"]
    assert reason.startswith("gave up after 3 attempts") and len(reason.encode()) <= 1000


def test_clients_are_built_on_first_use_not_in_the_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    from memcube.adapters import aws_session

    built: list[str] = []

    def client(service: str, **_: Any) -> object:
        built.append(service)
        return object()

    monkeypatch.setattr(aws_session, "client", client)

    queue = SqsQueue("https://sqs.us-east-1.amazonaws.com/123456789012/t.fifo", bucket="b")
    assert built == []
    assert queue.sqs is queue.sqs
    assert built == ["sqs"]


def test_an_inline_limit_over_what_sqs_accepts_is_refused() -> None:
    with pytest.raises(ValueError, match="inline_limit"):
        SqsQueue("url", inline_limit=sqs_queue.SQS_BATCH_BYTES + 1)
