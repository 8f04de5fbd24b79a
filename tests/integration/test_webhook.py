"""The signed webhook: every rejection case, the accepted case, one run per tenant at a time."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from coa_sync import wiring
from coa_sync.adapters import aws
from coa_sync.adapters.ledger import Ledger, RunInProgressError
from coa_sync.adapters.queues import ActionQueue
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.adapters.tenants import TenantStore
from coa_sync.keys import plan_key
from coa_sync.models import (
    AccountFields,
    Action,
    ActionKind,
    ActionMessage,
    FileSource,
    Plan,
    RunRequest,
    Tenant,
)
from coa_sync.pipeline import runs
from coa_sync.pipeline.approve import approve_run
from coa_sync.pipeline.webhook import MAX_BODY_BYTES, Webhook
from coa_sync.settings import WebhookSettings
from coa_sync.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from coa_sync_local.runner import LambdaContext, _forget_cached_clients, _load_handler
from moto import mock_aws

from tests.support import API_KEY, COMPANY

TABLE = "coa-sync-tenants-test"
BUCKET = "coa-sync-snapshots-test"
SECRET = "whsec-0123456789abcdef-acme"
EVENTS = Path(__file__).resolve().parents[2] / "events"
TTL = 3600


@pytest.fixture
def world(monkeypatch, emulator) -> Iterator[dict]:
    emulator.add_company(COMPANY, api_keys=[API_KEY])
    for name, value in {"PLEO_BASE_URL": emulator.url, "PLEO_MAX_ATTEMPTS": "1",
                        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "TENANTS_TABLE": TABLE,
                        "SNAPSHOT_BUCKET": BUCKET, "FETCH_FUNCTION_NAME": "coa-sync-fetch",
                        "ACTIONS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/coa-sync-actions",
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
        boto3.client("secretsmanager").create_secret(Name="coa-sync/acme/pleo",
                                                     SecretString=json.dumps({"apiKey": API_KEY}))
        tenants = TenantStore(TABLE)
        tenants.put(Tenant(tenant_id="acme", company_id=COMPANY, pleo_secret_name="coa-sync/acme/pleo",
                           source=FileSource(uri="s3://b/sources/acme/accounts.csv"),
                           webhook_secret_name="coa-sync/acme/webhook"))
        tenants.put(Tenant(tenant_id="quiet", company_id="c2", pleo_secret_name="coa-sync/quiet/pleo",
                           source=FileSource(uri="s3://b/sources/quiet/accounts.csv")))
        started: list[RunRequest] = []
        from coa_sync.adapters.secrets import webhook_secret

        ledger = Ledger(TABLE)
        boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        queue = boto3.client("sqs").create_queue(QueueName="coa-sync-actions")["QueueUrl"]
        files = SnapshotStore(BUCKET)
        approve = functools.partial(approve_run, approved_by="webhook", ledger=ledger, files=files,
                                    actions=ActionQueue(queue), finished=lambda record: None,
                                    check_pleo=wiring.pleo_check(WebhookSettings(), tenants.get), ttl_seconds=TTL)
        hook = Webhook(tenant=tenants.get, secret=webhook_secret, ledger=ledger, first_use=ledger.first_use,
                       start=started.append, approve=approve, lock_ttl_seconds=TTL)
        yield {"hook": hook, "started": started, "ledger": ledger, "files": files, "queue": queue,
               "pleo": emulator}
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
    runs.start(world["ledger"], world["started"][0], TTL, lambda record: None)
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


def held_run(world, run_id: str = "20261123T120000Z-0000aaaa", archives: int = 2, *, dry_run: bool = False) -> str:
    """A finished run of acme whose archives (old-0, old-1, ...) the mass-archive guard held back."""
    held = [Action(kind=ActionKind.ARCHIVE, external_id=f"old-{n}", account_id=f"id-{n}",
                   desired=AccountFields(name=f"Old {n}"), before=AccountFields(name=f"Old {n}"))
            for n in range(archives)]
    plan = Plan(actions=[], noop=0, held=held, held_reason="the source has no active accounts")
    world["files"].put(plan_key("acme", run_id), plan)
    record = runs.start(world["ledger"], RunRequest(tenant_id="acme", trigger="schedule", dry_run=dry_run,
                                                    run_id=run_id), TTL, lambda r: None, company_id="c")
    runs.planned(world["ledger"], record, plan, dry_run=dry_run, finished=lambda record: None)
    return run_id


def approval(run_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"runId": run_id}).encode()
    return body, signed(body)


def queued(world) -> list[ActionMessage]:
    sqs, messages = boto3.client("sqs"), []
    while batch := sqs.receive_message(QueueUrl=world["queue"], MaxNumberOfMessages=10).get("Messages"):
        messages += [ActionMessage.model_validate_json(message["Body"]) for message in batch]
    return messages


def test_a_signed_approval_queues_exactly_the_held_archives(world):
    run_id = held_run(world)
    assert world["ledger"].get("acme", run_id).status == "needs_approval"
    answer = world["hook"].approve_run("acme", run_id, *approval(run_id), time.time())
    assert answer.status == 200
    assert (answer.body["status"], answer.body["held"], answer.body["planned"]["archive"]) == ("applying", 0, 2)
    assert sorted((m.run_id, m.company_id, m.seq, m.action.kind, m.action.external_id) for m in queued(world)) == [
        (run_id, "c", 0, "archive", "old-0"), (run_id, "c", 1, "archive", "old-1")]  # fenced like any action
    assert world["ledger"].lock_holder("acme") == run_id  # the run holds its tenant again until applied


@pytest.mark.parametrize("tenant", ["acme", "nobody", "quiet"])
def test_an_unsigned_approval_is_401_and_queues_nothing(world, tenant):
    run_id = held_run(world)
    body, _ = approval(run_id)
    assert world["hook"].approve_run(tenant, run_id, body, signed(body, secret="wrong"), time.time()).status == 401
    assert world["hook"].approve_run(tenant, run_id, body, {}, time.time()).status == 401
    assert queued(world) == [] and world["ledger"].get("acme", run_id).status == "needs_approval"


def test_approval_answers_404_409_for_what_cannot_be_approved(world):
    assert world["hook"].approve_run("acme", "nope", *approval("nope"), time.time()).status == 404
    run_id = held_run(world)
    body, headers = approval(run_id)
    assert world["hook"].approve_run("acme", run_id, body, headers, time.time()).status == 200
    assert world["hook"].approve_run("acme", run_id, body, headers, time.time()).status == 409  # replayed
    again = world["hook"].approve_run("acme", run_id, body, signed(body, at=time.time() + 1), time.time())  # new
    assert again.status == 409 and "nothing to approve" in again.body["message"]
    assert len(queued(world)) == 2  # queued once


def test_approval_while_another_run_holds_the_tenant_is_409_with_its_id(world):
    run_id = held_run(world)
    world["ledger"].acquire("acme", "20261123T130000Z-0000bbbb", TTL)
    answer = world["hook"].approve_run("acme", run_id, *approval(run_id), time.time())
    assert answer.status == 409 and answer.body["runId"] == "20261123T130000Z-0000bbbb"
    assert queued(world) == [] and world["ledger"].get("acme", run_id).status == "needs_approval"


def test_a_signature_only_approves_the_run_its_body_names(world):
    run_id = held_run(world)
    for body in (b"", b"{}", json.dumps({"runId": "20261123T120000Z-ffffffff"}).encode()):
        answer = world["hook"].approve_run("acme", run_id, body, signed(body), time.time())
        assert answer.status == 400 and run_id in answer.body["message"]
    assert queued(world) == []


def test_a_get_signature_cannot_start_a_run(world):
    answer = world["hook"].start_run("acme", b"", signed(b""), time.time())  # the signature a GET carries
    assert answer.status == 400 and world["started"] == []


def test_an_approval_pleo_does_not_answer_releases_nothing_and_can_be_made_again(world):
    run_id = held_run(world)
    world["pleo"].inject("error", endpoint="search", status=503)
    answer = world["hook"].approve_run("acme", run_id, *approval(run_id), time.time())
    assert answer.status == 502 and "Pleo could not be reached with tenant 'acme'" in answer.body["message"]
    assert "nothing was released" in answer.body["message"]
    assert queued(world) == [] and world["ledger"].get("acme", run_id).status == "needs_approval"
    assert world["ledger"].lock_holder("acme") is None

    time.sleep(1)  # a new signature
    assert world["hook"].approve_run("acme", run_id, *approval(run_id), time.time()).status == 200
    assert len(queued(world)) == 2


def test_a_later_dry_run_does_not_block_an_approval_unless_it_no_longer_archives_the_held_accounts(world):
    run_id = held_run(world)
    held_run(world, "20261123T130000Z-0000bbbb", dry_run=True)  # the same two held: still wanted
    assert world["hook"].approve_run("acme", run_id, *approval(run_id), time.time()).status == 200
    world["ledger"].release("acme", run_id)  # as the writer does once the archives are applied

    stale = held_run(world, "20261124T120000Z-0000cccc")
    held_run(world, "20261124T130000Z-0000dddd", archives=1, dry_run=True)  # old-1 is back in the source
    answer = world["hook"].approve_run("acme", stale, *approval(stale), time.time())
    assert answer.status == 409 and "dry run 20261124T130000Z-0000dddd read the charts after" in answer.body["message"]
    assert "no longer archive 1 of its held account(s) (first: 'old-1')" in answer.body["message"]
