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


@cache
def tracer() -> Tracer:
    """The process's powertools Tracer (X-Ray; disabled outside Lambda)."""
    from aws_lambda_powertools import Tracer

    return Tracer(service="memcube")


class MetricsTelemetry:
    """The Telemetry port on powertools Metrics (flushed by `@metrics.log_metrics`)."""

    def count(self, name: str, value: int = 1) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
