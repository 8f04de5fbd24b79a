"""Each function's environment, validated once at cold start.

A missing or malformed variable fails the cold start with pydantic's message naming it,
instead of failing later in the middle of a run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    tenants_table: str = Field(min_length=1)
    # Where each run's report lands and who hears that it ended.
    snapshot_bucket: str = Field(min_length=3)
    event_bus_name: str = Field(default="default", min_length=1)
    # The actions queue's VisibilityTimeout and maxReceiveCount: how long a queued action may live.
    actions_visibility_timeout_seconds: int = Field(default=2100, ge=0)
    max_receive_count: int = Field(default=5, ge=1)

    @property
    def lock_ttl_seconds(self) -> int:
        return lock_ttl(self.actions_visibility_timeout_seconds, self.max_receive_count)


def lock_ttl(visibility_timeout: int, max_receive_count: int) -> int:
    """How long a run holds its tenant without news before another run may take over (a stale lock).

    A queued action's whole life (every delivery, each a visibility timeout apart) plus one more
    visibility timeout for the invocation that settles it: a live run is renewed by every writer
    batch long before that, so only a run that died lets its lock go stale.
    """
    return max(visibility_timeout * (max_receive_count + 1), 60)


class PleoSettings(CommonSettings):
    pleo_base_url: HttpUrl
    # Pleo allows 600 requests/min and asks integrations to stay at or under 500: at most this many in any
    # window, per scope, across every container and function (the shared budget in the tenants table).
    pleo_rate_limit_per_minute: int = Field(default=500, ge=2, le=600)
    # What Pleo's limit counts is undocumented: each Pleo company on its own, or every tenant of one OAuth
    # client or API key together.
    pleo_rate_scope: Literal["company", "integration"] = "company"
    # Sixty seconds in production; tests and benchmarks shrink it to play a minute in a second.
    pleo_rate_window_seconds: float = Field(default=60.0, gt=0)
    pleo_timeout_seconds: float = Field(default=15.0, gt=0)
    # Accounts asked for per search page. Pleo documents no maximum; 100 is what it can be expected to accept.
    pleo_page_size: int = Field(default=100, ge=1, le=1000)
    pleo_max_attempts: int = Field(default=5, ge=1, le=10)


class FetchSettings(PleoSettings):
    # The scheduled sweep closes a run still fetching (or never started) after this long without
    # progress: the fetch's own timeout times its tries, with Lambda's retry delays between them.
    orphaned_fetch_seconds: int = Field(default=1200, ge=60)
    # The schedule's fan-out queues each tenant's run here (fetch drains it, a few at a time); a fetch of
    # one tenant (the webhook's, the local runner's) needs none.
    runs_queue_url: str | None = Field(default=None, min_length=1)


class ArchiveGuardSettings(BaseSettings):
    """Hold archives back when a run would archive more than max(N, P%) of Pleo's active accounts."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_prefix="ARCHIVE_GUARD_")

    min_archives: int = Field(default=10, ge=0)
    percent: float = Field(default=10.0, ge=0, le=100)


class DiffSettings(CommonSettings):
    actions_queue_url: str = Field(min_length=1)
    archive_guard: ArchiveGuardSettings = Field(default_factory=ArchiveGuardSettings)


class WriterSettings(PleoSettings):
    dead_letter_queue_url: str = Field(min_length=1)
    # Actions not started for lack of time go back here, visible again after this many seconds.
    actions_queue_url: str = Field(min_length=1)
    leftover_visibility_seconds: int = Field(default=5, ge=0, le=900)
    # Longest wait for a tenant's Pleo rate budget: past it, that tenant's actions go back to the queue (visible
    # again when its budget has room) and the writer goes on with the other tenants' in the batch.
    pleo_budget_wait_seconds: float = Field(default=5.0, ge=0)
    # Tenants of one batch applied at once, each on its own thread and paced by its own budget: a batch of many
    # small tenants takes as long as its busiest, not as long as all of them in turn.
    writer_tenants_at_once: int = Field(default=16, ge=1, le=64)


class WebhookSettings(PleoSettings):
    fetch_function_name: str = Field(min_length=1)
    # Approved archives are queued here for the writer.
    actions_queue_url: str = Field(min_length=1)
    # Secrets Manager name of the integration's Pleo OAuth client and connect-link key (see pipeline.connect);
    # None: GET /connect/pleo and /oauth/callback answer that OAuth connecting is not set up.
    pleo_oauth_secret_name: str | None = None
    # Pleo is asked once before an approval releases anything (and for tokens when a tenant connects):
    # two short tries fit the function's 15 s.
    pleo_timeout_seconds: float = Field(default=5.0, gt=0)
    pleo_max_attempts: int = Field(default=2, ge=1, le=10)
