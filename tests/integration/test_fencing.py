"""Every action is fenced by its run: what an interrupted, duplicated, late or killed run leaves behind
never lands after a newer run, nor in another company; and no path leaves a tenant locked.

The local runner on moto and the Pleo emulator, with the state directory shared between commands
as `coa-sync` keeps it; interruptions are Ctrl-C (KeyboardInterrupt) at a chosen point of the run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from coa_sync.adapters.ledger import Ledger
from coa_sync.adapters.queues import ActionQueue
from coa_sync.models import ActionMessage, ArchiveGuard, FileSource, RunRequest, Tenant
from coa_sync.pipeline import diff as diff_step
from coa_sync.pipeline import runs
from coa_sync_local import runner as local
from coa_sync_local.aws_faults import AwsFaults, VirtualDeadline
from coa_sync_local.runner import LocalRunner, RunnerOptions
from coa_sync_local.state import LocalState

from tests.support import COMPANY, api_key_for, write_csv

COMPANY_A, COMPANY_B = str(uuid.UUID(int=0xA)), str(uuid.UUID(int=0xB))


def tenant(company_id: str, chart: str, guard: ArchiveGuard | None = None) -> Tenant:
    return Tenant(tenant_id="local", company_id=company_id, pleo_secret_name="coa-sync/local/pleo",
                  source=FileSource(uri=chart), archive_guard=guard)


def interrupt_at(prefix: str, after: int = 1) -> Callable[[str], None]:
    """A progress hook that presses Ctrl-C the `after`-th time the runner reports `prefix`."""
    seen = []

    def progress(message: str) -> None:
        if message.startswith(prefix):
            seen.append(message)
            if len(seen) == after:
                raise KeyboardInterrupt

    return progress


def command(state_dir: Path, emulator, company_id: str, chart: str, *, progress=None, guard=None, **options):
    """One `coa-sync sync` as a process would run it: the state loaded, the run, the state saved at exit."""
    state = LocalState(state_dir)
    runner = LocalRunner(RunnerOptions(pleo_url=emulator.url, visibility_timeout=0, **options), progress=progress,
                         state=state)
    with state, runner:
        runner.add_tenant(tenant(company_id, chart, guard), {"apiKey": api_key_for(company_id)})
        return runner.run("local")


def recorded_sends(monkeypatch: pytest.MonkeyPatch) -> list[ActionMessage]:
    """Every action message the diff puts on the queue, in order."""
    sent: list[ActionMessage] = []
    send = ActionQueue.send

    def recording(queue: ActionQueue, messages) -> int:
        messages = list(messages)
        sent.extend(messages)
        return send(queue, messages)

    monkeypatch.setattr(ActionQueue, "send", recording)
    return sent


class SlowQueue(VirtualDeadline):
    """An invocation whose time goes on SendMessageBatch calls alone."""

    def spend(self, seconds: float, where: str) -> None:
        if "SendMessageBatch" in where:
            super().spend(seconds, where)


def ids(emulator, company_id: str, *, archived: bool | None = None) -> set[str]:
    return {a["externalId"] for a in emulator.accounts(company_id) if archived is None or a["archived"] == archived}


def test_an_interrupted_sync_of_company_a_lands_nothing_in_company_b_synced_next(emulator, tmp_path):
    emulator.add_company(COMPANY_A, api_keys=[api_key_for(COMPANY_A)])
    emulator.add_company(COMPANY_B, api_keys=[api_key_for(COMPANY_B)])
    state = tmp_path / "state"
    chart_a = write_csv(tmp_path / "a.csv", [(f"a-{n}", str(n), f"A {n}", True) for n in range(300)])
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C after the writer's first batch of 100
        command(state, emulator, COMPANY_A, chart_a, progress=interrupt_at("writer:"), writer_batch_size=100)
    assert len(ids(emulator, COMPANY_A)) == 100

    chart_b = write_csv(tmp_path / "b.csv", [(f"b-{n}", str(n), f"B {n}", True) for n in range(20)])
    second = command(state, emulator, COMPANY_B, chart_b, writer_batch_size=100)

    assert ids(emulator, COMPANY_B) == {f"b-{n}" for n in range(20)}  # none of A's 200 left queued
    assert len(ids(emulator, COMPANY_A)) == 100  # nor did they land in A after the interruption
    assert second.plan.counts().create == 20 and second.applied.create == 20 and second.record.status == "completed"
    assert second.superseded == 200 and second.queued == {}
    # What was left of A cost no Pleo call: the rerun is a fresh sync of B.
    assert second.api_calls == {"search": 2, "batch_create": 1}  # one search per archived value
    state_after = LocalState(state)
    with state_after, LocalRunner(RunnerOptions(pleo_url=None), state=state_after):
        (newer, older) = Ledger(local.TABLE).runs("local")
        assert newer.run_id == second.run_id
        assert (older.status, older.applied.create, older.superseded) == ("failed", 100, 200)
        assert "interrupted" in (older.error or "")


def test_archives_queued_by_an_interrupted_run_are_not_applied_once_the_source_restored_the_rows(emulator, tmp_path):
    kept = ("kept", "", "Kept", True)
    emulator.add_company(COMPANY_A, api_keys=[api_key_for(COMPANY_A)], accounts=[
        {"externalId": f"e{n}", "name": f"E {n}", "archived": False} for n in range(100)] + [
        {"externalId": "kept", "name": "Kept", "archived": False}])
    state, chart = tmp_path / "state", tmp_path / "chart.csv"
    guard = ArchiveGuard(min_archives=1000)  # this tenant allows mass archives
    write_csv(chart, [(f"e{n}", "", f"E {n}", False) for n in range(100)] + [kept])  # 100 deactivated
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C once the plan is queued, before the writer starts
        command(state, emulator, COMPANY_A, str(chart), progress=interrupt_at("diff:", after=2), guard=guard)

    write_csv(chart, [(f"e{n}", "", f"E {n}", True) for n in range(100)] + [kept])  # restored in the source
    second = command(state, emulator, COMPANY_A, str(chart), guard=guard)

    assert ids(emulator, COMPANY_A, archived=True) == set()  # not one of the stale archives was applied
    assert second.plan.actions == [] and second.superseded == 100 and second.applied.archive == 0
    assert emulator.calls.get("put", 0) == 0


def test_a_manifest_delivered_twice_queues_each_action_once_and_the_run_closes_with_applied_equal_to_planned(
        emulator, make_runner, tmp_path, monkeypatch):
    runner = make_runner(write_csv(tmp_path / "chart.csv", [(f"e{n}", str(n), f"E {n}", True) for n in range(25)]))
    runner.faults = AwsFaults(("duplicate-events",))  # every S3 notification and fetch invocation twice
    sent = recorded_sends(monkeypatch)
    result = runner.run("acme")
    assert result.faults == {"fetch event delivered twice": 1, "diff event delivered twice": 1}
    assert sorted(message.seq for message in sent) == list(range(25))  # queued once, by the first delivery
    assert result.record.status == "completed" and result.applied.create == result.plan.counts().create == 25
    assert emulator.calls["batch_create"] == 1 and len(Ledger(local.TABLE).runs("acme")) == 1


def test_a_diff_killed_between_send_message_batch_calls_is_finished_by_its_retry_counting_each_action_once(
        emulator, make_runner, tmp_path, monkeypatch):
    monkeypatch.setattr(diff_step, "CHECKPOINT", 10)  # record progress every 10 actions (one SendMessageBatch)
    runner = make_runner(write_csv(tmp_path / "chart.csv", [(f"e{n}", str(n), f"E {n}", True) for n in range(45)]))
    faults = runner.faults = AwsFaults(("timeouts",))
    # The diff's first try dies right after its second SendMessageBatch, before it could record having sent it.
    kills = iter([SlowQueue("diff", 2, http_seconds=0, aws_seconds=1)])
    faults.deadline = lambda function, first_try: next(kills, None) if function == "diff" and first_try else None
    sent = recorded_sends(monkeypatch)

    result = runner.run("acme")

    # The retry sent again what the killed try sent after its last checkpoint (seqs 10..19), and the rest.
    assert [message.seq for message in sent] == [*range(20), *range(10, 45)]
    assert (result.record.status, result.applied.create, result.record.failed) == ("completed", 45, 0)
    assert len(ids(emulator, COMPANY)) == 45


def test_a_fetch_out_of_time_mid_pagination_fails_its_run_frees_the_tenant_and_its_retry_is_a_new_run(
        emulator, make_runner, tmp_path):
    company = str(uuid.UUID(int=7))
    emulator.add_company(company, api_keys=[api_key_for(company)],
                         accounts=[{"externalId": f"p{n}", "name": f"P {n}"} for n in range(250)])  # 3 pages
    runner = make_runner(write_csv(tmp_path / "chart.csv", [(f"p{n}", "", f"P {n}", True) for n in range(250)]),
                         company_id=company)
    faults = runner.faults = AwsFaults(("timeouts",))
    # A page takes 140 s: after two, 20 s are left, less than the fetch needs to start one (15 s for the request,
    # 10 s to wrap up).
    tries = iter([VirtualDeadline("fetch", 300, http_seconds=140, aws_seconds=0)])
    faults.deadline = lambda function, first_try: next(tries, None) if function == "fetch" else None

    result = runner.run("acme")

    ledger = Ledger(local.TABLE)
    (first,) = [record for record in ledger.runs("acme") if record.status == "failed"]
    (retry,) = [record for record in ledger.runs("acme") if record.status == "completed"]
    assert "ran out of time before the function's timeout: search" in first.error
    assert result.run_id == retry.run_id != first.run_id
    assert ledger.lock("acme") is None


def test_a_fetch_killed_outright_leaves_no_lock_its_retry_takes_the_run_over(emulator, make_runner, tmp_path):
    runner = make_runner(write_csv(tmp_path / "chart.csv", [("e1", "1", "One", True)]))
    faults = runner.faults = AwsFaults(("timeouts",))
    tries = iter([VirtualDeadline("fetch", 300, http_seconds=600, aws_seconds=0)])  # dies in its first Pleo request
    faults.deadline = lambda function, first_try: next(tries, None) if function == "fetch" else None

    result = runner.run("acme")

    (only,) = Ledger(local.TABLE).runs("acme")  # the retry adopted the run the killed try left fetching
    assert (only.run_id, only.status, only.applied.create) == (result.run_id, "completed", 1)
    assert Ledger(local.TABLE).lock("acme") is None


def test_the_sweep_closes_an_orphaned_run_with_its_reason_and_frees_the_tenant(emulator, make_runner, tmp_path):
    runner = make_runner(write_csv(tmp_path / "chart.csv", [("e1", "1", "One", True)]))
    ledger, closed = Ledger(local.TABLE), []
    stuck = runs.start(ledger, RunRequest(tenant_id="acme", trigger="schedule"), 3600, closed.append)
    bounds = runs.OrphanBounds(fetching=1200, applying=12600)

    assert runs.sweep(ledger, ["acme"], bounds, closed.append) == []  # still within its bound
    later = datetime.now(UTC) + timedelta(minutes=21)
    (orphan,) = runs.sweep(ledger, ["acme"], bounds, closed.append, now=later)

    assert (orphan.run_id, orphan.status) == (stuck.run_id, "failed")
    assert orphan.error.startswith("orphaned: no progress for 21 min while fetching")
    assert [record.run_id for record in closed] == [stuck.run_id]  # reported and announced once
    assert ledger.lock("acme") is None and runner.run("acme").record.status == "completed"


def test_a_new_run_taking_over_a_stale_lock_closes_the_run_that_held_it(emulator, make_runner, tmp_path):
    make_runner(write_csv(tmp_path / "chart.csv", [("e1", "1", "One", True)]))
    stale = Ledger(local.TABLE, clock=lambda: datetime.now(UTC).timestamp() - 7200)
    dead = runs.start(stale, RunRequest(tenant_id="acme", trigger="schedule"), 3600, lambda record: None)
    newer = runs.start(Ledger(local.TABLE), RunRequest(tenant_id="acme", trigger="schedule"), 3600,
                       lambda record: None)
    record = Ledger(local.TABLE).get("acme", dead.run_id)
    assert record.status == "failed" and f"run {newer.run_id} took the tenant over" in record.error
    assert Ledger(local.TABLE).lock("acme").run_id == newer.run_id


def test_messages_queued_before_fencing_are_superseded_never_applied(emulator, make_runner, tmp_path):
    runner = make_runner(write_csv(tmp_path / "chart.csv", [("e1", "1", "One", True)]))
    first = runner.run("acme", dry_run=True)
    (create,) = first.plan.actions
    old = ActionMessage(tenant_id="acme", run_id=first.run_id, action=create)  # no company, no seq
    runner.sqs.send_message(QueueUrl=runner.actions_url, MessageBody=old.model_dump_json())
    runner.apply_queued()
    assert ids(emulator, COMPANY) == set() and runner.dead_letters() == []
    assert Ledger(local.TABLE).get("acme", first.run_id).superseded == 1
