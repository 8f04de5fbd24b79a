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

from coa_sync import deadline as deadlines
from coa_sync import keys, targets
from coa_sync.adapters.events import RunEvents
from coa_sync.adapters.secrets import pleo_credentials
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.models import RunRecord, SourceConfig, SourceSnapshot, TargetSnapshot, Tenant
from coa_sync.observability import observe_run
from coa_sync.settings import CommonSettings, PleoSettings, WebhookSettings
from coa_sync.tokenbucket import Rate, budget_key

if TYPE_CHECKING:
    from coa_sync.adapters.budget import SharedBudget
    from coa_sync.adapters.pleo import PleoClient, PleoCredentials
    from coa_sync.pipeline.connect import Connector
    from coa_sync.pipeline.write import Target
    from coa_sync.tokens import AccessTokens, OAuthCredentials, TokenStore

Observer = Callable[[str, int, float], None]
# Token stores that stand in for a tenant's secret, by secret name: the local runner registers the
# `--pleo-oauth FILE.json` of `coa-sync sync` here, so rotated tokens go to that file before they are used.
token_stores: dict[str, TokenStore] = {}


def pleo_client(settings: PleoSettings, tenant: Tenant, observe: Observer | None = None,
                deadline: deadlines.Deadline = deadlines.NONE, budget_wait: float | None = None) -> PleoClient:
    """The tenant's Pleo client within its shared rate budget; `budget_wait`: the longest wait for a token
    (the client's max_wait if None), past which it raises PleoBudgetSpent."""
    from coa_sync.adapters.pleo import PleoClient, PleoCredentials

    credentials = pleo_credentials(tenant.pleo_secret_name)
    return PleoClient(
        str(settings.pleo_base_url),
        credentials if isinstance(credentials, PleoCredentials) else access_tokens(settings, tenant),
        budget=pleo_budget(settings, tenant, credentials),
        timeout=settings.pleo_timeout_seconds,
        max_attempts=settings.pleo_max_attempts,
        observe=observe,
        page_size=settings.pleo_page_size,
        deadline=deadline,
        budget_wait=budget_wait,
    )


def pleo_budget(settings: PleoSettings, tenant: Tenant,
                credentials: PleoCredentials | OAuthCredentials) -> SharedBudget:
    """The tenant's share of Pleo's limit: one bucket per scope in the tenants table, which every container
    and function calling Pleo takes from (coa_sync.adapters.budget). At most PLEO_RATE_LIMIT_PER_MINUTE
    requests reach Pleo in any window (PLEO_RATE_WINDOW_SECONDS), tokens held up to 1.5 s of a minute."""
    from coa_sync.adapters.budget import DEFAULT_HOLD, SharedBudget
    from coa_sync.tokens import OAuthCredentials

    window = settings.pleo_rate_window_seconds
    hold = DEFAULT_HOLD * window / 60.0  # a window played faster holds its tokens as much shorter
    base_url = str(settings.pleo_base_url)
    if settings.pleo_rate_scope == "company":
        key = f"pleo:{base_url.rstrip('/')}:company:{tenant.company_id}"
    elif isinstance(credentials, OAuthCredentials):  # every tenant connected through one OAuth client
        key = budget_key("pleo", base_url, credentials.client_id)
    else:  # a customer's own integration: its API key (a fingerprint of it, never the key)
        secret = credentials.api_key or credentials.access_token
        assert secret is not None, "pleo_credentials answers an api key or a token"
        key = budget_key("pleo", base_url, secret.get_secret_value())
    return SharedBudget(key, Rate.within(settings.pleo_rate_limit_per_minute, window, hold),
                        settings.tenants_table, hold=hold)


def access_tokens(settings: PleoSettings, tenant: Tenant) -> AccessTokens:
    """The tenant's OAuth access tokens: refreshed single-flight, stored in its secret (see coa_sync.tokens)."""
    from coa_sync.adapters.oauth import OAuthTokenEndpoint
    from coa_sync.adapters.pleo_connection import PleoConnections, SecretTokenStore
    from coa_sync.tokens import AccessTokens

    store = token_stores.get(tenant.pleo_secret_name) or SecretTokenStore(
        tenant.pleo_secret_name, tenant.tenant_id, PleoConnections(settings.tenants_table))
    return AccessTokens(tenant.tenant_id, store, OAuthTokenEndpoint(timeout=settings.pleo_timeout_seconds))


def pleo_connector(settings: WebhookSettings, tenant: Callable[[str], Tenant | None],
                   start_run: Callable[[str], str | None]) -> Connector:
    """The deployed OAuth connect flow (coa_sync.pipeline.connect): the integration's client from its secret,
    flows and status in the tenants table, the tokens in each tenant's secret."""
    from coa_sync.adapters.oauth import OAuthClient, OAuthTokenEndpoint
    from coa_sync.adapters.pleo_connection import PleoConnections, SecretTokenStore
    from coa_sync.adapters.secrets import secret_json
    from coa_sync.pipeline.connect import ConnectApp, Connector

    connections = PleoConnections(settings.tenants_table)
    endpoint = OAuthTokenEndpoint(timeout=settings.pleo_timeout_seconds)

    def app() -> ConnectApp:
        if not settings.pleo_oauth_secret_name:
            raise LookupError("OAuth connecting is not set up for this stack (PLEO_OAUTH_SECRET_NAME)")
        return ConnectApp.model_validate(secret_json(settings.pleo_oauth_secret_name))

    def exchange(connect_app: ConnectApp, code: str, verifier: str):  # -> TokenGrant
        client = OAuthClient(connect_app.token_url, connect_app.client_id, connect_app.client_secret.get_secret_value())
        return endpoint.exchange(client, code, connect_app.redirect_uri, verifier)

    def store(tenant_id: str, credentials) -> None:  # both tokens in the tenant's secret, then: connected
        found = tenant(tenant_id)
        assert found is not None, "a flow is only started for a tenant that exists"
        SecretTokenStore(found.pleo_secret_name, tenant_id, connections).write(credentials)
        connections.mark_connected(tenant_id)

    return Connector(app=app, tenant_exists=lambda tenant_id: tenant(tenant_id) is not None, flows=connections,
                     exchange=exchange, store=store, start_run=start_run)


def pleo_snapshot(settings: PleoSettings, tenant: Tenant, observe: Observer | None = None,
                  deadline: deadlines.Deadline = deadlines.NONE) -> TargetSnapshot:
    assert tenant.company_id is not None, "a tenant whose target is Pleo has its company"
    with pleo_client(settings, tenant, observe, deadline) as client:
        return client.snapshot(tenant.company_id)


def target_snapshot(settings: PleoSettings, tenant: Tenant, observe: Observer | None = None,
                    deadline: deadlines.Deadline = deadlines.NONE) -> TargetSnapshot:
    """The chart the tenant's actions go to: Pleo's, or an accounting system's keyed as it matches accounts
    (coa_sync.targets)."""
    if tenant.target.kind == targets.PLEO:
        return pleo_snapshot(settings, tenant, observe, deadline)
    from coa_sync import connectors

    with closing(connectors.source_for(tenant.target, _shared_deps(settings, deadline))) as system:
        return targets.as_target(targets.for_target(system.read_accounts(), tenant.target.kind))


def target_client(settings: PleoSettings, tenant: Tenant, observe: Observer | None = None,
                  deadline: deadlines.Deadline = deadlines.NONE, budget_wait: float | None = None) -> Target:
    """What the writer applies the tenant's actions with: the Pleo client (waiting at most `budget_wait` for its
    budget), or the target system's connector (within that system's budgets, shared through the tenants table)."""
    if tenant.target.kind == targets.PLEO:
        return pleo_client(settings, tenant, observe, deadline, budget_wait)
    from coa_sync import connectors
    from coa_sync.connectors.target import ConnectorTarget

    return ConnectorTarget(connectors.target_for(tenant.target, _shared_deps(settings, deadline)))


def pleo_check(settings: PleoSettings, tenant: Callable[[str], Tenant | None],
               observe: Observer | None = None) -> Callable[[str, str], None]:
    """What approve asks before it releases anything: does Pleo answer a search of the tenant's company
    (for one externalId) made with the tenant's credentials? (For another target: does it answer a read
    of its chart?)"""

    def check(tenant_id: str, external_id: str) -> None:
        found = tenant(tenant_id)
        if found is None:
            raise LookupError(f"no tenant {tenant_id!r}")
        if found.target.kind != targets.PLEO:
            target_snapshot(settings, found, observe)
            return
        with pleo_client(settings, found, observe) as client:
            client.find(found.company_id, external_id)

    return check


def _shared_deps(settings: CommonSettings, deadline: deadlines.Deadline):  # -> connectors.ConnectorDeps
    """A connector's dependencies: its rate budgets shared by every container through the tenants table."""
    from coa_sync import connectors
    from coa_sync.adapters.budget import SharedBudgets

    return connectors.ConnectorDeps(deadline=deadline, budget=SharedBudgets(settings.tenants_table))


def source_snapshot(settings: CommonSettings, config: SourceConfig, store: SnapshotStore) -> SourceSnapshot:
    """The tenant's chart from whichever system its source config names (see coa_sync.connectors), within
    that system's rate budgets, shared by every container through the tenants table."""
    from coa_sync import connectors
    from coa_sync.adapters.budget import SharedBudgets

    deps = connectors.ConnectorDeps(files=store, budget=SharedBudgets(settings.tenants_table))
    with closing(connectors.source_for(config, deps)) as source:
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
