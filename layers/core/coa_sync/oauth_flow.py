"""The start of Pleo's authorization-code flow: a PKCE pair and the authorize URL (How to Direct Users to
the Authorisation Endpoint). Shared by `coa-sync connect` (loopback redirect) and the webhook's
GET /connect/pleo (deployed)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import NamedTuple
from urllib.parse import urlencode

from pydantic import SecretStr

from coa_sync.models import Model


class OAuthApp(Model):
    """The integration's OAuth client as registered with Pleo (a deployment keeps it in one secret)."""

    authorize_url: str
    token_url: str
    client_id: str
    client_secret: SecretStr
    redirect_uri: str  # exactly as registered
    scope: str = ""


class Flow(NamedTuple):
    """A deployed connect flow under way, from its connect link to Pleo's callback."""

    tenant_id: str
    code_verifier: str
    link: str  # the connect link's id (pipeline.connect.link_id): a link connects its tenant once
    link_expires: int  # epoch seconds


def pkce() -> tuple[str, str]:
    """(code_verifier, code_challenge): 64 characters of [A-Za-z0-9_-], and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    return verifier, challenge_of(verifier)


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorize_url(app: OAuthApp, state: str, challenge: str) -> str:
    separator = "&" if "?" in app.authorize_url else "?"
    return app.authorize_url + separator + urlencode({
        "client_id": app.client_id, "redirect_uri": app.redirect_uri, "scope": app.scope, "response_type": "code",
        "state": state, "code_challenge_method": "S256", "code_challenge": challenge})
