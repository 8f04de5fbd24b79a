"""Section 10: many tenants at once. Small tenants of 50 updates each, and one tenant's initial sync, all
started together and drained by K writer containers (`--writers K`: each its own process, as Lambda's
poller with MaximumConcurrency K runs them) sharing one budget per Pleo company through the tenants table,
against the Pleo emulator answering 429 past 600 a minute per company, every request 30 ms late.

The local runner (coa_sync_local.runner.LocalRunner) plays the deployment in a process of its own
(`python -m benchmarks.many_tenants URL K TENANTS UPDATES BIG`): every tenant's fetch (the big tenant's
first, so its creates are queued ahead of everyone's updates), each diff as S3 notifies it, then the
event source mapping handing batches to the K containers until the queue is empty. The emulator runs in
the benchmark's process and notes when each request of each company arrives.

Real time: a minute is a minute (Pleo's 600 and the budget's 500 in any 60 s), 30 ms of latency a request.
The first case is the writer as it was (a batch's tenants applied one after another, WRITER_TENANTS_AT_ONCE=1)
with K = 2: the "today" the goal is measured against; it takes about ten minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Table
from benchmarks.rate_budget import RecordingEmulator, peak_in_window

LIMIT, PLEO_LIMIT, WINDOW = 500, 600, 60.0
LATENCY = 0.030  # seconds added to every Pleo request
# (writer containers K, tenants of a batch applied at once): first the writer as it was, a batch's tenants
# one after another, with K = 2; then the writer as it is (WriterSettings.writer_tenants_at_once).
CASES = ((2, 1), (2, 16), (8, 16), (32, 16))
GOAL_SECONDS, GOAL_SPEEDUP = 120.0, 8.0
BIG = "big"


def company(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def api_key(tenant: str) -> str:
    return f"key-{tenant}"


class LatentEmulator(RecordingEmulator):
    """Every request LATENCY late (in its own handler thread, as a network would add it); each arrival noted
    with its company, as Pleo counts requests."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.by_company: dict[str, list[float]] = {}

    def _admit(self, credential: object) -> int:
        time.sleep(LATENCY)
        self.by_company.setdefault(str(credential), []).append(time.monotonic())
        return super()._admit(credential)


def tenants(small: int) -> list[str]:
    return [BIG, *(f"t{n:03d}" for n in range(small))]


def measure(writers: int, at_once: int, small: int, updates: int, big: int) -> dict[str, float]:
    names = tenants(small)
    with tempfile.TemporaryDirectory() as scratch, \
            LatentEmulator(rate_limit=PLEO_LIMIT, rate_window_seconds=WINDOW) as pleo:
        for n, name in enumerate(names):
            seed = [] if name == BIG else [{"externalId": f"e{i}", "code": str(i), "name": f"E {i}"}
                                           for i in range(updates)]
            pleo.add_company(company(n), api_keys=[api_key(name)], accounts=seed)
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "benchmarks.many_tenants", pleo.url, str(writers), str(small),
                               str(updates), str(big), scratch], capture_output=True, text=True, check=False,
                              timeout=3600, env={**os.environ, "WRITER_TENANTS_AT_ONCE": str(at_once)})
        wall = time.monotonic() - started
        if done.returncode:
            raise RuntimeError(f"the many-tenants run failed ({done.returncode}): {done.stderr[-3000:]}")
        driver = json.loads(done.stdout.splitlines()[-1])
        arrivals = {name: pleo.by_company.get(company(n), []) for n, name in enumerate(names)}
        throttled = pleo.responses[429]
        renamed = sum(a["name"].startswith("Renamed") for n, name in enumerate(names) if name != BIG
                      for a in pleo.accounts(company(n)))
        created = len(pleo.accounts(company(0)))
    # CLOCK_MONOTONIC is the machine's: the driver's readings and the emulator's are on one clock.
    fetching, writing = driver["fetching"], driver["writing"]
    small_done = max(max(times) for name, times in arrivals.items() if name != BIG)
    every = [t for times in arrivals.values() for t in times]
    return {"small_done": small_done - fetching, "small_after_writing": small_done - writing,
            "all_done": max(every) - fetching, "wall": wall, "writing_after": writing - fetching,
            "peak": max(peak_in_window(times, WINDOW) for times in arrivals.values()), "429s": throttled,
            "requests": len(every), "renamed": renamed, "created": created, "pending": driver["pending"],
            "aws_cpu": driver["cpu"]}


def run(quick: bool) -> list[Table]:
    small, updates, big = (20, 10, 2_000) if quick else (200, 50, 20_000)
    cases = (CASES[0], CASES[2]) if quick else CASES
    table = Table(f"10. Many tenants: {small} tenants x {updates} updates + one initial sync of {big:,}, "
                  f"Pleo {PLEO_LIMIT}/min per company, {LATENCY * 1000:.0f} ms a request",
                  ["writers K", "a batch's tenants", "small tenants done s", "of which writing s", "everything done s",
                   f"peak per company in any {WINDOW:g} s", "429s", "Pleo requests", "applied",
                   "local AWS CPU s"])
    figures = {}
    for k, at_once in cases:
        figures[k, at_once] = measure(k, at_once, small, updates, big)
        print(f"  K = {k}, {at_once} tenants at once: {figures[k, at_once]}", flush=True)
    for (k, at_once), f in figures.items():
        table.rows.append([k, "one after another" if at_once == 1 else f"{at_once} at once", f["small_done"],
                           f["small_after_writing"], f["all_done"], f["peak"], f["429s"], f["requests"],
                           f"{f['renamed']:,} updates, {f['created']:,} creates", f["aws_cpu"]])
    table.notes += [
        "Times from the first fetch; 'of which writing' from when the fetches and diffs were done (the local "
        "runner plays them one after another; deployed, the runs queue starts a few at once). A tenant is done "
        "when its last request reaches Pleo. Peak = most requests of one company in any sliding "
        f"{WINDOW:g} s.",
        f"The first row is the writer as it was before writers scaled out: K = {cases[0][0]}, each batch's tenants "
        "applied one after another (WRITER_TENANTS_AT_ONCE=1); the others are the writer as it is.",
        "Local AWS CPU: what the runner's process spent, first fetch to last (moto, in it and behind the server "
        "every container calls, one call at a time, and the event source mapping): near the writing time, it "
        "is what the run waited on.",
    ]
    before, fast = figures[cases[0]], figures[cases[-1]]
    speedup = before["small_after_writing"] / fast["small_after_writing"]
    complete = all(f["renamed"] == small * updates and f["created"] == big and not f["pending"]
                   for f in figures.values())
    safe = all(f["peak"] <= LIMIT and f["429s"] == 0 for f in figures.values())
    k = cases[-1][0]
    table.goals.append((f"K = {k}: {small} small tenants done within {GOAL_SECONDS:.0f} s while the big sync runs, "
                        f">= {GOAL_SPEEDUP:.0f}x sooner than K = {cases[0][0]} as it was; peak <= {LIMIT}, 0 429s",
                        f"{fast['small_done']:.0f} s ({fast['small_after_writing']:.0f} s writing), "
                        f"{speedup:.1f}x sooner writing; peak {max(f['peak'] for f in figures.values())}, "
                        f"{sum(f['429s'] for f in figures.values())} 429s",
                        complete and safe and fast["small_done"] <= GOAL_SECONDS and speedup >= GOAL_SPEEDUP))
    return [table]


def drive(url: str, writers: int, small: int, updates: int, big: int, scratch: Path) -> dict[str, float]:
    """In the child process: the deployment on the local runner, every tenant's run at once."""
    from coa_sync.models import FileSource, Tenant
    from coa_sync_local.runner import LocalRunner, RunnerOptions

    # The writer as it was takes over ten minutes here: longer than the runner waits for a queue by default.
    with LocalRunner(RunnerOptions(pleo_url=url, writers=writers, plan_rows=0, rate_window_seconds=WINDOW,
                                   drain_timeout_seconds=3600)) as runner:
        for n, name in enumerate(tenants(small)):
            chart = scratch / f"{name}.csv"
            rows = range(big) if name == BIG else range(updates)
            chart.write_text("externalId,code,name,active\n" + "".join(f"e{i},{i},Renamed {i},true\n" for i in rows))
            runner.add_tenant(Tenant(tenant_id=name, company_id=company(n), pleo_secret_name=f"coa-sync/{name}/pleo",
                                     source=FileSource(uri=str(chart))), {"apiKey": api_key(name)})
        fetching, cpu = time.monotonic(), time.process_time()
        for name in tenants(small):  # as the runs queue would start them, one fetch after another
            runner.start_run(name)
        runner.plan_started_runs()  # each diff as S3 notifies it
        writing = time.monotonic()
        pending = runner.apply_queued()
    return {"fetching": fetching, "writing": writing, "pending": pending, "cpu": time.process_time() - cpu}


if __name__ == "__main__":
    url, k, tenant_count, update_count, big_count, directory = sys.argv[1:]
    print(json.dumps(drive(url, int(k), int(tenant_count), int(update_count), int(big_count), Path(directory))))
