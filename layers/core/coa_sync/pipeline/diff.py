"""diff: read a run's snapshots, plan, store the plan, queue one message per action; once per run.

S3 notifications and Lambda's async invocations arrive at least once, and late: the same manifest
can come twice, or long after its run moved on. So a manifest is planned only while its run is
the tenant's live run and still fetching, and the move to planned (with the planned counts) is
one conditional write: every other delivery is skipped and says why. A diff cut off while it
was queueing (killed between SendMessageBatch calls) is finished by its retry: the run records
how far the queueing got, the retry sends the stored plan's actions from there, and anything
sent twice carries the same seq, so the writer applies and counts it once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pydantic import BaseModel

from coa_sync import keys
from coa_sync.batching import chunked
from coa_sync.diff import plan
from coa_sync.guard import hold_archives
from coa_sync.models import Action, ActionMessage, Manifest, Plan, RunRecord, SourceColumns, TargetColumns
from coa_sync.pipeline import runs
from coa_sync.targets import set_aside_unsupported

M = TypeVar("M", bound=BaseModel)
CHECKPOINT = 1000  # actions sent between two records of how far the queueing got


class RunFiles(Protocol):
    def put(self, key: str, document: BaseModel) -> None: ...
    def get(self, key: str, model: type[M]) -> M: ...


class Actions(Protocol):
    def send(self, messages: Iterable[ActionMessage]) -> int: ...


class ArchiveGuard(Protocol):
    min_archives: int
    percent: float


@dataclass
class Diffed:
    manifest: Manifest
    plan: Plan | None  # None when skipped
    skipped: str | None = None  # why this delivery planned nothing
    resumed_from: int = 0  # actions a cut-off earlier try had queued already


def diff_run(
    manifest_key: str,
    *,
    files: RunFiles,
    actions: Actions,
    guard: ArchiveGuard,
    ledger: runs.RunLedger,
    finished: runs.Finished,
    ttl_seconds: int,
) -> Diffed:
    manifest = files.get(manifest_key, Manifest)
    tenant_id, run_id = manifest.tenant_id, manifest.run_id
    record = ledger.get(tenant_id, run_id)
    lock = ledger.lock(tenant_id)
    if record is not None and record.ended_at is not None:
        runs.announce_if_unreported(ledger, record, finished)  # an earlier try closed it and died
        return Diffed(manifest, None, f"run {run_id} is {record.status}: skipped")
    if record is None or lock is None or lock.run_id != run_id:
        why = "not in the ledger" if record is None else \
            f"not the tenant's live run ({lock.run_id if lock else 'none'} is)"
        return Diffed(manifest, None, f"run {run_id} is {why}: skipped")
    if record.status != "fetching":
        return _resume(manifest, record, files, actions, ledger, finished, ttl_seconds)
    source = files.get(manifest.source_key, SourceColumns)
    target = files.get(manifest.target_key, TargetColumns)
    limit = manifest.archive_guard or guard  # the tenant's own setting wins over the deployment's
    # What the target cannot take is set aside first: reported, never queued, and no archive the guard counts.
    result = hold_archives(set_aside_unsupported(plan(source, target), manifest.target_kind), source, target,
                           min_archives=limit.min_archives, percent=limit.percent)
    del source, target  # up to millions of strings: freed before the plan is written and sent
    files.put(keys.plan_key(tenant_id, run_id), result)
    # Planned counts first, once: the writer closes the run by comparing what settled with them.
    planned = runs.planned(ledger, record, result, manifest.dry_run, finished)
    if planned is None:
        return Diffed(manifest, None, f"run {run_id} was planned by another delivery of its manifest")
    if not manifest.dry_run:
        _queue(manifest, result.actions, 0, actions, ledger, ttl_seconds)
    return Diffed(manifest, result)


def _resume(manifest: Manifest, record: RunRecord, files: RunFiles, actions: Actions, ledger: runs.RunLedger,
            finished: runs.Finished, ttl_seconds: int) -> Diffed:
    """A planned run whose queueing may have been cut off: send the stored plan's actions from where it got
    (or close it, if it has nothing to apply and the try that planned it died before closing it)."""
    stored = files.get(keys.plan_key(record.tenant_id, record.run_id), Plan)
    if runs.close_if_nothing_to_apply(ledger, record, stored, manifest.dry_run, finished) \
            or record.queued >= len(stored.actions):
        return Diffed(manifest, None, f"run {record.run_id} is {record.status} and queued already")
    _queue(manifest, stored.actions, record.queued, actions, ledger, ttl_seconds)
    return Diffed(manifest, stored, resumed_from=record.queued)


def _queue(manifest: Manifest, planned: list[Action], start: int, actions: Actions, ledger: runs.RunLedger,
           ttl_seconds: int) -> None:
    """Send actions[start:], recording how far it got every CHECKPOINT actions (and keeping the run's lock)."""
    tenant_id, run_id = manifest.tenant_id, manifest.run_id
    numbered = ((seq, planned[seq]) for seq in range(start, len(planned)))
    sent = start
    for chunk in chunked(numbered, CHECKPOINT):
        actions.send(ActionMessage(tenant_id=tenant_id, run_id=run_id, company_id=manifest.company_id, seq=seq,
                                   action=action) for seq, action in chunk)
        sent += len(chunk)
        ledger.queued(tenant_id, run_id, sent)
        lock = ledger.lock(tenant_id) if sent < len(planned) else None
        if lock is not None and lock.due_for_renewal(time.time(), ttl_seconds):  # a long queueing keeps its run
            ledger.renew(tenant_id, run_id, ttl_seconds)
