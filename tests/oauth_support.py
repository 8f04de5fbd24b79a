"""Connecting a company by OAuth without a browser (the browser test does it with one), for the tests."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from coa_sync.adapters.oauth import OAuthClient, OAuthTokenEndpoint
from coa_sync.oauth_flow import OAuthApp, authorize_url, pkce
from coa_sync.tokens import OAuthCredentials
from coa_sync_local.oauth_file import FileTokenStore

CLIENT_ID, CLIENT_SECRET = "coa-sync-test-client", "test-client-secret-0123456789"
REDIRECT_URI = "http://127.0.0.1:8765/callback"


def app(emulator, redirect_uri: str = REDIRECT_URI) -> OAuthApp:
    return OAuthApp(authorize_url=f"{emulator.url}/oauth/authorize", token_url=f"{emulator.url}/oauth/token",
                    client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=redirect_uri, scope="test:test")


def consent(url: str, company: str, decision: str = "allow") -> dict[str, str]:
    """Open the authorize URL and answer the consent page as a user would; the redirect's query."""
    with httpx.Client(timeout=5) as http:
        page = http.get(url)
        assert page.status_code == 200, page.text
        request_id = re.search(r'name="request" value="([^"]+)"', page.text).group(1)
        answer = http.post(url.split("?")[0], data={"request": request_id, "company": company, "decision": decision})
    assert answer.status_code == 302, answer.text
    return {key: values[0] for key, values in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def connect(emulator, company: str) -> OAuthCredentials:
    """A fresh authorisation of `company` for the test client: what `coa-sync connect` would write."""
    emulator.add_oauth_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    oauth = app(emulator)
    verifier, challenge = pkce()
    redirect = consent(authorize_url(oauth, "state-1", challenge), company)
    assert redirect["state"] == "state-1"
    grant = OAuthTokenEndpoint().exchange(OAuthClient(oauth.token_url, CLIENT_ID, CLIENT_SECRET), redirect["code"],
                                          REDIRECT_URI, verifier)
    credentials = OAuthCredentials(token_url=oauth.token_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                   refresh_token=grant.refresh_token, access_token=grant.access_token,
                                   expires_at=datetime.now(UTC) + timedelta(seconds=grant.expires_in))
    return credentials


def connect_file(emulator, company: str, path: Path) -> FileTokenStore:
    store = FileTokenStore(path)
    store.write(connect(emulator, company))
    return store
