"""Every AWS adapter builds its clients from boto3's default session, one at a time (and reads
its credentials the same way): a boto3 session is not thread-safe, and one session sets
botocore up once per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from memcube.adapters import aws_session
from memcube.adapters.bedrock import TitanEmbedder
from memcube.adapters.dynamodb.table import DynamoTable
from memcube.adapters.sqs_queue import SqsQueue


class OneAtATime(boto3.Session):  # type: ignore[misc]  # boto3 ships no types
    """A default session that records the clients built from it and fails a build that starts
    while another is under way."""

    def __init__(self) -> None:
        super().__init__()
        self.built: list[str] = []
        self.overlaps = 0
        self._busy = False

    def _alone(self, what: str, call: Any) -> Any:
        if self._busy:
            self.overlaps += 1
        self._busy = True
        try:
            time.sleep(0.02)  # widen the window a second thread would enter in
            self.built.append(what)
            return call()
        finally:
            self._busy = False

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        return self._alone(service_name, lambda: super(OneAtATime, self).client(service_name, *args, **kwargs))

    def get_credentials(self) -> Any:
        return self._alone("credentials", super().get_credentials)


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[OneAtATime]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    recording = OneAtATime()
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", recording)
    yield recording


def test_the_aws_adapters_build_their_clients_from_the_default_session_one_at_a_time(session: OneAtATime) -> None:
    queue = SqsQueue("https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo", bucket="b")
    table, embedder = DynamoTable("t"), TitanEmbedder()
    builds = [lambda: table.client, lambda: queue.sqs, lambda: queue.s3, embedder._runtime, aws_session.credentials]
    start = threading.Barrier(len(builds))

    def build(get: Any) -> None:
        start.wait()
        get()

    threads = [threading.Thread(target=build, args=(get,)) for get in builds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(session.built) == ["bedrock-runtime", "credentials", "dynamodb", "s3", "sqs"]
    assert session.overlaps == 0
