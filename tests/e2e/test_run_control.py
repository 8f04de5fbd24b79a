"""Run control from the command line, each command its own process sharing the local state:
runs, show, diff, approve, dlq list, dlq redrive."""

from __future__ import annotations

import fcntl
import json

import pytest

from tests.support import API_KEY, COMPANY, coa_sync, sync, write_csv

PLEO = [{"externalId": f"acc-{n}", "code": str(n), "name": f"Account {n}", "archived": False} for n in range(1, 4)] \
    + [{"externalId": "old", "code": "9", "name": "Old", "archived": True}]


def pleo_options(emulator) -> list[str]:
    return ["--pleo-url", emulator.url, "--pleo-api-key", API_KEY]


def as_json(result) -> dict:
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def seeded(emulator):
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=PLEO)
    return emulator


def test_an_empty_source_holds_every_archive_and_approve_releases_exactly_those(seeded, tmp_path):
    empty = write_csv(tmp_path / "empty.csv", [])
    held = as_json(sync(seeded, empty, "--json"))
    assert held["status"] == "needs_approval" and held["held"]["archive"] == 3
    assert held["applied"]["archive"] == 0
    assert all(not account["archived"] for account in seeded.accounts(COMPANY) if account["externalId"] != "old")

    listed = as_json(coa_sync("runs", "--json"))["runs"]
    assert [(run["runId"], run["status"], run["held"]) for run in listed] == [(held["run_id"], "needs_approval", 3)]
    shown = as_json(coa_sync("show", held["run_id"], "--json"))
    assert sorted(shown["held"]["archives"]) == ["acc-1", "acc-2", "acc-3"]
    assert "source has no active accounts" in shown["held"]["reason"]
    assert f"coa-sync approve {held['run_id']}" in coa_sync("show", held["run_id"]).stdout

    no_pleo = coa_sync("approve", held["run_id"])
    assert no_pleo.returncode == 2 and "--pleo-url" in no_pleo.stderr

    approved = coa_sync("approve", held["run_id"], *pleo_options(seeded), "--json")
    assert approved.returncode == 0, approved.stderr
    run = json.loads(approved.stdout)["run"]
    assert run["status"] == "completed" and run["approvedBy"] == "cli"
    assert run["planned"]["archive"] == run["applied"]["archive"] == 3 and run["held"] == 0
    assert {a["externalId"]: a["archived"] for a in seeded.accounts(COMPANY)} == {
        "acc-1": True, "acc-2": True, "acc-3": True, "old": True}
    # exactly the held archives: three PUTs, nothing else written
    assert seeded.calls.get("put", 0) == 3 and seeded.calls.get("batch_create", 0) == 0

    again = coa_sync("approve", held["run_id"], *pleo_options(seeded))
    assert again.returncode == 2 and "nothing to approve" in again.stderr


def test_only_the_latest_held_run_can_be_approved(seeded, tmp_path):
    empty = write_csv(tmp_path / "empty.csv", [])
    first = as_json(sync(seeded, empty, "--json"))["run_id"]
    second = as_json(sync(seeded, empty, "--json"))["run_id"]
    refused = coa_sync("approve", first, *pleo_options(seeded))
    assert refused.returncode == 2 and f"run {second} started after run {first}" in refused.stderr
    assert not any(a["archived"] for a in seeded.accounts(COMPANY) if a["externalId"] != "old")


def test_an_approve_with_a_wrong_key_releases_nothing_and_can_be_made_again_with_the_right_one(seeded, tmp_path):
    held = as_json(sync(seeded, write_csv(tmp_path / "empty.csv", []), "--json"))["run_id"]
    wrong = coa_sync("approve", held, "--pleo-url", seeded.url, "--pleo-api-key", "pls_not_the_key_4242", "--json")
    assert wrong.returncode == 2
    assert "Pleo could not be reached with tenant 'local''s credentials (PleoRequestError: HTTP 401" in wrong.stderr
    assert f"nothing was released: run {held} still needs approval" in wrong.stderr
    assert "pls_not_the_key_4242" not in wrong.stdout + wrong.stderr
    run = as_json(coa_sync("show", held, "--json"))["run"]
    assert (run["status"], run["held"], run["failed"], run["approvedAt"]) == ("needs_approval", 3, 0, None)
    assert as_json(coa_sync("dlq", "list", "--json"))["letters"] == []
    assert seeded.calls.get("put", 0) == 0

    approved = coa_sync("approve", held, *pleo_options(seeded), "--json")
    assert approved.returncode == 0, approved.stderr
    run = json.loads(approved.stdout)["run"]
    assert (run["status"], run["applied"]["archive"], run["failed"]) == ("completed", 3, 0)
    assert seeded.calls.get("put", 0) == 3 and seeded.calls.get("batch_create", 0) == 0  # exactly the held archives
    assert [a["externalId"] for a in seeded.accounts(COMPANY) if a["archived"]] == ["acc-1", "acc-2", "acc-3", "old"]


def test_a_plan_after_a_guarded_sync_leaves_its_held_archives_approvable(seeded, tmp_path):
    empty = write_csv(tmp_path / "empty.csv", [])
    held = as_json(sync(seeded, empty, "--json"))["run_id"]
    planned = as_json(coa_sync("plan", "--source", empty, "--pleo-url", seeded.url, "--company-id", COMPANY,
                               "--pleo-api-key", API_KEY, "--json"))
    assert planned["dry_run"] is True and planned["held"]["archive"] == 3
    approved = coa_sync("approve", held, *pleo_options(seeded), "--json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["run"]["applied"]["archive"] == 3


def test_a_tenants_own_guard_setting_holds_what_the_default_would_let_through(seeded, tmp_path):
    two_left = write_csv(tmp_path / "chart.csv", [("acc-1", "1", "Account 1", True)])
    held = as_json(sync(seeded, two_left, "--archive-guard-min", "1", "--archive-guard-percent", "0", "--json"))
    assert held["held"]["archive"] == 2 and "max(1, 0%)" in held["held"]["reason"]


def test_diff_shows_how_the_source_chart_changed_between_two_runs(seeded, tmp_path):
    chart = tmp_path / "chart.csv"
    first = as_json(sync(seeded, write_csv(chart, [("acc-1", "1", "Account 1", True), ("acc-2", "2", "Account 2", True),
                                                   ("acc-3", "3", "Account 3", True)]), "--json"))["run_id"]
    second = as_json(sync(seeded, write_csv(chart, [("acc-1", "1", "Cash", True), ("acc-2", "2", "Account 2", False),
                                                    ("acc-4", "4", "New", True)]), "--json"))["run_id"]
    changes = as_json(coa_sync("diff", first, second, "--json"))["changes"]
    assert [(c["externalId"], c["kind"], c["changes"]) for c in changes] == [
        ("acc-1", "changed", ["name"]), ("acc-2", "deactivated", []), ("acc-3", "removed", []),
        ("acc-4", "added", [])]
    text = coa_sync("diff", first, second).stdout
    assert "name: 'Account 1' -> 'Cash'" in text and "1 added, 1 removed, 1 changed, 1 deactivated." in text


def test_dlq_list_shows_failed_items_with_reasons_and_redrive_applies_them_after_a_fix(emulator, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], tax_codes=["VAT25"])
    chart = write_csv(tmp_path / "chart.csv", [("a", "1", "Cash", True, "VAT25"), ("b", "2", "Bank", True, "VAT12")])
    run_id = as_json(sync(emulator, chart, "--json"))["run_id"]

    letters = as_json(coa_sync("dlq", "list", "--json"))["letters"]
    assert [(letter["message"]["runId"], letter["message"]["action"]["externalId"], letter["reasons"])
            for letter in letters] == [(run_id, "b", ["OTHER"])]
    assert as_json(coa_sync("dlq", "list", "--run", "20200101T000000Z-00000000", "--json"))["letters"] == []
    assert "OTHER" in coa_sync("show", run_id).stdout

    emulator.add_tax_codes(COMPANY, ["VAT12"])  # the fix, made in Pleo
    redriven = coa_sync("dlq", "redrive", *pleo_options(emulator), "--json")
    assert redriven.returncode == 0, redriven.stderr
    assert json.loads(redriven.stdout)["moved"] == 1 and json.loads(redriven.stdout)["failed"] == []
    assert sorted(a["externalId"] for a in emulator.accounts(COMPANY)) == ["a", "b"]
    assert as_json(coa_sync("dlq", "list", "--json"))["letters"] == []
    run = as_json(coa_sync("show", run_id, "--json"))["run"]
    assert (run["applied"]["create"], run["failed"]) == (2, 0)  # the redriven item counts as applied, not failed


def test_unknown_runs_and_a_busy_state_are_exit_2(state_dir):
    unknown = coa_sync("show", "20200101T000000Z-00000000")
    assert unknown.returncode == 2 and "no run 20200101T000000Z-00000000" in unknown.stderr
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        busy = coa_sync("runs")
    assert busy.returncode == 2 and "another coa-sync command is using" in busy.stderr


def test_status_reads_the_local_state_and_changing_tenants_needs_a_stack(pleo, tmp_path):
    run_id = as_json(sync(pleo, write_csv(tmp_path / "chart.csv", [("a", "1", "Cash", True)]), "--json"))["run_id"]
    (local,) = as_json(coa_sync("status", "--json"))["tenants"]
    assert local["tenantId"] == "local"
    assert (local["lastRun"]["runId"], local["lastRun"]["status"]) == (run_id, "completed")
    assert local["needsApproval"] is None and local["deadLetters"] == 0
    refused = coa_sync("tenants", "disable", "local")
    assert refused.returncode == 2 and "tenants disable is for a deployed stack: give --stack NAME" in refused.stderr
