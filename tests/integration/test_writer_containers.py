"""`--writers K`: K writer containers, each its own process (own memory, Pleo client and budget lease), as
Lambda's poller with MaximumConcurrency K runs them, sharing one tenant's budget through the runner's
tenants table. A minute is played in two seconds (rate_window_seconds)."""

from __future__ import annotations

from coa_sync.models import FileSource, Tenant
from coa_sync_local.runner import LocalRunner, RunnerOptions

from tests.support import API_KEY, COMPANY, RecordingEmulator, peak, write_csv

WINDOW = 2.0  # seconds playing Pleo's minute
LIMIT = 100  # PLEO_RATE_LIMIT_PER_MINUTE, per window
ACCOUNTS = 150


def test_three_writer_containers_of_one_tenant_share_its_budget_and_apply_every_update(tmp_path):
    chart = write_csv(tmp_path / "chart.csv", [(f"e{n}", str(n), f"Renamed {n}", True) for n in range(ACCOUNTS)])
    # Pleo answers 429 past 6/5 of the budget, as 600 is of 500.
    with RecordingEmulator(rate_limit=LIMIT * 6 // 5, rate_window_seconds=WINDOW) as pleo:
        pleo.add_company(COMPANY, api_keys=[API_KEY],
                         accounts=[{"externalId": f"e{n}", "code": str(n), "name": f"E {n}"} for n in range(ACCOUNTS)])
        options = RunnerOptions(pleo_url=pleo.url, writers=3, writer_batch_size=10, visibility_timeout=1,
                                rate_limit_per_minute=LIMIT, rate_window_seconds=WINDOW)
        with LocalRunner(options) as runner:
            runner.add_tenant(Tenant(tenant_id="acme", company_id=COMPANY, pleo_secret_name="coa-sync/acme/pleo",
                                     source=FileSource(uri=str(chart))), {"apiKey": API_KEY})
            result = runner.run("acme")
            assert runner.containers is not None
            batches = list(runner.containers.batches)
        arrivals, throttled = list(pleo.arrivals), pleo.responses[429]

    assert (result.record.status, result.applied.update, result.failed, result.pending) == ("completed", ACCOUNTS,
                                                                                             [], 0)
    assert {a["name"] for a in pleo.accounts(COMPANY)} == {f"Renamed {n}" for n in range(ACCOUNTS)}
    assert sum(batches) == ACCOUNTS // 10 and sum(1 for count in batches if count) >= 2  # the work was shared
    assert throttled == 0
    assert peak(arrivals, WINDOW) <= LIMIT  # one budget for the three: not three times it
    assert len(arrivals) >= ACCOUNTS + 2  # the fetch's two searches and every PUT came through it
