"""One tenant's Pleo budget shared by every container of every function: separate processes (a fetch and
three writer containers), each with its own Pleo client built as the functions build theirs
(wiring.pleo_client), on one DynamoDB (moto_server), against a Pleo that answers 429 past 600 a minute
per company. A minute is played in six seconds (PLEO_RATE_WINDOW_SECONDS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import boto3
from coa_sync.adapters.tenants import TenantStore
from coa_sync.models import FileSource, Tenant
from coa_sync_local import moto_atomic
from moto.server import ThreadedMotoServer

from tests.support import API_KEY, COMPANY, RecordingEmulator, peak

WINDOW = 6.0  # seconds playing Pleo's minute
LIMIT = 500  # what coa-sync keeps to in any window (PLEO_RATE_LIMIT_PER_MINUTE)
RUN_FOR = 2 * WINDOW
ACCOUNTS = 50
SECRET = "coa-sync/acme/pleo"

# A function's container: its Pleo client as the function builds it, then requests as fast as Pleo answers
# until told to stop; prints how many it sent and how long it waited for the budget.
CONTAINER = r"""
import json, sys, time
from pathlib import Path
from coa_sync import wiring
from coa_sync.adapters.tenants import TenantStore
from coa_sync.models import AccountFields
from coa_sync.settings import PleoSettings

role, go, stop = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
settings = PleoSettings()
tenant = TenantStore(settings.tenants_table).get("acme")
sent = 0
with wiring.pleo_client(settings, tenant) as client:
    ids = [account.id for account in client.snapshot(tenant.company_id).accounts]
    sent += 2
    while not go.exists():
        time.sleep(0.005)
    end = time.time() + stop
    while time.time() < end:
        if role == "fetch":  # a fetch reads the chart: active and archived, page by page
            client.snapshot(tenant.company_id)
            sent += 2
        else:  # a writer updates accounts one PUT at a time
            client.put(ids[sent % len(ids)], AccountFields(name=f"Renamed {sent}"), archived=False)
            sent += 1
print(json.dumps({"sent": sent}))
"""


def test_a_fetch_and_three_writer_containers_of_one_tenant_share_one_budget(tmp_path):
    moto_atomic.apply()  # DynamoDB's conditional writes are atomic; moto_server's threads must see them so
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        aws = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_DEFAULT_REGION": "eu-west-1",
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        session = boto3.Session(region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        dynamodb = session.resource("dynamodb", endpoint_url=aws["AWS_ENDPOINT_URL"])
        dynamodb.create_table(
            TableName="tenants", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        TenantStore("tenants", dynamodb).put(Tenant(tenant_id="acme", company_id=COMPANY, pleo_secret_name=SECRET,
                                                    source=FileSource(uri="s3://unused/chart.csv")))
        session.client("secretsmanager", endpoint_url=aws["AWS_ENDPOINT_URL"]).create_secret(
            Name=SECRET, SecretString=json.dumps({"apiKey": API_KEY}))
        with RecordingEmulator(rate_limit=600, rate_window_seconds=WINDOW) as pleo:
            pleo.add_company(COMPANY, api_keys=[API_KEY],
                             accounts=[{"externalId": f"e{n}", "name": f"Account {n}"} for n in range(ACCOUNTS)])
            env = {**os.environ, **aws, "TENANTS_TABLE": "tenants", "SNAPSHOT_BUCKET": "unused",
                   "PLEO_BASE_URL": pleo.url, "PLEO_RATE_LIMIT_PER_MINUTE": str(LIMIT),
                   "PLEO_RATE_WINDOW_SECONDS": str(WINDOW), "POWERTOOLS_METRICS_DISABLED": "true"}
            go = tmp_path / "go"
            containers = [subprocess.Popen([sys.executable, "-c", CONTAINER, role, str(go), str(RUN_FOR)], env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                          for role in ("fetch", "writer", "writer", "writer")]
            deadline = time.monotonic() + 60
            while len(pleo.arrivals) < 2 * len(containers) and time.monotonic() < deadline:
                time.sleep(0.05)  # every container started and read the chart once
            go.touch()
            outputs = [container.communicate(timeout=120) for container in containers]
            failed = [errors for process, (_, errors) in zip(containers, outputs, strict=True) if process.returncode]
            assert not failed, failed[0]
            sent = [json.loads(output)["sent"] for output, _ in outputs]
            arrivals, throttled = list(pleo.arrivals), pleo.responses[429]
    finally:
        server.stop()
    assert sum(sent) == len(arrivals)  # every request counted, each retry too
    assert throttled == 0
    busiest = peak(arrivals, WINDOW)
    assert busiest <= LIMIT, f"{busiest} requests reached Pleo in one {WINDOW:g} s window"
    assert busiest >= 0.8 * LIMIT  # the four kept the budget busy: the bound above was tested (on a busy machine too)
    assert min(sent) > 0.05 * sum(sent)  # and each container had its share, not one of them all


def test_an_accounting_systems_budgets_are_buckets_in_the_same_table_keyed_without_the_key(monkeypatch):
    from coa_sync import wiring
    from coa_sync.settings import CommonSettings
    from moto import mock_aws

    from tests.as_systems import SECRET_KEY, chart, dualentry
    from tests.template_stack import reset_clients

    for name, value in {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    reset_clients()
    try:
        with mock_aws(), dualentry(chart(250)) as system:
            dynamodb = boto3.client("dynamodb")
            dynamodb.create_table(
                TableName="tenants", BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}])
            boto3.client("secretsmanager").create_secret(Name=system.config.secret_name,
                                                         SecretString=json.dumps(system.secret))
            settings = CommonSettings(tenants_table="tenants", snapshot_bucket="unused")
            snapshot = wiring.source_snapshot(settings, system.config, None)  # as fetch reads a source
            buckets = sorted(item["pk"]["S"] for item in dynamodb.scan(TableName="tenants")["Items"])
    finally:
        reset_clients()
    assert len(snapshot.accounts) == 250 and system.emulator.responses[429] == 0
    # DualEntry's two documented limits, as two buckets: the API key's, and the key's on the list route.
    assert len(buckets) == 2 and all(key.startswith(f"BUDGET#dualentry:{system.config.base_url}") for key in buckets)
    assert any(key.endswith(":GET:/public/v2/accounts/") for key in buckets)
    assert not [key for key in buckets if SECRET_KEY in key]  # a fingerprint of the key, never the key
