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
metrics = Metrics(namespace="Memcube", service="memcube")


@cache
def tracer() -> Tracer:
    """The process's powertools Tracer (X-Ray; disabled outside Lambda)."""
    from aws_lambda_powertools import Tracer

    return Tracer(service="memcube")


class MetricsTelemetry:
    """The Telemetry port on powertools Metrics (flushed by `@metrics.log_metrics`)."""

    def count(self, name: str, value: int = 1) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
