"""Releasing the archives the mass-archive guard held back (`coa-sync approve`, the webhook).

- Only the tenant's latest live run can be approved: once a newer live run has read the
  charts, an older run's held archives may no longer be what the source wants.
- A dry run changes nothing and does not count as newer. It did read the charts, though: if
  the latest dry run after the approved run no longer archives every held account (some are
  back in the source), the held archives are out of date and the approval is refused.
- Nothing is released before Pleo has answered a request made with the tenant's credentials
  (a search for the first held account): a wrong key, a revoked token or an unreachable Pleo
  leave the run as it was, needing approval. Archives released and then refused by Pleo go to
  the dead-letter queue with their reasons, to be redriven once the cause is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from coa_sync import keys
from coa_sync.models import ActionKind, ActionMessage, Plan, RunRecord
from coa_sync.pipeline import runs
from coa_sync.pipeline.diff import Actions, RunFiles

# (tenant_id, an externalId) -> None once Pleo answered a search for it with the tenant's credentials.
CheckPleo = Callable[[str, str], None]


class ApprovalError(Exception):
    """The run cannot be approved; the message says why."""


class PleoUnreachableError(ApprovalError):
    """Pleo did not answer with the tenant's credentials: nothing was released."""


def approve_run(
    tenant_id: str,
    run_id: str,
    *,
    approved_by: str,
    ledger: runs.RunLedger,
    files: RunFiles,
    actions: Actions,
    finished: runs.Finished,
    check_pleo: CheckPleo,
    ttl_seconds: int,
) -> RunRecord:
    """Queue exactly the run's held archives; the writer then applies them and closes the run."""
    record = ledger.get(tenant_id, run_id)
    if record is None:
        raise LookupError(f"tenant {tenant_id!r} has no run {run_id}")
    if record.dry_run:
        raise ApprovalError(f"run {run_id} was a dry run and changes nothing: start a live run and approve that")
    if record.status != "needs_approval" or not record.held:
        raise ApprovalError(f"run {run_id} is {record.status} with no archives held back: nothing to approve")
    if record.company_id is None:
        raise ApprovalError(f"run {run_id} was recorded before runs named their Pleo company, so its archives "
                            "cannot be fenced: start a new run and approve that")
    later = ledger.runs_after(tenant_id, run_id)
    if live := next((later_run for later_run in later if not later_run.dry_run), None):
        raise ApprovalError(f"run {live.run_id} started after run {run_id}, so its held archives may be out "
                            "of date: approve the latest run instead")
    plan = files.get(keys.plan_key(tenant_id, run_id), Plan)
    _check_still_wanted(plan, run_id, later, files)
    try:
        check_pleo(tenant_id, plan.held[0].external_id)
    except Exception as exc:
        raise PleoUnreachableError(f"Pleo could not be reached with tenant {tenant_id!r}'s credentials "
                                   f"({type(exc).__name__}: {exc}); nothing was released: run {run_id} still "
                                   "needs approval") from None
    # The run takes its tenant's lock again (RunInProgressError if another run holds it).
    ledger.acquire(tenant_id, run_id, ttl_seconds)
    try:
        approved = ledger.approve(record, len(plan.held), datetime.now(UTC).isoformat(), approved_by)
        if approved is None:
            raise ApprovalError(f"run {run_id} changed while it was being approved (approved twice?): look again")
    except Exception:
        if record.ended_at is not None:  # the lock was the run's again only for this approval
            ledger.release(tenant_id, run_id)
        raise
    try:
        # Fenced like the rest of the run: its company, and seqs following on from the plan's actions.
        actions.send(ActionMessage(tenant_id=tenant_id, run_id=run_id, company_id=record.company_id,
                                   seq=len(plan.actions) + i, action=action) for i, action in enumerate(plan.held))
    except Exception as exc:
        runs.fail(ledger, approved, f"queueing the approved archives failed: {type(exc).__name__}: {exc}", finished)
        raise
    return approved


def _check_still_wanted(plan: Plan, run_id: str, later: list[RunRecord], files: RunFiles) -> None:
    """Refuse if the latest dry run since the run (one that planned) no longer archives every held account."""
    dry = next((record for record in later if record.status in ("completed", "needs_approval")), None)
    if dry is None:
        return
    newer = files.get(keys.plan_key(dry.tenant_id, dry.run_id), Plan)
    archived = {a.external_id for a in newer.held} | {
        a.external_id for a in newer.actions if a.kind == ActionKind.ARCHIVE}
    if stale := [action.external_id for action in plan.held if action.external_id not in archived]:
        raise ApprovalError(f"dry run {dry.run_id} read the charts after run {run_id} and would no longer archive "
                            f"{len(stale)} of its held account(s) (first: {stale[0]!r}), so its held archives are "
                            "out of date: start a live run and approve that")
