"""The signed webhook: every rejection case, the accepted case, one run per tenant at a time."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from coa_sync.adapters import aws
from coa_sync.adapters.ledger import Ledger, RunInProgressError
from coa_sync.adapters.tenants import TenantStore
from coa_sync.models import FileSource, RunRequest, Tenant
from coa_sync.pipeline.webhook import MAX_BODY_BYTES, Webhook
from coa_sync.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from coa_sync_local.runner import LambdaContext, _forget_cached_clients, _load_handler
from moto import mock_aws

TABLE = "coa-sync-tenants-test"
SECRET = "whsec-0123456789abcdef-acme"
EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.fixture
def world(monkeypatch) -> Iterator[dict]:
    for name, value in {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "TENANTS_TABLE": TABLE,
                        "SNAPSHOT_BUCKET": "coa-sync-snapshots-test", "FETCH_FUNCTION_NAME": "coa-sync-fetch",
                        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "CoaSync",
                        "POWERTOOLS_SERVICE_NAME": "coa-sync"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        _forget_cached_clients()
        boto3.client("dynamodb").create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        boto3.client("secretsmanager").create_secret(Name="coa-sync/acme/webhook",
                                                     SecretString=json.dumps({"secret": SECRET}))
        tenants = TenantStore(TABLE)
        tenants.put(Tenant(tenant_id="acme", company_id="c", pleo_secret_name="coa-sync/acme/pleo",
                           source=FileSource(uri="s3://b/sources/acme/accounts.csv"),
                           webhook_secret_name="coa-sync/acme/webhook"))
        tenants.put(Tenant(tenant_id="quiet", company_id="c2", pleo_secret_name="coa-sync/quiet/pleo",
                           source=FileSource(uri="s3://b/sources/quiet/accounts.csv")))
        started: list[RunRequest] = []
        from coa_sync.adapters.secrets import webhook_secret

        ledger = Ledger(TABLE)
        hook = Webhook(tenant=tenants.get, secret=webhook_secret, ledger=ledger, first_use=ledger.first_use,
                       start=started.append)
        yield {"hook": hook, "started": started, "ledger": ledger}
        _forget_cached_clients()
    aws.reset()


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(at if at is not None else time.time()))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}


def test_a_signed_request_starts_a_run(world):
    body = b'{"dryRun": true}'
    answer = world["hook"].start_run("acme", body, signed(body), time.time())
    assert answer.status == 202
    (request,) = world["started"]
    assert (request.tenant_id, request.trigger, request.dry_run, request.run_id) == (
        "acme", "webhook", True, answer.body["runId"])
    assert world["ledger"].lock_holder("acme") == answer.body["runId"]


@pytest.mark.parametrize("headers", [
    {},
    {TIMESTAMP_HEADER: str(int(time.time()))},
    {SIGNATURE_HEADER: "v1=" + "0" * 64},
])
def test_missing_signature_headers_are_401(world, headers):
    assert world["hook"].start_run("acme", b"{}", headers, time.time()).status == 401
    assert world["started"] == []


def test_wrong_secret_or_tampered_body_is_401(world):
    assert world["hook"].start_run("acme", b"{}", signed(b"{}", secret="not-the-secret-at-all"),
                                   time.time()).status == 401
    assert world["hook"].start_run("acme", b'{"dryRun": false}', signed(b'{"dryRun": true}'),
                                   time.time()).status == 401


@pytest.mark.parametrize("skew", [-301, 301])
def test_timestamps_outside_five_minutes_are_401(world, skew):
    now = time.time()
    assert world["hook"].start_run("acme", b"{}", signed(b"{}", at=now + skew), now).status == 401


def test_a_replayed_signature_is_409(world):
    headers = signed(b"{}")
    assert world["hook"].start_run("acme", b"{}", headers, time.time()).status == 202
    world["ledger"].release("acme", world["started"][0].run_id)
    answer = world["hook"].start_run("acme", b"{}", headers, time.time())
    assert answer.status == 409 and "used before" in answer.body["message"]
    assert len(world["started"]) == 1


def test_oversized_body_is_413_before_anything_else(world):
    body = b" " * (MAX_BODY_BYTES + 1)
    assert world["hook"].start_run("acme", body, signed(body), time.time()).status == 413


def test_unknown_tenant_looks_exactly_like_a_bad_signature(world):
    # Signed with acme's secret or any other: an unknown tenant answers the same 401 as a wrong secret.
    unknown = world["hook"].start_run("nobody", b"{}", signed(b"{}"), time.time())
    wrong = world["hook"].start_run("acme", b"{}", signed(b"{}", secret="guess-guess-guess-guess"), time.time())
    no_webhook = world["hook"].start_run("quiet", b"{}", signed(b"{}"), time.time())
    assert unknown == wrong == no_webhook
    assert unknown.status == 401


def test_a_disabled_tenant_is_404_to_its_own_signed_caller(world):
    tenants = TenantStore(TABLE)
    tenants.put(tenants.get("acme").model_copy(update={"enabled": False}))
    assert world["hook"].start_run("acme", b"{}", signed(b"{}"), time.time()).status == 404


def test_bad_body_is_400(world):
    body = b'{"dryRun": "perhaps"}'
    assert world["hook"].start_run("acme", body, signed(body), time.time()).status == 400


def test_a_run_in_progress_answers_409_with_its_id(world):
    first = world["hook"].start_run("acme", b"{}", signed(b"{}"), time.time())
    time.sleep(1.01)  # a new second: a new signature
    second = world["hook"].start_run("acme", b"{}", signed(b"{}"), time.time())
    assert second.status == 409 and second.body["runId"] == first.body["runId"]


def test_two_concurrent_triggers_start_one_run(world):
    bodies = [b'{"dryRun": false}', b'{"dryRun": true}']  # distinct signatures, same second
    answers = []
    threads = [threading.Thread(target=lambda b=b: answers.append(
        world["hook"].start_run("acme", b, signed(b), time.time()))) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status for a in answers) == [202, 409]
    assert len(world["started"]) == 1


def test_a_stale_lock_is_taken_over(world):
    ledger = world["ledger"]
    ledger.acquire("acme", "old-run", ttl_seconds=60)
    with pytest.raises(RunInProgressError):
        Ledger(TABLE).acquire("acme", "new-run", ttl_seconds=60)
    later = Ledger(TABLE, clock=lambda: time.time() + 61)  # the old run died without releasing
    later.acquire("acme", "new-run", ttl_seconds=60)
    assert later.lock_holder("acme") == "new-run"
    ledger.release("acme", "old-run")  # the old run waking up must not free the new run's lock
    assert later.lock_holder("acme") == "new-run"


def test_run_status_needs_a_signature_and_returns_the_record(world):
    started = world["hook"].start_run("acme", b"{}", signed(b"{}"), time.time())
    run_id = started.body["runId"]
    from coa_sync.pipeline import runs

    runs.start(world["ledger"], world["started"][0], run_id)
    assert world["hook"].run_status("acme", run_id, {}, time.time()).status == 401
    answer = world["hook"].run_status("acme", run_id, signed(b""), time.time())
    assert answer.status == 200 and (answer.body["runId"], answer.body["status"]) == (run_id, "fetching")
    assert world["hook"].run_status("acme", "nope", signed(b""), time.time()).status == 404


def test_handler_routes_a_function_url_event(world):
    module = _load_handler("webhook")
    module.webhook.start = world["started"].append  # the async invoke of fetch, recorded
    event = json.loads((EVENTS / "webhook-start-run.json").read_text())
    event["headers"].update(signed(event["body"].encode()))
    response = module.handler(event, LambdaContext("coa-sync-webhook"))
    assert response["statusCode"] == 202
    assert json.loads(response["body"])["dryRun"] is True
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/tenants/acme/nothing"
    assert module.handler(event, LambdaContext("coa-sync-webhook"))["statusCode"] == 404
