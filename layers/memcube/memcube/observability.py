"""Powertools singletons (structured logs with correlation ids, EMF metrics) and the tracer.

Only the Lambda entry points and the AWS wiring import this module; the domain reports through
the `Telemetry` port and never imports powertools. The X-Ray tracer is built on first use,
not at import: building it imports the X-Ray SDK and creates its recorder (and a botocore
client for sampling rules), about 0.3 s, which only the worker pays (the API does not trace).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger(service="memcube")
"""Also the `memcube` standard logger: the domain's and adapters' `logging.getLogger(__name__)`
records reach powertools' JSON handler on stdout through it."""
metrics = Metrics(namespace="Memcube", service="memcube")


def log_as_json(*packages: str) -> None:
    """Give these packages' standard loggers (the entry points' own, outside `memcube`)
    powertools' JSON handler on stdout, so their records keep their fields (a refusal's status,
    caller and reason) in CloudWatch instead of the runtime's plain text line without them."""
    import logging

    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    for name in packages:
        logging.getLogger(name)  # registered, so powertools finds it
    copy_config_to_registered_loggers(source_logger=logger, include=set(packages))


TRACED = ("botocore", "requests")
"""The libraries the worker's calls go through: the AWS SDK, and requests (opensearch-py's
connection). powertools' default, every library the X-Ray SDK can patch, also imported httpx and
patched sqlite3, http.client and the rest in every cold start: about 25 ms of the worker's first
batch, for calls the worker does not make or that these already trace."""


@cache
def tracer() -> Tracer:
    """The process's powertools Tracer (X-Ray; disabled outside Lambda)."""
    from aws_lambda_powertools import Tracer

    return Tracer(service="memcube", patch_modules=TRACED)


def trace_model_calls() -> None:
    """Trace httpx calls too: the OpenAI-compatible LLM and embedder and the HTTP reranker make
    them. The worker asks for it when its settings name such a client (`models_over_http`)."""
    tracer().patch(["httpx"])


class MetricsTelemetry:
    """The Telemetry port on powertools Metrics (flushed by `@metrics.log_metrics`)."""

    def count(self, name: str, value: int = 1) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
