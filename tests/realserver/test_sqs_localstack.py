"""The SQS FIFO queue adapter on LocalStack (real FIFO semantics: groups, dedup, redrive)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from memcube.adapters.sqs_queue import ClaimCheckError, QueueSendError, SqsQueue
from memcube.domain.messages import QueuedAdd
from memcube.domain.model import SourceMessage
from tests.realserver.conftest import Queues


def msg(task_id: str, cube: str, text: str = "a fact") -> QueuedAdd:
    return QueuedAdd(task_id=task_id, cube_id=cube, user_id="u1", messages=[SourceMessage(type="text", content=text)])


def receive(queues: Queues, n: int = 10) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = queues.sqs.receive_message(
        QueueUrl=queues.url, MaxNumberOfMessages=n, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"]
    ).get("Messages", [])
    return got


def test_messages_carry_cube_group_and_task_cube_dedup_id(queues: Queues) -> None:
    queue = SqsQueue(queues.url, sqs=queues.sqs)
    queue.send([msg("t1", "alice")])
    [got] = receive(queues)
    assert got["Attributes"]["MessageGroupId"] == "alice"
    assert got["Attributes"]["MessageDeduplicationId"] == msg("t1", "alice").dedup_id


def test_the_same_task_and_cube_is_delivered_once(queues: Queues) -> None:
    queue = SqsQueue(queues.url, sqs=queues.sqs)
    queue.send([msg("t1", "alice")])
    queue.send([msg("t1", "alice"), msg("t2", "alice")])
    bodies = [QueuedAdd.model_validate_json(m["Body"]).task_id for m in receive(queues)]
    assert bodies == ["t1", "t2"]


def test_a_group_in_flight_blocks_only_itself(queues: Queues) -> None:
    queue = SqsQueue(queues.url, sqs=queues.sqs)
    queue.send([msg("t1", "a"), msg("t2", "a"), msg("t3", "b")])
    first = receive(queues, 1)
    assert QueuedAdd.model_validate_json(first[0]["Body"]).task_id == "t1"
    others = [QueuedAdd.model_validate_json(m["Body"]).task_id for m in receive(queues)]
    assert others == ["t3"]  # t2 waits behind t1 (in flight) in group a


def test_batches_over_ten_are_split(queues: Queues) -> None:
    queue = SqsQueue(queues.url, sqs=queues.sqs)
    queue.send([msg(f"t{n}", f"c{n}") for n in range(23)])
    attrs = queues.sqs.get_queue_attributes(QueueUrl=queues.url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "23"


def test_large_bodies_go_by_claim_check_and_resolve_intact(queues: Queues) -> None:
    queue = SqsQueue(queues.url, bucket=queues.bucket, sqs=queues.sqs, s3=queues.s3, inline_limit=1024)
    big = msg("t1", "alice", "x" * 5000)
    queue.send([big])
    [got] = receive(queues)
    assert '"claim_check"' in got["Body"]
    assert QueuedAdd.model_validate_json(queue.resolve_body(got["Body"])) == big


def test_a_tampered_claim_check_is_refused(queues: Queues) -> None:
    queue = SqsQueue(queues.url, bucket=queues.bucket, sqs=queues.sqs, s3=queues.s3, inline_limit=1024)
    queue.send([msg("t1", "alice", "y" * 5000)])
    [got] = receive(queues)
    key = queues.s3.list_objects_v2(Bucket=queues.bucket)["Contents"][0]["Key"]
    queues.s3.put_object(Bucket=queues.bucket, Key=key, Body=b"{}")
    with pytest.raises(ClaimCheckError, match="SHA-256"):
        queue.resolve_body(got["Body"])


def test_a_large_body_without_a_bucket_is_an_error_not_a_drop(queues: Queues) -> None:
    queue = SqsQueue(queues.url, sqs=queues.sqs, inline_limit=1024)
    with pytest.raises(QueueSendError, match="no claim-check bucket"):
        queue.send([msg("t1", "alice", "z" * 5000)])


def test_a_message_failing_every_receive_moves_to_the_dlq_and_the_group_moves_on(queues: Queues) -> None:
    queue = SqsQueue(queues.url, sqs=queues.sqs)
    queue.send([msg("t1", "a"), msg("t2", "a")])
    deadline = time.monotonic() + 30
    seen_t2 = False
    while time.monotonic() < deadline and not seen_t2:
        for m in receive(queues, 1):
            task_id = QueuedAdd.model_validate_json(m["Body"]).task_id
            if task_id == "t2":
                seen_t2 = True  # t1 was never deleted: after 3 receives SQS moved it to the DLQ
        time.sleep(0.5)
    assert seen_t2
    dead = queues.sqs.receive_message(QueueUrl=queues.dlq_url, WaitTimeSeconds=1).get("Messages", [])
    assert [QueuedAdd.model_validate_json(m["Body"]).task_id for m in dead] == ["t1"]


def test_redrive_moves_the_dlq_back_and_empties_it(queues: Queues) -> None:
    queue = SqsQueue(queues.url, sqs=queues.sqs)
    body = msg("t9", "alice").model_dump_json()
    queues.sqs.send_message(
        QueueUrl=queues.dlq_url, MessageBody=body, MessageGroupId="alice", MessageDeduplicationId="d1"
    )
    assert queue.redrive(queues.dlq_url) == 1
    [back] = receive(queues)
    assert back["Body"] == body
    assert back["Attributes"]["MessageGroupId"] == "alice"
    assert queues.sqs.receive_message(QueueUrl=queues.dlq_url, WaitTimeSeconds=1).get("Messages", []) == []
