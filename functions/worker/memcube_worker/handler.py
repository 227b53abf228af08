"""Worker Lambda entry: powertools' FIFO batch processor around `IngestService.handle`.

`skip_group_on_error=True`: a failing message fails itself and the later messages of its own
cube (FIFO order requires that) while the other cubes in the batch go on.

Readiness: the worker is made ready (stores, index, embedding model) in the init phase of a cold
start and again, if that failed, before the batch's first record, so no record is started while
the function is still starting. If it cannot get ready the invocation fails with no record
started: SQS redelivers the batch (its receive count grows; the SQS redrive policy bounds that),
and no part records an attempt. A record is started only with `record_budget_seconds` of the
invocation left, so a function timeout during a record means the record's own work ran out the
time (dependencies answer within their client timeouts, far below the budget): the next
delivery charges it as an attempt that never finished.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from memcube import snapstart
from memcube.domain.errors import PermanentError
from memcube.domain.ingest import Delivery, Verdict
from memcube.domain.messages import peek
from memcube.observability import logger, metrics, trace_model_calls, tracer
from memcube.wiring import container_from_env

processor = SqsFifoPartialProcessor(skip_group_on_error=True)
# A batch whose every record fails (one cube's dependency is down) is a routine retry: report the
# records as failures instead of raising, so the function does not error (and alarm) for it.
processor.raise_on_entire_batch_failure = False


class RetryLater(Exception):
    """Report this record as failed so SQS delivers it again (or dead-letters it)."""


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    container = container_from_env()
    budget_ms = container.settings.record_budget_seconds * 1000
    if lambda_context is not None and lambda_context.get_remaining_time_in_millis() < budget_ms:
        # Not started, so no attempt is recorded: better redelivered than cut off by the timeout.
        raise RetryLater(f"message {record.message_id} not started: too little of the invocation's time is left")
    attempt = int(record.attributes.approximate_receive_count or "1")
    logger.append_keys(cube_id=record.attributes.message_group_id, message_id=record.message_id)
    task_id = peek(record.body, "task_id")  # for log correlation; the domain validates the body
    if task_id:
        logger.append_keys(task_id=task_id)
        tracer().put_annotation("task_id", task_id)
    max_attempts = container.settings.max_receive_count
    group = record.attributes.message_group_id
    try:
        body = container.resolve_body(record.body)
    except PermanentError as exc:  # a claim check that is gone or tampered with never resolves
        container.ingest.reject(Delivery(record.body, record.message_id, attempt, max_attempts, group), exc.message)
        return
    delivery = Delivery(body, record.message_id, attempt, max_attempts, group)
    if container.ingest.handle(delivery) is Verdict.RETRY:
        raise RetryLater(f"message {record.message_id} will be retried (attempt {attempt})")


EXPIRY_SWEEP = "expiry-sweep"
"""The input of the template's `ExpirySweep` schedule."""


def sweep_expired() -> dict[str, Any]:
    """Erase what has expired (`domain.expiry`): the store's expired items with their history, and
    index documents of items DynamoDB's TTL already removed. A failure raises, so the invocation
    errors (and alarms); the next schedule sweeps again from where the store is."""
    container = container_from_env()
    report = container.sweeper.sweep()
    container.telemetry.count("MemoriesExpired", len(report.erased))
    logger.info("expiry sweep", erased=len(report.erased), history=report.history, index=report.index)
    return {"erased": len(report.erased), "history": report.history, "index": report.index}


def _init() -> None:
    """The cold start's init phase (module import in the Lambda runtime): get ready there, where
    a slow model load or connection does not eat an invocation's time with records leased."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        try:
            container_from_env().warm_worker()
        except Exception:  # retried before the first record; the invocation fails there if it still cannot
            logger.exception("worker not ready at init")


def _prepare() -> None:
    """SnapStart: ready before the snapshot (and again after each restore, with new clients): the
    worker's services, and the SDK models of the clients its first message builds."""
    container = container_from_env()
    container.warm_worker()
    container.warm_aws("dynamodb", "sqs", "bedrock-runtime")


def _traced() -> None:
    """httpx traced too when a model client that uses it is configured (a worker without one does
    not import httpx). Settings that do not load fail the first invocation, with their message."""
    try:
        over_http = container_from_env().settings.models_over_http
    except Exception:  # reported by the invocation, which builds the container again
        return
    if over_http:
        trace_model_calls()


_init()
_traced()
snapstart.register(_prepare)


@logger.inject_lambda_context(clear_state=True)
@tracer().capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True, raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("memcube") == EXPIRY_SWEEP:  # the template's schedule, not an SQS batch
        return sweep_expired()
    container_from_env().warm_worker()  # before any record is started; repeats cost nothing once warm
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
