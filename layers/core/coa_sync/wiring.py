"""The composition root: builds each step's adapters from its settings.

Handlers and the local runner both get their services here, so they run the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from coa_sync.adapters.pleo import PleoClient
from coa_sync.adapters.secrets import pleo_credentials
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.models import SourceConfig, SourceSnapshot, TargetSnapshot, Tenant
from coa_sync.ratelimit import limiter_for
from coa_sync.settings import PleoSettings
from coa_sync.sources import read_source

Observer = Callable[[str, int, float], None]


def pleo_client(settings: PleoSettings, tenant: Tenant, observe: Observer | None = None) -> PleoClient:
    return PleoClient(
        str(settings.pleo_base_url),
        pleo_credentials(tenant.pleo_secret_name),
        limiter=limiter_for(tenant.tenant_id, settings.pleo_rate_limit_per_minute, settings.pleo_rate_window_seconds),
        timeout=settings.pleo_timeout_seconds,
        max_attempts=settings.pleo_max_attempts,
        observe=observe,
    )


def pleo_snapshot(settings: PleoSettings, tenant: Tenant, observe: Observer | None = None) -> TargetSnapshot:
    with pleo_client(settings, tenant, observe) as client:
        return client.snapshot(tenant.company_id)


def source_snapshot(config: SourceConfig, store: SnapshotStore) -> SourceSnapshot:
    location = urlparse(config.uri)
    if location.scheme == "s3":
        key = location.path.lstrip("/")
        return read_source(store.read_bytes(key, bucket=location.netloc), Path(key).name)
    path = Path(config.uri)
    return read_source(path.read_bytes(), path.name)
