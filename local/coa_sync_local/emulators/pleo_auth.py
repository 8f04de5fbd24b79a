"""Pleo's OAuth 2.0 authorisation server, as the Pleo emulator plays it on its own port.

    GET  /oauth/authorize   the consent page
    POST /oauth/authorize   the user's answer: back to the redirect URI with a code, or with an error
    POST /oauth/token       the authorization_code and refresh_token grants

Behaviour, and its source (developers.pleo.io: "OAuth with Pleo" cheatsheet, OAuth 2.0 Client
Configuration, How to Direct Users to the Authorisation Endpoint, How to Handle Redirects and Exchange
Authorisation Code, How to Refresh Tokens, Tokens Overview; RFC 6749 where Pleo says it follows the
standard; READING where both are silent, the strictest plausible reading):

    PLEO     authorize takes client_id, redirect_uri (exactly as registered), scope, response_type=code,
             state, code_challenge_method=S256 (plain is refused) and code_challenge
    RFC      an unknown client or a redirect URI not registered gets an error page, never a redirect;
             other faults go back to the redirect URI as error=..., error_description, state
    PLEO     the redirect carries code and state, or error, error_description and state
    PLEO     the token endpoint authenticates the client with Authorization: Basic
             base64(client_id:client_secret); the form carries client_id and client_secret too
    PLEO     a code is short-lived and bound to its client, redirect URI and PKCE challenge; the
             verifier is 43..128 characters of [A-Za-z0-9-._~]
    PLEO     access tokens expire after expires_in (token_ttl, --token-ttl); every refresh answers a
             new access token and a new refresh token, and the old ones stop working
    PLEO     an expired or already-used refresh token revokes every token of that authorisation
    RFC      errors are {"error", "error_description"}: invalid_request, invalid_client (401),
             invalid_grant, unsupported_grant_type; tokens are answered with Cache-Control: no-store
    READING  state is required (Pleo's quick start calls it optional; its how-to requires checking it)
    READING  a code lives 60 s and is used once; a second use revokes what the first one issued (RFC)
    READING  both client authentications are required: the Basic header and the form's client_id
             and client_secret, which must agree
    READING  refresh tokens live 60 days ("at least 60 days")
    OURS     the consent page lets the user pick the company the authorisation is for: the emulator
             has no users, so choosing the company stands in for logging in to it
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

from coa_sync_local.emulators._base import Reply

VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of a SHA-256, unpadded
CODE_TTL_SECONDS = 60.0
REQUEST_TTL_SECONDS = 600.0
REFRESH_TTL_SECONDS = 60 * 24 * 3600.0


@dataclass
class _Client:
    client_id: str
    secret: str
    redirect_uris: frozenset[str]


@dataclass
class _Authorisation:
    """One user's consent to one client for one company: every token issued under it."""

    client_id: str
    company_id: str
    scope: str
    revoked: bool = False
    refresh_token: str | None = None  # the current one
    refresh_expires: float = 0.0
    used_refresh_tokens: set[str] = field(default_factory=set)
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry


@dataclass
class _Pending:
    """An authorize request waiting for the user's answer on the consent page."""

    client_id: str
    redirect_uri: str
    state: str
    challenge: str
    scope: str
    expires: float


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    company_id: str
    expires: float
    issued: _Authorisation | None = None  # what its (one) exchange issued


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class AuthorizationServer:
    """Shared with the emulator that serves it: `company_for(token)` says whose an access token is."""

    def __init__(self, *, token_ttl: float = 900.0, companies: Callable[[], Iterable[str]] = tuple,
                 clock: Callable[[], float] = time.time) -> None:
        self.token_ttl = token_ttl
        self._companies = companies
        self._clock = clock
        self._lock = threading.RLock()
        self._clients: dict[str, _Client] = {}
        self._pending: dict[str, _Pending] = {}
        self._codes: dict[str, _Code] = {}
        self._authorisations: list[_Authorisation] = []
        self._by_refresh: dict[str, _Authorisation] = {}  # every refresh token ever issued
        self._by_access: dict[str, _Authorisation] = {}
        self.events: Counter[str] = Counter()  # codes, exchanges, refreshes, replays, revocations

    def add_client(self, client_id: str, client_secret: str, redirect_uris: Iterable[str]) -> None:
        with self._lock:
            self._clients[client_id] = _Client(client_id, client_secret, frozenset(redirect_uris))

    def company_for(self, access_token: str) -> tuple[str | None, str | None]:
        """(company, None) for a live access token; (None, why not) otherwise."""
        with self._lock:
            authorisation = self._by_access.get(access_token)
            if authorisation is None:
                return None, None
            if authorisation.revoked:
                return None, "the authorisation was revoked"
            if authorisation.access_tokens.get(access_token, 0) <= self._clock():
                return None, "the access token has expired"
            return authorisation.company_id, None

    def revoke(self, company_id: str | None = None) -> int:
        """Revoke the authorisations (of a company, or all), as a user taking access away in Pleo would."""
        with self._lock:
            revoked = [a for a in self._authorisations if not a.revoked and company_id in (None, a.company_id)]
            for authorisation in revoked:
                authorisation.revoked = True
            self.events["revocations"] += len(revoked)
            return len(revoked)

    # -- HTTP -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, headers, body: bytes) -> Reply:
        with self._lock:
            if path == "/oauth/authorize" and method == "GET":
                return self._authorize(_form(query))
            if path == "/oauth/authorize" and method == "POST":
                return self._decide(_form(body.decode("utf-8", "replace")))
            if path == "/oauth/token" and method == "POST":
                try:
                    return _json(200, self._token(headers.get("Authorization"), _form(body.decode("utf-8", "replace"))))
                except OAuthError as error:
                    extra = {"WWW-Authenticate": 'Basic realm="pleo"'} if error.status == 401 else {}
                    return _json(error.status, {"error": error.error, "error_description": error.description}, extra)
            if path in ("/oauth/authorize", "/oauth/token"):
                return _page(405, "Method not allowed", f"{method} is not allowed on {path}.")
            return _page(404, "Not found", f"No such page: {path}")

    def _authorize(self, form: dict[str, str]) -> Reply:
        client = self._clients.get(form.get("client_id", ""))
        redirect_uri = form.get("redirect_uri", "")
        if client is None:
            return _page(400, "Unknown application", "The client_id is not a registered OAuth client.")
        if redirect_uri not in client.redirect_uris:
            return _page(400, "Unknown redirect URI",
                         "The redirect_uri must match one registered for this client exactly.")
        state = form.get("state", "")
        problem = None
        if form.get("response_type") != "code":
            problem = ("unsupported_response_type", "response_type must be code")
        elif form.get("code_challenge_method") != "S256":
            problem = ("invalid_request", "code_challenge_method must be S256")
        elif not CHALLENGE.match(form.get("code_challenge", "")):
            problem = ("invalid_request", "code_challenge must be the base64url SHA-256 of a code_verifier")
        elif not state:
            problem = ("invalid_request", "state is required")
        if problem:
            return _redirect(redirect_uri, {"error": problem[0], "error_description": problem[1], "state": state})
        request_id = secrets.token_urlsafe(16)
        self._pending[request_id] = _Pending(client.client_id, redirect_uri, state, form["code_challenge"],
                                             form.get("scope", ""), self._clock() + REQUEST_TTL_SECONDS)
        options = "".join(f'<option value="{html.escape(c)}">{html.escape(c)}</option>' for c in self._companies())
        return _page(200, "Connect to Pleo", body_html=f"""
<p><strong>{html.escape(client.client_id)}</strong> asks to access your Pleo company
(scopes: {html.escape(form.get("scope", "") or "none")}).</p>
<form method="post" action="/oauth/authorize">
  <input type="hidden" name="request" value="{request_id}">
  <label>Company <select name="company" id="company">{options}</select></label>
  <button type="submit" name="decision" value="allow" id="allow">Allow</button>
  <button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form>""")

    def _decide(self, form: dict[str, str]) -> Reply:
        pending = self._pending.pop(form.get("request", ""), None)
        if pending is None or pending.expires <= self._clock():
            return _page(400, "This request has expired", "Start connecting again from the application.")
        answer = {"state": pending.state}
        company = form.get("company", "")
        if form.get("decision") != "allow":
            answer |= {"error": "access_denied", "error_description": "the user did not allow access"}
        elif company not in set(self._companies()):
            answer |= {"error": "invalid_request", "error_description": "no such company"}
        else:
            code = secrets.token_urlsafe(24)
            self._codes[code] = _Code(pending.client_id, pending.redirect_uri, pending.challenge, pending.scope,
                                      company, self._clock() + CODE_TTL_SECONDS)
            self.events["codes"] += 1
            answer = {"code": code, **answer}
        return _redirect(pending.redirect_uri, answer)

    def _token(self, authorization: str | None, form: dict[str, str]) -> dict:
        client = self._authenticated(authorization, form)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(client, form)
        if grant_type == "refresh_token":
            return self._refresh(client, form.get("refresh_token", ""))
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def _authenticated(self, authorization: str | None, form: dict[str, str]) -> _Client:
        scheme, _, value = (authorization or "").partition(" ")
        try:
            client_id, _, client_secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id = client_secret = ""
        client = self._clients.get(client_id)
        if scheme.lower() != "basic" or client is None or not hmac.compare_digest(client.secret, client_secret):
            raise OAuthError("invalid_client", "authenticate the client with HTTP Basic client_id:client_secret", 401)
        if form.get("client_id") != client_id or not hmac.compare_digest(form.get("client_secret", ""), client.secret):
            raise OAuthError("invalid_client", "the form's client_id and client_secret must be the Basic header's", 401)
        return client

    def _exchange(self, client: _Client, form: dict[str, str]) -> dict:
        code = self._codes.get(form.get("code", ""))
        if code is None or code.client_id != client.client_id:
            raise OAuthError("invalid_grant", "unknown authorization code")
        if code.issued is not None:  # used before: what it issued is revoked too
            code.issued.revoked = True
            self.events["code_replays"] += 1
            raise OAuthError("invalid_grant", "the authorization code was already used")
        if code.expires <= self._clock():
            raise OAuthError("invalid_grant", "the authorization code has expired")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorize request's")
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not VERIFIER.match(verifier) or not hmac.compare_digest(challenge, code.challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        authorisation = _Authorisation(client.client_id, code.company_id, code.scope)
        self._authorisations.append(authorisation)
        code.issued = authorisation
        self.events["exchanges"] += 1
        return self._issue(authorisation)

    def _refresh(self, client: _Client, refresh_token: str) -> dict:
        authorisation = self._by_refresh.get(refresh_token)
        if authorisation is None or authorisation.client_id != client.client_id:
            raise OAuthError("invalid_grant", "unknown refresh token")
        if authorisation.revoked:
            raise OAuthError("invalid_grant", "the authorisation was revoked")
        if refresh_token in authorisation.used_refresh_tokens or authorisation.refresh_expires <= self._clock():
            authorisation.revoked = True  # replay protection: every token of the authorisation stops working
            self.events["replays"] += 1
            raise OAuthError("invalid_grant", "the refresh token was already used or has expired; "
                                              "every token of this authorisation is revoked")
        authorisation.used_refresh_tokens.add(refresh_token)
        authorisation.access_tokens.clear()  # the old access tokens stop working too
        self.events["refreshes"] += 1
        return self._issue(authorisation)

    def _issue(self, authorisation: _Authorisation) -> dict:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self._clock()
        authorisation.access_tokens[access] = now + self.token_ttl
        authorisation.refresh_token, authorisation.refresh_expires = refresh, now + REFRESH_TTL_SECONDS
        self._by_access[access] = self._by_refresh[refresh] = authorisation
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.token_ttl,
                "refresh_token": refresh, "scope": authorisation.scope}


def _form(text: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}


def _json(status: int, document: dict, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, document, {"Cache-Control": "no-store", "Content-Type": "application/json", **(headers or {})})


def _redirect(uri: str, params: dict[str, str]) -> Reply:
    separator = "&" if "?" in uri else "?"
    return Reply(302, b"", {"Location": uri + separator + urlencode(params), "Cache-Control": "no-store"})


def _page(status: int, title: str, message: str = "", body_html: str = "") -> Reply:
    """An HTML page: `message` is text (escaped here), `body_html` markup already escaped."""
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{body_html}</body></html>")
    return Reply(status, page.encode(), {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})
