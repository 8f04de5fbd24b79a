"""The run-control commands against a deployed stack (--stack), on moto: the stack found by
its CloudFormation outputs, runs read from its table and bucket, approvals and redrives
queued for its writer."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber
from coa_sync.adapters.ledger import Ledger
from coa_sync.adapters.queues import DeadLetterQueue
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.adapters.tenants import TenantStore
from coa_sync.keys import plan_key
from coa_sync.models import (
    AccountFields,
    Action,
    ActionKind,
    ActionMessage,
    DeadLetter,
    FileSource,
    Plan,
    RunRequest,
    Tenant,
)
from coa_sync.pipeline import runs
from coa_sync_local import cli
from coa_sync_local.control import STACK_OUTPUTS

from tests.deployed_stack import REGION, STACK, command, deployed_stack
from tests.support import API_KEY, COMPANY
from tests.template_stack import load_template

RUN = "20261123T120000Z-0000aaaa"


@pytest.fixture
def stack(monkeypatch, emulator) -> Iterator[dict[str, str]]:
    with deployed_stack(monkeypatch, emulator) as outputs:
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="coa-sync/acme/pleo", SecretString=json.dumps({"apiKey": API_KEY}))
        seed(outputs)
        yield outputs


def seed(outputs: dict[str, str]) -> None:
    """acme with one run whose two archives were held, and one dead letter."""
    table, bucket = outputs["TenantsTableName"], outputs["SnapshotBucketName"]
    TenantStore(table).put(Tenant(tenant_id="acme", company_id=COMPANY, pleo_secret_name="coa-sync/acme/pleo",
                                  source=FileSource(uri=f"s3://{bucket}/sources/acme/accounts.csv")))
    held = [Action(kind=ActionKind.ARCHIVE, external_id=f"old-{n}", account_id=f"id-{n}",
                   desired=AccountFields(name=f"Old {n}"), before=AccountFields(name=f"Old {n}")) for n in range(2)]
    plan = Plan(actions=[], noop=3, held=held, held_reason="the source has no active accounts")
    SnapshotStore(bucket).put(plan_key("acme", RUN), plan)
    ledger = Ledger(table)
    record = runs.start(ledger, RunRequest(tenant_id="acme", trigger="schedule", run_id=RUN), 3600, lambda r: None,
                        company_id="c")
    runs.planned(ledger, record, plan, dry_run=False, finished=lambda record: None)
    message = ActionMessage(tenant_id="acme", run_id=RUN, action=held[0].model_copy(
        update={"kind": ActionKind.CREATE, "external_id": "new-1", "account_id": None, "before": None}))
    DeadLetterQueue(outputs["ActionsDeadLetterQueueUrl"]).send(DeadLetter(reasons=["NAME_EMPTY"], message=message))


def queued(url: str) -> list[dict]:
    sqs, bodies = boto3.client("sqs", region_name=REGION), []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        bodies += [json.loads(message["Body"]) for message in batch]
    return bodies


def test_the_outputs_and_parameter_the_commands_need_are_the_templates():
    template = load_template()
    assert set(STACK_OUTPUTS) | set(STACK["Outputs"]) <= set(template["Outputs"])
    assert set(STACK["Parameters"]) <= set(template["Parameters"])


def test_runs_and_show_read_the_stacks_table_and_bucket(stack, capsys):
    code, listed = command(capsys, "runs")
    assert code == 0 and [(r["runId"], r["status"], r["held"]) for r in listed["runs"]] == [
        (RUN, "needs_approval", 2)]
    code, shown = command(capsys, "show", RUN)
    assert code == 0 and shown["held"]["archives"] == ["old-0", "old-1"]
    assert [letter["reasons"] for letter in shown["failed"]] == [["NAME_EMPTY"]]


def test_approve_queues_the_held_archives_for_the_deployed_writer(stack, capsys):
    code, approved = command(capsys, "approve", RUN)
    assert code == 0 and approved["run"]["status"] == "applying" and approved["run"]["approvedBy"] == "cli"
    assert sorted((b["runId"], b["action"]["kind"], b["action"]["externalId"]) for b in queued(
        stack["ActionsQueueUrl"])) == [(RUN, "archive", "old-0"), (RUN, "archive", "old-1")]


def test_approve_releases_nothing_while_the_tenants_pleo_secret_is_refused(stack, capsys):
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId="coa-sync/acme/pleo", SecretString=json.dumps({"apiKey": "pls_rotated_away"}))
    assert cli.main(["approve", RUN, "--stack", "coa-sync", "--region", REGION]) == 2
    refused = capsys.readouterr().err
    assert "Pleo could not be reached with tenant 'acme''s credentials (PleoRequestError: HTTP 401" in refused
    assert "pls_rotated_away" not in refused
    assert queued(stack["ActionsQueueUrl"]) == []
    assert command(capsys, "show", RUN)[1]["run"]["status"] == "needs_approval"


def test_dlq_list_then_redrive_moves_the_letters_back_to_the_actions_queue(stack, capsys):
    code, listing = command(capsys, "dlq", "list")
    assert code == 0 and [letter["message"]["action"]["externalId"] for letter in listing["letters"]] == ["new-1"]
    code, moved = command(capsys, "dlq", "redrive")
    assert code == 0 and moved == {"moved": 1, "taskHandle": None, "superseded": {}}  # moto: no StartMessageMoveTask
    assert Ledger(stack["TenantsTableName"]).lock_holder("acme") == RUN  # reopened for its letter: live again
    (body,) = queued(stack["ActionsQueueUrl"])
    assert body["message"]["action"]["externalId"] == "new-1" and body["reasons"] == ["NAME_EMPTY"]
    assert command(capsys, "dlq", "list")[1]["letters"] == []


def test_a_stack_that_is_not_there_or_not_coa_sync_is_exit_2(stack, capsys):
    assert cli.main(["runs", "--stack", "nope", "--region", REGION]) == 2
    assert "cannot read stack 'nope'" in capsys.readouterr().err
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="other", TemplateBody=json.dumps({"Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}}}))
    assert cli.main(["runs", "--stack", "other", "--region", REGION]) == 2
    assert "not a coa-sync stack: no output SnapshotBucketName" in capsys.readouterr().err


def test_redrive_uses_sqs_own_message_move_task_where_sqs_has_it(stack):
    sqs = boto3.client("sqs", region_name=REGION)
    dlq, actions = stack["ActionsDeadLetterQueueUrl"], stack["ActionsQueueUrl"]
    arns = {url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for url in (dlq, actions)}
    with Stubber(sqs) as stubbed:  # the AWS answers moto cannot give
        stubbed.add_response("get_queue_attributes", {"Attributes": {"ApproximateNumberOfMessages": "1"}})
        for url in (dlq, actions):
            stubbed.add_response("get_queue_attributes", {"Attributes": {"QueueArn": arns[url]}},
                                 {"QueueUrl": url, "AttributeNames": ["QueueArn"]})
        stubbed.add_response("start_message_move_task", {"TaskHandle": "task-1"},
                             {"SourceArn": arns[dlq], "DestinationArn": arns[actions]})
        moved = DeadLetterQueue(dlq, sqs).redrive(actions)
        stubbed.assert_no_pending_responses()
    assert (moved.messages, moved.task_handle) == (1, "task-1")


def test_connect_link_signs_a_link_to_the_stacks_webhook_for_a_known_tenant(stack, capsys):
    from urllib.parse import parse_qs, urlsplit

    from coa_sync.adapters.pleo_connection import PleoConnections
    from coa_sync.pipeline.connect import link_signature

    assert cli.main(["tenants", "connect-link", "acme", "--stack", "coa-sync", "--region", REGION]) == 2
    assert "no secret coa-sync/pleo-oauth" in capsys.readouterr().err
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="coa-sync/pleo-oauth", SecretString=json.dumps({"linkKey": "link-key-0123456789abcdef"}))
    code, answer = command(capsys, "tenants", "connect-link", "acme", "--expires-in", "2")
    assert code == 0
    link = urlsplit(answer["link"])
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    assert (link.netloc, link.path, query["tenant"]) == ("abc.lambda-url.eu-west-1.on.aws", "/connect/pleo", "acme")
    assert query["signature"] == link_signature("link-key-0123456789abcdef", "acme", int(query["expires"]))
    assert cli.main(["tenants", "connect-link", "ghost", "--stack", "coa-sync", "--region", REGION]) == 2
    assert "no tenant 'ghost'" in capsys.readouterr().err

    # A tenant whose authorisation Pleo refused shows as needs_reauth in runs and show.
    PleoConnections(stack["TenantsTableName"]).mark_needs_reauth("acme", "invalid_grant: revoked")
    code, listed = command(capsys, "runs")
    assert code == 0 and listed["needsReauth"]["acme"]["reason"] == "invalid_grant: revoked"
    code, shown = command(capsys, "show", RUN)
    assert shown["pleoConnection"]["status"] == "needs_reauth"
