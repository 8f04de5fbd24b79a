"""writer λ: apply queued actions to Pleo; creates in batches of up to 1000, PUT for the rest."""

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
from coa_sync.adapters.queues import DeadLetterQueue
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.adapters.tenants import TenantStore
from coa_sync.batch import WholeBatchProcessor
from coa_sync.observability import logger, metrics, observe_pleo, tracer
from coa_sync.pipeline import runs
from coa_sync.pipeline.write import Outcome, Record, Writer
from coa_sync.settings import WriterSettings

settings = WriterSettings()  # type: ignore[call-arg]  # read from the environment
tenants = TenantStore(settings.tenants_table)
dead_letters = DeadLetterQueue(settings.dead_letter_queue_url)
ledger = Ledger(settings.tenants_table)
finished = wiring.run_finisher(settings, SnapshotStore(settings.snapshot_bucket))
processor = WholeBatchProcessor()
# Stop starting Pleo requests while one more (with its retries) could still overrun the timeout.
SAFETY_MARGIN_SECONDS = settings.pleo_timeout_seconds + 5


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    writer = Writer(
        tenant=tenants.get,
        pleo_for=lambda tenant: wiring.pleo_client(settings, tenant, observe_pleo),
        dead_letters=dead_letters,
        time_left=lambda: context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS,
        max_receive_count=settings.max_receive_count,
    )

    def apply(records: Sequence[SQSRecord]) -> set[str]:
        run_ids = {record.message_attributes["runId"].string_value for record in records
                   if record.message_attributes.get("runId")}
        logger.set_correlation_id(",".join(sorted(run_ids)) or None)
        report = writer.apply([Record(record.message_id, record.body, _receive_count(record)) for record in records])
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
        runs.progress(ledger, report.runs, finished)
        return {message_id for message_id, outcome in report.outcomes.items() if outcome == Outcome.RETRY}

    return process_partial_response(event=event, record_handler=apply, processor=processor, context=context)


def _receive_count(record: SQSRecord) -> int:
    try:
        return int(record.attributes.approximate_receive_count)
    except (KeyError, TypeError, ValueError):
        return 1
