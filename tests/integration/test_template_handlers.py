"""Every function of template.yaml invoked with its events/ file, as `sam local invoke` would, without Docker.

The stack's bucket, table and queues are made on moto from the template's own properties,
and each handler runs in process with the environment the template declares (see
tests/template_stack.py), against the Pleo emulator on 127.0.0.1.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from coa_sync import keys
from coa_sync.adapters.ledger import Ledger
from coa_sync.models import (
    AccountFields,
    Action,
    ActionKind,
    ActionMessage,
    DeadLetter,
    Manifest,
    Plan,
    RunRequest,
    SourceColumns,
    TargetColumns,
)
from coa_sync.pipeline import runs
from coa_sync_local.emulators.pleo import PleoEmulator
from coa_sync_local.runner import LambdaContext, _sqs_record
from pydantic import ValidationError

from tests import oauth_support
from tests.support import COMPANY, api_key_for
from tests.template_stack import (
    ROOT,
    STACK_NAME,
    Stack,
    deployed,
    functions,
    load_event,
    load_template,
    moto_server,
    settings_values,
)

TEMPLATE = load_template()
OTHER_COMPANY = str(uuid.UUID(int=2))

# acme's chart in its accounting system (accounts.csv) and in Pleo: one account of each fate.
SOURCE_CSV = """externalId,code,name,active,taxCodeExternalId
ext-1000,1000,Office Supplies,true,
ext-2000,2000,Travel,true,
ext-3000,3000,Software,true,
ext-4000,4000,Marketing,true,
ext-6000,6000,Old Rent,false,
"""
PLEO_ACCOUNTS = [
    {"externalId": "ext-1000", "code": "1000", "name": "Office Supplies"},  # same: no action
    {"externalId": "ext-2000", "code": "2000", "name": "Travel", "archived": True},  # unarchive
    {"externalId": "ext-4000", "code": "4000", "name": "Advertising"},  # update (name)
    {"externalId": "5000", "code": "5000", "name": "Entertainment"},  # not in the AS: archive
]  # ext-3000 is only in the AS: create; ext-6000 is inactive in the AS and absent from Pleo: nothing
PLANNED = {("create", "ext-3000"), ("unarchive", "ext-2000"), ("update", "ext-4000"), ("archive", "5000")}


@pytest.fixture
def stack(emulator: PleoEmulator) -> Iterator[Stack]:
    # PLEO_BASE_URL is replaced only where a function declares it, as `sam local invoke --env-vars` does.
    with deployed(TEMPLATE, overrides={"PLEO_BASE_URL": emulator.url}) as stack:
        yield stack


def register_tenant(stack: Stack, emulator: PleoEmulator, tenant_id: str, *, company_id: str = COMPANY,
                    accounts: list[dict] = PLEO_ACCOUNTS, enabled: bool = True,
                    tax_codes: list[str] | None = None, webhook_secret: str | None = None) -> None:
    """A tenant set up as docs/deploy.md says: source file, secret(s), CONFIG item; and its Pleo company."""
    emulator.add_company(company_id, api_keys=[api_key_for(company_id)], accounts=accounts, tax_codes=tax_codes)
    bucket = stack.ref("SnapshotBucket")
    secrets = boto3.client("secretsmanager")
    item = {"pk": f"TENANT#{tenant_id}", "sk": "CONFIG", "tenantId": tenant_id, "companyId": company_id,
            "pleoSecretName": f"{stack.parameters['SecretsPrefix']}{tenant_id}/pleo", "enabled": enabled,
            "source": {"kind": "file", "uri": f"s3://{bucket}/sources/{tenant_id}/accounts.csv"}}
    secrets.create_secret(Name=item["pleoSecretName"], SecretString=json.dumps({"apiKey": api_key_for(company_id)}))
    if webhook_secret is not None:  # README "Starting a run"
        item["webhookSecretName"] = f"{stack.parameters['SecretsPrefix']}{tenant_id}/webhook"
        secrets.create_secret(Name=item["webhookSecretName"], SecretString=json.dumps({"secret": webhook_secret}))
    boto3.client("s3").put_object(Bucket=bucket, Key=f"sources/{tenant_id}/accounts.csv", Body=SOURCE_CSV.encode())
    boto3.resource("dynamodb").Table(stack.ref("TenantsTable")).put_item(Item=item)


def read(stack: Stack, key: str) -> bytes:
    body = boto3.client("s3").get_object(Bucket=stack.ref("SnapshotBucket"), Key=key)["Body"].read()
    return gzip.decompress(body) if key.endswith(".gz") else body


def run_keys(stack: Stack, tenant_id: str) -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=stack.ref("SnapshotBucket"), Prefix=f"runs/{tenant_id}/")
    return sorted(item["Key"] for item in listing.get("Contents", []))


def drain(queue_url: str) -> list[dict[str, Any]]:
    """Every message on a queue (each received once, so none is seen twice)."""
    sqs, messages = boto3.client("sqs"), []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                       MessageAttributeNames=["All"]).get("Messages"):
        messages.extend(batch)
    return messages


def attributes(message: dict[str, Any]) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()}


def triggers_diff(key: str) -> bool:
    """Whether an object created at `key` matches the snapshot bucket's notification of DiffFunction."""
    notifications = TEMPLATE["Resources"]["SnapshotBucket"]["Properties"]["NotificationConfiguration"]
    diff = {"Fn::GetAtt": ["DiffFunction", "Arn"]}
    (config,) = [c for c in notifications["LambdaConfigurations"] if c["Function"] == diff]
    assert config["Event"] == "s3:ObjectCreated:*"
    rules = {rule["Name"]: rule["Value"] for rule in config["Filter"]["S3Key"]["Rules"]}
    return key.startswith(rules.get("prefix", "")) and key.endswith(rules.get("suffix", ""))


def fetch_acme(stack: Stack, event_file: str = "fetch-tenant.json") -> str:
    """Run FetchFunction with an events/ file for tenant acme; returns the run id."""
    result = stack.function("FetchFunction")(load_event(event_file))
    assert result["tenantId"] == "acme"
    return result["runId"]


# --- the template's functions and events/env.json ------------------------------------------------


def test_every_function_in_the_template_has_its_tests_here():
    # A new function needs its own invocation test in this module.
    assert set(functions(TEMPLATE)) == {"FetchFunction", "DiffFunction", "WriterFunction", "WebhookFunction"}


def test_each_function_cold_starts_with_its_settings_read_from_its_declared_environment(stack):
    # Undeclared settings variables are removed first: a variable the code needs but the
    # template does not declare fails the cold start, with pydantic's message naming it.
    for logical in functions(TEMPLATE):
        function = stack.function(logical)
        declared = stack.environment(logical)
        read = {name: value for name, value in settings_values(function.module.settings).items() if name in declared}
        assert "TENANTS_TABLE" in read, logical
        assert {name: _text(value) for name, value in read.items()} == {name: declared[name] for name in read}
        assert function.calls == []  # a cold start calls no AWS API


def _text(value: Any) -> str:
    """A setting as its variable would hold it: 10.0 read from "10" is "10"; pydantic adds a slash to a URL."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, int | float) else str(value).rstrip("/")


def test_the_checks_catch_an_undeclared_variable_and_a_missing_grant(emulator):
    # Proof that the stand-in is not lenient: the same template, less one variable, then less one grant.
    template = copy.deepcopy(TEMPLATE)
    fetch = template["Resources"]["FetchFunction"]["Properties"]
    with deployed(template, overrides={"PLEO_BASE_URL": emulator.url}) as stack:
        register_tenant(stack, emulator, "acme")
        bucket = fetch["Environment"]["Variables"].pop("SNAPSHOT_BUCKET")
        with pytest.raises(ValidationError, match="snapshot_bucket"):
            stack.function("FetchFunction")
        fetch["Environment"]["Variables"]["SNAPSHOT_BUCKET"] = bucket
        statements = fetch["Policies"][0]["Statement"]
        statements[:] = [s for s in statements if s["Sid"] != "ReadSources"]
        with pytest.raises(AssertionError, match=r"s3:GetObject.*sources/acme/accounts\.csv"):
            stack.function("FetchFunction")(load_event("fetch-tenant.json"))


def test_every_function_derives_the_run_locks_ttl_from_the_actions_queue_it_is_deployed_with(stack):
    # The lock must outlive a queued action (settings.lock_ttl): the functions are told the queue's settings.
    queue = TEMPLATE["Resources"]["ActionsQueue"]["Properties"]
    for logical in functions(TEMPLATE):
        declared = stack.environment(logical)
        assert declared["ACTIONS_VISIBILITY_TIMEOUT_SECONDS"] == str(queue["VisibilityTimeout"]), logical
        assert declared["MAX_RECEIVE_COUNT"] == str(stack.parameters["MaxReceiveCount"]), logical


def test_env_json_names_only_declared_variables_with_the_dev_stacks_values(stack):
    # `sam local invoke --env-vars` silently ignores a variable the function does not declare.
    env = json.loads((ROOT / "events" / "env.json").read_text())
    local_only = {"PLEO_BASE_URL", "POWERTOOLS_LOG_LEVEL"}  # meant to differ from the deployed stack
    declared = {logical: stack.environment(logical) for logical in functions(TEMPLATE)}
    for name in env["Parameters"]:  # for every function
        assert any(name in variables for variables in declared.values()), f"no function declares {name}"
    for logical, variables in declared.items():
        for name, value in {**env["Parameters"], **env.get(logical, {})}.items():
            if name in env.get(logical, {}):
                assert name in variables, f"events/env.json sets {name} for {logical}, which does not declare it"
            if name in variables and name not in local_only:
                assert value == variables[name], (logical, name)


# --- FetchFunction -------------------------------------------------------------------------------


def test_fetch_tenant_writes_both_snapshots_and_then_the_manifest(stack, emulator):
    register_tenant(stack, emulator, "acme")
    started = datetime.now(UTC)
    run_id = fetch_acme(stack)

    prefix = f"runs/acme/{run_id}/"
    assert run_keys(stack, "acme") == [prefix + name for name in ("manifest.json", "source.json.gz", "target.json.gz")]
    manifest = Manifest.model_validate_json(read(stack, prefix + "manifest.json"))
    assert manifest.model_dump(exclude={"created_at"}) == {
        "tenantId": "acme", "runId": run_id, "companyId": COMPANY, "trigger": "schedule", "dryRun": False,
        "sourceKey": prefix + "source.json.gz", "targetKey": prefix + "target.json.gz",
        "sourceAccounts": 5,  # every row read, the inactive one too: the diff keeps the active ones
        "targetAccounts": 4,  # active and archived
        "targetKind": "pleo",  # the tenant names no target: Pleo
        "archiveGuard": None,  # the tenant has no limit of its own: the stack's parameters apply
    }
    assert started - timedelta(seconds=1) <= manifest.created_at <= datetime.now(UTC)

    source = SourceColumns.model_validate_json(read(stack, manifest.source_key))
    assert dict(zip(source.external_id, zip(source.name, source.active, strict=True), strict=True)) == {
        "ext-1000": ("Office Supplies", True), "ext-2000": ("Travel", True), "ext-3000": ("Software", True),
        "ext-4000": ("Marketing", True), "ext-6000": ("Old Rent", False)}
    target = TargetColumns.model_validate_json(read(stack, manifest.target_key))
    assert dict(zip(target.external_id, zip(target.name, target.archived, strict=True), strict=True)) == {
        "ext-1000": ("Office Supplies", False), "ext-2000": ("Travel", True),
        "ext-4000": ("Advertising", False), "5000": ("Entertainment", False)}
    assert source.errors == [] and target.errors == []
    # Only the manifest, written last, matches the S3 event that starts the diff.
    assert [key for key in run_keys(stack, "acme") if triggers_diff(key)] == [prefix + "manifest.json"]


def test_fetch_schedule_queues_one_run_per_enabled_tenant_and_fetches_each_from_the_runs_queue(stack, emulator):
    # The scheduled event is the template's schedule Input.
    schedule = next(e for e in TEMPLATE["Resources"]["FetchFunction"]["Properties"]["Events"].values()
                    if e["Type"] == "ScheduleV2")
    event = load_event("fetch-schedule.json")
    assert event == json.loads(schedule["Properties"]["Input"])
    register_tenant(stack, emulator, "acme")
    register_tenant(stack, emulator, "beta", company_id=OTHER_COMPANY)
    register_tenant(stack, emulator, "zeta", company_id=str(uuid.UUID(int=3)), enabled=False)

    fetch = stack.function("FetchFunction")
    assert fetch(event) == {"started": ["acme", "beta"], "orphansClosed": 0}  # the sweep found nothing to close
    # One message per enabled tenant on the runs queue, none invoked: the queue's mapping hands them
    # to fetch FetchMaxConcurrency at a time, whatever the schedule's size.
    assert [call.service for call in fetch.calls if call.service in ("sqs", "lambda")] == ["sqs", "sqs"]
    queued = sorted(drain(stack.ref("RunsQueue")), key=lambda message: json.loads(message["Body"])["tenantId"])
    requests = [RunRequest.model_validate_json(message["Body"]) for message in queued]
    assert [(r.tenant_id, r.trigger, r.dry_run) for r in requests] == [("acme", "schedule", False),
                                                                         ("beta", "schedule", False)]
    # Each request names its run: SQS delivering one twice starts the run once.
    assert all(r.run_id for r in requests) and requests[0].run_id != requests[1].run_id
    assert run_keys(stack, "acme") == []  # the fan-out itself fetches nothing
    mapping = stack.resolve(TEMPLATE["Resources"]["FetchFunctionRunStarts"]["Properties"])
    assert (mapping["EventSourceArn"], mapping["FunctionName"], mapping["BatchSize"]) == (
        stack.attribute("RunsQueue", "Arn"), stack.ref("FetchFunction"), 1)
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == stack.parameters["FetchMaxConcurrency"]

    # Deliver them as the mapping would, one a batch: each one is a tenant's run.
    for message in queued:
        (run,) = fetch({"Records": [_sqs_record(message, stack.attribute("RunsQueue", "Arn"))]})["runs"]
        assert run["runId"]
    assert [len(run_keys(stack, tenant)) for tenant in ("acme", "beta", "zeta")] == [3, 3, 0]
    # A second delivery of a request: the same run (fetched again while it waits for its diff), not a second run.
    again = fetch({"Records": [_sqs_record(queued[0], stack.attribute("RunsQueue", "Arn"))]})["runs"]
    assert again == [{"tenantId": "acme", "runId": requests[0].run_id}]
    assert [record.run_id for record in Ledger(stack.ref("TenantsTable")).runs("acme")] == [requests[0].run_id]


def test_the_schedule_first_closes_orphaned_runs_freeing_their_tenants(stack, emulator):
    register_tenant(stack, emulator, "acme")
    stuck = runs.start(Ledger(stack.ref("TenantsTable")), RunRequest(tenant_id="acme", trigger="webhook"), 12600,
                       lambda record: None)
    an_hour_ago = (datetime.now(UTC) - timedelta(minutes=60, seconds=10)).isoformat()  # its fetch died then
    boto3.resource("dynamodb").Table(stack.ref("TenantsTable")).update_item(
        Key={"pk": "TENANT#acme", "sk": f"RUN#{stuck.run_id}"}, UpdateExpression="SET progressAt = :then",
        ExpressionAttributeValues={":then": an_hour_ago})

    answer = stack.function("FetchFunction")(load_event("fetch-schedule.json"))

    assert answer["orphansClosed"] == 1 and answer["started"] == ["acme"]
    record = Ledger(stack.ref("TenantsTable")).get("acme", stuck.run_id)
    assert record.status == "failed" and record.error == "orphaned: no progress for 60 min while fetching"
    assert json.loads(read(stack, f"runs/acme/{stuck.run_id}/report.json"))["status"] == "failed"
    assert Ledger(stack.ref("TenantsTable")).lock("acme") is None  # free for the run the schedule starts


def test_diff_plans_a_run_once_however_often_its_manifest_arrives(stack, emulator):
    register_tenant(stack, emulator, "acme")
    run_id = fetch_acme(stack)
    event = load_event("diff-s3-manifest.json")
    event["Records"][0]["s3"]["bucket"]["name"] = stack.ref("SnapshotBucket")
    event["Records"][0]["s3"]["object"]["key"] = f"runs/acme/{run_id}/manifest.json"
    diff = stack.function("DiffFunction")

    first, again = diff(event), diff(event)  # S3 delivers at least once; Lambda may deliver twice too

    assert first["runs"][0]["planned"]["create"] == 1
    assert again == {"runs": [{"tenantId": "acme", "runId": run_id,
                               "skipped": f"run {run_id} is applying and queued already"}]}
    assert len(drain(stack.ref("ActionsQueue"))) == len(PLANNED)  # each action queued once


def test_the_events_file_of_a_queued_run_is_what_the_fan_out_queues(stack, emulator):
    register_tenant(stack, emulator, "acme")
    fetch = stack.function("FetchFunction")
    fetch(load_event("fetch-schedule.json"))
    (queued,) = drain(stack.ref("RunsQueue"))
    (record,) = load_event("fetch-sqs-run-start.json")["Records"]
    example, fanned_out = (json.loads(body) for body in (record["body"], queued["Body"]))
    assert example.keys() == fanned_out.keys() and {**example, "runId": None} == {**fanned_out, "runId": None}
    assert record["eventSourceARN"] == stack.attribute("RunsQueue", "Arn")
    (run,) = fetch(load_event("fetch-sqs-run-start.json"))["runs"]
    assert run == {"tenantId": "acme", "runId": example["runId"]} and len(run_keys(stack, "acme")) == 3


def test_a_fetch_that_cannot_read_the_source_fails_its_run_with_a_report_and_frees_the_tenant(stack, emulator):
    register_tenant(stack, emulator, "acme")
    boto3.client("s3").delete_object(Bucket=stack.ref("SnapshotBucket"), Key="sources/acme/accounts.csv")

    with pytest.raises(Exception, match="NoSuchKey"):  # Lambda's retry and failure destination take it
        stack.function("FetchFunction")(load_event("fetch-tenant.json"))

    (report_key,) = run_keys(stack, "acme")  # no snapshots, no manifest: no diff starts
    report = json.loads(read(stack, report_key))
    assert (report["status"], report_key.endswith("/report.json")) == ("failed", True)
    assert "NoSuchKey" in report["error"]
    table = boto3.resource("dynamodb").Table(stack.ref("TenantsTable"))
    assert "Item" not in table.get_item(Key={"pk": "TENANT#acme", "sk": "LOCK"})  # the next run may start


# --- DiffFunction --------------------------------------------------------------------------------


@pytest.mark.parametrize("fetch_event", ["fetch-tenant.json", "fetch-tenant-dry-run.json"])
def test_diff_writes_the_plan_and_queues_one_message_per_action(stack, emulator, fetch_event):
    register_tenant(stack, emulator, "acme")
    run_id = fetch_acme(stack, fetch_event)
    dry_run = load_event(fetch_event).get("dryRun", False)
    # The event file as on disk, but naming the run just written.
    event = load_event("diff-s3-manifest.json")
    event["Records"][0]["s3"]["bucket"]["name"] = stack.ref("SnapshotBucket")
    event["Records"][0]["s3"]["object"]["key"] = f"runs/acme/{run_id}/manifest.json"

    result = stack.function("DiffFunction")(event)

    assert result == {"runs": [{"tenantId": "acme", "runId": run_id,
                                "planned": {"create": 1, "update": 1, "unarchive": 1, "archive": 1, "noop": 1}}]}
    plan = Plan.model_validate_json(read(stack, f"runs/acme/{run_id}/plan.json.gz"))
    assert {(str(a.kind), a.external_id) for a in plan.actions} == PLANNED
    assert plan.noop == 1 and plan.errors == [] and plan.held == []

    messages = drain(stack.ref("ActionsQueue"))
    if dry_run:  # the plan is the whole output of a dry run
        assert messages == []
        return
    bodies = [ActionMessage.model_validate_json(m["Body"]) for m in messages]
    assert sorted(b.model_dump_json() for b in bodies) == sorted(  # fenced: the run's company and each seq
        ActionMessage(tenant_id="acme", run_id=run_id, company_id=COMPANY, seq=seq, action=a).model_dump_json()
        for seq, a in enumerate(plan.actions))
    assert sorted(attributes(m)["action"] for m in messages) == sorted(kind for kind, _ in PLANNED)
    assert {(attributes(m)["tenantId"], attributes(m)["runId"]) for m in messages} == {("acme", run_id)}
    assert drain(stack.ref("ActionsDeadLetterQueue")) == []


# --- WriterFunction ------------------------------------------------------------------------------

# Pleo as the writer event expects it: ext-4000 to rename, ext-9999 to archive; ext-3000 is created.
RUN = "20261123T120000Z-0a1b2c3d"  # the run the event's messages name
WRITER_SEED = [{"externalId": "ext-4000", "code": "4000", "name": "Travel"},
               {"externalId": "ext-9999", "code": "9999", "name": "Suspense (old)"}]


def writer_event(emulator: PleoEmulator, stack: Stack) -> dict[str, Any]:
    """events/writer-sqs-actions.json with its fixed accountIds replaced by the emulator's ids, its run (the
    one the messages name) made the tenant's live run, as the diff that queued them would have left it."""
    ids = {a["externalId"]: a["id"] for a in emulator.accounts(COMPANY)}
    event = load_event("writer-sqs-actions.json")
    for record in event["Records"]:
        body = json.loads(record["body"])
        if body["action"]["accountId"] is not None:
            body["action"]["accountId"] = ids[body["action"]["externalId"]]
        record["body"] = json.dumps(body, separators=(",", ":"))
    messages = [ActionMessage.model_validate_json(record["body"]) for record in event["Records"]]
    ledger, run_id = Ledger(stack.ref("TenantsTable")), messages[0].run_id
    record = runs.start(ledger, RunRequest(tenant_id="acme", trigger="schedule", run_id=run_id), 3600,
                        lambda record: None, company_id=messages[0].company_id)
    runs.planned(ledger, record, Plan(actions=[m.action for m in messages], noop=0), dry_run=False,
                 finished=lambda record: None)
    return event


def pleo_state(emulator: PleoEmulator) -> dict[str, tuple]:
    return {a["externalId"]: (a["name"], a["code"], a["taxCodeExternalId"], a["archived"])
            for a in emulator.accounts(COMPANY)}


def test_writer_applies_the_events_create_update_and_archive(stack, emulator):
    register_tenant(stack, emulator, "acme", accounts=WRITER_SEED)

    response = stack.function("WriterFunction")(writer_event(emulator, stack))

    assert response == {"batchItemFailures": []}
    assert pleo_state(emulator) == {
        "ext-4000": ("Travel & Meals", "4000", "VAT-25", False),
        "ext-9999": ("Suspense (old)", "9999", None, True),
        "ext-3000": ("Software", "3000", None, False),
    }
    assert emulator.calls == {"batch_create": 1, "put": 2}
    assert drain(stack.ref("ActionsDeadLetterQueue")) == []
    record = Ledger(stack.ref("TenantsTable")).get("acme", RUN)
    assert (record.status, record.applied.model_dump(exclude={"noop"})) == (
        "completed", {"create": 1, "update": 1, "unarchive": 0, "archive": 1})


def test_writer_supersedes_every_action_of_a_run_that_is_not_live_and_changes_nothing(stack, emulator):
    register_tenant(stack, emulator, "acme", accounts=WRITER_SEED)
    event = writer_event(emulator, stack)
    ledger = Ledger(stack.ref("TenantsTable"))
    runs.fail(ledger, ledger.get("acme", RUN), "interrupted", lambda record: None)
    runs.start(ledger, RunRequest(tenant_id="acme", trigger="webhook"), 3600, lambda record: None)  # a newer run
    before = pleo_state(emulator)

    assert stack.function("WriterFunction")(event) == {"batchItemFailures": []}  # settled: not retried

    assert pleo_state(emulator) == before and not emulator.calls
    assert drain(stack.ref("ActionsDeadLetterQueue")) == []  # superseded is not a failure
    assert ledger.get("acme", RUN).superseded == 3


class Shrinking(LambdaContext):
    """A writer's context whose time goes 20 s per Pleo request the emulator serves, from 60 s."""

    def __init__(self, emulator: PleoEmulator) -> None:
        super().__init__("coa-sync-dev-writer", timeout_seconds=300)
        self.emulator = emulator

    def get_remaining_time_in_millis(self) -> int:
        return (60 - 20 * sum(self.emulator.calls.values())) * 1000


def test_writer_hands_back_what_it_has_no_time_for_within_seconds_and_dead_letters_none_of_it(stack, emulator):
    register_tenant(stack, emulator, "acme", accounts=WRITER_SEED)
    sqs, queue = boto3.client("sqs"), stack.ref("ActionsQueue")
    for record in writer_event(emulator, stack)["Records"]:  # the event's messages, on the stack's queue for real
        sqs.send_message(QueueUrl=queue, MessageBody=record["body"])
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    received = drain(queue)  # hidden for the queue's visibility timeout (2100 s), as the event source mapping does
    event = {"Records": [_sqs_record(m, arn) for m in sorted(received, key=lambda m: json.loads(m["Body"])["seq"])]}

    # The writer needs 15 s (Pleo's timeout) + 10 s (wrap-up) to start a request: the create (60 s left)
    # and the update (40 s) fit, the archive (20 s) does not.
    writer = stack.function("WriterFunction", extra_env={"LEFTOVER_VISIBILITY_SECONDS": "1"})
    response = writer(event, Shrinking(emulator))

    archive = event["Records"][2]
    assert response == {"batchItemFailures": [{"itemIdentifier": archive["messageId"]}]}
    assert pleo_state(emulator)["ext-9999"][3] is False and emulator.calls == {"batch_create": 1, "put": 1}
    assert drain(stack.ref("ActionsDeadLetterQueue")) == []
    assert drain(queue) == []
    time.sleep(1.1)
    (again,) = drain(queue)  # visible again a second later (LEFTOVER_VISIBILITY_SECONDS), not in 35 minutes
    assert again["Body"] == archive["body"]
    record = Ledger(stack.ref("TenantsTable")).get("acme", RUN)
    assert (record.status, record.applied.create, record.applied.update, record.failed) == ("applying", 1, 1, 0)


def test_writer_hands_back_a_tenant_whose_budget_is_spent_and_goes_on_with_the_others_in_the_batch(stack, emulator):
    # acme's backlog has spent its Pleo budget (the bucket owes 3 s: its next request is 2.5 s away, past the
    # writer's 0.5 s budget wait); beta, a small run, shares the batch and must not wait behind it.
    register_tenant(stack, emulator, "acme", accounts=WRITER_SEED)
    register_tenant(stack, emulator, "beta", company_id=OTHER_COMPANY, accounts=[])
    acme = [record["body"] for record in writer_event(emulator, stack)["Records"]]
    ledger = Ledger(stack.ref("TenantsTable"))
    beta_run = runs.start(ledger, RunRequest(tenant_id="beta", trigger="webhook"), 3600, lambda record: None,
                          company_id=OTHER_COMPANY)
    creates = [Action(kind=ActionKind.CREATE, external_id=f"b{n}", desired=AccountFields(name=f"B {n}"))
               for n in range(2)]
    runs.planned(ledger, beta_run, Plan(actions=creates, noop=0), dry_run=False, finished=lambda record: None)
    beta = [ActionMessage(tenant_id="beta", run_id=beta_run.run_id, company_id=OTHER_COMPANY, seq=n,
                          action=action).model_dump_json() for n, action in enumerate(creates)]
    sqs, queue = boto3.client("sqs"), stack.ref("ActionsQueue")
    for body in acme + beta:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    received = sorted(drain(queue), key=lambda m: (acme + beta).index(m["Body"]))  # acme's first
    budget = f"BUDGET#pleo:{emulator.url.rstrip('/')}:company:{COMPANY}"
    boto3.resource("dynamodb").Table(stack.ref("TenantsTable")).put_item(
        Item={"pk": budget, "sk": "BUDGET", "tat": Decimal(f"{time.time() + 3:.6f}")})
    writer = stack.function("WriterFunction", extra_env={"PLEO_BUDGET_WAIT_SECONDS": "0.5",
                                                         "LEFTOVER_VISIBILITY_SECONDS": "1"})

    started = time.monotonic()
    response = writer({"Records": [_sqs_record(m, arn) for m in received]})

    assert time.monotonic() - started < 2  # never slept on acme's budget
    assert response == {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in received[:3]]}
    assert {a["externalId"] for a in emulator.accounts(OTHER_COMPANY)} == {"b0", "b1"}  # beta's run went on
    assert emulator.calls == {"batch_create": 1}  # and nothing of acme's was sent
    assert ledger.get("beta", beta_run.run_id).status == "completed"
    assert drain(stack.ref("ActionsDeadLetterQueue")) == [] and drain(queue) == []
    time.sleep(3.2)  # acme's come back once its budget has room again (in 3 s), not after 35 minutes
    assert sorted(m["Body"] for m in drain(queue)) == sorted(acme)


def test_writer_applies_a_batchs_tenants_at_once_so_many_small_runs_take_as_long_as_one(stack, emulator):
    # Four small runs in one batch, Pleo answering each tenant's request only after 2 s: applied one tenant after
    # another they would take 8 s at least; at once, every tenant's request is in flight together.
    names = ["t1", "t2", "t3", "t4"]
    ledger, bodies, run_ids = Ledger(stack.ref("TenantsTable")), [], []
    for n, name in enumerate(names, start=10):
        company = str(uuid.UUID(int=n))
        register_tenant(stack, emulator, name, company_id=company, accounts=[])
        run = runs.start(ledger, RunRequest(tenant_id=name, trigger="webhook"), 3600, lambda record: None,
                         company_id=company)
        create = Action(kind=ActionKind.CREATE, external_id=f"{name}-1", desired=AccountFields(name="New"))
        runs.planned(ledger, run, Plan(actions=[create], noop=0), dry_run=False, finished=lambda record: None)
        run_ids.append(run.run_id)
        bodies.append(ActionMessage(tenant_id=name, run_id=run.run_id, company_id=company, seq=0,
                                    action=create).model_dump_json())
    emulator.inject("slow", count=len(names), delay=2.0)
    sqs, queue = boto3.client("sqs"), stack.ref("ActionsQueue")
    for body in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    event = {"Records": [_sqs_record(m, arn) for m in drain(queue)]}

    started = time.monotonic()
    response = stack.function("WriterFunction")(event)

    assert time.monotonic() - started < 4.0  # as long as one slow request (2 s), not four in turn (8 s)
    assert response == {"batchItemFailures": []}
    assert emulator.calls == {"batch_create": 4}
    for n, (name, run_id) in enumerate(zip(names, run_ids, strict=True), start=10):
        assert [a["externalId"] for a in emulator.accounts(str(uuid.UUID(int=n)))] == [f"{name}-1"]
        assert ledger.get(name, run_id).status == "completed"
    assert drain(stack.ref("ActionsDeadLetterQueue")) == []


def test_writer_queues_afresh_a_leftover_on_its_last_delivery_so_it_never_reaches_the_dlq(stack, emulator):
    register_tenant(stack, emulator, "acme", accounts=WRITER_SEED)
    event = writer_event(emulator, stack)
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = stack.environment("WriterFunction")["MAX_RECEIVE_COUNT"]
    late = LambdaContext("coa-sync-dev-writer", timeout_seconds=20)  # not even one request fits

    assert stack.function("WriterFunction")(event, late) == {"batchItemFailures": []}  # these copies are done

    assert not emulator.calls and drain(stack.ref("ActionsDeadLetterQueue")) == []
    fresh = drain(stack.ref("ActionsQueue"))
    assert sorted(m["Body"] for m in fresh) == sorted(r["body"] for r in event["Records"])
    assert {attributes(m)["runId"] for m in fresh} == {RUN}


def test_writer_sends_what_pleo_rejects_to_the_dlq_with_reasons(stack, emulator):
    # The company knows only VAT25: the update's taxCodeExternalId "VAT-25" is refused.
    register_tenant(stack, emulator, "acme", accounts=WRITER_SEED, tax_codes=["VAT25"])
    event = writer_event(emulator, stack)

    response = stack.function("WriterFunction")(event)

    assert response == {"batchItemFailures": []}  # settled for good: not retried from the actions queue
    (letter,) = drain(stack.ref("ActionsDeadLetterQueue"))
    dead = DeadLetter.model_validate_json(letter["Body"])
    assert dead.reasons == ["taxCodeExternalId: tax code does not exist in Pleo"]  # the spec's own words
    assert dead.message == ActionMessage.model_validate_json(event["Records"][1]["body"])
    assert attributes(letter) == {"tenantId": "acme", "runId": "20261123T120000Z-0a1b2c3d", "action": "update"}
    assert pleo_state(emulator) == {  # the other two went through
        "ext-4000": ("Travel", "4000", None, False),
        "ext-9999": ("Suspense (old)", "9999", None, True),
        "ext-3000": ("Software", "3000", None, False),
    }


def test_writer_returns_every_record_for_retry_while_pleo_is_down(stack, emulator):
    register_tenant(stack, emulator, "acme", accounts=WRITER_SEED)
    event = writer_event(emulator, stack)
    emulator.inject("error", count=100, status=503)
    before = pleo_state(emulator)

    # Only with ReportBatchItemFailures does SQS read the response below instead of deleting the whole batch.
    mapping = TEMPLATE["Resources"]["WriterFunctionActions"]["Properties"]
    assert (mapping["FunctionName"], mapping["FunctionResponseTypes"]) == ({"Ref": "WriterFunction"},
                                                                           ["ReportBatchItemFailures"])
    # The template leaves PLEO_MAX_ATTEMPTS at its default (5, with backoff); one attempt keeps this fast.
    writer = stack.function("WriterFunction", extra_env={"PLEO_MAX_ATTEMPTS": "1"})
    response = writer(event)

    assert response == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}
    assert emulator.responses[503] >= 1 and not emulator.calls  # nothing reached Pleo's logic
    assert pleo_state(emulator) == before
    assert drain(stack.ref("ActionsDeadLetterQueue")) == []


def test_writer_dead_letters_the_actions_of_a_tenant_whose_pleo_secret_cannot_be_read(stack, emulator):
    register_tenant(stack, emulator, "acme", accounts=WRITER_SEED)
    secret = f"{stack.parameters['SecretsPrefix']}acme/pleo"
    boto3.client("secretsmanager").delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)
    event = writer_event(emulator, stack)

    assert stack.function("WriterFunction")(event) == {"batchItemFailures": []}  # settled: retrying cannot help

    letters = [DeadLetter.model_validate_json(m["Body"]) for m in drain(stack.ref("ActionsDeadLetterQueue"))]
    # The secret and what Secrets Manager answered (on AWS, AccessDeniedException for a name the
    # writer's policy does not cover), never a value.
    assert [letter.reasons for letter in letters] == [[f"secret {secret!r} could not be read: "
                                                       "ResourceNotFoundException"]] * len(event["Records"])
    assert emulator.calls == {}


# --- WebhookFunction -----------------------------------------------------------------------------

WEBHOOK_SECRET = "acme-webhook-secret-0123456789"


def signed(event: dict[str, Any], secret: str) -> dict[str, Any]:
    """The Function URL event with its two signature headers made now, as README "Starting a run" says."""
    event = copy.deepcopy(event)
    timestamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"{timestamp}.{event['body']}".encode(), hashlib.sha256).hexdigest()
    event["headers"].update({"x-coa-sync-timestamp": timestamp, "x-coa-sync-signature": f"v1={digest}"})
    return event


def test_webhook_starts_a_signed_run_once_and_fetch_takes_it_over(stack, emulator):
    register_tenant(stack, emulator, "acme", webhook_secret=WEBHOOK_SECRET)
    on_disk = load_event("webhook-start-run.json")
    webhook = stack.function("WebhookFunction")

    # As on disk, its placeholder signature gets the 401 any unsigned call gets, and starts nothing.
    assert webhook(on_disk)["statusCode"] == 401
    assert [call for call in webhook.calls if call.service == "lambda"] == []

    event = signed(on_disk, WEBHOOK_SECRET)
    response = webhook(event)
    assert response["statusCode"] == 202
    answer = json.loads(response["body"])
    assert answer == {"runId": answer["runId"], "tenantId": "acme", "dryRun": True}  # the event's body asks a dry run
    (invoke,) = [call for call in webhook.calls if call.service == "lambda"]
    assert (invoke.params["FunctionName"], invoke.params["InvocationType"]) == (stack.ref("FetchFunction"), "Event")
    request = RunRequest.model_validate_json(invoke.params["Payload"])
    assert (request.tenant_id, request.trigger, request.run_id, request.dry_run) == ("acme", "webhook",
                                                                                       answer["runId"], True)
    assert webhook(event)["statusCode"] == 409  # the same signed request again is a replay

    # Lambda delivers the invoke: fetch runs under the run id the webhook answered with.
    fetched = stack.function("FetchFunction")(json.loads(invoke.params["Payload"]))
    assert fetched == {"tenantId": "acme", "runId": answer["runId"]}
    manifest = Manifest.model_validate_json(read(stack, f"runs/acme/{answer['runId']}/manifest.json"))
    assert (manifest.trigger, manifest.dry_run) == ("webhook", True)


def test_webhook_approval_queues_exactly_the_held_archives_and_the_writer_completes_the_run(stack, emulator):
    register_tenant(stack, emulator, "acme", webhook_secret=WEBHOOK_SECRET)
    table = boto3.resource("dynamodb").Table(stack.ref("TenantsTable"))
    # acme's own guard: no archive goes without approval
    table.update_item(Key={"pk": "TENANT#acme", "sk": "CONFIG"}, UpdateExpression="SET archiveGuard = :guard",
                      ExpressionAttributeValues={":guard": {"minArchives": 0, "percent": 0}})
    run_id = fetch_acme(stack)
    diff_event = load_event("diff-s3-manifest.json")
    diff_event["Records"][0]["s3"]["bucket"]["name"] = stack.ref("SnapshotBucket")
    diff_event["Records"][0]["s3"]["object"]["key"] = f"runs/acme/{run_id}/manifest.json"
    stack.function("DiffFunction")(diff_event)
    queued = drain(stack.ref("ActionsQueue"))
    assert sorted(attributes(m)["action"] for m in queued) == ["create", "unarchive", "update"]  # archive held
    writer = stack.function("WriterFunction")
    queue_arn = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.ref("ActionsQueue"), AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    writer({"Records": [_sqs_record(m, queue_arn) for m in queued]})
    assert pleo_state(emulator)["5000"][3] is False

    on_disk = load_event("webhook-approve-run.json")
    event = copy.deepcopy(on_disk)
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/tenants/acme/runs/{run_id}/approve"
    event["body"] = json.dumps({"runId": run_id})  # the body names the run (README "Starting a run")
    webhook = stack.function("WebhookFunction")
    assert webhook(event)["statusCode"] == 401  # unsigned
    response = webhook(signed(event, WEBHOOK_SECRET))
    assert response["statusCode"] == 200, response["body"]
    run = json.loads(response["body"])
    assert (run["status"], run["approvedBy"], run["held"], run["planned"]["archive"]) == (
        "applying", "webhook", 0, 1)
    time.sleep(1)  # a signature made in the same second would be the same: a replay
    assert webhook(signed(event, WEBHOOK_SECRET))["statusCode"] == 409  # approved already: nothing left to approve

    (approved,) = drain(stack.ref("ActionsQueue"))
    message = ActionMessage.model_validate_json(approved["Body"])
    assert (message.run_id, message.action.kind, message.action.external_id) == (run_id, "archive", "5000")
    writer({"Records": [_sqs_record(approved, queue_arn)]})
    assert pleo_state(emulator)["5000"][3] is True
    report = json.loads(read(stack, f"runs/acme/{run_id}/report.json"))
    assert (report["status"], report["applied"]["archive"]) == ("completed", 1)


# --- What the dashboard and alarms read ------------------------------------------------------------


def emitted_metrics(printed: str) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric, dimensions) of every CloudWatch embedded-metric blob the functions printed."""
    metrics = set()
    for line in printed.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                labels = tuple(sorted((name, blob[name]) for name in dimensions))
                metrics.update((directive["Namespace"], m["Name"], labels) for m in directive["Metrics"])
    return metrics


def custom_metrics_read(stack: Stack) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """The CoaSync metrics the template's dashboard and alarms read."""
    shown = set()
    body = json.loads(stack.resolve(TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardBody"]))
    for widget in body["widgets"]:
        for line in widget["properties"].get("metrics", []):
            names = [part for part in line if isinstance(part, str)]
            if names and names[0] == "CoaSync":
                shown.add(("CoaSync", names[1], tuple(sorted(zip(names[2::2], names[3::2], strict=True)))))
    for resource in TEMPLATE["Resources"].values():
        alarm = resource["Properties"]
        if resource["Type"] == "AWS::CloudWatch::Alarm" and alarm.get("Namespace") == "CoaSync":
            dimensions = stack.resolve(alarm["Dimensions"])
            shown.add(("CoaSync", alarm["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in dimensions))))
    return shown


def test_every_figure_the_dashboard_and_alarms_read_is_emitted_by_the_functions(stack, emulator, capsys):
    # Runs of every ending, as the deployed functions would have them: acme completes (Pleo
    # throttles once and fails once on the way), beta's archive is held, gamma's source is gone.
    register_tenant(stack, emulator, "acme", webhook_secret=WEBHOOK_SECRET)
    register_tenant(stack, emulator, "beta", company_id=OTHER_COMPANY)
    register_tenant(stack, emulator, "gamma", company_id=str(uuid.UUID(int=3)))
    # delta was connected by OAuth, and its customer has since revoked the authorisation.
    register_tenant(stack, emulator, "delta", company_id=str(uuid.UUID(int=4)))
    emulator.add_oauth_client(oauth_support.CLIENT_ID, oauth_support.CLIENT_SECRET, [oauth_support.REDIRECT_URI])
    boto3.client("secretsmanager").put_secret_value(
        SecretId=f"{stack.parameters['SecretsPrefix']}delta/pleo", SecretString=json.dumps({
            "tokenUrl": f"{emulator.url}/oauth/token", "clientId": oauth_support.CLIENT_ID,
            "clientSecret": oauth_support.CLIENT_SECRET, "refreshToken": "revoked-refresh-token"}))
    table = boto3.resource("dynamodb").Table(stack.ref("TenantsTable"))
    table.update_item(Key={"pk": "TENANT#beta", "sk": "CONFIG"}, UpdateExpression="SET archiveGuard = :guard",
                      ExpressionAttributeValues={":guard": {"minArchives": 0, "percent": 0}})
    boto3.client("s3").delete_object(Bucket=stack.ref("SnapshotBucket"), Key="sources/gamma/accounts.csv")
    fetch, diff, writer = (stack.function(name) for name in ("FetchFunction", "DiffFunction", "WriterFunction"))
    queue_arn = stack.attribute("ActionsQueue", "Arn")

    assert fetch(load_event("fetch-schedule.json")) == {"started": ["acme", "beta", "delta", "gamma"],
                                                        "orphansClosed": 0}
    emulator.inject("rate_limit", retry_after=0)
    emulator.inject("error", status=503)
    for tenant in ("acme", "beta", "gamma", "delta"):
        try:
            run_id = fetch({**load_event("fetch-tenant.json"), "tenantId": tenant})["runId"]
        except Exception:  # gamma's source is gone; delta needs reconnecting, so no run id comes back
            continue
        event = load_event("diff-s3-manifest.json")
        event["Records"][0]["s3"]["object"]["key"] = keys.manifest_key(tenant, run_id)
        diff(event)
        writer({"Records": [_sqs_record(m, queue_arn) for m in drain(stack.ref("ActionsQueue"))]})
    webhook = stack.function("WebhookFunction")
    assert webhook(signed(load_event("webhook-start-run.json"), WEBHOOK_SECRET))["statusCode"] == 202
    assert fetch(load_event("fetch-tenant.json"))["skipped"]  # the webhook's run holds acme

    emitted = emitted_metrics(capsys.readouterr().out)
    shown = custom_metrics_read(stack)
    assert shown - emitted == set()
    assert {dimensions for _, _, dimensions in shown} == {(("service", STACK_NAME),)}  # this stack's, not another's
    reports = [key for tenant in ("acme", "beta", "gamma", "delta") for key in run_keys(stack, tenant)
               if key.endswith("/report.json")]
    assert sorted(json.loads(read(stack, key))["status"] for key in reports) == ["completed", "failed", "failed",
                                                                                   "needs_approval"]


# --- sam local invoke without a deployed stack: moto_server through AwsEndpointUrl -----------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


def test_every_function_runs_on_moto_server_through_the_endpoint_parameter(moto_endpoint, emulator):
    # As docs/deploy.md has it: moto_server on 127.0.0.1, AwsEndpointUrl pointing there, and
    # events/env.json's values (`sam local invoke --env-vars`), Pleo's URL the emulator's.
    env = json.loads((ROOT / "events" / "env.json").read_text())
    values = {**env["Parameters"], **{name: value for logical in functions(TEMPLATE)
                                      for name, value in env.get(logical, {}).items()}}
    with deployed(TEMPLATE, parameters={"AwsEndpointUrl": moto_endpoint}, endpoint=moto_endpoint,
                  overrides={**values, "PLEO_BASE_URL": emulator.url}) as stack:
        assert {stack.environment(f)["AWS_ENDPOINT_URL"] for f in functions(TEMPLATE)} == {moto_endpoint}
        register_tenant(stack, emulator, "acme", webhook_secret=WEBHOOK_SECRET)

        run_id = fetch_acme(stack)
        event = load_event("diff-s3-manifest.json")
        event["Records"][0]["s3"]["object"]["key"] = keys.manifest_key("acme", run_id)
        assert stack.function("DiffFunction")(event)["runs"][0]["planned"]["create"] == 1
        queued = drain(stack.ref("ActionsQueue"))
        writer = stack.function("WriterFunction")
        assert writer({"Records": [_sqs_record(m, stack.attribute("ActionsQueue", "Arn")) for m in queued]}) == {
            "batchItemFailures": []}
        assert pleo_state(emulator)["ext-3000"] == ("Software", "3000", None, False)
        webhook = stack.function("WebhookFunction")
        status = json.loads(webhook(signed(run_status_event(run_id), WEBHOOK_SECRET))["body"])
        assert (status["status"], sum(status["applied"].values())) == ("completed", 4)
        assert webhook(signed(load_event("webhook-start-run.json"), WEBHOOK_SECRET))["statusCode"] == 202

        # Every call above went to moto_server (deployed() checks each one): without the parameter,
        # a function's first call would go to AWS, and is stopped before it leaves.
        stack.parameters["AwsEndpointUrl"] = ""  # its default, as on AWS
        assert [f for f in functions(TEMPLATE) if "AWS_ENDPOINT_URL" in stack.environment(f)] == []
        with pytest.raises(AssertionError, match="not moto_server"):
            stack.function("FetchFunction")(load_event("fetch-tenant.json"))


def run_status_event(run_id: str) -> dict[str, Any]:
    """events/webhook-start-run.json as a GET of the run's status (empty body, as README "Starting a run")."""
    event = load_event("webhook-start-run.json")
    path = f"/tenants/acme/runs/{run_id}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = "GET"
    event["body"] = ""
    return event
