"""Powertools logger, tracer and metrics: made once, shared by every handler and module."""

from __future__ import annotations

import os
import threading

import wrapt
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from coa_sync.models import RunRecord

# The template sets both; the defaults serve code that imports this before its environment exists.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "coa-sync")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CoaSync")

logger = Logger(service=SERVICE)
# Not Powertools' auto_patch: it imports every library X-Ray can trace (botocore, httpx, sqlite3...) at cold
# start. Each library we call is patched for X-Ray when something first imports it, which a path may never do.
tracer = Tracer(service=SERVICE, auto_patch=False)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)
_metrics_lock = threading.Lock()  # Powertools' metric set is a plain dict: the writer's tenant threads share it

if not tracer.disabled:
    # On boto3, which our adapters and Powertools' parameters import botocore through: botocore.exceptions alone
    # is cheap and must stay so, and botocore.client is not yet bound to its package when it finishes loading.
    wrapt.register_post_import_hook(lambda _: tracer.patch(["botocore"]), "boto3")
    wrapt.register_post_import_hook(lambda _: tracer.patch(["httpx"]), "httpx")


def observe_pleo(endpoint: str, status: int, seconds: float) -> None:
    """Pleo request latency and throttling, as metrics (from any thread)."""
    with _metrics_lock:
        metrics.add_metric(name="PleoLatency", unit=MetricUnit.Milliseconds, value=seconds * 1000)
        if status == 429:
            metrics.add_metric(name="PleoThrottled", unit=MetricUnit.Count, value=1)
        elif status == 0 or status >= 500:
            metrics.add_metric(name="PleoServerErrors", unit=MetricUnit.Count, value=1)


def observe_run(record: RunRecord) -> None:
    """A run ended: one of Runs<Status> (RunsCompleted, RunsFailed, RunsNeedsApproval...), counted once per run."""
    status = record.status.title().replace("_", "")
    metrics.add_metric(name=f"Runs{status}", unit=MetricUnit.Count, value=1)
