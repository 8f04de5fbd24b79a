"""OAuth tenants over real HTTP: tokens that expire, rotate and get revoked, against the emulator's
authorisation server, through the whole pipeline on moto."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest
from coa_sync.adapters.oauth import OAuthTokenEndpoint
from coa_sync.adapters.pleo_connection import PleoConnections
from coa_sync.models import FileSource, Tenant
from coa_sync.tokens import AccessTokens, ReauthRequired
from coa_sync_local.emulators.pleo import PleoEmulator
from coa_sync_local.oauth_file import FileTokenStore
from coa_sync_local.runner import TABLE

from tests.oauth_support import connect_file
from tests.support import COMPANY, budget, write_csv

ROWS = [(f"e{n}", str(n), f"Account {n}", True) for n in range(300)]


@pytest.fixture
def emulator():
    """A Pleo emulator whose access tokens live 2 seconds (make_runner's too)."""
    with PleoEmulator(token_ttl=2) as server:
        yield server


def oauth_tenant(runner, emulator, store: FileTokenStore, chart: str) -> Tenant:
    tenant = Tenant(tenant_id="acme", company_id=COMPANY, pleo_secret_name="coa-sync/acme/pleo",
                    source=FileSource(uri=chart))
    store.on_needs_reauth = lambda reason: PleoConnections(TABLE).mark_needs_reauth("acme", reason)
    runner.add_tenant(tenant, store.read().document(), token_store=store)
    return tenant


def old_accounts(count: int = 300) -> list[dict]:
    return [{"externalId": f"e{n}", "code": str(n), "name": "Old", "archived": False} for n in range(count)]


def test_a_300_update_sync_with_two_second_tokens_refreshes_in_time_and_rotates_the_file(
        emulator, make_runner, tmp_path, monkeypatch):
    emulator.add_company(COMPANY, accounts=old_accounts())
    store = connect_file(emulator, COMPANY, tmp_path / "pleo-oauth.json")
    first_refresh_token = store.read().refresh_token.get_secret_value()
    runner = make_runner(write_csv(tmp_path / "chart.csv", ROWS), rate_window_seconds=1.0)
    oauth_tenant(runner, emulator, store, write_csv(tmp_path / "chart.csv", ROWS))
    result = runner.run("acme")
    assert result.applied.update == 300 and result.failed == [] and result.pending == 0
    events = emulator.oauth.events
    assert events["refreshes"] >= 1 and events["replays"] == 0 and events["revocations"] == 0
    held = store.read()  # the file holds the last rotated pair, written before it was used
    assert held.refresh_token.get_secret_value() != first_refresh_token
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    time.sleep(2.1)  # its access token has expired: the next sync refreshes from the file's refresh token
    again = runner.run("acme")
    assert again.plan.actions == [] and again.plan.noop == 300
    assert emulator.oauth.events["replays"] == 0


def test_a_401_is_answered_by_one_refresh_and_the_request_goes_again(emulator, tmp_path):
    emulator.add_company(COMPANY, accounts=old_accounts(3))
    store = connect_file(emulator, COMPANY, tmp_path / "pleo-oauth.json")
    held = store.read()
    # The file believes its token has an hour left; Pleo has expired it already.
    store.write(held.model_copy(update={"expires_at": held.expires_at.replace(year=held.expires_at.year + 1)}))
    time.sleep(2.1)
    from coa_sync.adapters.pleo import PleoClient

    tokens = AccessTokens("acme", store, OAuthTokenEndpoint())
    with PleoClient(emulator.url, tokens, budget=budget()) as client:
        assert len(client.snapshot(COMPANY).accounts) == 3
    assert tokens.refreshes == 1 and emulator.responses[401] == 1


def test_a_revoked_authorisation_marks_the_tenant_needs_reauth_and_loses_nothing(
        emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, accounts=old_accounts(6))
    store = connect_file(emulator, COMPANY, tmp_path / "pleo-oauth.json")
    chart = write_csv(tmp_path / "chart.csv", [(f"e{n}", str(n), f"New {n}", True) for n in range(6)])
    runner = make_runner(chart, rate_window_seconds=1.0, writer_batch_size=10)
    oauth_tenant(runner, emulator, store, chart)
    put = emulator._handlers["put"]
    done = []

    def revoked_after_three(request):
        answer = put(request)
        done.append(request.account_id)
        if len(done) == 3:  # the customer takes the integration's access away in Pleo, mid-run
            emulator.oauth.revoke(COMPANY)
        return answer

    emulator._handlers["put"] = revoked_after_three
    result = runner.run("acme")
    # Three updates got through; the other three wait in the DLQ with the reason, which says how to reconnect.
    assert result.applied.update == 3 and len(result.failed) == 3
    assert all("needs_reauth" in f.reasons[0] and "connect-link" in f.reasons[0] for f in result.failed)
    assert result.record.status == "failed" and "needs_reauth" in result.record.error
    assert PleoConnections(TABLE).status("acme")["status"] == "needs_reauth"
    held = store.read()  # the refused tokens are discarded; the client stays, for connecting again
    assert held.refresh_token is None and held.access_token is None and held.client_id
    assert "invalid_grant" in held.needs_reauth

    # Nothing more goes to Pleo for the tenant: the next run stops before calling it.
    calls, token_calls = sum(emulator.calls.values()), dict(emulator.oauth.events)
    with pytest.raises(ReauthRequired, match="needs_reauth"):
        runner.run("acme")
    assert sum(emulator.calls.values()) == calls and dict(emulator.oauth.events) == token_calls
    assert runner.dead_letters() and set(a["name"] for a in emulator.accounts(COMPANY)) == {"New 0", "New 1",
                                                                                                "New 2", "Old"}

    # Connected again, the tenant's next run applies what was left; its configuration was never touched.
    connect_file(emulator, COMPANY, store.path)
    runner.add_tenant(runner_tenant(runner), store.read().document(), token_store=store)
    final = runner.run("acme")
    assert final.applied.update == 3 and final.failed == []
    assert {a["name"] for a in emulator.accounts(COMPANY)} == {f"New {n}" for n in range(6)}


def runner_tenant(runner) -> Tenant:
    from coa_sync.adapters.tenants import TenantStore

    return TenantStore(TABLE).get("acme")


REFRESHER = r"""
import sys, time
from pathlib import Path
from coa_sync.adapters.oauth import OAuthTokenEndpoint
from coa_sync.tokens import AccessTokens
from coa_sync_local.oauth_file import FileTokenStore

go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
print(AccessTokens("acme", FileTokenStore(Path(sys.argv[1])), OAuthTokenEndpoint()).current())
"""


def test_two_processes_refreshing_one_tenant_at_the_same_moment_make_one_refresh(tmp_path):
    with PleoEmulator(token_ttl=1) as emulator:
        emulator.add_company(COMPANY)
        store = connect_file(emulator, COMPANY, tmp_path / "pleo-oauth.json")
        time.sleep(1.1)  # the access token has expired: both processes need a new one
        go = tmp_path / "go"
        processes = [subprocess.Popen([sys.executable, "-c", REFRESHER, str(store.path), str(go)],
                                      stdout=subprocess.PIPE, text=True) for _ in range(2)]
        time.sleep(1.0)  # both imported and waiting
        go.touch()
        tokens = [process.communicate(timeout=60)[0].strip() for process in processes]
        assert all(process.returncode == 0 for process in processes)
        assert emulator.oauth.events["refreshes"] == 1 and emulator.oauth.events["replays"] == 0
        assert tokens[0] == tokens[1] == store.read().access_token.get_secret_value()


def test_the_file_must_hold_oauth_credentials(tmp_path):
    path = tmp_path / "pleo-oauth.json"
    path.write_text(json.dumps({"tokenUrl": "http://127.0.0.1:9/oauth/token", "clientId": "c"}))
    with pytest.raises(ValueError, match=r"pleo-oauth.json: clientSecret: Field required"):
        FileTokenStore(path).read()


SECRET_REFRESHER = r"""
import sys, time
from pathlib import Path
from coa_sync.adapters.oauth import OAuthTokenEndpoint
from coa_sync.adapters.pleo_connection import PleoConnections, SecretTokenStore
from coa_sync.tokens import AccessTokens

go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.001)
store = SecretTokenStore("coa-sync/acme/pleo", "acme", PleoConnections("tenants"))
print(AccessTokens("acme", store, OAuthTokenEndpoint()).current())
"""


def test_two_processes_on_one_deployment_refresh_once_through_the_tenants_tables_lock(tmp_path):
    """The deployed shape: the tokens in Secrets Manager, the lock in DynamoDB, one moto both processes reach."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {**os.environ, "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_DEFAULT_REGION": "eu-west-1",
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        aws = {"endpoint_url": env["AWS_ENDPOINT_URL"], "region_name": "eu-west-1",
               "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        boto3.client("dynamodb", **aws).create_table(
            TableName="tenants", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        with PleoEmulator(token_ttl=1) as emulator:
            emulator.add_company(COMPANY)
            file = connect_file(emulator, COMPANY, tmp_path / "connected.json")
            secrets = boto3.client("secretsmanager", **aws)
            secrets.create_secret(Name="coa-sync/acme/pleo", SecretString=json.dumps(file.read().document()))
            time.sleep(1.1)  # expired: both processes need a new access token at once
            go = tmp_path / "go"
            processes = [subprocess.Popen([sys.executable, "-c", SECRET_REFRESHER, str(go)], env=env,
                                          stdout=subprocess.PIPE, text=True) for _ in range(2)]
            time.sleep(1.5)
            go.touch()
            tokens = [process.communicate(timeout=60)[0].strip() for process in processes]
            assert all(process.returncode == 0 for process in processes)
            assert emulator.oauth.events["refreshes"] == 1 and emulator.oauth.events["replays"] == 0
            stored = json.loads(secrets.get_secret_value(SecretId="coa-sync/acme/pleo")["SecretString"])
            assert tokens[0] == tokens[1] == stored["accessToken"]
    finally:
        server.stop()


def test_a_tenant_needing_reauth_raises_the_stacks_alarm():
    from tests.template_stack import load_template

    resources = load_template()["Resources"]
    alarm = resources["PleoNeedsReauthAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Threshold"]) == ("CoaSync", "PleoNeedsReauth", 0)
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}]  # the stack's own metrics
