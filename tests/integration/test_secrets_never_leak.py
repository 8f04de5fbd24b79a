"""No secret (Pleo API key, bearer token, webhook secret) ever appears in a log line, a run file in S3,
a queue message, the run ledger, an event, a webhook answer, a run report or an exception's text.

One world, several tenants, every path that handles a credential or reports a failure: a good sync with
an item Pleo rejects (DLQ with reasons), a bearer-token tenant whose writes keep failing (DLQ after every
delivery), a rotated key (401 in fetch, and 401 in the writer), the signed webhook (accepted, forged,
replayed). Then everything that was written anywhere is read back and searched for each secret, in the
forms it travels in (as is, and inside a basic-auth header).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import time
import traceback
import uuid

import boto3
import pytest
from coa_sync.adapters.events import RunEvents
from coa_sync.adapters.ledger import Ledger
from coa_sync.adapters.pleo import PleoError, PleoRequestError
from coa_sync.models import ActionMessage, FileSource, RunRequest, Tenant
from coa_sync.observability import logger
from coa_sync.pipeline import runs
from coa_sync.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from coa_sync_local.runner import REGION, TABLE, LambdaContext, LocalRunner, RunnerOptions, _load_handler

from tests.support import write_csv

API_KEY = "pls_live_SECRETKEY_7f3a9c2e5b1d4e6f"
TOKEN = "eyJSECRETTOKEN.9d8c7b6a5f4e3d2c.b1a0f9e8"
ROTATED_KEY = "pls_live_SECRETROTATED_e1d2c3b4a596"  # a key Pleo no longer accepts
WEBHOOK_SECRET = "whsec_SECRETHOOK_0f1e2d3c4b5a6978"
SECRETS = (API_KEY, TOKEN, ROTATED_KEY, WEBHOOK_SECRET)
COMPANY_A, COMPANY_B, COMPANY_C = (str(uuid.UUID(int=n)) for n in (101, 102, 103))
EVENTS = "events/webhook-start-run.json"


def forms(secret: str) -> list[str]:
    """The secret as it may travel: itself, and inside an HTTP basic-auth header (user "secret", no password)."""
    return [secret, base64.b64encode(f"{secret}:".encode()).decode(), secret[8:-4]]


@pytest.fixture
def logs(monkeypatch):
    """Our JSON logs at DEBUG (Lambda's stream is stderr; here a buffer), and httpx's own at DEBUG."""
    stream = io.StringIO()
    level = logger.log_level
    logger.setLevel("DEBUG")
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield stream
    logger.setLevel(level)
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_no_secret_appears_in_logs_files_messages_events_or_errors(emulator, tmp_path, logs, caplog, capsys,
                                                                     monkeypatch):
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # metrics printed too, and searched
    monkeypatch.setenv("FETCH_FUNCTION_NAME", "coa-sync-fetch")
    emulator.add_company(COMPANY_A, api_keys=[API_KEY], tax_codes=["VAT25"], accounts=[
        {"externalId": "old", "name": "Old", "archived": False}, {"externalId": "ren", "name": "Before"}])
    emulator.add_company(COMPANY_B, tokens=[TOKEN], accounts=[{"externalId": "b1", "name": "Old"}])
    emulator.add_company(COMPANY_C, api_keys=["pls_live_the_key_gamma_should_have"])
    texts: dict[str, str] = {}  # where -> what was written there
    announced = []  # SyncRunCompleted events' detail, as sent to EventBridge
    completed = RunEvents.completed

    def record_event(self, record):
        announced.append(record.model_dump_json())
        completed(self, record)

    monkeypatch.setattr(RunEvents, "completed", record_event)

    options = RunnerOptions(pleo_url=emulator.url, visibility_timeout=0, max_receive_count=2, pleo_max_attempts=1)
    with LocalRunner(options) as runner:
        logger.registered_handler.setStream(logs)
        sqs = runner.sqs

        def tenant(tenant_id, company, source, credentials, **extra):
            runner.add_tenant(Tenant(tenant_id=tenant_id, company_id=company, source=FileSource(uri=source),
                                     pleo_secret_name=f"coa-sync/{tenant_id}/pleo", **extra), credentials)

        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="coa-sync/acme/webhook", SecretString=json.dumps({"secret": WEBHOOK_SECRET}))
        tenant("acme", COMPANY_A, write_csv(tmp_path / "a.csv", [("new", "1", "New", True, "VAT25"),
                                                                  ("bad", "2", "Bad", True, "NO-SUCH-TAX"),
                                                                  ("ren", "3", "After", True)]),
               {"apiKey": API_KEY}, webhook_secret_name="coa-sync/acme/webhook")
        tenant("beta", COMPANY_B, write_csv(tmp_path / "b.csv", [("b1", "1", "New", True)]), {"accessToken": TOKEN})
        tenant("gamma", COMPANY_C, write_csv(tmp_path / "c.csv", [("c1", "1", "C", True)]), {"apiKey": ROTATED_KEY})

        # A sync with an item Pleo rejects: it lands in the DLQ with Pleo's reason.
        acme = runner.run("acme")
        assert [(f.external_id, f.reasons) for f in acme.failed] == [("bad", ["OTHER"])]
        # Bearer token; Pleo keeps failing the writes: the DLQ after every delivery, with the reason.
        emulator.inject("error", count=10, endpoint="put", status=503)
        beta = runner.run("beta")
        assert [f.external_id for f in beta.failed] == ["b1"] and "HTTP 503" in beta.failed[0].reasons[0]
        emulator.clear_faults()
        # A rotated key: 401 in fetch ...
        with pytest.raises(PleoRequestError, match="HTTP 401") as refused:
            runner.run("gamma")
        errors = [refused.value]
        # ... and 401 in the writer (an action of a live run, queued before the key was rotated).
        runs.start(Ledger(TABLE), RunRequest(tenant_id="gamma", trigger="cli", run_id="r1"), 60, lambda r: None)
        action = acme.plan.actions[0].model_copy(update={"account_id": str(uuid.uuid4())})
        sqs.send_message(QueueUrl=runner.actions_url, MessageBody=ActionMessage(
            tenant_id="gamma", run_id="r1", company_id=COMPANY_C, seq=0, action=action).model_dump_json())
        runner.apply_queued()
        # The signed webhook: a forged request, an accepted one, and that one replayed.
        hook = _load_handler("webhook")
        started = []
        hook.webhook.start = started.append  # the async invoke of fetch, recorded
        answers = []
        with open(EVENTS) as file:
            event = json.load(file)
        answers.append(hook.handler(event, LambdaContext("coa-sync-webhook")))  # forged: all-zero signature
        timestamp = str(int(time.time()))
        event["headers"].update({TIMESTAMP_HEADER: timestamp,
                                 SIGNATURE_HEADER: sign(WEBHOOK_SECRET, timestamp, event["body"].encode())})
        answers.append(hook.handler(event, LambdaContext("coa-sync-webhook")))
        answers.append(hook.handler(event, LambdaContext("coa-sync-webhook")))  # replayed
        assert [answer["statusCode"] for answer in answers] == [401, 202, 409] and len(started) == 1
        texts["webhook answers"] = json.dumps(answers)
        texts["run requests started"] = json.dumps([r.model_dump(mode="json") for r in started])

        # Exceptions of every kind the client raises, as they would be logged or printed.
        for error in errors:
            assert isinstance(error, PleoError)
            texts[f"exception {type(error).__name__}"] = "".join(
                [str(error), repr(error), *traceback.format_exception(error)])
        texts["results"] = json.dumps([acme.to_json(), beta.to_json()]) + acme.plan.model_dump_json() \
            + beta.plan.model_dump_json() + repr(acme) + repr(beta)

        # Everything that was written: S3 objects (gunzipped), queue messages, the ledger and tenants, events.
        s3 = runner.s3
        for bucket in s3.list_buckets()["Buckets"]:
            for listed in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
                body = s3.get_object(Bucket=bucket["Name"], Key=listed["Key"])["Body"].read()
                texts[f"s3://{bucket['Name']}/{listed['Key']}"] = (
                    gzip.decompress(body) if listed["Key"].endswith(".gz") else body).decode()
        for url in sqs.list_queues()["QueueUrls"]:
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                                  MessageAttributeNames=["All"]).get("Messages", []):
                for message in messages:
                    texts[f"{url} {message['MessageId']}"] = json.dumps(message)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for table in dynamodb.list_tables()["TableNames"]:
            texts[f"dynamodb {table}"] = json.dumps(dynamodb.scan(TableName=table)["Items"])
    captured = capsys.readouterr()
    texts["our logs"] = logs.getvalue()
    texts["other logs"] = caplog.text
    texts["stdout"], texts["stderr"] = captured.out, captured.err

    # The search would be empty if nothing had been written: check it had something to look at.
    assert "sent to the DLQ" in texts["our logs"] and "HTTP Request" in texts["other logs"]
    assert sum(key.startswith("s3://") for key in texts) >= 8
    dead = [text for key, text in texts.items() if "actions-dlq" in key]
    assert len(dead) >= 3 and any("unknown credentials" in text for text in dead)
    texts["events"] = "\n".join(announced)
    assert len(announced) >= 3
    leaks = [(secret, where) for secret in SECRETS for where, text in texts.items()
             if any(form in text for form in forms(secret))]
    assert leaks == []
