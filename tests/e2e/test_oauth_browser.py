"""A real browser (Debian's headless Chromium, driven by Playwright) clicks through Pleo's consent page
(the emulator's) into coa-sync's callback: `coa-sync connect`'s loopback redirect, and the deployed
webhook's GET /oauth/callback on moto."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from coa_sync.adapters.pleo_connection import PleoConnections
from coa_sync.models import RunRequest
from coa_sync.pipeline.connect import connect_link
from coa_sync_local.emulators.pleo import PleoEmulator
from playwright.sync_api import Browser, sync_playwright

from tests.oauth_support import CLIENT_ID, CLIENT_SECRET
from tests.support import COMPANY, write_csv
from tests.template_stack import deployed, load_event

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; .ci/run installs it
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Browser]:
    assert CHROMIUM.exists(), "the browser test needs Debian's chromium (apt-get install -y chromium; .ci/run does)"
    with sync_playwright() as playwright:
        # A fresh profile every run: nothing remembered from an earlier one.
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS)
        try:
            yield context
        finally:
            context.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def consent_in_browser(context, url: str, company: str) -> str:
    """Open `url`, pick the company on Pleo's consent page, press Allow; the text of the page it lands on."""
    page = context.new_page()
    try:
        page.goto(url)
        page.select_option("#company", company)
        page.click("#allow")
        page.wait_for_selector("h1")
        return page.inner_text("body")
    finally:
        page.close()


def test_coa_sync_connect_through_the_consent_page_writes_the_file_and_sync_uses_it(browser, tmp_path):
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    out = tmp_path / "pleo-oauth.json"
    with PleoEmulator() as pleo:
        pleo.add_company(COMPANY, accounts=[{"externalId": "e1", "code": "1", "name": "Old"}])
        pleo.add_oauth_client(CLIENT_ID, CLIENT_SECRET, [redirect])
        connect = subprocess.Popen(
            [sys.executable, "-m", "coa_sync_local.cli", "connect", "--out", str(out), "--client-id", CLIENT_ID,
             "--authorize-url", f"{pleo.url}/oauth/authorize", "--token-url", f"{pleo.url}/oauth/token",
             "--redirect-uri", redirect, "--scope", "test:test", "--no-browser", "--timeout", "60"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "COA_SYNC_PLEO_CLIENT_SECRET": CLIENT_SECRET})
        try:
            url = _authorize_url(connect.stderr)
            landed = consent_in_browser(browser, url, COMPANY)
            assert connect.wait(timeout=60) == 0, connect.stderr.read()
        finally:
            connect.kill()
            connect.stdout.close()
            connect.stderr.close()
        assert "Connected to Pleo" in landed
        stored = json.loads(out.read_text())
        assert set(stored) == {"tokenUrl", "clientId", "clientSecret", "refreshToken", "accessToken", "expiresAt"}
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert pleo.oauth.events["exchanges"] == 1

        chart = write_csv(tmp_path / "chart.csv", [("e1", "1", "New", True)])
        synced = subprocess.run(
            [sys.executable, "-m", "coa_sync_local.cli", "sync", "--source", chart, "--pleo-url", pleo.url,
             "--company-id", COMPANY, "--pleo-oauth", str(out), "--json"],
            capture_output=True, text=True, timeout=120, check=False)
        assert synced.returncode == 0, synced.stderr
        assert json.loads(synced.stdout)["applied"]["update"] == 1
        assert [a["name"] for a in pleo.accounts(COMPANY)] == ["New"]


def _authorize_url(stream) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = stream.readline()
        if match := re.search(r"https?://\S+/oauth/authorize\?\S+", line):
            return match.group()
    raise AssertionError("coa-sync connect printed no authorize URL")


class FunctionUrl:
    """The webhook function's URL on 127.0.0.1: each browser request becomes a Function URL event."""

    def __init__(self, function) -> None:
        self.function = function
        self.calls = []  # the AWS calls of every invocation (the function keeps only its last one's)
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args) -> None:
                pass

            def do_GET(self) -> None:
                target = urlsplit(self.path)
                event = load_event("webhook-start-run.json")
                event.update({"rawPath": target.path, "rawQueryString": target.query, "body": None,
                              "queryStringParameters": {k: v[0] for k, v in parse_qs(target.query).items()},
                              "headers": {"host": self.headers["Host"], "user-agent": "chromium"}})
                event["requestContext"]["http"].update({"method": "GET", "path": target.path})
                answer = bridge.function(event)
                bridge.calls.extend(bridge.function.calls)
                self.send_response(answer["statusCode"])
                for name, value in (answer.get("headers") or {}).items():
                    self.send_header(name, value)
                body = (answer.get("body") or "").encode()
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FunctionUrl:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_deployed_webhook_connects_a_tenant_through_the_consent_page(browser, tmp_path):
    with PleoEmulator() as pleo, deployed() as stack:
        pleo.add_company(COMPANY)
        table = boto3.resource("dynamodb").Table(stack.ref("TenantsTable"))
        prefix = stack.ref("SecretsPrefix")
        table.put_item(Item={"pk": "TENANT#acme", "sk": "CONFIG", "tenantId": "acme", "companyId": COMPANY,
                             "pleoSecretName": f"{prefix}acme/pleo", "enabled": True,
                             "source": {"kind": "file", "uri": f"s3://{stack.ref('SnapshotBucket')}/sources/a.csv"}})
        webhook = stack.function("WebhookFunction")
        with FunctionUrl(webhook) as url:
            redirect = f"{url.url}/oauth/callback"
            pleo.add_oauth_client(CLIENT_ID, CLIENT_SECRET, [redirect])
            link_key = "connect-link-key-0123456789abcdef"
            boto3.client("secretsmanager").create_secret(Name=f"{prefix}pleo-oauth", SecretString=json.dumps({
                "authorizeUrl": f"{pleo.url}/oauth/authorize", "tokenUrl": f"{pleo.url}/oauth/token",
                "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "redirectUri": redirect,
                "scope": "test:test", "linkKey": link_key}))
            link = connect_link(url.url, link_key, "acme", int(time.time()) + 3600)
            landed = consent_in_browser(browser, link, COMPANY)
        assert "Connected to Pleo" in landed and "first sync has started" in landed
        stored = json.loads(boto3.client("secretsmanager").get_secret_value(
            SecretId=f"{prefix}acme/pleo")["SecretString"])
        assert stored["refreshToken"] and stored["clientId"] == CLIENT_ID
        assert PleoConnections(stack.ref("TenantsTable")).status("acme")["status"] == "connected"
        (invoke,) = [call for call in url.calls if call.service == "lambda"]
        assert RunRequest.model_validate_json(invoke.params["Payload"]).trigger == "connect"
        # The same callback again (a replayed state) stores nothing more and says so.
        assert pleo.oauth.events["exchanges"] == 1
