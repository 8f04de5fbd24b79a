"""diff: read a run's snapshots, plan, store the plan, queue one message per action."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from pydantic import BaseModel

from coa_sync import keys
from coa_sync.diff import plan
from coa_sync.guard import hold_archives
from coa_sync.models import ActionMessage, Manifest, Plan, SourceColumns, TargetColumns
from coa_sync.pipeline import runs

M = TypeVar("M", bound=BaseModel)


class RunFiles(Protocol):
    def put(self, key: str, document: BaseModel) -> None: ...
    def get(self, key: str, model: type[M]) -> M: ...


class Actions(Protocol):
    def send(self, messages: Iterable[ActionMessage]) -> int: ...


class ArchiveGuard(Protocol):
    min_archives: int
    percent: float


def diff_run(
    manifest_key: str,
    *,
    files: RunFiles,
    actions: Actions,
    guard: ArchiveGuard,
    ledger: runs.RunLedger,
    finished: runs.Finished,
) -> tuple[Manifest, Plan]:
    manifest = files.get(manifest_key, Manifest)
    source = files.get(manifest.source_key, SourceColumns)
    target = files.get(manifest.target_key, TargetColumns)
    limit = manifest.archive_guard or guard  # the tenant's own setting wins over the deployment's
    result = hold_archives(plan(source, target), source, target,
                           min_archives=limit.min_archives, percent=limit.percent)
    del source, target  # up to millions of strings: freed before the plan is written and sent
    files.put(keys.plan_key(manifest.tenant_id, manifest.run_id), result)
    # Planned counts first: the writer closes the run by comparing what settled with them.
    runs.planned(ledger, manifest.tenant_id, manifest.run_id, result, manifest.dry_run, finished)
    if not manifest.dry_run:
        actions.send(
            ActionMessage(tenant_id=manifest.tenant_id, run_id=manifest.run_id, action=action)
            for action in result.actions
        )
    return manifest, result
