"""`coa-sync sync --aws-faults`: the local runner playing AWS's failure modes, as a user runs it; and an
interrupted sync (Ctrl-C) followed by a sync of another company from the same state directory."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid

import pytest

from tests.support import API_KEY, COMPANY, SEED_PLEO, SEED_SOURCE, api_key_for, coa_sync, sync, write_csv


def summary(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def applied_equals_planned(report: dict) -> bool:
    return all(report["applied"][kind] == report["planned"][kind] for kind in ("create", "update", "unarchive",
                                                                                 "archive"))


@pytest.mark.parametrize("seed", ["1", "2", "3"])
def test_the_seed_scenario_converges_in_one_command_under_every_aws_fault(emulator, tmp_path, seed):
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=SEED_PLEO)
    report = summary(sync(emulator, write_csv(tmp_path / "chart.csv", SEED_SOURCE), "--aws-faults", "all",
                          "--aws-faults-seed", seed, "--json"))
    assert report["status"] == "completed" and applied_equals_planned(report)
    assert report["planned"] == {"create": 1, "update": 1, "unarchive": 1, "archive": 1, "noop": 1}
    assert report["failed"] == [] and report["pending"] == 0 and report["queued"] == []
    assert report["aws_faults"]  # what was played is in the summary
    active = {a["externalId"]: (a["code"], a["name"]) for a in emulator.accounts(COMPANY) if not a["archived"]}
    assert active == {"ext-1000": ("1000", "Office Supplies"), "ext-2000": ("2000", "Travel"),
                      "ext-3000": ("3000", "Software"), "ext-4000": ("4000", "Marketing")}
    assert len(emulator.accounts(COMPANY)) == 5  # nothing created twice


def test_a_1500_account_chart_converges_in_one_command_under_every_aws_fault_and_a_faulty_pleo(emulator, tmp_path):
    pleo = ([{"externalId": f"same-{n}", "code": str(n), "name": f"Same {n}"} for n in range(300)]
            + [{"externalId": f"renamed-{n}", "code": str(n), "name": f"Old {n}"} for n in range(150)]
            + [{"externalId": f"back-{n}", "code": str(n), "name": f"Back {n}", "archived": True} for n in range(50)]
            + [{"externalId": f"gone-{n}", "code": str(n), "name": f"Gone {n}"} for n in range(20)])
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=pleo)
    chart = ([(f"same-{n}", str(n), f"Same {n}", True) for n in range(300)]
             + [(f"renamed-{n}", str(n), f"New {n}", True) for n in range(150)]
             + [(f"back-{n}", str(n), f"Back {n}", True) for n in range(50)]
             + [(f"new-{n}", str(n), f"New account {n}", True) for n in range(1000)])
    # Pleo fails one request in ten: 5xx, 429, connections dropped before and after it did the work, slow answers.
    emulator.chaos(0.1, seed=7, delay=0.02, retry_after=0)

    # About 550 Pleo requests (the faults' retries and repeats): more than the 500 a minute the shared budget
    # allows, which a cold start no longer resets, so the command takes more than a minute.
    report = summary(sync(emulator, write_csv(tmp_path / "chart.csv", chart), "--aws-faults", "all",
                          "--aws-faults-seed", "11", "--json", timeout=300))

    assert report["status"] == "completed" and applied_equals_planned(report)
    assert report["planned"] == {"create": 1000, "update": 150, "unarchive": 50, "archive": 20, "noop": 300}
    assert report["failed"] == [] and report["pending"] == 0
    emulator.clear_faults()
    accounts = emulator.accounts(COMPANY)
    assert len(accounts) == 1520 and len({a["externalId"] for a in accounts}) == 1520  # none twice
    active = {a["externalId"]: a["name"] for a in accounts if not a["archived"]}
    assert active == {external_id: name for external_id, _, name, _ in chart}


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_stopped_sync_then_a_sync_of_another_company_lands_nothing_of_the_first_in_it(emulator, tmp_path, stop):
    company_b = str(uuid.UUID(int=0xB))
    emulator.add_company(COMPANY, api_keys=[API_KEY])
    emulator.add_company(company_b, api_keys=[api_key_for(company_b)])
    emulator.inject("slow", count=3, endpoint="batch_create", delay=1.0)  # a writer batch takes a second
    chart_a = write_csv(tmp_path / "a.csv", [(f"a-{n}", str(n), f"A {n}", True) for n in range(3000)])
    command = [sys.executable, "-m", "coa_sync_local.cli", "sync", "--source", chart_a, "--pleo-url", emulator.url,
               "--company-id", COMPANY, "--pleo-api-key", API_KEY]
    with subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True) as first:
        assert first.stderr is not None
        for line in first.stderr:
            if line.startswith("[coa-sync] writer:"):  # the first batch is in Pleo: press Ctrl-C, or kill -9
                first.send_signal(stop)
                break
        first.communicate(timeout=60)
    assert first.returncode == (130 if stop == signal.SIGINT else -signal.SIGKILL)
    landed_in_a = {a["externalId"] for a in emulator.accounts(COMPANY)}
    assert 1000 <= len(landed_in_a) < 3000

    chart_b = write_csv(tmp_path / "b.csv", [(f"b-{n}", str(n), f"B {n}", True) for n in range(20)])
    planned = coa_sync("plan", "--source", chart_b, "--pleo-url", emulator.url, "--company-id", company_b,
                       "--pleo-api-key", api_key_for(company_b))
    assert planned.returncode == 0, planned.stderr
    assert "Still queued: " in planned.stdout
    assert "superseded when the writer next runs, never applied" in planned.stdout

    report = summary(coa_sync("sync", "--source", chart_b, "--pleo-url", emulator.url, "--company-id", company_b,
                              "--pleo-api-key", api_key_for(company_b), "--json"))
    assert {a["externalId"] for a in emulator.accounts(company_b)} == {f"b-{n}" for n in range(20)}
    assert {a["externalId"] for a in emulator.accounts(COMPANY)} == landed_in_a  # nothing more landed in A either
    assert report["status"] == "completed" and report["applied"]["create"] == 20 and report["superseded"] > 0

    runs = json.loads(coa_sync("runs", "--json").stdout)["runs"]
    interrupted = [run for run in runs if run["runId"] != report["run_id"] and run["status"] == "failed"]
    assert interrupted and all("interrupted" in run["error"] for run in interrupted)
    assert sum(run["superseded"] for run in interrupted) == report["superseded"]
    assert all(run["queued"] == 0 for run in runs)
    shown = coa_sync("show", interrupted[0]["runId"]).stdout
    assert "superseded " in shown and "interrupted" in shown


def test_an_unknown_aws_fault_is_exit_2_naming_the_ones_there_are(pleo, tmp_path):
    result = sync(pleo, write_csv(tmp_path / "chart.csv", SEED_SOURCE), "--aws-faults", "timeouts,retries")
    assert result.returncode == 2
    assert "--aws-faults: unknown AWS fault(s) retries; choose from duplicate-events, timeouts, cold-starts, " \
           "sqs-duplicates or all" in result.stderr
