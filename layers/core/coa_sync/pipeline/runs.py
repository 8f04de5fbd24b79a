"""A run's life in the ledger: locked and recorded at fetch, planned at diff, counted by the
writer, closed exactly once (report in S3, SyncRunCompleted event) when every action settled.

Counts are at-least-once like SQS itself: a message delivered twice to two writers may be
counted twice, so a run closes when settled >= planned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from coa_sync.models import Plan, RunRecord, RunRequest

# How long a run may hold its tenant's lock before another run may take it over (stale).
LOCK_TTL_SECONDS = 2 * 3600
ACTION_KINDS = ("create", "update", "unarchive", "archive")


class RunLedger(Protocol):
    def acquire(self, tenant_id: str, run_id: str, ttl_seconds: int) -> None: ...
    def release(self, tenant_id: str, run_id: str) -> None: ...
    def save(self, record: RunRecord) -> None: ...
    def get(self, tenant_id: str, run_id: str) -> RunRecord | None: ...
    def planned(self, record: RunRecord) -> None: ...
    def add(self, tenant_id: str, run_id: str, applied: dict[str, int], failed: int) -> RunRecord | None: ...
    def close(self, record: RunRecord, status: str, ended_at: str, error: str | None = None) -> bool: ...
    def runs(self, tenant_id: str, limit: int = 50) -> list[RunRecord]: ...
    def approve(self, record: RunRecord, held: int, approved_at: str, approved_by: str) -> RunRecord | None: ...


Finished = Callable[[RunRecord], None]  # writes the report and announces the run


def start(ledger: RunLedger, request: RunRequest, run_id: str) -> RunRecord:
    """Take the tenant's lock (RunInProgressError if another run holds it) and record the run."""
    ledger.acquire(request.tenant_id, run_id, LOCK_TTL_SECONDS)
    record = RunRecord(tenant_id=request.tenant_id, run_id=run_id, trigger=request.trigger,
                       dry_run=request.dry_run, status="fetching", started_at=_now())
    ledger.save(record)
    return record


def fail(ledger: RunLedger, record: RunRecord, error: str, finished: Finished) -> None:
    _close(ledger, record, finished, "failed", error)


def fail_for(ledger: RunLedger, run_keys: list[tuple[str, str]], reasons: dict[str, str], finished: Finished) -> None:
    """Fail each (tenant, run) with its tenant's reason (a tenant that needs reauth cannot go on)."""
    for tenant_id, run_id in run_keys:
        record = ledger.get(tenant_id, run_id)
        if record is not None:
            fail(ledger, record, reasons[tenant_id], finished)


def planned(ledger: RunLedger, tenant_id: str, run_id: str, plan: Plan, dry_run: bool, finished: Finished) -> RunRecord:
    record = ledger.get(tenant_id, run_id)
    if record is None:
        raise LookupError(f"run {run_id} of tenant {tenant_id!r} is not in the ledger")
    status = "needs_approval" if plan.held else "applying"
    record = record.model_copy(update={"planned": plan.counts(), "held": len(plan.held), "status": status})
    ledger.planned(record)
    if dry_run or not plan.actions:
        _close(ledger, record, finished, _finished_status(record))
    return record


def progress(ledger: RunLedger, counts: dict[tuple[str, str], Counter[str]], finished: Finished) -> None:
    """Add one writer batch's settled actions to each run, closing runs that are now complete."""
    for (tenant_id, run_id), tally in counts.items():
        applied = {kind: tally[kind] for kind in ACTION_KINDS if tally[kind]}
        record = ledger.add(tenant_id, run_id, applied, tally["failed"])
        if record is None:
            continue  # not in the ledger (a message from before it, or a hand-made event)
        settled = sum(getattr(record.applied, kind) for kind in ACTION_KINDS) + record.failed
        if settled >= sum(getattr(record.planned, kind) for kind in ACTION_KINDS):
            _close(ledger, record, finished, _finished_status(record))


def _finished_status(record: RunRecord) -> str:
    # A run whose archives are held stays needs_approval after the rest is applied.
    return "needs_approval" if record.held else "completed"


def _close(ledger: RunLedger, record: RunRecord, finished: Finished, status: str, error: str | None = None) -> None:
    """Close the run once: only the caller that closes it releases the lock and announces it."""
    ended = _now()
    if ledger.close(record, status, ended.isoformat(), error=error):
        ledger.release(record.tenant_id, record.run_id)
        finished(record.model_copy(update={"status": status, "error": error, "ended_at": ended}))


def _now() -> datetime:
    return datetime.now(UTC)
