"""The whole pipeline on moto and the Pleo emulator: fetch -> S3 -> diff -> SQS -> writer -> Pleo."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from coa_sync.adapters.ledger import Ledger
from coa_sync.adapters.queues import ActionQueue, DeadLetterQueue
from coa_sync.models import AccountFields, Action, ActionKind, ActionMessage, Plan
from coa_sync.pipeline.redrive import reopen_for_redrive
from coa_sync_local.runner import TABLE

from tests.support import API_KEY, COMPANY, SEED_PLEO, SEED_SOURCE, write_csv


def active(emulator, company=COMPANY) -> dict[str, tuple]:
    return {a["externalId"]: (a["code"], a["name"], a["taxCodeExternalId"])
            for a in emulator.accounts(company) if not a["archived"]}


def external_ids(emulator) -> list[str]:
    return [a["externalId"] for a in emulator.accounts(COMPANY)]


READINGS = pytest.mark.parametrize("emulator", ["strict", "lenient"], indirect=True)


@READINGS
def test_seed_scenario_then_a_second_run_plans_nothing(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=SEED_PLEO)
    runner = make_runner(write_csv(tmp_path / "chart.csv", SEED_SOURCE))
    first = runner.run("acme")
    assert {a.external_id: a.kind for a in first.plan.actions} == {
        "ext-2000": ActionKind.UNARCHIVE, "ext-3000": ActionKind.CREATE,
        "ext-4000": ActionKind.UPDATE, "5000": ActionKind.ARCHIVE}
    assert first.plan.noop == 1 and first.failed == [] and first.pending == 0
    assert first.applied.model_dump() == first.plan.counts().model_dump()
    assert first.api_calls == {"search": 2, "batch_create": 1, "put": 3}
    assert active(emulator) == {"ext-1000": ("1000", "Office Supplies", None), "ext-2000": ("2000", "Travel", None),
                            "ext-3000": ("3000", "Software", None), "ext-4000": ("4000", "Marketing", None)}
    assert sorted(external_ids(emulator)) == ["5000", "ext-1000", "ext-2000", "ext-3000", "ext-4000"]

    assert (first.record.status, first.record.failed) == ("completed", 0)

    second = runner.run("acme")
    assert second.plan.actions == [] and second.plan.noop == 4
    assert second.api_calls == {"search": 2}
    assert second.record.status == "completed" and second.record.ended_at is not None


def test_run_files_are_compressed_json_under_the_run_prefix(emulator, make_runner, tmp_path):
    runner = make_runner(write_csv(tmp_path / "chart.csv", SEED_SOURCE))
    result = runner.run("acme")
    keys = sorted(o["Key"] for o in runner.s3.list_objects_v2(Bucket="coa-sync-snapshots-local")["Contents"])
    prefix = f"runs/acme/{result.run_id}/"
    assert keys == [prefix + name for name in ("manifest.json", "plan.json.gz", "report.json", "source.json.gz",
                                               "target.json.gz")]
    plan_object = runner.s3.get_object(Bucket="coa-sync-snapshots-local", Key=prefix + "plan.json.gz")
    assert plan_object["ContentEncoding"] == "gzip"


def test_creates_split_into_batches_of_at_most_1000(emulator, make_runner, tmp_path):
    for count, calls in ((1000, 1), (1001, 2), (2500, 3)):
        company = str(uuid.UUID(int=count))  # a fresh company each round
        rows = [(f"c{count}-{n}", str(n), f"Account {n}", True) for n in range(count)]
        runner = make_runner(write_csv(tmp_path / f"chart{count}.csv", rows), tenant_id=f"t{count}", company_id=company)
        result = runner.run(f"t{count}")
        assert result.api_calls.get("batch_create") == calls, count
        assert result.applied.create == count and result.failed == []
        assert len(active(emulator, company)) == count


@READINGS
def test_a_bulk_initial_sync_costs_two_filtered_searches_and_the_batch_calls(emulator, make_runner, tmp_path):
    # The physical minimum: Pleo's active and archived accounts read once each (one empty page apiece),
    # then ceil(2345 / 1000) batch creates.
    rows = [(f"b-{n}", str(n), f"Account {n}", True) for n in range(2345)]
    runner = make_runner(write_csv(tmp_path / "chart.csv", rows))
    result = runner.run("acme")
    assert result.api_calls == {"search": 2, "batch_create": 3}
    assert result.applied.create == 2345 and result.failed == []


@READINGS
def test_metadata_other_tools_stored_survives_every_put(emulator, make_runner, tmp_path):
    stored = {"erp": {"id": 41, "synced": True}, "notes": None}
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=[
        {"externalId": "renamed", "code": "1", "name": "Old", "metadata": stored},
        {"externalId": "back", "code": "2", "name": "Back", "archived": True, "metadata": stored},
        {"externalId": "gone", "code": "3", "name": "Gone", "metadata": stored}])
    rows = [("renamed", "1", "New", True), ("back", "2", "Back", True)]
    runner = make_runner(write_csv(tmp_path / "chart.csv", rows))
    result = runner.run("acme")
    assert result.plan.counts().model_dump() == {"create": 0, "update": 1, "unarchive": 1, "archive": 1, "noop": 0}
    assert result.failed == [] and result.api_calls["put"] == 3
    assert {a["externalId"]: (a["name"], a["archived"], a["metadata"]) for a in emulator.accounts(COMPANY)} == {
        "renamed": ("New", False, stored), "back": ("Back", False, stored), "gone": ("Gone", True, stored)}


def test_items_pleo_rejects_go_to_the_dlq_with_reasons_and_the_rest_is_applied(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], tax_codes=["VAT25"], accounts=[
        {"externalId": "u", "code": "9", "name": "Old", "archived": False}])
    rows = [("good", "1", "Good", True, "VAT25"), ("bad", "2", "Bad", True, "NO-SUCH-TAX"),
            ("u", "9", "New name", True, "NO-SUCH-TAX")]
    runner = make_runner(write_csv(tmp_path / "chart.csv", rows))
    result = runner.run("acme")
    failed = {(f.external_id, f.action): f.reasons for f in result.failed}
    assert set(failed) == {("bad", "create"), ("u", "update")}
    assert failed[("bad", "create")] == ["OTHER"]
    assert "tax code" in failed[("u", "update")][0].lower()
    assert result.applied.create == 1 and result.applied.update == 0
    assert set(active(emulator)) == {"good", "u"}
    letters = runner.dead_letters()
    assert {letter.message.action.external_id for letter in letters} == {"bad", "u"}
    assert all(letter.message.run_id == result.run_id for letter in letters)


def test_redriven_dead_letters_count_once_whether_they_fail_again_or_apply(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], tax_codes=["VAT25"])
    rows = [("good", "1", "Good", True, "VAT25"), ("bad", "2", "Bad", True, "VAT12")]
    runner = make_runner(write_csv(tmp_path / "chart.csv", rows))
    result = runner.run("acme")
    dlq = DeadLetterQueue(runner.dlq_url, runner.sqs)
    ledger = Ledger(TABLE)

    def redrive() -> int:  # as `coa-sync dlq redrive` does: the letters' run made live again, then the move
        assert reopen_for_redrive(dlq.letters(), ledger, ttl_seconds=60).runs == [result.run_id]
        return dlq.redrive(runner.actions_url).messages

    assert redrive() == 1 and runner.apply_queued() == 0  # not fixed yet
    assert [letter.message.action.external_id for letter in dlq.letters()] == ["bad"]
    record = ledger.get("acme", result.run_id)
    assert (record.status, record.applied.create, record.failed) == ("completed", 1, 1)  # failed again, counted once

    emulator.add_tax_codes(COMPANY, ["VAT12"])
    assert redrive() == 1 and runner.apply_queued() == 0
    assert dlq.letters() == [] and set(active(emulator)) == {"good", "bad"}
    record = ledger.get("acme", result.run_id)
    assert (record.status, record.applied.create, record.failed) == ("completed", 2, 0)
    assert ledger.lock_holder("acme") is None


def test_redriven_letters_of_a_run_a_newer_run_replanned_are_superseded(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], tax_codes=["VAT25"])
    chart = tmp_path / "chart.csv"
    runner = make_runner(write_csv(chart, [("bad", "2", "Bad", True, "VAT12")]))
    old = runner.run("acme")
    write_csv(chart, [("bad", "2", "Bad", True, "VAT25")])  # the source is fixed instead
    runner.run("acme")  # and a newer run creates the account with VAT25
    ledger, dlq = Ledger(TABLE), DeadLetterQueue(runner.dlq_url, runner.sqs)
    assert reopen_for_redrive(dlq.letters(), ledger, ttl_seconds=60).superseded == {
        old.run_id: "a newer run of the tenant planned afresh"}
    assert dlq.redrive(runner.actions_url).messages == 1 and runner.apply_queued() == 0
    assert active(emulator) == {"bad": ("2", "Bad", "VAT25")}  # the old letter (VAT12) did not land
    record = ledger.get("acme", old.run_id)
    assert (record.status, record.failed, record.superseded) == ("completed", 1, 0)


def test_rate_limited_writes_wait_for_retry_after_and_complete(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY],
                         accounts=[{"externalId": f"e{n}", "name": "Old", "archived": False} for n in range(5)])
    runner = make_runner(write_csv(tmp_path / "chart.csv", [(f"e{n}", "", "New", True) for n in range(5)]))
    emulator.inject("rate_limit", count=2, endpoint="put", retry_after=1)
    result = runner.run("acme")
    assert emulator.responses[429] == 2
    assert result.applied.update == 5 and result.failed == []
    assert set(active(emulator).values()) == {(None, "New", None)}


def test_duplicate_delivery_creates_nothing_twice_and_counts_once(emulator, make_runner, tmp_path):
    runner = make_runner(write_csv(tmp_path / "chart.csv", [(f"e{n}", str(n), f"A{n}", True) for n in range(30)]),
                         writer_batch_size=10, aws_faults=("sqs-duplicates",))
    runner.faults.duplicate_chance = 1.0  # every message also handed to a second writer, at once
    result = runner.run("acme")
    assert result.faults["messages delivered to two writers"] == 30
    assert sorted(external_ids(emulator)) == sorted(f"e{n}" for n in range(30))
    assert runner.dead_letters() == [] and result.pending == 0
    assert (result.record.status, result.record.applied.create, result.record.superseded) == ("completed", 30, 0)


def test_writer_losing_pleos_answer_after_a_create_converges_without_duplicates(emulator, make_runner, tmp_path):
    # Pleo accepts the batch but the connection drops before the answer: the messages come back
    # from SQS, the retried create meets EXTERNAL_ID_ALREADY_EXISTS and is reconciled.
    rows = [(f"e{n}", str(n), f"A{n}", True) for n in range(20)]
    runner = make_runner(write_csv(tmp_path / "chart.csv", rows), pleo_max_attempts=1)
    emulator.inject("drop_after", count=1, endpoint="batch_create")
    result = runner.run("acme")
    assert result.failed == [] and result.pending == 0
    assert result.api_calls["batch_create"] == 2
    assert sorted(external_ids(emulator)) == sorted(f"e{n}" for n in range(20))


def test_reconcile_updates_an_existing_account_that_differs(emulator, make_runner, tmp_path):
    runner = make_runner(write_csv(tmp_path / "chart.csv", [("e1", "1", "Wanted", True)]))

    def someone_creates_it(message: str) -> None:  # in Pleo, archived and named otherwise, once the plan is made
        if message.startswith("diff: 1 create"):
            created = httpx.post(f"{emulator.url}/v1/chart-of-accounts", auth=(API_KEY, ""), json={
                "companyId": COMPANY, "externalId": "e1", "code": "1", "name": "Other", "archived": True})
            assert created.status_code == 201

    runner.progress = someone_creates_it
    result = runner.run("acme")
    assert [action.kind for action in result.plan.actions] == [ActionKind.CREATE]
    assert active(emulator) == {"e1": ("1", "Wanted", None)} and len(external_ids(emulator)) == 1
    assert result.applied.create == 1


def test_messages_still_failing_after_max_receive_count_land_in_the_dlq(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=[{"externalId": "e1", "name": "Old", "archived": False}])
    runner = make_runner(write_csv(tmp_path / "chart.csv", [("e1", "", "New", True)]),
                         pleo_max_attempts=1, max_receive_count=2)
    emulator.inject("error", count=100, endpoint="put", status=503)
    result = runner.run("acme")
    assert emulator.responses[503] == 2  # one request per delivery, two deliveries
    ((item),) = result.failed
    assert (item.external_id, item.action) == ("e1", "update")
    assert "transient" in item.reasons[0]


def test_dry_run_changes_nothing_and_plans_what_the_live_run_does(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=SEED_PLEO)
    runner = make_runner(write_csv(tmp_path / "chart.csv", SEED_SOURCE))
    before = emulator.accounts(COMPANY)
    dry = runner.run("acme", dry_run=True)
    assert emulator.accounts(COMPANY) == before
    assert dry.api_calls == {"search": 2}
    live = runner.run("acme")
    assert strip_ids(dry.plan) == strip_ids(live.plan)


def strip_ids(plan: Plan) -> list[tuple]:
    return sorted((a.kind, a.external_id, a.account_id, a.desired, a.changes) for a in plan.actions)


def test_an_empty_source_holds_every_archive_back(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=SEED_PLEO)
    runner = make_runner(write_csv(tmp_path / "chart.csv", []))
    before = emulator.accounts(COMPANY)
    result = runner.run("acme")
    assert result.plan.actions == [] and len(result.plan.held) == 3
    assert result.to_json()["held"] == {"archive": 3, "reason": result.plan.held_reason}
    assert emulator.accounts(COMPANY) == before
    assert result.api_calls == {"search": 2}


def test_writer_progress_counts_every_queued_message_and_never_passes_its_total(emulator, make_runner, tmp_path):
    # Messages an earlier command left in the queue (here: one of another run) are settled with this run's.
    emulator.add_company(COMPANY, api_keys=[API_KEY])
    runner = make_runner(write_csv(tmp_path / "chart.csv", SEED_SOURCE))
    leftover = Action(kind=ActionKind.CREATE, external_id="left-over", desired=AccountFields(name="Left over"))
    ActionQueue(runner.actions_url, runner.sqs).send([ActionMessage(tenant_id="acme", run_id="earlier",
                                                                    action=leftover)])
    lines: list[str] = []
    runner.progress = lines.append
    runner.run("acme")
    settled = [tuple(map(int, found.groups())) for line in lines if (found := re.match(r"writer: (\d+)/(\d+) ", line))]
    assert settled[-1] == (5, 5) and all(done <= total for done, total in settled)


def test_a_plan_read_back_in_part_keeps_the_first_rows_and_the_run_s_own_counts(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=[
        {"externalId": f"p{n:02d}", "name": f"P{n}", "archived": False} for n in range(12)])
    rows = [(f"n{n:02d}", str(n), f"N{n}", True) for n in range(8)] + [("p00", "", "P0", True)]
    runner = make_runner(write_csv(tmp_path / "chart.csv", rows), plan_rows=5)
    result = runner.run("acme")
    assert [a.external_id for a in result.plan.actions] == ["n00", "n01", "n02", "n03", "n04"]
    assert [a.external_id for a in result.plan.held] == ["p01", "p02", "p03", "p04", "p05"]
    report = result.to_json()
    assert report["planned"]["create"] == 8 and report["applied"]["create"] == 8
    assert report["held"]["archive"] == 11
