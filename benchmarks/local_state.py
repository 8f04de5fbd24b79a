"""Section 6: what keeping the local state as the run goes costs (coa_sync_local.state).

The same initial sync through the LocalRunner, once without a state and once with one: the
state saves after fetch, after the diff (every queued message) and after each writer
invocation (what settled), each save one SQLite transaction. Its saves and its restore are
timed inside the run; then a second, unchanged sync shows what the next command pays to
load the state back.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from coa_sync.models import Tenant
from coa_sync.observability import logger
from coa_sync_local.emulators.pleo import PleoEmulator
from coa_sync_local.runner import LocalRunner, RunnerOptions
from coa_sync_local.state import LocalState

from benchmarks.common import API_KEY, COMPANY, Table, account

GOAL_SHARE = 0.10  # of the run's wall time


def run(quick: bool) -> list[Table]:
    n = 5_000 if quick else 20_000
    table = Table(f"6. Local state saved as the run goes: initial sync of {n:,}, then the same sync again",
                  ["run", "wall s", "saves", "save s", "restore s", "state share"])
    with tempfile.TemporaryDirectory() as folder:
        chart = Path(folder) / "chart.csv"
        chart.write_text("externalId,code,name,active,taxCodeExternalId\n" + "".join(
            f"{r['externalId']},{r['code']},{r['name']},true,{r['taxCodeExternalId'] or ''}\n"
            for r in map(account, range(n))))
        tenant = Tenant.model_validate({"tenantId": "bench", "companyId": COMPANY,
                                        "pleoSecretName": "coa-sync/bench/pleo", "source": {"uri": str(chart)}})
        logger.setLevel("WARNING")
        with PleoEmulator() as pleo:  # an empty Pleo each time the initial sync is measured
            pleo.add_company(COMPANY, api_keys=[API_KEY])
            plain = _sync(pleo, tenant, None)
        with PleoEmulator() as pleo:
            pleo.add_company(COMPANY, api_keys=[API_KEY])
            first, again = _sync(pleo, tenant, Path(folder) / "state"), _sync(pleo, tenant, Path(folder) / "state")
    table.rows.append(["without a state", plain["wall"], 0, 0.0, 0.0, "-"])
    for label, measured in ((f"with a state: initial sync of {n:,}", first), ("with it: the same sync again", again)):
        share = (measured["save"] + measured["restore"]) / measured["wall"]
        table.rows.append([label, measured["wall"], int(measured["saves"]), measured["save"], measured["restore"],
                           f"{share:.1%}"])
    share = (first["save"] + first["restore"]) / first["wall"]
    table.notes += [
        "save s and restore s are timed inside the run with the state; the difference between the two walls is "
        "that plus noise (both runs share a loaded machine with the emulator's threads).",
        f"The saves after the diff write every queued message ({n:,}); each writer invocation's save deletes "
        "the 1,000 it settled and adds the run record's counts.",
    ]
    table.goals.append((f"keeping the local state < {GOAL_SHARE:.0%} of a {n:,}-account sync", f"{share:.1%}",
                        share < GOAL_SHARE))
    return [table]


def _sync(pleo: PleoEmulator, tenant: Tenant, directory: Path | None) -> Counter[str]:
    """Wall seconds of one sync, and the state's: seconds and counts of its saves and restores."""
    spent: Counter[str] = Counter()

    def timed(method: Callable[..., Any], key: str) -> Callable[..., Any]:
        def wrapper(self: LocalState, *args: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(self, *args)
            finally:
                spent[key] += time.perf_counter() - started
                spent[f"{key}s"] += 1

        return wrapper

    with mock.patch.object(LocalState, "save", timed(LocalState.save, "save")), \
            mock.patch.object(LocalState, "restore", timed(LocalState.restore, "restore")):
        started = time.perf_counter()
        if directory is None:
            with LocalRunner(RunnerOptions(pleo_url=pleo.url)) as runner:
                runner.add_tenant(tenant, {"apiKey": API_KEY})
                runner.run("bench")
        else:
            with LocalState(directory) as state, LocalRunner(RunnerOptions(pleo_url=pleo.url), state=state) as runner:
                runner.add_tenant(tenant, {"apiKey": API_KEY})
                runner.run("bench")
        spent["wall"] = time.perf_counter() - started
    return spent
