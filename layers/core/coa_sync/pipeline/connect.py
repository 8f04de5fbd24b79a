"""Connecting a tenant to Pleo by OAuth 2.0, deployed: a signed link, Pleo's consent, the callback.

    coa-sync tenants connect-link TENANT --stack NAME
        -> <WebhookUrl>/connect/pleo?tenant=T&expires=E&signature=v1=HMAC   (the operator sends it on)
    GET /connect/pleo     the link checked (signature in constant time, not expired, not used, tenant
                          known); a flow started (a random `state` and a PKCE verifier, kept 10 minutes,
                          used once); 302 to Pleo's authorize endpoint (S256 challenge, the state)
    GET /oauth/callback   Pleo's redirect: the flow taken back by its state (a bad, expired or replayed
                          state stops here), an `error` shown as Pleo gave it; else the code exchanged
                          server side, the link marked used (a link connects once: another flow from it,
                          a second tab or a forwarded copy, stops here), both tokens stored in the
                          tenant's secret, the tenant marked connected (reconnecting clears needs_reauth
                          and keeps its configuration), and its first run started, as Pleo asks for a
                          sync on connect

Every answer is a page that says what happened; on any failure nothing is stored. The integration's
OAuth client (client id and secret, Pleo's endpoints, the registered redirect URI, the scopes) and the
key that signs links live in one secret, PLEO_OAUTH_SECRET_NAME.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlencode

from pydantic import SecretStr

from coa_sync.oauth_flow import Flow, OAuthApp, authorize_url, pkce
from coa_sync.tokens import OAuthCredentials, TokenGrant

LINK_VERSION = "v1"


class ConnectApp(OAuthApp):
    """The deployment's OAuth client, with the key its connect links are signed with."""

    link_key: SecretStr


def link_signature(key: str, tenant_id: str, expires: int) -> str:
    digest = hmac.new(key.encode(), f"connect-pleo.{tenant_id}.{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{LINK_VERSION}={digest}"


def link_id(signature: str) -> str:
    """What the table keeps of a used link: a hash, so the table never holds a link that could be replayed."""
    return hashlib.sha256(signature.encode()).hexdigest()


def connect_link(webhook_url: str, key: str, tenant_id: str, expires: int) -> str:
    query = urlencode({"tenant": tenant_id, "expires": expires,
                       "signature": link_signature(key, tenant_id, expires)})
    return f"{webhook_url.rstrip('/')}/connect/pleo?{query}"


@dataclass(frozen=True)
class Page:
    status: int
    title: str
    message: str
    location: str | None = None  # a redirect


USED = Page(403, "This connect link was used already", "It connected its tenant once. Nothing was stored: ask "
                                                       "for a new link to connect again.")


class Flows(Protocol):
    def start_flow(self, flow: Flow) -> str: ...
    def finish_flow(self, state: str) -> Flow | None: ...
    def link_used(self, link: str) -> bool: ...
    def use_link(self, link: str, expires: int) -> bool: ...


@dataclass
class Connector:
    app: Callable[[], ConnectApp]
    tenant_exists: Callable[[str], bool]
    flows: Flows
    exchange: Callable[[ConnectApp, str, str], TokenGrant]  # (app, code, verifier) -> the first tokens
    store: Callable[[str, OAuthCredentials], None]  # the tenant's secret, then its status: connected
    start_run: Callable[[str], str | None]  # the first run's id; None when a run is in progress

    def begin(self, query: Mapping[str, str], now: float) -> Page:
        tenant_id, expires, signature = query.get("tenant", ""), query.get("expires", ""), query.get("signature", "")
        app = self.app()
        good = expires.isdigit() and hmac.compare_digest(
            link_signature(app.link_key.get_secret_value(), tenant_id, int(expires or 0)), signature)
        if not good or not self.tenant_exists(tenant_id):
            return Page(403, "This connect link is not valid", "Ask for a new link to connect to Pleo.")
        if int(expires) < now:
            return Page(403, "This connect link has expired", "Ask for a new link to connect to Pleo.")
        link = link_id(signature)
        if self.flows.link_used(link):
            return USED
        verifier, challenge = pkce()
        state = self.flows.start_flow(Flow(tenant_id, verifier, link, int(expires)))
        return Page(302, "Connecting to Pleo", "On to Pleo...", location=authorize_url(app, state, challenge))

    def finish(self, query: Mapping[str, str], now: float) -> Page:
        flow = self.flows.finish_flow(query.get("state", ""))
        if flow is None:
            return Page(400, "This answer from Pleo cannot be used",
                        "It does not belong to a connection started here, or it was used already or has "
                        "expired. Nothing was stored: open the connect link again.")
        tenant_id, verifier = flow.tenant_id, flow.code_verifier
        if "error" in query:
            description = query.get("error_description") or "no description"
            return Page(400, "Pleo did not connect", f"Pleo answered {query['error']}: {description}. "
                                                    "Nothing was stored: open the connect link again to retry.")
        if not query.get("code"):
            return Page(400, "Pleo did not connect", "Pleo's answer had no authorization code. Nothing was stored.")
        app = self.app()
        try:
            grant = self.exchange(app, query["code"], verifier)
        except Exception as exc:  # refused or unreachable: the page says which, the tokens are not stored
            return Page(502, "Pleo did not connect", f"Exchanging the authorization code failed ({exc}). "
                                                    "Nothing was stored: open the connect link again.")
        if grant.refresh_token is None:
            return Page(502, "Pleo did not connect", "Pleo answered without a refresh token. Nothing was stored.")
        if not self.flows.use_link(flow.link, flow.link_expires):
            return USED
        credentials = OAuthCredentials(
            token_url=app.token_url, client_id=app.client_id, client_secret=app.client_secret,
            refresh_token=grant.refresh_token, access_token=grant.access_token,
            expires_at=datetime.fromtimestamp(now, UTC) + timedelta(seconds=grant.expires_in))
        self.store(tenant_id, credentials)
        run_id = self.start_run(tenant_id)
        started = (f"Its first sync has started (run {run_id})." if run_id else
                   "A sync is running already; the next one uses this connection.")
        return Page(200, "Connected to Pleo", f"Tenant {tenant_id} is connected. {started} You can close this page.")
