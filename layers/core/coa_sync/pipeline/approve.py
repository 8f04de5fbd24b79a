"""Releasing the archives the mass-archive guard held back (`coa-sync approve`, the webhook).

Only the tenant's latest run can be approved: once a newer run has read the charts, an
older run's held archives may no longer be what the source wants.
"""

from __future__ import annotations

from datetime import UTC, datetime

from coa_sync import keys
from coa_sync.models import ActionMessage, Plan, RunRecord
from coa_sync.pipeline import runs
from coa_sync.pipeline.diff import Actions, RunFiles


class ApprovalError(Exception):
    """The run cannot be approved; the message says why."""


def approve_run(
    tenant_id: str,
    run_id: str,
    *,
    approved_by: str,
    ledger: runs.RunLedger,
    files: RunFiles,
    actions: Actions,
    finished: runs.Finished,
) -> RunRecord:
    """Queue exactly the run's held archives; the writer then applies them and closes the run."""
    record = ledger.get(tenant_id, run_id)
    if record is None:
        raise LookupError(f"tenant {tenant_id!r} has no run {run_id}")
    if record.dry_run:
        raise ApprovalError(f"run {run_id} was a dry run and changes nothing: start a live run and approve that")
    if record.status != "needs_approval" or not record.held:
        raise ApprovalError(f"run {run_id} is {record.status} with no archives held back: nothing to approve")
    latest = ledger.runs(tenant_id, limit=1)
    if latest and latest[0].run_id != run_id:
        raise ApprovalError(f"run {latest[0].run_id} started after run {run_id}, so its held archives may be out "
                            "of date: approve the latest run instead")
    # The run takes its tenant's lock again (RunInProgressError if another run holds it).
    ledger.acquire(tenant_id, run_id, runs.LOCK_TTL_SECONDS)
    try:
        plan = files.get(keys.plan_key(tenant_id, run_id), Plan)
        approved = ledger.approve(record, len(plan.held), datetime.now(UTC).isoformat(), approved_by)
        if approved is None:
            raise ApprovalError(f"run {run_id} changed while it was being approved (approved twice?): look again")
    except Exception:
        if record.ended_at is not None:  # the lock was the run's again only for this approval
            ledger.release(tenant_id, run_id)
        raise
    try:
        actions.send(ActionMessage(tenant_id=tenant_id, run_id=run_id, action=action) for action in plan.held)
    except Exception as exc:
        runs.fail(ledger, approved, f"queueing the approved archives failed: {type(exc).__name__}: {exc}", finished)
        raise
    return approved
