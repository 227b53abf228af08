"""Powertools singletons: structured JSON logs with correlation ids (task, cube)."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="memcube")
