"""Pleo OAuth 2.0 access tokens: refreshed before they expire and once on a 401, single-flight per tenant.

The rules (developers.pleo.io: Tokens Overview, How to Refresh Tokens, Centralised Token Refresh,
Race Condition Prevention, How to Handle Token Expiry or Revocation):

- an access token lives `expires_in` seconds: it is refreshed before it runs out (once a quarter of the
  time it had when first seen is left, at most REFRESH_MARGIN_SECONDS before), or when Pleo answers 401
  to it (once);
- a refresh answers a new access token AND a new refresh token: both are persisted together, before
  either is used, and the old ones are forgotten;
- a refresh token used twice (or expired) revokes the whole authorisation, so only one refresh per
  tenant may be in flight across every process and function: the store's lock makes it so, and whoever
  finds the lock taken waits and reads the tokens the holder persisted, instead of refreshing again;
- a refresh refused for good (invalid_grant, invalid_client, any 4xx) is terminal: the tenant is marked
  needs_reauth, its tokens are discarded, and no call goes to Pleo for it until it is connected again;
  transient failures (5xx, 429, network) are retried with backoff, a few times, never forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import SecretStr

from coa_sync.adapters.http import backoff
from coa_sync.models import Model

REFRESH_MARGIN_SECONDS = 60.0  # refresh this long before the access token's expiry
REFRESH_ATTEMPTS = 4
RECONNECT_HINT = ("connect it again: deployed, send the tenant a new link from `coa-sync tenants connect-link "
                  "TENANT --stack NAME`; locally, run `coa-sync connect ... --out FILE.json`")


class OAuthCredentials(Model):
    """A tenant's Pleo OAuth connection: what FILE.json (coa-sync sync --pleo-oauth) and the tenant's
    secret hold. `refresh_token` is None once the authorisation was refused for good (`needs_reauth`)."""

    token_url: str
    client_id: str
    client_secret: SecretStr
    refresh_token: SecretStr | None = None
    access_token: SecretStr | None = None
    expires_at: datetime | None = None
    needs_reauth: str | None = None  # why Pleo refused it; cleared by connecting again

    def seconds_left(self, now: datetime) -> float:
        if self.access_token is None or self.expires_at is None:
            return 0.0
        return (self.expires_at - now).total_seconds()

    def rotated(self, grant: TokenGrant, now: datetime) -> OAuthCredentials:
        return self.model_copy(update={
            "access_token": SecretStr(grant.access_token),
            "refresh_token": SecretStr(grant.refresh_token) if grant.refresh_token else self.refresh_token,
            "expires_at": now + timedelta(seconds=grant.expires_in), "needs_reauth": None})

    def revoked(self, reason: str) -> OAuthCredentials:
        """Tokens discarded (never to be sent again), the reason kept; the client stays for reconnecting."""
        return self.model_copy(update={"access_token": None, "refresh_token": None, "expires_at": None,
                                       "needs_reauth": reason})

    def document(self) -> dict[str, Any]:
        """The stored JSON, secrets in clear: only for the store to write."""
        secrets = {"clientSecret": self.client_secret, "refreshToken": self.refresh_token,
                   "accessToken": self.access_token}
        return {**self.model_dump(mode="json", exclude_none=True),
                **{key: secret.get_secret_value() for key, secret in secrets.items() if secret is not None}}


@dataclass(frozen=True)
class TokenGrant:
    """What the token endpoint answered: the access token, the refresh token that replaces the old one."""

    access_token: str
    refresh_token: str | None  # None: the old one stays valid (the server did not rotate it)
    expires_in: float


class GrantRefused(Exception):
    """The token endpoint refused the grant (a 4xx): the authorisation is gone for good."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error


class TokenEndpointUnavailable(Exception):
    """The token endpoint failed in a way that may pass (5xx, 429, network)."""


class ReauthRequired(Exception):
    """The tenant's Pleo authorisation is revoked or expired for good: nothing is sent until it reconnects."""

    def __init__(self, tenant_id: str, reason: str) -> None:
        super().__init__(f"tenant {tenant_id!r} needs_reauth: Pleo refused its authorisation ({reason}); "
                         f"{RECONNECT_HINT.replace('TENANT', tenant_id)}")
        self.tenant_id = tenant_id
        self.reason = reason


class TokenRefreshUnavailable(Exception):
    """No fresh token could be had this time (the endpoint kept failing, or another refresh took too long)."""


class TokenStore(Protocol):
    """Where a tenant's tokens live (its Secrets Manager secret; locally FILE.json), and its refresh lock."""

    def read(self) -> OAuthCredentials:
        """The stored credentials as they are now, never a cached copy."""
        ...

    def write(self, credentials: OAuthCredentials) -> None:
        """Replace the stored credentials, both tokens at once."""
        ...

    def refresh_lock(self) -> AbstractContextManager[bool]:
        """Enter to try the tenant's refresh lock: True, held until exit; False, another holds it."""
        ...

    def mark_needs_reauth(self, credentials: OAuthCredentials) -> None:
        """Store `credentials` (tokens discarded, reason set) and flag the tenant needs_reauth where it shows."""
        ...


class TokenEndpoint(Protocol):
    def refresh(self, credentials: OAuthCredentials) -> TokenGrant:
        """Raises GrantRefused, or TokenEndpointUnavailable."""
        ...


class AccessTokens:
    """The one place a tenant's access token comes from (see the module's docstring)."""

    def __init__(self, tenant_id: str, store: TokenStore, endpoint: TokenEndpoint, *, wait_seconds: float = 30.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.tenant_id = tenant_id
        self._store = store
        self._endpoint = endpoint
        self._margins: dict[str, float] = {}  # access token -> refresh it when this little time is left
        self._wait_seconds = wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._held: OAuthCredentials | None = None  # the credentials this process last read or made
        self.refreshes = 0  # refresh grants this object sent

    def current(self) -> str:
        """An access token with at least `margin` seconds to live; refreshed first if need be."""
        if self._held is not None and self._valid(self._held):
            return _token(self._held)
        return self._fresh(rejected=None)

    def after_rejection(self, rejected: str) -> str:
        """Pleo answered 401 to `rejected`: a token refreshed since (by this process or another)."""
        return self._fresh(rejected=rejected)

    def _fresh(self, rejected: str | None) -> str:
        deadline = time.monotonic() + self._wait_seconds
        attempt = 0
        while True:
            credentials = self._usable(self._store.read(), rejected)
            if credentials is not None:
                return _token(credentials)
            with self._store.refresh_lock() as mine:
                if mine:
                    credentials = self._usable(self._store.read(), rejected)  # someone may have just refreshed
                    return _token(credentials if credentials is not None else self._refresh(self._store.read()))
            attempt += 1
            if time.monotonic() > deadline:
                raise TokenRefreshUnavailable(f"tenant {self.tenant_id!r}: another process's token refresh "
                                              f"took over {self._wait_seconds:g} s")
            self._sleep(min(backoff(attempt), max(0.0, deadline - time.monotonic())))

    def _usable(self, credentials: OAuthCredentials, rejected: str | None) -> OAuthCredentials | None:
        if credentials.needs_reauth is not None or credentials.refresh_token is None:
            raise ReauthRequired(self.tenant_id, credentials.needs_reauth or "no refresh token stored")
        fresh = self._valid(credentials) and _token(credentials) != rejected
        if fresh:
            self._held = credentials
        return credentials if fresh else None

    def _valid(self, credentials: OAuthCredentials) -> bool:
        """Whether the access token has more than its refresh margin left. The margin is a quarter of what
        it had left when first seen (at most REFRESH_MARGIN_SECONDS): a token another process just made is
        taken as it is, one seen half-spent is refreshed in good time."""
        left = credentials.seconds_left(self._clock())
        if left <= 0:
            return False
        margin = self._margins.setdefault(_token(credentials), min(REFRESH_MARGIN_SECONDS, left / 4))
        return left > margin

    def _refresh(self, credentials: OAuthCredentials) -> OAuthCredentials:
        """Under the lock: one refresh grant, both new tokens persisted before they are used."""
        for attempt in range(1, REFRESH_ATTEMPTS + 1):
            try:
                self.refreshes += 1
                grant = self._endpoint.refresh(credentials)
                break
            except GrantRefused as refused:
                revoked = credentials.revoked(str(refused))
                self._store.mark_needs_reauth(revoked)
                self._held = None
                raise ReauthRequired(self.tenant_id, str(refused)) from None
            except TokenEndpointUnavailable as exc:
                if attempt == REFRESH_ATTEMPTS:
                    raise TokenRefreshUnavailable(f"tenant {self.tenant_id!r}: token refresh failed "
                                                  f"{attempt} times: {exc}") from None
                self._sleep(backoff(attempt))
        rotated = credentials.rotated(grant, self._clock())
        self._store.write(rotated)
        self._held = rotated
        return rotated


def _token(credentials: OAuthCredentials) -> str:
    assert credentials.access_token is not None
    return credentials.access_token.get_secret_value()
