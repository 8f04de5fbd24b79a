"""diff λ: a run's manifest arrived in S3; plan the run and queue its actions."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.typing import LambdaContext
from coa_sync import wiring
from coa_sync.adapters.ledger import Ledger
from coa_sync.adapters.queues import ActionQueue
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.observability import logger, metrics, tracer
from coa_sync.pipeline.diff import diff_run
from coa_sync.settings import DiffSettings

settings = DiffSettings()  # type: ignore[call-arg]  # read from the environment
files = SnapshotStore(settings.snapshot_bucket)
actions = ActionQueue(settings.actions_queue_url)
ledger = Ledger(settings.tenants_table)
finished = wiring.run_finisher(settings, files)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runs = []
    # The event read as a plain dict: Powertools' S3Event would import every event class it knows (~25 ms).
    for record in event["Records"]:
        # S3 URL-encodes the key in its events (a space arrives as '+').
        key = unquote_plus(record["s3"]["object"]["key"])
        diffed = diff_run(key, files=files, actions=actions, guard=settings.archive_guard, ledger=ledger,
                          finished=finished, ttl_seconds=settings.lock_ttl_seconds)
        manifest, plan = diffed.manifest, diffed.plan
        logger.set_correlation_id(manifest.run_id)
        if plan is None:  # a manifest delivered twice, or late: its run is planned already or has moved on
            logger.info("manifest skipped", extra={"tenant": manifest.tenant_id, "reason": diffed.skipped})
            metrics.add_metric("ManifestsSkipped", "Count", 1)
            runs.append({"tenantId": manifest.tenant_id, "runId": manifest.run_id, "skipped": diffed.skipped})
            continue
        counts = plan.counts()
        if diffed.resumed_from:  # an earlier try planned the run and was cut off while queueing its actions
            logger.info("queueing resumed", extra={"tenant": manifest.tenant_id, "from": diffed.resumed_from})
            runs.append({"tenantId": manifest.tenant_id, "runId": manifest.run_id, "planned": counts.model_dump(),
                         "resumedFrom": diffed.resumed_from})
            continue
        logger.info("plan made", extra={"tenant": manifest.tenant_id, "dryRun": manifest.dry_run,
                                        "counts": counts.model_dump(), "errors": len(plan.errors)})
        for kind, count in counts.model_dump().items():
            metrics.add_metric(f"Planned{kind.capitalize()}", "Count", count)
        metrics.add_metric("ItemErrors", "Count", len(plan.errors))
        metrics.add_metric("ArchivesHeld", "Count", len(plan.held))
        if plan.held:
            logger.warning("archives held back",
                           extra={"tenant": manifest.tenant_id, "held": len(plan.held), "reason": plan.held_reason})
        runs.append({"tenantId": manifest.tenant_id, "runId": manifest.run_id, "planned": counts.model_dump()})
    return {"runs": runs}
