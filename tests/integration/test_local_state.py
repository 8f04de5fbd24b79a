"""The local state: what one command leaves, the next one finds; secrets never reach the disk;
a run whose command died is closed, not left holding its tenant."""

from __future__ import annotations

import json

import pytest
from coa_sync.adapters.ledger import Ledger
from coa_sync.models import FileSource, RunRequest, Tenant
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
        runs.start(Ledger(local.TABLE), RunRequest(tenant_id="acme", trigger="cli"), "20261123T120000Z-dead0000")
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
