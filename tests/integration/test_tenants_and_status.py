"""Operating a deployment without raw DynamoDB JSON: `coa-sync tenants add|list|show|disable|enable|remove`
and `coa-sync status` against a deployed stack on moto (on the local state: tests/e2e/test_run_control.py).

Secrets go in through files, stdin or a prompt: never on the command line, and no command prints them."""

from __future__ import annotations

import io
import json
import sys

import boto3
import pytest
from coa_sync.adapters.ledger import Ledger
from coa_sync.adapters.pleo_connection import PleoConnections
from coa_sync.adapters.queues import DeadLetterQueue
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.adapters.tenants import TenantStore
from coa_sync.keys import plan_key
from coa_sync.models import (
    AccountFields,
    Action,
    ActionKind,
    ActionMessage,
    ArchiveGuard,
    DeadLetter,
    FileSource,
    Plan,
    RunRequest,
    Tenant,
)
from coa_sync.pipeline import runs
from coa_sync_local import cli

from tests.deployed_stack import REGION, command, deployed_stack, refused
from tests.support import COMPANY

PLEO_KEY = "pls_live_SECRETKEY_tenants_0a1b2c3d"
WEBHOOK_SECRET = "whsec_SECRETHOOK_tenants_4e5f6a7b"
THREDFI_KEY = "thr_SECRETSOURCE_8c9d0e1f"
SECRETS = (PLEO_KEY, WEBHOOK_SECRET, THREDFI_KEY)


@pytest.fixture
def stack(monkeypatch, emulator):
    with deployed_stack(monkeypatch, emulator) as outputs:
        yield outputs


@pytest.fixture
def files(tmp_path):
    """The secrets as an operator keeps them: files only they can read."""
    paths = {}
    for name, value in {"pleo": PLEO_KEY, "webhook": WEBHOOK_SECRET}.items():
        paths[name] = tmp_path / f"{name}.secret"
        paths[name].write_text(value + "\n")
        paths[name].chmod(0o600)
    return paths


def secret(name: str) -> dict:
    value = boto3.client("secretsmanager", region_name=REGION).get_secret_value(SecretId=name)
    return json.loads(value["SecretString"])


def secret_names() -> list[str]:
    return sorted(s["Name"] for s in boto3.client("secretsmanager", region_name=REGION).list_secrets()["SecretList"])


def no_secret_in(*texts: str) -> bool:
    return not any(value in text for value in SECRETS for text in texts)


def add_args(stack, tenant: str, *extra: str) -> list[str]:
    args = ["tenants", "add", tenant, "--company-id", COMPANY,
            "--source", f"s3://{stack['SnapshotBucketName']}/sources/{tenant}/accounts.csv", *extra]
    assert no_secret_in(*args)
    return args


def add(capsys, stack, tenant: str = "acme", *extra: str, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return command(capsys, *add_args(stack, tenant, *extra))


def test_add_writes_the_tenant_item_and_its_secrets_read_from_a_file_and_stdin(stack, files, capsys, monkeypatch):
    code, added = add(capsys, stack, "acme", "--pleo-api-key-from", str(files["pleo"]), "--webhook-secret-from", "-",
                      "--archive-guard-min", "25", "--archive-guard-percent", "5", stdin=WEBHOOK_SECRET + "\n",
                      monkeypatch=monkeypatch)
    assert code == 0 and added["secrets"] == {"coa-sync/acme/pleo": "created", "coa-sync/acme/webhook": "created"}
    assert TenantStore(stack["TenantsTableName"]).get("acme") == Tenant(
        tenant_id="acme", company_id=COMPANY, pleo_secret_name="coa-sync/acme/pleo",
        source=FileSource(uri=f"s3://{stack['SnapshotBucketName']}/sources/acme/accounts.csv"),
        webhook_secret_name="coa-sync/acme/webhook", archive_guard=ArchiveGuard(min_archives=25, percent=5))
    assert secret("coa-sync/acme/pleo") == {"apiKey": PLEO_KEY}
    assert secret("coa-sync/acme/webhook") == {"secret": WEBHOOK_SECRET}
    assert no_secret_in(json.dumps(added), capsys.readouterr().err)
    stored = boto3.client("dynamodb", region_name=REGION).scan(TableName=stack["TenantsTableName"])["Items"]
    assert no_secret_in(json.dumps(stored))  # the item names its secrets; their values are in Secrets Manager only

    assert cli.main(["tenants", "show", "acme", "--stack", "coa-sync", "--region", REGION]) == 0
    shown = capsys.readouterr()
    assert "coa-sync/acme/pleo (pleo; present)" in shown.out and "max(25, 5%)" in shown.out
    assert no_secret_in(shown.out, shown.err)


def test_add_asks_for_the_key_at_a_prompt_and_only_where_there_is_a_terminal(stack, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal: a script
    assert "no terminal to ask for the Pleo API key on" in refused(capsys, *add_args(stack, "acme"))
    assert secret_names() == []

    prompts = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or PLEO_KEY)
    code, added = add(capsys, stack, "acme")
    assert code == 0 and prompts == ["Pleo API key: "]
    assert secret("coa-sync/acme/pleo") == {"apiKey": PLEO_KEY} and no_secret_in(json.dumps(added))

    monkeypatch.setenv("COA_SYNC_PLEO_API_KEY", PLEO_KEY)  # as sync reads it: no prompt then
    assert add(capsys, stack, "beta")[0] == 0 and prompts == ["Pleo API key: "]
    assert secret("coa-sync/beta/pleo") == {"apiKey": PLEO_KEY}


@pytest.mark.parametrize(("tenant", "extra", "message"), [
    ("Acme Corp", [], "not a valid tenant: TENANT: String should match pattern"),
    ("acme", ["--archive-guard-percent", "150"],
     "not a valid tenant: --archive-guard-min/--archive-guard-percent: Input should be less than or equal to 100"),
    ("acme", ["--pleo-api-key-from", "/nonexistent/key"], "cannot read the Pleo API key from /nonexistent/key"),
    ("acme", ["--webhook-secret-from", "SHORT"], "the webhook secret must be at least 16 characters, not 5"),
    ("acme", ["--webhook-secret-from", "-", "--pleo-api-key-from", "-"], "only one secret can come from stdin"),
])
def test_add_refuses_bad_input_and_writes_nothing(stack, files, tmp_path, capsys, tenant, extra, message):
    if "SHORT" in extra:
        (tmp_path / "short").write_text("short")
        extra = [str(tmp_path / "short") if value == "SHORT" else value for value in extra]
    if "--pleo-api-key-from" not in extra:
        extra = [*extra, "--pleo-api-key-from", str(files["pleo"])]
    assert message in refused(capsys, *add_args(stack, tenant, *extra))
    assert secret_names() == [] and TenantStore(stack["TenantsTableName"]).all() == []


def test_a_tenant_that_connects_by_oauth_is_added_without_a_pleo_secret(stack, capsys):
    code, added = add(capsys, stack, "acme", "--connect-by-oauth")
    assert code == 0 and added["secrets"] == {} and secret_names() == []
    assert TenantStore(stack["TenantsTableName"]).get("acme").pleo_secret_name == "coa-sync/acme/pleo"


def test_add_refuses_a_source_the_functions_cannot_read_and_an_existing_tenant(stack, files, capsys):
    elsewhere = refused(capsys, "tenants", "add", "acme", "--company-id", COMPANY, "--source", "s3://elsewhere/a.csv",
                        "--pleo-api-key-from", str(files["pleo"]))
    assert f"--source must be s3://{stack['SnapshotBucketName']}/sources/... (the functions read sources only " \
           "there), not 's3://elsewhere/a.csv'" in elsewhere
    assert add(capsys, stack, "acme", "--pleo-api-key-from", str(files["pleo"]))[0] == 0
    again = refused(capsys, *add_args(stack, "acme", "--pleo-api-key-from", str(files["pleo"]), "--disabled"))
    assert "tenant 'acme' already exists in the stack coa-sync" in again
    assert TenantStore(stack["TenantsTableName"]).get("acme").enabled  # left as it was
    code, replaced = add(capsys, stack, "acme", "--pleo-api-key-from", str(files["pleo"]), "--disabled", "--replace")
    assert code == 0 and replaced["secrets"] == {"coa-sync/acme/pleo": "updated"}
    assert not TenantStore(stack["TenantsTableName"]).get("acme").enabled


def test_an_accounting_system_tenant_gets_its_credentials_secret_under_the_prefix(stack, files, tmp_path, capsys,
                                                                                 monkeypatch):
    config = tmp_path / "thredfi.json"
    config.write_text(json.dumps({"source": {"kind": "thredfi", "businessId": "3c90c3cc-0d44-4b50-8888-8dd25736052a"}}))
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"partnerUuid": "p-1", "apiKey": THREDFI_KEY})))
    code, added = command(capsys, "tenants", "add", "books", "--company-id", COMPANY, "--source-config", str(config),
                          "--pleo-api-key-from", str(files["pleo"]), "--source-credentials-from", "-")
    assert code == 0, capsys.readouterr().err
    tenant = TenantStore(stack["TenantsTableName"]).get("books")
    assert (tenant.source.kind, tenant.source.secret_name) == ("thredfi", "coa-sync/books/thredfi")
    assert secret("coa-sync/books/thredfi") == {"partnerUuid": "p-1", "apiKey": THREDFI_KEY}
    assert no_secret_in(json.dumps(added))


def test_list_disable_enable_and_remove(stack, files, capsys):
    for tenant in ("acme", "beta"):
        assert add(capsys, stack, tenant, "--pleo-api-key-from", str(files["pleo"]))[0] == 0
    store, ledger = TenantStore(stack["TenantsTableName"]), Ledger(stack["TenantsTableName"])
    assert [t["tenantId"] for t in command(capsys, "tenants", "list")[1]["tenants"]] == ["acme", "beta"]

    assert command(capsys, "tenants", "disable", "acme") == (0, {"tenantId": "acme", "enabled": False})
    assert [t.tenant_id for t in store.enabled()] == ["beta"]  # what the schedule runs
    assert command(capsys, "tenants", "enable", "acme")[0] == 0 and len(store.enabled()) == 2
    assert "no tenant 'nope' in the stack coa-sync" in refused(capsys, "tenants", "disable", "nope")

    runs.start(ledger, RunRequest(tenant_id="acme", trigger="cli", run_id="20261123T120000Z-0000aaaa"), 3600,
               lambda record: None)
    assert "tenant 'acme' has run 20261123T120000Z-0000aaaa in progress" in refused(capsys, "tenants", "remove",
                                                                                     "acme")
    runs.fail(ledger, ledger.get("acme", "20261123T120000Z-0000aaaa"), "stopped", lambda record: None)
    code, removed = command(capsys, "tenants", "remove", "acme")
    assert code == 0 and removed["secretsDeleted"] == ["coa-sync/acme/pleo"]
    assert store.get("acme") is None and [r.run_id for r in ledger.runs("acme")] == ["20261123T120000Z-0000aaaa"]
    described = boto3.client("secretsmanager", region_name=REGION).describe_secret(SecretId="coa-sync/acme/pleo")
    assert "DeletedDate" in described  # scheduled for deletion, restorable
    # Added again within the recovery window: the secret is restored and takes the new key.
    code, added = add(capsys, stack, "acme", "--pleo-api-key-from", str(files["pleo"]))
    assert code == 0 and added["secrets"] == {"coa-sync/acme/pleo": "restored and updated"}
    assert secret("coa-sync/acme/pleo") == {"apiKey": PLEO_KEY}


def test_status_shows_each_tenants_last_run_what_needs_approval_the_dlq_and_reconnecting(stack, files, capsys):
    for tenant in ("acme", "beta", "gamma"):
        assert add(capsys, stack, tenant, "--pleo-api-key-from", str(files["pleo"]))[0] == 0
    table, ledger = stack["TenantsTableName"], Ledger(stack["TenantsTableName"])
    held = [Action(kind=ActionKind.ARCHIVE, external_id=f"old-{n}", account_id=f"id-{n}",
                   desired=AccountFields(name=f"Old {n}"), before=AccountFields(name=f"Old {n}")) for n in range(2)]
    plan = Plan(actions=[], noop=3, held=held, held_reason="the source has no active accounts")
    for run_id, dry_run in (("20261123T120000Z-0000aaaa", False), ("20261123T130000Z-0000bbbb", True)):
        SnapshotStore(stack["SnapshotBucketName"]).put(plan_key("acme", run_id), plan)
        record = runs.start(ledger, RunRequest(tenant_id="acme", trigger="schedule", dry_run=dry_run, run_id=run_id),
                            3600, lambda record: None, company_id="c")
        runs.planned(ledger, record, plan, dry_run=dry_run, finished=lambda record: None)
    DeadLetterQueue(stack["ActionsDeadLetterQueueUrl"]).send(DeadLetter(reasons=["NAME_EMPTY"], message=ActionMessage(
        tenant_id="acme", run_id="20261123T120000Z-0000aaaa", action=held[0])))
    PleoConnections(table).mark_needs_reauth("beta", "invalid_grant")  # as a refused token refresh marks it

    code, status = command(capsys, "status")
    assert code == 0
    by_tenant = {entry["tenantId"]: entry for entry in status["tenants"]}
    acme = by_tenant["acme"]
    assert acme["lastRun"]["runId"] == "20261123T130000Z-0000bbbb" and acme["lastRun"]["dryRun"]
    assert acme["needsApproval"] == {"runId": "20261123T120000Z-0000aaaa", "held": 2}  # the live run, not the plan
    assert (acme["deadLetters"], acme["needsReauth"]) == (1, None)
    assert by_tenant["beta"]["needsReauth"]["reason"] == "invalid_grant" and by_tenant["beta"]["needsApproval"] is None
    assert (by_tenant["gamma"]["lastRun"], by_tenant["gamma"]["deadLetters"]) == (None, 0)

    assert cli.main(["status", "--stack", "coa-sync", "--region", REGION]) == 0
    text = capsys.readouterr().out
    assert "coa-sync approve 20261123T120000Z-0000aaaa --stack coa-sync" in text
    assert "acme: 1 failed item(s): coa-sync dlq list --stack coa-sync" in text
    assert "beta: Pleo no longer accepts its authorisation (invalid_grant)" in text
    assert "coa-sync tenants connect-link beta --stack NAME" in text
    assert command(capsys, "tenants", "list")[1]["tenants"][1]["needsReauth"]["status"] == "needs_reauth"
