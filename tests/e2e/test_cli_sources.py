"""The command line with an accounting system as the source: flags, a tenant config file, the demo."""

from __future__ import annotations

import json
import sys

import pytest
from coa_sync.observability import logger
from coa_sync_local.cli import main

from tests.as_systems import BUSINESS, PARTNER, SECRET_KEY, chart, dualentry, thredfi
from tests.e2e.test_cli import coa_sync
from tests.support import API_KEY, COMPANY, write_csv


@pytest.fixture(autouse=True)
def _log_stream_outlives_capsys():
    """The runner points its log handler at sys.stderr, which capsys closes after each test."""
    yield
    logger.registered_handler.stream = sys.__stderr__


def test_sync_from_thredfi_with_flags_mirrors_its_active_chart(pleo):
    rows = chart(12, inactive_every=4)
    with thredfi(rows) as system:
        result = coa_sync("sync", "--source-kind", "thredfi", "--source-url", system.emulator.url,
                          "--source-setting", f"businessId={BUSINESS}", "--source-credential", f"partnerUuid={PARTNER}",
                          "--source-credential", f"apiKey={SECRET_KEY}", "--pleo-url", pleo.url,
                          "--company-id", COMPANY, "--pleo-api-key", API_KEY, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["planned"]["create"] == 9 and report["failed"] == [] and report["errors"] == []
    assert sorted(a["externalId"] for a in pleo.accounts(COMPANY)) == sorted(
        f"thr-{key}" for key, _, _, active in rows if active)
    assert SECRET_KEY not in result.stdout + result.stderr


def test_sync_from_a_tenant_config_file_with_a_wrong_key_is_exit_2_naming_the_system(pleo, tmp_path, capsys):
    with dualentry(chart(3)) as system:
        config = tmp_path / "tenant.json"
        config.write_text(json.dumps({"source": {"kind": "dualentry", "baseUrl": system.emulator.url},
                                      "sourceCredentials": {"apiKey": "not-the-key"}}))
        code = main(["sync", "--source-config", str(config), "--pleo-url", pleo.url, "--company-id", COMPANY,
                     "--pleo-api-key", API_KEY])
    out, err = capsys.readouterr()
    assert code == 2
    assert "dualentry: HTTP 403" in err and "API key authentication failed" in err
    assert "not-the-key" not in out + err
    assert pleo.accounts(COMPANY) == []


def test_missing_source_settings_are_exit_2_before_anything_runs(capsys):
    code = main(["sync", "--source-kind", "stackone", "--source-credential", "apiKey=k", "--pleo-url",
                 "http://127.0.0.1:9", "--company-id", COMPANY, "--pleo-api-key", API_KEY])
    assert code == 2
    error = capsys.readouterr().err
    assert "stackone source settings" in error and "accountId" in error and "companyId" in error


@pytest.mark.parametrize("source", [
    ["--source", "stackone"],
    ["--source", "thredfi", "--source-shape", "page_shape=links", "--source-shape", "error_shape=guide"],
])
def test_demo_with_an_accounting_system_source(source, capsys):
    assert main(["demo", *source, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["planned"] == report["applied"] == {"create": 3, "update": 1, "unarchive": 1, "archive": 2,
                                                      "noop": 1}


def test_demo_shape_a_system_does_not_document_is_exit_2_naming_what_it_plays(capsys):
    assert main(["demo", "--source", "dualentry", "--source-shape", "page_shape=links"]) == 2
    assert "the dualentry emulator plays list_shape=object|array" in capsys.readouterr().err


def test_sync_copies_a_dualentry_chart_into_thredfi_a_second_run_plans_nothing_and_unsupported_is_reported():
    rows = chart(8, inactive_every=4)  # six active accounts
    active = {code: name for _, code, name, on in rows if on}
    with dualentry(rows) as source, thredfi([]) as target:
        flags = ["--source-kind", "dualentry", "--source-url", source.emulator.url,
                 "--source-credential", f"apiKey={SECRET_KEY}",
                 "--target-kind", "thredfi", "--target-url", target.emulator.url,
                 "--target-setting", f"businessId={BUSINESS}", "--target-credential", f"partnerUuid={PARTNER}",
                 "--target-credential", f"apiKey={SECRET_KEY}"]
        first = coa_sync("sync", *flags, "--json")
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        assert report["planned"] == report["applied"] == {"create": 6, "update": 0, "unarchive": 0, "archive": 0,
                                                          "noop": 0}
        assert report["status"] == "completed" and report["failed"] == [] and report["unsupported"]["count"] == 0
        copied = target.emulator.accounts(BUSINESS)
        assert {a["code"]: a["name"] for a in copied if a["is_active"]} == active
        assert all(a["external_id"] == a["code"] for a in copied)  # the key the next run reads back, via `code`

        second = coa_sync("sync", *flags)
        assert second.returncode == 0, second.stderr
        assert "No changes: Thredfi already matches the source." in second.stdout
        assert "Plan: 0 to create, 0 to unarchive, 0 to update, 0 to archive, 6 unchanged." in second.stdout

        # Deactivated in DualEntry: archived in Thredfi. Archived in Thredfi by hand: unarchiving it is an
        # update, which Thredfi cannot take: reported with the reason, not queued.
        source.emulator.set_active(SECRET_KEY, 1002, False)
        target.emulator.set_active(BUSINESS, "1001", False)
        third = coa_sync("sync", *flags, "--json")
        shown = coa_sync("plan", *flags)  # the plan as a table: the unsupported action, with its reason
    assert shown.returncode == 1, shown.stderr
    assert "1 action(s) not taken, unsupported by the target:" in shown.stdout
    assert "  unsupported by the target: thredfi cannot update accounts" in shown.stdout
    assert "  # unarchive 1001 (Account 1)" in shown.stdout
    assert third.returncode == 1, third.stderr  # the run ended with an action not taken
    report = json.loads(third.stdout)
    assert report["planned"]["archive"] == report["applied"]["archive"] == 1 and report["status"] == "completed"
    assert report["planned"]["unarchive"] == 0
    assert report["unsupported"] == {"count": 1, "actions": [{"externalId": "1001", "action": "unarchive"}],
                                     "reasons": {"unarchive": "unsupported by the target: thredfi cannot update "
                                                              "accounts (Thredfi documents no endpoint that updates "
                                                              "an account)"}}
    assert {a["code"] for a in target.emulator.accounts(BUSINESS) if not a["is_active"]} == {"1001", "1002"}
    assert SECRET_KEY not in first.stdout + first.stderr + second.stdout + third.stdout + third.stderr


def test_approve_and_redrive_locally_apply_to_an_accounting_system_target_with_its_credentials(tmp_path):
    empty = write_csv(tmp_path / "empty.csv", [])
    with thredfi(chart(3)) as target:
        where = ["--target-kind", "thredfi", "--target-url", target.emulator.url,
                 "--target-setting", f"businessId={BUSINESS}"]
        credentials = ["--target-credential", f"partnerUuid={PARTNER}", "--target-credential", f"apiKey={SECRET_KEY}"]
        held = json.loads(coa_sync("sync", "--source", empty, *where, *credentials, "--json").stdout)
        assert held["status"] == "needs_approval" and held["held"]["archive"] == 3

        # Locally the command applies the archives itself: to the tenant's own target, with its credentials.
        bare = coa_sync("approve", held["run_id"])
        assert bare.returncode == 2 and "--target-credential" in bare.stderr and "--pleo-url" not in bare.stderr
        approved = coa_sync("approve", held["run_id"], *credentials, "--json")
        assert approved.returncode == 0, approved.stderr
        run = json.loads(approved.stdout)["run"]
        assert run["status"] == "completed" and run["applied"]["archive"] == 3
        assert not [a["code"] for a in target.emulator.accounts(BUSINESS) if a["is_active"]]

        redriven = coa_sync("dlq", "redrive", *credentials)
        assert redriven.returncode == 0, redriven.stderr  # nothing in the DLQ: nothing to apply
    assert SECRET_KEY not in bare.stderr + approved.stdout + approved.stderr + redriven.stdout + redriven.stderr
