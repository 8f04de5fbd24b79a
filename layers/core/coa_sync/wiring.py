"""The composition root: builds each step's adapters from its settings.

Handlers and the local runner both get their services here, so they run the same code.
The Pleo client and the connectors (httpx) are imported by the functions that build them:
every handler imports this module, and only the paths that call Pleo or an accounting system
should pay for those imports.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from typing import TYPE_CHECKING

from coa_sync import keys
from coa_sync.adapters.events import RunEvents
from coa_sync.adapters.secrets import pleo_credentials
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.models import RunRecord, SourceConfig, SourceSnapshot, TargetSnapshot, Tenant
from coa_sync.observability import observe_run
from coa_sync.ratelimit import limiter_for
from coa_sync.settings import CommonSettings, PleoSettings

if TYPE_CHECKING:
    from coa_sync.adapters.pleo import PleoClient

Observer = Callable[[str, int, float], None]


def pleo_client(settings: PleoSettings, tenant: Tenant, observe: Observer | None = None) -> PleoClient:
    from coa_sync.adapters.pleo import PleoClient

    return PleoClient(
        str(settings.pleo_base_url),
        pleo_credentials(tenant.pleo_secret_name),
        limiter=limiter_for(tenant.tenant_id, settings.pleo_rate_limit_per_minute, settings.pleo_rate_window_seconds),
        timeout=settings.pleo_timeout_seconds,
        max_attempts=settings.pleo_max_attempts,
        observe=observe,
        page_size=settings.pleo_page_size,
    )


def pleo_snapshot(settings: PleoSettings, tenant: Tenant, observe: Observer | None = None) -> TargetSnapshot:
    with pleo_client(settings, tenant, observe) as client:
        return client.snapshot(tenant.company_id)


def source_snapshot(config: SourceConfig, store: SnapshotStore) -> SourceSnapshot:
    """The tenant's chart from whichever system its source config names (see coa_sync.connectors)."""
    from coa_sync import connectors

    with closing(connectors.source_for(config, connectors.ConnectorDeps(files=store))) as source:
        return source.read_accounts()


def run_finisher(settings: CommonSettings, files: SnapshotStore) -> Callable[[RunRecord], None]:
    """What happens when a function ends a run: its report goes to S3, SyncRunCompleted to EventBridge,
    and the run is counted in the function's metrics (Runs<Status>)."""
    return finisher(files, RunEvents(settings.event_bus_name), observe=observe_run)


def finisher(files: SnapshotStore, events: RunEvents,
             observe: Callable[[RunRecord], None] | None = None) -> Callable[[RunRecord], None]:
    def finished(record: RunRecord) -> None:
        files.put(keys.report_key(record.tenant_id, record.run_id), record)
        events.completed(record)
        if observe is not None:
            observe(record)

    return finished
