"""The command line as a user runs it: a real process against the Pleo emulator on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from tests.support import API_KEY, COMPANY, SEED_PLEO, SEED_SOURCE, coa_sync, sync, write_csv


@pytest.fixture
def seeded(emulator):
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=SEED_PLEO)
    return emulator


def test_seed_scenario_prints_the_documented_action_table_then_converges(seeded, tmp_path):
    source = write_csv(tmp_path / "chart.csv", SEED_SOURCE)
    first = sync(seeded, source)
    assert first.returncode == 0, first.stderr
    rows = {tuple(line.split()[:3]) for line in first.stdout.splitlines()}
    assert {("^", "unarchive", "ext-2000"), ("+", "create", "ext-3000"), ("~", "update", "ext-4000"),
            ("-", "archive", "5000")} <= rows
    assert "name: 'Advertising' -> 'Marketing'" in first.stdout
    assert "Plan: 1 to create, 1 to unarchive, 1 to update, 1 to archive, 1 unchanged." in first.stdout
    assert "[coa-sync] writer: 4/4 actions settled" in first.stderr

    second = sync(seeded, source, "--json")
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["planned"] == {"create": 0, "update": 0, "unarchive": 0, "archive": 0, "noop": 4}
    assert report["api_calls"] == {"search": 2, "batch_create": 0, "put": 0}


def test_json_report_of_a_live_run(seeded, tmp_path):
    result = sync(seeded, write_csv(tmp_path / "chart.csv", SEED_SOURCE), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    counts = {"create": 1, "update": 1, "unarchive": 1, "archive": 1, "noop": 1}
    assert report["planned"] == counts and report["applied"] == counts
    assert report["failed"] == [] and report["errors"] == [] and report["pending"] == 0
    assert report["api_calls"] == {"search": 2, "batch_create": 1, "put": 3}
    assert report["run_id"]


def test_dry_run_changes_nothing(seeded, tmp_path):
    before = seeded.accounts(COMPANY)
    result = sync(seeded, write_csv(tmp_path / "chart.csv", SEED_SOURCE), "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True and report["planned"]["create"] == 1
    assert seeded.accounts(COMPANY) == before


def test_bad_rows_are_reported_the_rest_is_synced_and_exit_is_1(pleo, tmp_path):
    source = write_csv(tmp_path / "chart.csv", [("a", "1", "Cash", True), ("", "2", "No id", True),
                                                 ("b", "3", "Bank", "perhaps")])
    result = sync(pleo, source, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["applied"]["create"] == 1
    assert {(e["location"], e["externalId"], e["field"]) for e in report["errors"]} == {
        ("chart.csv:3", None, "externalId"), ("chart.csv:4", "b", "active")}
    assert [a["externalId"] for a in pleo.accounts(COMPANY)] == ["a"]


def test_items_pleo_rejects_are_listed_with_reasons_and_exit_is_1(emulator, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], tax_codes=["VAT25"])
    source = write_csv(tmp_path / "chart.csv", [("a", "1", "Cash", True, "VAT25"), ("b", "2", "Bank", True, "NOPE")])
    result = sync(emulator, source, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["failed"] == [{"externalId": "b", "action": "create", "reasons": ["OTHER"]}]
    assert report["applied"]["create"] == 1


@pytest.mark.parametrize(("content", "message"), [
    (b"externalId,code,name\na,1,Cash\n", "chart.csv:1: missing column(s) active"),
    (b"externalId,code,name,active\na,1,Caf\xe9,true\n", "chart.csv:2: not valid UTF-8"),
])
def test_a_file_that_cannot_be_read_is_exit_2_and_changes_nothing(pleo, tmp_path, content, message):
    (tmp_path / "chart.csv").write_bytes(content)
    result = sync(pleo, tmp_path / "chart.csv")
    assert result.returncode == 2
    assert message in result.stderr
    assert pleo.accounts(COMPANY) == [] and sum(pleo.calls.values()) == 0


def test_missing_file_is_exit_2(pleo, tmp_path):
    result = sync(pleo, tmp_path / "nope.csv")
    assert result.returncode == 2 and "cannot read source" in result.stderr


def test_wrong_credentials_are_exit_2_and_the_key_is_not_printed(pleo, tmp_path):
    result = sync(pleo, write_csv(tmp_path / "chart.csv", SEED_SOURCE), key="pls_wrong_secret_key")
    assert result.returncode == 2
    assert "HTTP 401" in result.stderr
    assert "pls_wrong_secret_key" not in result.stderr + result.stdout


def test_demo_runs_the_sample_sync_and_exits_0():
    result = coa_sync("demo")
    assert result.returncode == 0, result.stderr
    assert "Plan: 3 to create, 1 to unarchive, 1 to update, 2 to archive, 1 unchanged." in result.stdout
    assert "applied 3 create, 1 unarchive, 1 update, 2 archive" in result.stdout


def test_plan_shows_changes_before_and_after_and_changes_nothing(seeded, tmp_path):
    before = seeded.accounts(COMPANY)
    result = coa_sync("plan", "--source", write_csv(tmp_path / "chart.csv", SEED_SOURCE), "--pleo-url", seeded.url,
                      "--company-id", COMPANY, "--pleo-api-key", API_KEY)
    assert result.returncode == 0, result.stderr
    assert "~  update     ext-4000" in result.stdout and "name: 'Advertising' -> 'Marketing'" in result.stdout
    assert "-  archive    5000" in result.stdout and "nothing was changed in Pleo" in result.stdout
    assert seeded.accounts(COMPANY) == before


def test_the_api_key_can_stay_off_the_command_line(seeded, tmp_path, monkeypatch):
    source = write_csv(tmp_path / "chart.csv", SEED_SOURCE)
    base = ("sync", "--source", source, "--pleo-url", seeded.url, "--company-id", COMPANY, "--dry-run", "--json")
    missing = coa_sync(*base)
    assert missing.returncode == 2 and "give Pleo credentials: --pleo-oauth FILE.json" in missing.stderr
    key_file = tmp_path / "pleo.key"
    key_file.write_text(API_KEY + "\n")
    assert coa_sync(*base, "--pleo-api-key-file", str(key_file)).returncode == 0
    monkeypatch.setenv("COA_SYNC_PLEO_API_KEY", API_KEY)
    from_env = coa_sync(*base)
    assert from_env.returncode == 0 and json.loads(from_env.stdout)["planned"]["create"] == 1
    help_text = coa_sync("sync", "--help").stdout
    assert "prefer --pleo-oauth" in help_text and "COA_SYNC_PLEO_API_KEY" in help_text
