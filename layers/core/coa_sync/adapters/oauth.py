"""Pleo's OAuth 2.0 token endpoint over httpx: the authorization-code exchange and the refresh grant.

As Pleo's client configuration page says: the client authenticates with
`Authorization: Basic base64(client_id:client_secret)` and the form carries client_id and
client_secret too. An answer 4xx is a refusal for good (GrantRefused, with the OAuth `error`); 5xx, 429
and network failures may pass (TokenEndpointUnavailable). Tokens and the client secret never appear in
an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coa_sync.adapters.http import is_transient, tls
from coa_sync.tokens import GrantRefused, OAuthCredentials, TokenEndpointUnavailable, TokenGrant

if TYPE_CHECKING:
    import httpx

DEFAULT_EXPIRES_IN = 900.0


@dataclass(frozen=True)
class OAuthClient:
    token_url: str
    client_id: str
    client_secret: str


class OAuthTokenEndpoint:
    def __init__(self, timeout: float = 15.0, transport: httpx.BaseTransport | None = None) -> None:
        self._timeout = timeout
        self._transport = transport

    def refresh(self, credentials: OAuthCredentials) -> TokenGrant:
        assert credentials.refresh_token is not None
        client = OAuthClient(credentials.token_url, credentials.client_id,
                             credentials.client_secret.get_secret_value())
        return self._grant(client, {"grant_type": "refresh_token",
                                    "refresh_token": credentials.refresh_token.get_secret_value()})

    def exchange(self, client: OAuthClient, code: str, redirect_uri: str, code_verifier: str) -> TokenGrant:
        """The authorization code (with its PKCE verifier) for the first tokens: server to server only."""
        return self._grant(client, {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                    "code_verifier": code_verifier})

    def _grant(self, client: OAuthClient, form: dict[str, str]) -> TokenGrant:
        import httpx

        form = {**form, "client_id": client.client_id, "client_secret": client.client_secret}
        try:
            with httpx.Client(timeout=self._timeout, transport=self._transport, verify=tls()) as http:
                response = http.post(client.token_url, data=form, auth=(client.client_id, client.client_secret),
                                     headers={"Accept": "application/json"})
        except httpx.TransportError as exc:
            raise TokenEndpointUnavailable(f"token endpoint: {type(exc).__name__}") from None
        if is_transient(response.status_code):
            raise TokenEndpointUnavailable(f"token endpoint: HTTP {response.status_code}")
        document = _json(response)
        if response.is_error:
            error = document.get("error") if isinstance(document.get("error"), str) else f"HTTP {response.status_code}"
            description = document.get("error_description")
            raise GrantRefused(error, description if isinstance(description, str) else None)
        # A refresh token may only be sent once: an answer is taken as far as it goes, never asked again.
        # Without a new refresh token the old one stays (RFC 6749 section 6); without expires_in, Pleo's
        # older page's 15 minutes.
        access_token, refresh_token = document.get("access_token"), document.get("refresh_token")
        if not isinstance(access_token, str) or not access_token:
            raise GrantRefused("invalid_response", "the token endpoint answered without an access_token")
        expires_in = document.get("expires_in")
        return TokenGrant(access_token=access_token,
                          refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
                          expires_in=float(expires_in) if isinstance(expires_in, int | float) else DEFAULT_EXPIRES_IN)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
