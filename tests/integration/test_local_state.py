"""The local state: what one command leaves, the next one finds; secrets never reach the disk;
a run whose command died is closed, not left holding its tenant; a state an earlier version
saved as files is imported."""

from __future__ import annotations

import json

import pytest
from boto3.dynamodb.types import TypeSerializer
from coa_sync.adapters.ledger import Ledger
from coa_sync.models import (
    AccountFields,
    Action,
    ActionKind,
    ActionMessage,
    DeadLetter,
    FileSource,
    RunRequest,
    Tenant,
)
from coa_sync.pipeline import runs
from coa_sync_local import runner as local
from coa_sync_local.runner import LocalRunner, RunnerOptions
from coa_sync_local.state import LocalState, StateError

from tests.support import API_KEY, COMPANY, write_csv

ACME = Tenant(tenant_id="acme", company_id=COMPANY, pleo_secret_name="coa-sync/acme/pleo",
              source=FileSource(uri="unused"))


def a_runner(directory, emulator) -> tuple[LocalState, LocalRunner]:
    state = LocalState(directory)
    return state, LocalRunner(RunnerOptions(pleo_url=emulator.url, visibility_timeout=0), state=state)


def test_a_second_command_finds_the_first_ones_runs_files_and_dead_letters(emulator, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], tax_codes=["VAT25"])
    chart = write_csv(tmp_path / "chart.csv", [("a", "1", "Cash", True, "VAT25"), ("b", "2", "Bank", True, "NOPE")])
    tenant = ACME.model_copy(update={"source": FileSource(uri=chart)})
    state, runner = a_runner(tmp_path / "state", emulator)
    with state, runner:
        runner.add_tenant(tenant, {"apiKey": API_KEY})
        first = runner.run("acme")
    assert [item.external_id for item in first.failed] == ["b"]

    state, runner = a_runner(tmp_path / "state", emulator)
    with state, runner:
        record = Ledger(local.TABLE).get("acme", first.run_id)
        assert record is not None and (record.status, record.applied.create, record.failed) == ("completed", 1, 1)
        assert [(letter.message.action.external_id, letter.reasons) for letter in runner.dead_letters()] == [
            ("b", ["OTHER"])]
        listed = runner.s3.list_objects_v2(Bucket=local.BUCKET, Prefix=f"runs/acme/{first.run_id}/")["Contents"]
        assert len(listed) == 5  # snapshots, manifest, plan, report
        # the secret was not restored: a run needs the credentials again
        runner.set_pleo_credentials(tenant, {"apiKey": API_KEY})
        second = runner.run("acme")
        assert second.plan.counts().create == 1 and [item.external_id for item in second.failed] == ["b"]

    on_disk = b"".join(path.read_bytes() for path in (tmp_path / "state").rglob("*") if path.is_file())
    assert API_KEY.encode() not in on_disk
    assert b"coa-sync/acme/pleo" in on_disk  # the secret's name is config; its value is not


def test_a_run_whose_command_died_is_closed_as_failed_and_frees_its_tenant(emulator, tmp_path):
    state, runner = a_runner(tmp_path / "state", emulator)
    with state, runner:
        runner.add_tenant(ACME, {"apiKey": API_KEY})
        runs.start(Ledger(local.TABLE), RunRequest(tenant_id="acme", trigger="cli", run_id="20261123T120000Z-dead0000"),
                   ttl_seconds=60, finished=lambda record: None)
    # the command ended here without the run ending (killed, say)

    state, runner = a_runner(tmp_path / "state", emulator)
    with state, runner:
        ledger = Ledger(local.TABLE)
        record = ledger.get("acme", "20261123T120000Z-dead0000")
        assert record is not None and record.status == "failed" and "interrupted" in (record.error or "")
        assert ledger.lock_holder("acme") is None
        report = runner.s3.get_object(Bucket=local.BUCKET, Key="runs/acme/20261123T120000Z-dead0000/report.json")
        assert json.loads(report["Body"].read())["status"] == "failed"


def test_a_corrupt_state_file_is_named_with_its_line(emulator, tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "table.jsonl").write_text('{"pk": {"S": "x"}, "sk": {"S": "y"}}\nnot json\n')
    state, _ = a_runner(tmp_path / "state", emulator)
    with pytest.raises(StateError, match=r"table\.jsonl:2: not a JSON line"):
        state.__enter__()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "state.db").write_bytes(b"not a database at all, but long enough to look like one " * 40)
    with pytest.raises(StateError, match=r"other/state\.db: not a coa-sync state database \(file is not a database\)"):
        LocalState(tmp_path / "other").__enter__()


def test_a_state_saved_as_files_by_an_earlier_version_is_imported(emulator, tmp_path):
    directory = tmp_path / "state"
    typed = TypeSerializer()
    record = {"pk": "TENANT#acme", "sk": "RUN#20261123T120000Z-0000aaaa", "tenantId": "acme",
              "runId": "20261123T120000Z-0000aaaa", "trigger": "cli", "status": "completed",
              "startedAt": "2026-11-23T12:00:00Z", "failed": 1}
    config = {"pk": "TENANT#acme", "sk": "CONFIG", **json.loads(ACME.model_dump_json())}
    (directory / "queues").mkdir(parents=True)
    (directory / "table.jsonl").write_text("".join(
        json.dumps({name: typed.serialize(value) for name, value in item.items()}) + "\n" for item in (config, record)))
    report = directory / "s3" / "runs" / "acme" / record["runId"] / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text('{"status": "completed"}')
    action = Action(kind=ActionKind.CREATE, external_id="b", desired=AccountFields(name="Bank"))
    letter = DeadLetter(reasons=["OTHER"], message=ActionMessage(tenant_id="acme", run_id=record["runId"],
                                                                 action=action))
    (directory / "queues" / f"{local.DEAD_LETTER_QUEUE}.jsonl").write_text(json.dumps(
        {"body": letter.model_dump_json(), "attributes": {"runId": {"StringValue": record["runId"],
                                                                    "DataType": "String"}}}) + "\n")

    for _ in range(2):  # imported once, then read from the database
        state, runner = a_runner(directory, emulator)
        with state, runner:
            assert Ledger(local.TABLE).get("acme", record["runId"]).failed == 1
            assert [(d.message.action.external_id, d.reasons) for d in runner.dead_letters()] == [("b", ["OTHER"])]
            body = runner.s3.get_object(Bucket=local.BUCKET, Key=f"runs/acme/{record['runId']}/report.json")["Body"]
            assert json.loads(body.read()) == {"status": "completed"}
        assert [path.name for path in directory.iterdir() if not path.name.startswith(".")] == ["state.db"]
