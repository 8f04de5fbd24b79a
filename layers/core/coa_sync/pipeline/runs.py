"""A run's life in the ledger. One run at a time per tenant: the tenant's lock names its live run.

    fetch takes the lock ──> fetching ──(diff, a conditional change, once)──> applying | needs_approval
                                │                                                │ every action settled
                                │ a read failed or ran out of time               v
                                └──────────────> failed        completed | needs_approval (archives held)

    any open run with no progress past its bound ──(the scheduled sweep, or a new run taking
    over its stale lock)──> failed ("orphaned: ...")

- The lock is taken by fetch (or the webhook, which then hands fetch the run id), renewed by the
  diff and by every writer batch of the run, and released when the run closes. Its TTL outlives a
  queued action (settings.lock_ttl_seconds): only a run that died lets it go stale.
- A run request can arrive twice (Lambda's async invocations are at least once): a request for a
  run that is already past fetching is a duplicate and starts nothing; a request for a run that
  failed is a retry, and starts a new run; a request for a run still fetching takes it over (the
  earlier try died, or is a twin that finishes the same way).
- A run closes exactly once: one conditional write that also releases its lock, so no caller can
  die between the two. The caller that closed it writes the report and announces it; if it died
  before that, whoever next finds the run closed and unreported (a retried diff, a redelivered
  action, a duplicate request) does it: a run is announced at least once, never lost.
- Counts are exact under duplicates (coa_sync.tally): a run closes when applied + failed +
  superseded reaches planned, never earlier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from coa_sync.models import Plan, RunLock, RunRecord, RunRequest, new_run_id


class RunLedger(Protocol):
    def acquire(self, tenant_id: str, run_id: str, ttl_seconds: int) -> str | None: ...
    def lock(self, tenant_id: str) -> RunLock | None: ...
    def lock_holder(self, tenant_id: str) -> str | None: ...
    def renew(self, tenant_id: str, run_id: str, ttl_seconds: int) -> bool: ...
    def release(self, tenant_id: str, run_id: str) -> None: ...
    def start(self, record: RunRecord) -> bool: ...
    def get(self, tenant_id: str, run_id: str) -> RunRecord | None: ...
    def planned(self, record: RunRecord) -> RunRecord | None: ...
    def queued(self, tenant_id: str, run_id: str, count: int) -> None: ...
    def outcomes(self, tenant_id: str, run_id: str, seqs: set[int]) -> dict[int, dict[str, set[int]]]: ...
    def record(self, tenant_id: str, run_id: str, outcomes: dict[str, set[int]]) -> RunRecord | None: ...
    def count_unfenceable(self, tenant_id: str, run_id: str, superseded: int) -> None: ...
    def close(self, record: RunRecord, status: str, ended_at: str, error: str | None = None) -> bool: ...
    def reported(self, record: RunRecord, at: str) -> None: ...
    def reopen(self, record: RunRecord) -> RunRecord | None: ...
    def runs(self, tenant_id: str, limit: int = 50) -> list[RunRecord]: ...
    def runs_after(self, tenant_id: str, run_id: str) -> list[RunRecord]: ...
    def approve(self, record: RunRecord, held: int, approved_at: str, approved_by: str) -> RunRecord | None: ...


Finished = Callable[[RunRecord], None]  # writes the report and announces the run


class AlreadyStartedError(Exception):
    """A second delivery of a run request whose run got past fetching: nothing to do."""

    def __init__(self, record: RunRecord) -> None:
        super().__init__(f"run {record.run_id} of tenant {record.tenant_id!r} is {record.status} already")
        self.record = record


def start(ledger: RunLedger, request: RunRequest, ttl_seconds: int, finished: Finished,
          company_id: str | None = None) -> RunRecord:
    """Take the tenant's lock and record the run, for the tenant's Pleo company, as fetching
    (RunInProgressError if another run holds it)."""
    run_id = request.run_id or new_run_id()
    earlier = ledger.get(request.tenant_id, run_id) if request.run_id else None
    if earlier is not None and earlier.status == "failed":
        run_id, earlier = new_run_id(), None  # a retry of a run that failed is a run of its own
    elif earlier is not None and earlier.status != "fetching":
        announce_if_unreported(ledger, earlier, finished)
        raise AlreadyStartedError(earlier)
    stale = ledger.acquire(request.tenant_id, run_id, ttl_seconds)
    if stale is not None:
        orphaned(ledger, request.tenant_id, stale,
                 f"orphaned: its lock went stale and run {run_id} took the tenant over", finished)
    now = _now()
    record = RunRecord(tenant_id=request.tenant_id, run_id=run_id, trigger=request.trigger, dry_run=request.dry_run,
                       company_id=company_id, status="fetching", started_at=earlier.started_at if earlier else now,
                       progress_at=now)
    if not ledger.start(record):  # the diff planned it meanwhile: this was a late twin of the request
        raise AlreadyStartedError(ledger.get(request.tenant_id, run_id) or record)
    return record


def fail(ledger: RunLedger, record: RunRecord, error: str, finished: Finished) -> None:
    _close(ledger, record, finished, "failed", error)


def fail_for(ledger: RunLedger, run_keys: list[tuple[str, str]], reasons: dict[str, str], finished: Finished) -> None:
    """Fail each (tenant, run) with its tenant's reason (a tenant that needs reauth cannot go on)."""
    for tenant_id, run_id in run_keys:
        record = ledger.get(tenant_id, run_id)
        if record is not None:
            fail(ledger, record, reasons[tenant_id], finished)


def planned(ledger: RunLedger, record: RunRecord, plan: Plan, dry_run: bool, finished: Finished,
            ) -> RunRecord | None:
    """The fetched run's one move to planned (counts set once); None if another delivery of its manifest did
    it first. The caller checked that the run is the tenant's live run."""
    status = "needs_approval" if plan.held else "applying"
    record = ledger.planned(record.model_copy(update={"planned": plan.counts(), "held": len(plan.held),
                                                       "unsupported": len(plan.unsupported), "status": status}))
    if record is not None:
        close_if_nothing_to_apply(ledger, record, plan, dry_run, finished)
    return record


def close_if_nothing_to_apply(ledger: RunLedger, record: RunRecord, plan: Plan, dry_run: bool,
                              finished: Finished) -> bool:
    """A planned run with no action to queue (a dry run, or nothing to change) ends here; whether it did."""
    if record.ended_at is None and (dry_run or not plan.actions):
        _close(ledger, record, finished, _finished_status(record))
        return True
    return False


@dataclass
class Settled:
    """One writer batch's outcomes for one run, as sets of seqs (see coa_sync.tally)."""

    outcomes: dict[str, set[int]]
    unfenceable: int = 0  # superseded messages without a seq: counted, but cannot be told apart


def progress(ledger: RunLedger, settled: dict[tuple[str, str], Settled], finished: Finished) -> None:
    """Record one writer batch's settled actions for each run, closing runs whose every action settled."""
    for (tenant_id, run_id), batch in settled.items():
        if batch.unfenceable:
            ledger.count_unfenceable(tenant_id, run_id, batch.unfenceable)
        outcomes = {name: seqs for name, seqs in batch.outcomes.items() if seqs}
        record = ledger.record(tenant_id, run_id, outcomes) if outcomes else None
        if record is None or record.status == "fetching":
            continue
        if record.ended_at is not None:
            announce_if_unreported(ledger, record, finished)
        elif record.settled >= record.planned_actions:
            _close(ledger, record, finished, _finished_status(record))


def orphaned(ledger: RunLedger, tenant_id: str, run_id: str, error: str, finished: Finished) -> None:
    """Close a run that stopped moving, so its tenant is free: failed, with the reason."""
    record = ledger.get(tenant_id, run_id)
    if record is None:  # a lock taken for a run that never started (its fetch was never delivered)
        ledger.release(tenant_id, run_id)
        return
    _close(ledger, record, finished, "failed", error)
    ledger.release(tenant_id, run_id)  # also when it had closed already and only its lock was left


@dataclass(frozen=True)
class OrphanBounds:
    """How long an open run may go without progress before the sweep closes it."""

    fetching: int  # a fetch and its retries (or a run whose fetch never came)
    applying: int  # a queued action's whole life: the lock's TTL


def sweep(ledger: RunLedger, tenant_ids: Iterable[str], bounds: OrphanBounds, finished: Finished,
          now: datetime | None = None) -> list[RunRecord | str]:
    """Close every tenant's live run that has made no progress within its bound; the runs closed."""
    now = now or _now()
    closed: list[RunRecord | str] = []
    for tenant_id in tenant_ids:
        lock = ledger.lock(tenant_id)
        if lock is None:
            continue
        record = ledger.get(tenant_id, lock.run_id)
        last = record.progress_at or record.started_at if record else datetime.fromtimestamp(lock.taken_at, UTC)
        status = record.status if record else "fetching"
        bound = bounds.fetching if status == "fetching" else bounds.applying
        idle = (now - last).total_seconds()
        if (record is not None and record.ended_at is not None) or idle > bound:
            why = f"no progress for {idle / 60:.0f} min while {status}" if idle > bound else "closed, lock left"
            orphaned(ledger, tenant_id, lock.run_id, f"orphaned: {why}", finished)
            closed.append(ledger.get(tenant_id, lock.run_id) or lock.run_id)
    return closed


def reopen(ledger: RunLedger, record: RunRecord, ttl_seconds: int) -> RunRecord | None:
    """Make a closed run live again to apply what is redriven to it: only the tenant's latest live run (a dry
    run after it does not count), and only while no other run holds the tenant (RunInProgressError); None if
    the run cannot be reopened."""
    newer = [later for later in ledger.runs_after(record.tenant_id, record.run_id) if not later.dry_run]
    if record.ended_at is None or record.dry_run or newer:
        return None
    ledger.acquire(record.tenant_id, record.run_id, ttl_seconds)
    reopened = ledger.reopen(record)
    if reopened is None:
        ledger.release(record.tenant_id, record.run_id)
    return reopened


def _finished_status(record: RunRecord) -> str:
    # A run whose archives are held stays needs_approval after the rest is applied.
    return "needs_approval" if record.held else "completed"


def announce_if_unreported(ledger: RunLedger, record: RunRecord, finished: Finished) -> None:
    """Write the report and announce a run that closed without (the invocation that closed it died)."""
    if record.ended_at is not None and record.reported_at is None:
        _announce(ledger, record, finished)


def _close(ledger: RunLedger, record: RunRecord, finished: Finished, status: str, error: str | None = None) -> None:
    """Close the run once (releasing its lock); only the caller that closed it announces it."""
    ended = _now()
    if ledger.close(record, status, ended.isoformat(), error=error):
        _announce(ledger, record.model_copy(update={"status": status, "error": error, "ended_at": ended}), finished)


def _announce(ledger: RunLedger, record: RunRecord, finished: Finished) -> None:
    finished(record)
    ledger.reported(record, _now().isoformat())


def _now() -> datetime:
    return datetime.now(UTC)
