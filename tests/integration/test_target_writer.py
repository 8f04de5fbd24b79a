"""The writer with Thredfi as the tenant's target: the local runner on moto, the Thredfi emulator on 127.0.0.1.

One create a request (Thredfi has no batch endpoint), however many a writer batch carries; what
Thredfi refuses goes to the DLQ with its reasons and the run still closes; an action of a run that
is no longer the tenant's live one is superseded, never applied.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from coa_sync.adapters.queues import ActionQueue
from coa_sync.models import AccountFields, Action, ActionKind, ActionMessage, FileSource, Tenant
from coa_sync_local.cli import NO_PLEO
from coa_sync_local.runner import TABLE, LocalRunner, RunnerOptions

from tests.as_systems import BUSINESS, PARTNER, SECRET_KEY, thredfi
from tests.support import write_csv

LONG_CODE = "9" * 60  # Thredfi takes codes of 1..50 characters


@pytest.fixture
def runner() -> Iterator[LocalRunner]:
    with LocalRunner(RunnerOptions(pleo_url=NO_PLEO, visibility_timeout=0, writer_batch_size=10)) as local:
        yield local


def copy_into(runner: LocalRunner, system, chart: str, **rate: int) -> None:
    target = system.config.model_copy(update={"secret_name": "coa-sync/acme/target-thredfi", **rate})
    runner.add_tenant(Tenant(tenant_id="acme", source=FileSource(uri=chart), target=target), {},
                      target_credentials={"partnerUuid": PARTNER, "apiKey": SECRET_KEY})


def active(system) -> dict[str, str]:
    return {a["code"]: a["name"] for a in system.emulator.accounts(BUSINESS) if a["is_active"]}


def test_creates_go_one_a_request_refusals_are_dead_lettered_with_thredfis_reasons_and_the_run_closes(
        runner, tmp_path):
    rows = [(f"e{n}", str(2000 + n), f"E {n}", True) for n in range(14)] + [("long", LONG_CODE, "Too long", True)]
    with thredfi([("x", "9001", "With a balance", True)]) as system:
        system.emulator.set_balance(BUSINESS, "9001", 12_50)  # Thredfi refuses to archive it
        # An API key whose limit the vendor raised (rateLimitPerMinute): the test does not wait for the bucket.
        copy_into(runner, system, write_csv(tmp_path / "chart.csv", rows), rate_limit_per_minute=6000,
                  rate_limit_burst=100)

        result = runner.run("acme")

        assert result.record.planned.create == 15 and result.record.planned.archive == 1
        assert result.record.status == "completed"
        assert result.applied.create == 14 and result.record.failed == 2  # every action settled
        assert system.emulator.calls["create"] == 14  # one request each; the long code was never sent
        reasons = {item.external_id: (item.action, item.reasons) for item in result.failed}
        assert reasons[LONG_CODE] == ("create", [f"code: at most 50 characters in Thredfi, got {len(LONG_CODE)}"])
        action, why = reasons["9001"]
        assert action == "archive" and why[0].startswith("thredfi HTTP 422: ")
        assert active(system) == {**{code: name for _, code, name, _ in rows[:14]}, "9001": "With a balance"}
        # Its rate budget is a bucket in the tenants table, shared by every container, keyed by Thredfi, where it
        # is and the partner.
        items = boto3.client("dynamodb", region_name="eu-west-1").scan(TableName=TABLE)["Items"]
        assert any(item["pk"]["S"].startswith(f"BUDGET#thredfi:{system.emulator.url}:") for item in items)


def test_an_action_of_an_earlier_run_is_superseded_not_applied_in_thredfi(runner, tmp_path):
    with thredfi([]) as system:
        copy_into(runner, system, write_csv(tmp_path / "chart.csv", [("a", "1001", "A", True)]))
        first = runner.run("acme")
        assert active(system) == {"1001": "A"}
        stale = Action(kind=ActionKind.CREATE, external_id="1002", desired=AccountFields(name="Stale", code="1002"))
        ActionQueue(runner.actions_url).send([ActionMessage(tenant_id="acme", run_id=first.run_id, seq=1,
                                                            company_id=first.manifest.company_id, action=stale)])

        second = runner.run("acme")

        assert second.superseded == 1 and second.record.planned_actions == 0
        assert active(system) == {"1001": "A"}  # the earlier run's create never landed
        assert first.manifest.company_id == f"thredfi:{system.emulator.url}:{BUSINESS}"  # what it was fenced by
