"""Powertools singletons (structured logs with correlation ids, traces, EMF metrics).

Only the Lambda entry points and the AWS wiring import this module; the domain reports through
the `Telemetry` port and never imports powertools.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="memcube")
tracer = Tracer(service="memcube")
metrics = Metrics(namespace="Memcube", service="memcube")


class MetricsTelemetry:
    """The Telemetry port on powertools Metrics (flushed by `@metrics.log_metrics`)."""

    def count(self, name: str, value: int = 1) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
