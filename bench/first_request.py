"""The cold-start bench's first-request contenders, each run as a whole process (`bench.coldstart`).

Every process installs the AWS stubs (`bench.aws_stub`: the socket replaced, clients real), then:

- `api_first_add`: imports `memcube_api.handler` (the app built) and sends the first
  `POST /product/add` through `lambda_handler`, as API Gateway (payload 2.0) would, with an API
  key: the AWS backend's DynamoDB and SQS clients are created by that add.
- `bare_api_first_add`: FastAPI + Mangum with one route that parses the same body with the same
  `AddRequest`, creates DynamoDB and SQS clients as memcube does, puts one task item and sends one
  message; called through Mangum with the same event.
- `worker_first_batch`: imports `memcube_worker.handler` (its init gets the worker ready) and
  processes one SQS batch of one add message (the one the API's add queued) through
  `lambda_handler`: DynamoDB, Bedrock (Titan embeddings) and OpenSearch clients created.
- `bare_worker_first_batch`: powertools' FIFO batch processor whose record handler parses the
  same message with the same `QueuedAdd`, creates the same three clients, embeds the messages as
  one text (memcube's fast mode makes one memory of them), puts that item and indexes it (`_bulk`).
- `api_after_restore` / `worker_after_restore`: SnapStart emulated in one process (no Firecracker,
  no snapshot: the process just goes on): init and the before-snapshot hooks run untimed, then
  the timer covers the after-restore hooks and the first add (batch). The microVM's own resume
  is not in it.

The phases split differently: the bare ones import boto3 when their handler is built (`init`),
memcube's on the first request; compare the contenders' whole times, not one phase.

Each process checks its answer (a 200 with the task queued; a batch with no failure and its
memories stored and indexed) and writes a report (phases in ms, the stubbed calls) to the file
named by `BENCH_FIRST_REPORT`. `seed` prepares the state they start from: alice's API key (the
API's), and the table after her add with the message it queued (the worker's).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.aws_stub import Stub, install

ROOT = Path(__file__).resolve().parent.parent
START = time.monotonic()
"""When this module was imported: the contender's first line (the interpreter has started). Every
time here is `time.monotonic()` (CLOCK_MONOTONIC, one clock for every process on the machine), so
`bench.coldstart` can time a contender from its spawn to its response (`responded_at`)."""


class Context:
    """The attributes powertools and the handlers read from a LambdaContext."""

    function_name = "memcube-bench"
    function_version = "1"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:memcube-bench:live"
    aws_request_id = "5b1c0f2e-0000-4000-8000-000000000001"
    log_group_name = "/aws/lambda/memcube-bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 290_000


TRACE_HEADER = "Root=1-675ff0a1-5b1c0f2e00004000800000000001;Parent=53995c3f42cd8ad8;Sampled=0"
"""What the Lambda runtime puts in `_X_AMZN_TRACE_ID` for an invocation (`Tracing: Active`); not
sampled, so the X-Ray SDK (the worker's) records no segment and sends nothing to a daemon."""


def invocation() -> Context:
    """The runtime's part of starting an invocation: the trace header, the context object."""
    os.environ["_X_AMZN_TRACE_ID"] = TRACE_HEADER
    return Context()


def _state() -> Path:
    return Path(os.environ["BENCH_FIRST_STATE"])


def api_event(key: str | None) -> dict[str, Any]:
    """`events/api_add_async.json` with its content-length and (memcube's) an API key."""
    event: dict[str, Any] = json.loads((ROOT / "events" / "api_add_async.json").read_text())
    event["headers"]["content-length"] = str(len(event["body"].encode()))
    if key is not None:
        event["headers"]["authorization"] = f"Token {key}"
    return event


def sqs_event(sent: dict[str, Any]) -> dict[str, Any]:
    """A one-record batch of `events/sqs_fifo_batch.json`'s shape carrying the message `sent`."""
    batch: dict[str, Any] = json.loads((ROOT / "events" / "sqs_fifo_batch.json").read_text())
    record = batch["Records"][0]
    body = sent["MessageBody"]
    record |= {"messageId": sent["MessageId"], "body": body, "md5OfBody": hashlib.md5(body.encode()).hexdigest()}
    record["attributes"] |= {
        "MessageGroupId": sent["MessageGroupId"],
        "MessageDeduplicationId": sent["MessageDeduplicationId"],
    }
    return {"Records": [record]}


def report(stub: Stub, phases: dict[str, float], **checks: Any) -> None:
    out = {"phases_ms": {k: round(v * 1000, 3) for k, v in phases.items()}, "calls": dict(stub.calls), **checks}
    Path(os.environ["BENCH_FIRST_REPORT"]).write_text(json.dumps(out))


def _ok_add(response: dict[str, Any], stub: Stub, queued_before: int) -> None:
    if response["statusCode"] != 200 or len(stub.sent) != queued_before + 1:
        raise SystemExit(f"the add failed: {response['statusCode']} {response.get('body')}")


# --- API ---------------------------------------------------------------------------------------


def api_first_add() -> None:
    stub = install(Stub().load(_state() / "api.json"))
    key = (_state() / "key").read_text()
    event = api_event(key)
    from memcube_api import handler

    ready = time.monotonic()
    response = handler.lambda_handler(event, invocation())
    done = time.monotonic()
    _ok_add(response, stub, 0)
    report(stub, {"init": ready - START, "first_add": done - ready}, status=response["statusCode"], responded_at=done)


def bare_api_first_add() -> None:
    stub = install(Stub())
    event = api_event(None)
    handler = _bare_api()
    ready = time.monotonic()
    response = handler(event, invocation())
    done = time.monotonic()
    _ok_add(response, stub, 0)
    report(stub, {"init": ready - START, "first_add": done - ready}, status=response["statusCode"], responded_at=done)


def _bare_api() -> Any:
    """FastAPI + Mangum, one route: parse with `AddRequest`, put the task, send the message (the
    clients created on first use, with memcube's DynamoDB client configuration)."""
    import uuid
    from datetime import UTC, datetime
    from functools import cache

    import boto3
    from botocore.config import Config
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from mangum import Mangum

    from memcube_api.schemas.product import AddRequest

    @cache
    def clients() -> tuple[Any, Any]:
        dynamodb = boto3.client("dynamodb", config=Config(retries={"mode": "adaptive", "max_attempts": 8}))
        return dynamodb, boto3.client("sqs")

    app = FastAPI()

    async def add(request: Request) -> JSONResponse:
        req = AddRequest.model_validate_json(await request.body())
        dynamodb, sqs = clients()
        task_id = f"task-{uuid.uuid4().hex}"
        now = datetime.now(UTC).isoformat()
        body = req.model_dump_json()
        dynamodb.put_item(
            TableName=os.environ["MEMCUBE_TABLE_NAME"],
            Item={"pk": {"S": f"TASK#{task_id}"}, "sk": {"S": "#TASK"}, "created_at": {"S": now}, "body": {"S": body}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        sqs.send_message(
            QueueUrl=os.environ["MEMCUBE_QUEUE_URL"],
            MessageBody=body,
            MessageGroupId=req.user_id,
            MessageDeduplicationId=task_id,
        )
        data = [{"cube_id": req.user_id, "task_id": task_id, "status": "waiting"}]
        return JSONResponse({"code": 200, "message": "Memory add task accepted", "data": data, "task_id": task_id})

    add.__annotations__ = {"request": Request, "return": JSONResponse}  # resolved, as FastAPI needs them
    app.add_api_route("/product/add", add, methods=["POST"])
    return Mangum(app, lifespan="off", api_gateway_base_path="/")


# --- worker ------------------------------------------------------------------------------------


def _ok_batch(result: dict[str, Any], stub: Stub, items_before: int) -> None:
    items = sum(1 for pk, sk in stub.items if sk.startswith("ITEM#"))
    if result.get("batchItemFailures") or items <= items_before or not stub.indexed:
        raise SystemExit(f"the batch failed: {result}, {items} items stored, {stub.indexed} indexed")


def worker_first_batch() -> None:
    stub = install(Stub().load(_state() / "worker.json"), opensearch=True)
    event = sqs_event(stub.sent[-1])
    from memcube_worker import handler

    ready = time.monotonic()
    result = handler.lambda_handler(event, invocation())
    done = time.monotonic()
    _ok_batch(result, stub, 0)
    report(stub, {"init": ready - START, "first_batch": done - ready}, indexed=stub.indexed, responded_at=done)


def bare_worker_first_batch() -> None:
    stub = install(Stub().load(_state() / "worker.json"), opensearch=True)
    event = sqs_event(stub.sent[-1])
    handler = _bare_worker()
    ready = time.monotonic()
    result = handler(event, invocation())
    done = time.monotonic()
    _ok_batch(result, stub, 0)
    report(stub, {"init": ready - START, "first_batch": done - ready}, indexed=stub.indexed, responded_at=done)


def _bare_worker() -> Any:
    """powertools' FIFO batch processor; each record parsed with `QueuedAdd`, its messages
    embedded as one text (Titan, Bedrock runtime), put as one item (DynamoDB) and indexed (`_bulk`)."""
    import boto3
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
    from botocore.config import Config
    from opensearchpy import AWSV4SignerAuth, OpenSearch, RequestsHttpConnection

    from memcube.domain.messages import QueuedAdd

    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    session = boto3.Session()
    dynamodb = session.client("dynamodb", config=Config(retries={"mode": "adaptive", "max_attempts": 8}))
    bedrock = session.client("bedrock-runtime", config=Config(retries={"mode": "adaptive"}))
    search = OpenSearch(
        hosts=[os.environ["MEMCUBE_OPENSEARCH_ENDPOINT"]],
        http_auth=AWSV4SignerAuth(session.get_credentials(), session.region_name, "aoss"),
        use_ssl=True,
        verify_certs=True,
        connection_class=RequestsHttpConnection,
        timeout=10,
    )
    model, dimension = os.environ["MEMCUBE_EMBEDDING_MODEL"], int(os.environ["MEMCUBE_EMBEDDING_DIMENSION"])

    def record_handler(record: Any) -> None:
        msg = QueuedAdd.model_validate_json(record.body)
        text = "\n".join(f"{m.role}: {m.content}" for m in msg.messages)  # one window, as fast mode has
        answer = bedrock.invoke_model(
            modelId=model, body=json.dumps({"inputText": text, "dimensions": dimension, "normalize": True})
        )
        vector = json.loads(answer["body"].read())["embedding"]
        item_id = f"{msg.task_id}-0"
        doc = {"memory_id": item_id, "memory": text, "cube_id": msg.cube_id, "user_id": msg.user_id}
        dynamodb.put_item(
            TableName=os.environ["MEMCUBE_TABLE_NAME"],
            Item={"pk": {"S": f"CUBE#{msg.cube_id}"}, "sk": {"S": f"ITEM#{item_id}"}, "body": {"S": json.dumps(doc)}},
        )
        search.bulk(body=[{"index": {"_index": "memcube-memories", "_id": item_id}}, doc | {"embedding": vector}])

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return dict(
            process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
        )

    return handler


# --- SnapStart, emulated -----------------------------------------------------------------------


def _snapshot_and_restore() -> None:
    """What Lambda runs around a snapshot, in this process: the before-snapshot hooks (in reverse
    order of registration, as the runtime does), then the after-restore hooks."""
    import snapshot_restore_py as hooks

    if not hooks.get_before_snapshot() or not hooks.get_after_restore():
        raise SystemExit("the handler registered no SnapStart hooks")
    for fn, args, kwargs in reversed(hooks.get_before_snapshot()):
        fn(*args, **kwargs)


def _restore() -> None:
    import snapshot_restore_py as hooks

    for fn, args, kwargs in hooks.get_after_restore():
        fn(*args, **kwargs)


def _after_restore(call: Callable[[], Any], check: Callable[[Any], None], label: str, stub: Stub) -> None:
    """Snapshot, restore, then the first request: what a caller of a restored function waits for."""
    _snapshot_and_restore()
    stub.calls.clear()
    start = time.monotonic()
    _restore()
    restored = time.monotonic()
    result = call()
    done = time.monotonic()
    check(result)
    report(stub, {"restore_hooks": restored - start, label: done - restored, "total": done - start})


def api_after_restore() -> None:
    stub = install(Stub().load(_state() / "api.json"))
    event = api_event((_state() / "key").read_text())
    from memcube_api import handler

    _after_restore(
        lambda: handler.lambda_handler(event, invocation()), lambda r: _ok_add(r, stub, 0), "first_add", stub
    )


def worker_after_restore() -> None:
    stub = install(Stub().load(_state() / "worker.json"), opensearch=True)
    event = sqs_event(stub.sent[-1])
    from memcube_worker import handler

    _after_restore(
        lambda: handler.lambda_handler(event, invocation()), lambda r: _ok_batch(r, stub, 0), "first_batch", stub
    )


# --- the state every process starts from -------------------------------------------------------


def seed() -> None:
    """Write `api.json` (alice's key stored) and `key`, then `worker.json` (the table after her
    add, with the message it queued) into `BENCH_FIRST_STATE`."""
    stub = install(Stub())
    from memcube.wiring import container_from_env

    container = container_from_env()
    stub.embedding_model, stub.dimension = container.embedder.model_id, container.embedder.dimension
    _, key = container.keys.create("alice", "user")
    stub.dump(_state() / "api.json")
    (_state() / "key").write_text(key)
    from memcube_api import handler

    _ok_add(handler.lambda_handler(api_event(key), Context()), stub, 0)
    stub.dump(_state() / "worker.json")


CONTENDERS = {
    f.__name__: f
    for f in (
        api_first_add,
        bare_api_first_add,
        worker_first_batch,
        bare_worker_first_batch,
        api_after_restore,
        worker_after_restore,
        seed,
    )
}

if __name__ == "__main__":
    CONTENDERS[sys.argv[1]]()
