"""The SQS samples in events/ are real Lambda SQS FIFO events (also what `sam local invoke -e`
sends), and docs/queue-message.md describes the schema the worker actually enforces."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel
from pydantic import ValidationError

from memcube.domain.messages import QueuedAdd
from tests.conftest import load_event

DOC = Path(__file__).resolve().parents[2] / "docs" / "queue-message.md"
SQS_EVENTS = ["sqs_fifo_batch.json", "sqs_fifo_batch_with_poison_record.json"]


def parse(body: str) -> QueuedAdd | None:
    try:
        return QueuedAdd.model_validate_json(body)
    except ValidationError:
        return None


@pytest.mark.parametrize("name", SQS_EVENTS)
def test_sqs_sample_is_a_consistent_fifo_event(name: str) -> None:
    event = load_event(name)
    SqsModel.model_validate(event)
    records: list[dict[str, Any]] = event["Records"]
    assert len(records) >= 3
    assert len({r["attributes"]["MessageGroupId"] for r in records}) == 2
    assert [int(r["attributes"]["SequenceNumber"]) for r in records] == sorted(
        int(r["attributes"]["SequenceNumber"]) for r in records
    )
    for record in records:
        attributes = record["attributes"]
        assert (record["eventSource"], record["awsRegion"]) == ("aws:sqs", "us-east-1")
        assert record["eventSourceARN"].endswith(".fifo")
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        assert {"ApproximateReceiveCount", "MessageGroupId", "MessageDeduplicationId", "SequenceNumber"} <= set(
            attributes
        )
        assert int(attributes["SentTimestamp"]) <= int(attributes["ApproximateFirstReceiveTimestamp"])
        msg = parse(record["body"])
        if msg is not None:  # what the API (or a correct producer) sends
            assert attributes["MessageGroupId"] == msg.group_id == msg.cube_id
            assert attributes["MessageDeduplicationId"] == msg.dedup_id


def test_the_good_batch_is_all_valid_and_the_poison_batch_has_one_bad_record_inside_a_group() -> None:
    assert all(parse(r["body"]) for r in load_event("sqs_fifo_batch.json")["Records"])
    records = load_event("sqs_fifo_batch_with_poison_record.json")["Records"]
    bad = [n for n, r in enumerate(records) if parse(r["body"]) is None]
    assert len(bad) == 1
    group = records[bad[0]]["attributes"]["MessageGroupId"]
    same_group = [n for n, r in enumerate(records) if r["attributes"]["MessageGroupId"] == group]
    assert same_group[0] < bad[0] < same_group[-1]  # records of its cube before and after it


def test_direct_producer_sample_is_a_valid_version_1_message() -> None:
    body = load_event("direct_producer_message.json")
    msg = QueuedAdd.model_validate(body)
    assert body["v"] == msg.v == 1
    assert QueuedAdd.model_validate_json(msg.model_dump_json()) == msg


def test_the_doc_example_is_the_direct_producer_sample_with_its_dedup_id() -> None:
    doc = DOC.read_text()
    [example] = re.findall(r"```json\n(.*?)```", doc, re.DOTALL)
    body = load_event("direct_producer_message.json")
    assert json.loads(example) == body
    msg = QueuedAdd.model_validate(body)
    assert msg.dedup_id == hashlib.sha256(f"{msg.task_id}\x1f{msg.cube_id}".encode()).hexdigest()
    assert f"`{msg.dedup_id}`" in doc
    assert f"--message-group-id {msg.cube_id}" in doc
    assert f"printf '%s\\x1f%s' {msg.task_id} {msg.cube_id}" in doc


def test_the_doc_table_names_every_field_of_the_schema() -> None:
    doc = DOC.read_text()
    for name in QueuedAdd.model_fields:
        assert f"| `{name}` |" in doc, name
    from memcube.domain.model import SourceMessage

    for name in SourceMessage.model_fields:
        assert f"`{name}`" in doc, name
