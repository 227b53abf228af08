"""SnapStart's restore path, in-process as the Lambda runtime drives it: import the handler (its
init), run the before-snapshot hooks, then the after-restore hooks as two environments resumed
from the same snapshot would, then serve the first add. Runs in a child process, so the hooks are
registered once by a fresh import, with the AWS backend on moto (no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, random
from moto import mock_aws

with mock_aws():
    import boto3
    from tests.aws_support import create_table
    create_table(boto3.client("dynamodb"), "memcube-test")
    queue_url = boto3.client("sqs").create_queue(
        QueueName="tasks.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    import os
    os.environ["MEMCUBE_QUEUE_URL"] = queue_url

    import snapshot_restore_py as hooks
    from memcube import wiring
    import memcube_api.handler as handler  # the function's init
    from tests.lambda_support import FakeLambdaContext, v2_event

    before, after = hooks.get_before_snapshot(), hooks.get_after_restore()
    for fn, args, kwargs in reversed(before):  # Lambda runs these in reverse order of registration
        fn(*args, **kwargs)
    snapshot_container = wiring._container
    snapshot_session = boto3.DEFAULT_SESSION
    loader = snapshot_session._session.get_component("data_loader")
    state = random.getstate()  # what every environment resumed from the snapshot starts with

    draws, containers = [], []
    for _ in range(2):  # two environments restored from the same snapshot
        random.setstate(state)
        for fn, args, kwargs in after:
            fn(*args, **kwargs)
        draws.append(random.random())
        containers.append(wiring._container)
    session = boto3.DEFAULT_SESSION

    _, key = wiring._container.keys.create("alice", "user")
    event = v2_event("POST", "/product/add", body={"user_id": "alice", "messages": "I restored from a snapshot."},
                     headers={"authorization": f"Token {key}"})
    reply = handler.lambda_handler(event, FakeLambdaContext())
    sent = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])

    print("RESULT=" + json.dumps({
        "hooks": [len(before), len(after)],
        "snapshot_container_built": snapshot_container is not None,
        "restored_containers_are_new": all(c is not None and c is not snapshot_container for c in containers)
            and containers[0] is not containers[1],
        "session_is_new": session is not snapshot_session,
        "models_kept": session._session.get_component("data_loader") is loader,
        "draws_differ": draws[0] != draws[1],
        "status": reply["statusCode"],
        "queued": len(sent),
    }))
"""


def test_a_restored_function_drops_the_snapshots_clients_and_randomness_and_serves_the_first_add() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MEMCUBE_BACKEND": "aws",
        "MEMCUBE_TABLE_NAME": "memcube-test",
        "MEMCUBE_OPENSEARCH_ENDPOINT": "http://127.0.0.1:9",
        "MEMCUBE_EMBEDDER": "hash",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=180, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.split("RESULT=", 1)[1].splitlines()[0])
    assert result == {
        "hooks": [1, 1],
        "snapshot_container_built": True,
        "restored_containers_are_new": True,
        "session_is_new": True,
        "models_kept": True,
        "draws_differ": True,
        "status": 200,
        "queued": 1,
    }
