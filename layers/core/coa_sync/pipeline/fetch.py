"""fetch: snapshot one tenant's two charts of accounts, then write the manifest that starts the diff.

The second chart is the tenant's target's: Pleo's, or an accounting system's. Both are keyed as
the target matches accounts (coa_sync.targets: by externalId, or by code), so the diff pairs them
the same way whatever the target.

A fetch either writes its manifest or fails its run, freeing the tenant: the Pleo client is given
the invocation's deadline (coa_sync.deadline), so a fetch that runs out of time mid-pagination
stops before Lambda would kill it, and the run is closed as failed with the reason. A retried
request for that run starts a new run (coa_sync.pipeline.runs.start).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel

from coa_sync import keys, targets
from coa_sync.deadline import OutOfTimeError
from coa_sync.models import (
    Manifest,
    RunRequest,
    SourceConfig,
    SourceSnapshot,
    TargetSnapshot,
    Tenant,
    new_run_id,
)
from coa_sync.pipeline import runs


class TenantNotFoundError(LookupError):
    """No enabled tenant by that id."""


class RunFiles(Protocol):
    def put(self, key: str, document: BaseModel) -> None: ...


def fetch_run(
    request: RunRequest,
    tenant: Tenant | None,
    *,
    read_source: Callable[[SourceConfig], SourceSnapshot],
    read_target: Callable[[Tenant], TargetSnapshot],
    files: RunFiles,
    ledger: runs.RunLedger,
    finished: runs.Finished,
    ttl_seconds: int,
) -> Manifest:
    if tenant is None or not tenant.enabled:
        raise TenantNotFoundError(f"no enabled tenant {request.tenant_id!r}")
    record = runs.start(ledger, request, ttl_seconds, finished, company_id=tenant.destination)
    run_id = record.run_id
    # Read both sides before writing anything: a failed read leaves no half run behind.
    try:
        source = targets.for_target(read_source(tenant.source), tenant.target.kind)
        target = read_target(tenant)
    except Exception as exc:
        why = f"ran out of time before the function's timeout: {exc}" if isinstance(exc, OutOfTimeError) \
            else f"{type(exc).__name__}: {exc}"
        runs.fail(ledger, record, why, finished)
        raise
    manifest = Manifest(
        tenant_id=tenant.tenant_id,
        run_id=run_id,
        company_id=tenant.destination,
        trigger=request.trigger,
        dry_run=request.dry_run,
        created_at=datetime.now(UTC),
        source_key=keys.source_key(tenant.tenant_id, run_id),
        target_key=keys.target_key(tenant.tenant_id, run_id),
        source_accounts=len(source.accounts),
        target_accounts=len(target.accounts),
        target_kind=tenant.target.kind,
        archive_guard=tenant.archive_guard,
    )
    files.put(manifest.source_key, source.columns())
    files.put(manifest.target_key, target.columns())
    files.put(keys.manifest_key(tenant.tenant_id, run_id), manifest)
    return manifest


def fan_out(tenants: Iterable[Tenant], start: Callable[[RunRequest], None], request: RunRequest) -> list[str]:
    """Start one run per enabled tenant; each run then goes on by itself.

    Each request names its run: an invocation Lambda delivers twice is then the same run, not two."""
    started = []
    for tenant in tenants:
        start(RunRequest(tenant_id=tenant.tenant_id, trigger=request.trigger, dry_run=request.dry_run,
                         run_id=new_run_id()))
        started.append(tenant.tenant_id)
    return started
