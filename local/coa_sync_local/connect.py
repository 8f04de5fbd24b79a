"""`coa-sync connect`: connect a Pleo company by OAuth 2.0 from this machine, and write FILE.json.

The native-app pattern (RFC 8252): a one-request web server on the loopback redirect URI
(http://127.0.0.1:PORT/PATH, registered with Pleo exactly so), a per-request `state` and a PKCE
(S256) pair; the authorize URL is printed (and opened in the browser unless --no-browser); Pleo's
redirect comes back to the loopback server, whose `state` must match; the code is exchanged with
the client's credentials, and FILE gets {"tokenUrl", "clientId", "clientSecret", "refreshToken",
"accessToken", "expiresAt"}, mode 0600, for `coa-sync sync --pleo-oauth FILE.json`.
"""

from __future__ import annotations

import argparse
import html
import os
import secrets
import threading
import webbrowser
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from coa_sync.adapters.oauth import OAuthClient, OAuthTokenEndpoint
from coa_sync.oauth_flow import OAuthApp, authorize_url, pkce
from coa_sync.tokens import GrantRefused, OAuthCredentials, TokenEndpointUnavailable

from coa_sync_local.oauth_file import FileTokenStore

CLIENT_SECRET_ENV = "COA_SYNC_PLEO_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret
DEFAULT_REDIRECT = "http://127.0.0.1:8765/callback"


class ConnectError(Exception):
    """The connection could not be made; nothing was written."""


def add_command(commands: argparse._SubParsersAction, run: Callable[[argparse.Namespace], int]) -> None:
    connect = commands.add_parser(
        "connect", help="connect a Pleo company by OAuth 2.0 and write FILE.json for sync --pleo-oauth",
        description="Opens Pleo's consent page; Pleo's answer comes back to a loopback redirect on 127.0.0.1, "
                    "and the tokens are written to FILE (mode 0600).")
    connect.add_argument("--out", type=Path, required=True, metavar="FILE.json", help="where to write the tokens")
    connect.add_argument("--authorize-url", default="https://auth.pleo.io/oauth/authorize", metavar="URL",
                         help="Pleo's authorize endpoint (staging: https://auth.staging.pleo.io/oauth/authorize)")
    connect.add_argument("--token-url", default="https://auth.pleo.io/oauth/token", metavar="URL",
                         help="Pleo's token endpoint (staging: https://auth.staging.pleo.io/oauth/token)")
    connect.add_argument("--client-id", required=True, metavar="ID", help="the OAuth client id Pleo issued")
    connect.add_argument("--client-secret-file", type=Path, metavar="FILE",
                         help=f"a file holding the client secret (or set ${CLIENT_SECRET_ENV})")
    connect.add_argument("--redirect-uri", default=DEFAULT_REDIRECT, metavar="URI",
                         help=f"the loopback redirect URI registered with Pleo (default {DEFAULT_REDIRECT})")
    connect.add_argument("--scope", default="", help="space-separated scopes the client was approved for")
    connect.add_argument("--no-browser", action="store_true", help="print the URL only; do not open a browser")
    connect.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                         help="how long to wait for Pleo's answer (default 300)")
    connect.set_defaults(command=run)


def app_from_args(args: argparse.Namespace) -> OAuthApp:
    """The OAuth client the options describe; ValueError naming what is missing or wrong."""
    if args.client_secret_file:
        try:
            secret = args.client_secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read --client-secret-file {args.client_secret_file}: {exc.strerror}") from None
    else:
        secret = os.environ.get(CLIENT_SECRET_ENV, "")
    if not secret:
        raise ValueError(f"give the client secret: --client-secret-file FILE or ${CLIENT_SECRET_ENV}")
    redirect = urlsplit(args.redirect_uri)
    if redirect.scheme != "http" or redirect.hostname != "127.0.0.1" or not redirect.port:
        raise ValueError(f"--redirect-uri must be a loopback http://127.0.0.1:PORT/PATH, not {args.redirect_uri!r}")
    return OAuthApp(authorize_url=args.authorize_url, token_url=args.token_url, client_id=args.client_id,
                    client_secret=secret, redirect_uri=args.redirect_uri, scope=args.scope)


def connect(app: OAuthApp, out: Path, *, open_browser: bool, timeout: float, say: Callable[[str], None],
            endpoint: OAuthTokenEndpoint | None = None) -> OAuthCredentials:
    """Run the flow to its end and write `out`; ConnectError (nothing written) if it does not succeed."""
    redirect = urlsplit(app.redirect_uri)
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(32)
    outcome: dict[str, object] = {}
    done = threading.Event()
    exchange = endpoint or OAuthTokenEndpoint()

    class Callback(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet: stdout is the user's
            pass

        def do_GET(self) -> None:
            target = urlsplit(self.path)
            query = {key: values[0] for key, values in parse_qs(target.query).items()}
            if target.path != redirect.path or query.get("state") != state:
                # Not the answer to this request (another tab, a forged link): refused, still waiting.
                self._page(400, "Not this connection", "This is not Pleo's answer to the connection being made "
                                                      "here. Nothing was stored.")
                return
            if "error" in query:
                outcome["error"] = f"Pleo answered {query['error']}: {query.get('error_description') or 'no details'}"
            elif not query.get("code"):
                outcome["error"] = "Pleo's answer had no authorization code"
            else:
                outcome.update(self._exchange(query["code"]))
            if "error" in outcome:
                self._page(400, "Pleo did not connect", f"{outcome['error']}. Nothing was stored.")
            else:
                self._page(200, "Connected to Pleo", f"The tokens are in {out}. You can close this window.")
            done.set()

        def _exchange(self, code: str) -> dict[str, object]:
            client = OAuthClient(app.token_url, app.client_id, app.client_secret.get_secret_value())
            try:
                grant = exchange.exchange(client, code, app.redirect_uri, verifier)
            except (GrantRefused, TokenEndpointUnavailable) as exc:
                return {"error": f"exchanging the authorization code failed ({exc})"}
            credentials = OAuthCredentials(
                token_url=app.token_url, client_id=app.client_id, client_secret=app.client_secret,
                refresh_token=grant.refresh_token, access_token=grant.access_token,
                expires_at=datetime.now(UTC) + timedelta(seconds=grant.expires_in))
            FileTokenStore(out).write(credentials)  # before anything uses them
            return {"credentials": credentials}

        def _page(self, status: int, title: str, message: str) -> None:
            body = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
                    f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    try:
        server = ThreadingHTTPServer(("127.0.0.1", redirect.port or 0), Callback)
    except OSError as exc:
        raise ConnectError(f"cannot listen on {app.redirect_uri}: {exc.strerror}") from None
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = authorize_url(app, state, challenge)
        say(f"Open this address to connect to Pleo (waiting {timeout:g} s for its answer):\n{url}")
        if open_browser:
            webbrowser.open(url)
        if not done.wait(timeout):
            raise ConnectError(f"no answer from Pleo within {timeout:g} s; nothing was written")
    finally:
        server.shutdown()
        server.server_close()
    if "error" in outcome:
        raise ConnectError(f"{outcome['error']}; nothing was written")
    return outcome["credentials"]  # type: ignore[return-value]
