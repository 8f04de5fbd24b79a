"""fetch λ: snapshot one tenant's AS and Pleo charts of accounts to S3.

Three events start it:
- the schedule's, with no tenant: it first closes orphaned runs (the sweep), then fans out, queueing one
  run per enabled tenant on the runs queue, each request naming its run;
- the runs queue's (its event source mapping, a few fetches at once however many are queued): one
  start a batch, fetched as below; a fetch that fails fails the invocation, and SQS delivers its start
  again after the queue's visibility timeout (once: then it goes to the runs DLQ);
- one tenant's run (the webhook's asynchronous invoke, `sam local invoke`): fetched at once.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from coa_sync import wiring
from coa_sync.adapters.ledger import Ledger, RunInProgressError
from coa_sync.adapters.runs import QueueRunStarter
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.adapters.tenants import TenantStore
from coa_sync.deadline import Deadline
from coa_sync.models import RunRequest
from coa_sync.observability import logger, metrics, observe_pleo, tracer
from coa_sync.pipeline import runs
from coa_sync.pipeline.fetch import fan_out, fetch_run
from coa_sync.settings import FetchSettings
from coa_sync.tokens import ReauthRequired

settings = FetchSettings()  # type: ignore[call-arg]  # read from the environment
files = SnapshotStore(settings.snapshot_bucket)
tenants = TenantStore(settings.tenants_table)
ledger = Ledger(settings.tenants_table)
finished = wiring.run_finisher(settings, files)
orphan_bounds = runs.OrphanBounds(fetching=settings.orphaned_fetch_seconds, applying=settings.lock_ttl_seconds)
# Kept back from the timeout: failing the run, releasing its lock, writing its report and announcing it.
WRAP_UP_SECONDS = 10


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:  # runs the schedule queued
        return {"runs": [_fetch(json.loads(record["body"]), context) for record in event["Records"]]}
    if event.get("tenantId") is None:
        if settings.runs_queue_url is None:
            raise LookupError("the scheduled fan-out queues each tenant's run on the runs queue: set RUNS_QUEUE_URL")
        request = RunRequest.model_validate({**event, "tenantId": "all"})
        orphans = runs.sweep(ledger, [tenant.tenant_id for tenant in tenants.all()], orphan_bounds, finished)
        for orphan in orphans:
            logger.warning("orphaned run closed", extra={"run": orphan if isinstance(orphan, str) else
                                                         orphan.model_dump(mode="json", include={"tenant_id", "run_id",
                                                                                                  "error"})})
        metrics.add_metric("RunsOrphaned", "Count", len(orphans))
        started = fan_out(tenants.enabled(), QueueRunStarter(settings.runs_queue_url), request)
        logger.info("runs started", extra={"tenants": started})
        metrics.add_metric("RunsStarted", "Count", len(started))
        return {"started": started, "orphansClosed": len(orphans)}
    return _fetch(event, context)


def _fetch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One tenant's run: its two snapshots and the manifest, or why not."""
    request = RunRequest.model_validate(event)
    deadline = Deadline.of(context.get_remaining_time_in_millis, WRAP_UP_SECONDS)
    try:
        manifest = fetch_run(
            request,
            tenants.get(request.tenant_id),
            read_source=lambda source: wiring.source_snapshot(settings, source, files),
            read_target=lambda tenant: wiring.target_snapshot(settings, tenant, observe_pleo, deadline),
            files=files,
            ledger=ledger,
            finished=finished,
            ttl_seconds=settings.lock_ttl_seconds,
        )
    except ReauthRequired as refused:
        # Not an error to retry: nothing goes to Pleo for the tenant until it is connected again; the run is failed.
        logger.warning("Pleo authorisation refused for good: tenant needs_reauth",
                       extra={"tenant": request.tenant_id, "reason": refused.reason})
        metrics.add_metric("PleoNeedsReauth", "Count", 1)
        return {"tenantId": request.tenant_id, "needsReauth": True, "reason": refused.reason}
    except RunInProgressError as busy:
        # Not an error to retry: the tenant's running run covers this trigger too.
        logger.info("run skipped: another is in progress", extra={"tenant": request.tenant_id, "running": busy.run_id})
        metrics.add_metric("RunsSkipped", "Count", 1)
        return {"tenantId": request.tenant_id, "skipped": True, "runningRunId": busy.run_id}
    except runs.AlreadyStartedError as duplicate:
        # A second delivery of this request (Lambda's async invocations and SQS deliver at least once).
        logger.info("duplicate run request skipped", extra={"tenant": request.tenant_id, "run": request.run_id,
                                                            "status": duplicate.record.status})
        return {"tenantId": request.tenant_id, "runId": duplicate.record.run_id, "duplicate": True}
    logger.set_correlation_id(manifest.run_id)
    metrics.add_metric("SourceAccounts", "Count", manifest.source_accounts)
    metrics.add_metric("PleoAccounts", "Count", manifest.target_accounts)
    logger.info("snapshots written", extra={"tenant": manifest.tenant_id, "source": manifest.source_accounts,
                                            "target": manifest.target_accounts})
    return {"tenantId": manifest.tenant_id, "runId": manifest.run_id}
