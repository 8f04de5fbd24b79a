"""writer λ: apply queued actions to each tenant's target (Pleo by default); creates in batches of up to
1000 (the target's max_batch), one request for each of the rest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Imported before anything imports pydantic (isort keeps it first): Powertools' batch utility also loads
# its pydantic event models when pydantic is already imported, ~75 ms of cold start this handler never uses.
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from coa_sync import wiring
from coa_sync.adapters.ledger import Ledger
from coa_sync.adapters.queues import ActionQueue, DeadLetterQueue
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.adapters.tenants import TenantStore
from coa_sync.batch import WholeBatchProcessor
from coa_sync.deadline import Deadline
from coa_sync.observability import logger, metrics, observe_pleo, tracer
from coa_sync.pipeline import runs
from coa_sync.pipeline.write import Outcome, Record, Writer
from coa_sync.settings import WriterSettings

settings = WriterSettings()  # type: ignore[call-arg]  # read from the environment
tenants = TenantStore(settings.tenants_table)
dead_letters = DeadLetterQueue(settings.dead_letter_queue_url)
actions = ActionQueue(settings.actions_queue_url)
ledger = Ledger(settings.tenants_table)
finished = wiring.run_finisher(settings, SnapshotStore(settings.snapshot_bucket))
processor = WholeBatchProcessor()
# Kept back from the timeout for what follows the last Pleo request: dead letters, handing leftovers back,
# counting in the ledger. The Pleo client starts a request only while it can finish before what is left.
WRAP_UP_SECONDS = 10


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deadline = Deadline.of(context.get_remaining_time_in_millis, WRAP_UP_SECONDS)
    writer = Writer(
        tenant=tenants.get,
        # A tenant whose budget has no request within pleo_budget_wait_seconds is handed back, not waited on.
        target_for=lambda tenant: wiring.target_client(settings, tenant, observe_pleo, deadline,
                                                       budget_wait=settings.pleo_budget_wait_seconds),
        dead_letters=dead_letters,
        fences=ledger,
        queue=actions,
        lock_ttl_seconds=settings.lock_ttl_seconds,
        deadline=deadline,
        max_receive_count=settings.max_receive_count,
        leftover_visibility_seconds=settings.leftover_visibility_seconds,
        tenants_at_once=settings.writer_tenants_at_once,
    )

    def apply(records: Sequence[SQSRecord]) -> set[str]:
        run_ids = {record.message_attributes["runId"].string_value for record in records
                   if record.message_attributes.get("runId")}
        logger.set_correlation_id(",".join(sorted(run_ids)) or None)
        report = writer.apply([Record(record.message_id, record.body, _receive_count(record), record.receipt_handle)
                               for record in records])
        for kind, count in report.applied.items():
            metrics.add_metric(f"Applied{kind.capitalize()}", "Count", count)
        metrics.add_metric("DeadLettered", "Count", len(report.dead))
        for letter in report.dead:
            external_id = letter.message.action.external_id if letter.message else None
            logger.warning("sent to the DLQ", extra={"reasons": letter.reasons, "externalId": external_id})
        for tenant_id, reason in report.reauth.items():
            logger.warning("Pleo authorisation refused for good: tenant needs_reauth",
                           extra={"tenant": tenant_id, "reason": reason})
            metrics.add_metric("PleoNeedsReauth", "Count", 1)
        runs.fail_for(ledger, [key for key in report.runs if key[0] in report.reauth], report.reauth, finished)
        outcomes = list(report.outcomes.values())
        metrics.add_metric("Superseded", "Count", outcomes.count(Outcome.SUPERSEDED))
        metrics.add_metric("LeftForLater", "Count", outcomes.count(Outcome.LEFTOVER) + outcomes.count(Outcome.REQUEUED))
        if report.superseded:
            logger.info("superseded, not applied", extra={"messages": len(report.superseded),
                                                          "why": sorted(set(report.superseded.values()))})
        runs.progress(ledger, report.runs, finished)
        return report.returned()

    return process_partial_response(event=event, record_handler=apply, processor=processor, context=context)


def _receive_count(record: SQSRecord) -> int:
    try:
        return int(record.attributes.approximate_receive_count)
    except (KeyError, TypeError, ValueError):
        return 1
