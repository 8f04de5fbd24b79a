"""Powertools logger, tracer and metrics: made once, shared by every handler and module."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

# The template sets both; the defaults serve code that imports this before its environment exists.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "coa-sync")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CoaSync")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)


def observe_pleo(endpoint: str, status: int, seconds: float) -> None:
    """Pleo request latency and throttling, as metrics."""
    metrics.add_metric(name="PleoLatency", unit=MetricUnit.Milliseconds, value=seconds * 1000)
    if status == 429:
        metrics.add_metric(name="PleoThrottled", unit=MetricUnit.Count, value=1)
    elif status == 0 or status >= 500:
        metrics.add_metric(name="PleoServerErrors", unit=MetricUnit.Count, value=1)
