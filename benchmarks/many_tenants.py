"""Section 10: many tenants at once. Small tenants of 50 updates each, and one tenant's initial sync, all
started together and drained by K writer containers (`--writers K`: each its own process, as Lambda's
poller with MaximumConcurrency K runs them) sharing one budget per Pleo company through the tenants table,
against the Pleo emulator answering 429 past 600 a minute per company, every request 30 ms late.

The local runner (coa_sync_local.runner.LocalRunner) plays the deployment in a process of its own
(`python -m benchmarks.many_tenants URL K TENANTS UPDATES BIG`): every tenant's fetch (the big tenant's
first, so its creates are queued ahead of everyone's updates), each diff as S3 notifies it, then the
event source mapping handing batches to the K containers until the queue is empty. The emulator runs in
the benchmark's process and notes when each request of each company arrives.

Scaled to finish on 2 cores: a minute is played in WINDOW = 10 s (Pleo's 600 and the budget's 500 a window,
the budget's waits scaled with it, as PLEO_RATE_WINDOW_SECONDS does); the 30 ms of latency and the 120 s goal
are real seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Table
from benchmarks.rate_budget import RecordingEmulator, peak_in_window

LIMIT, PLEO_LIMIT, WINDOW = 500, 600, 10.0  # WINDOW plays a minute
LATENCY = 0.030  # seconds added to every Pleo request
WRITERS = (2, 8, 32)
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


def measure(writers: int, small: int, updates: int, big: int) -> dict[str, float]:
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
                              timeout=3600)
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
            "requests": len(every), "renamed": renamed, "created": created, "pending": driver["pending"]}


def run(quick: bool) -> list[Table]:
    small, updates, big = (20, 10, 2_000) if quick else (200, 50, 20_000)
    writers = WRITERS[:2] if quick else WRITERS
    table = Table(f"10. Many tenants: {small} tenants x {updates} updates + one initial sync of {big:,}, "
                  f"Pleo {PLEO_LIMIT}/min per company, {LATENCY * 1000:.0f} ms a request, a minute in {WINDOW:g} s",
                  ["writers K", "small tenants done s", "of which writing s", "everything done s",
                   f"peak per company in any {WINDOW:g} s (= 1 min)", "429s", "Pleo requests", "applied"])
    figures = {}
    for k in writers:
        figures[k] = measure(k, small, updates, big)
        print(f"  K = {k}: {figures[k]}", flush=True)
    for k, f in figures.items():
        table.rows.append([k, f["small_done"], f["small_after_writing"], f["all_done"], f["peak"], f["429s"],
                           f["requests"], f"{f['renamed']:,} updates, {f['created']:,} creates"])
    table.notes += [
        "Times from the first fetch; 'of which writing' from when the fetches and diffs were done (the local "
        "runner plays them one after another; deployed, the runs queue starts a few at once). A tenant is done "
        "when its last request reaches Pleo. Peak = most requests of one company in any sliding window "
        f"(a minute played in {WINDOW:g} s).",
    ]
    slow, fast = figures[writers[0]], figures[writers[-1]]
    speedup = slow["small_after_writing"] / fast["small_after_writing"]
    complete = all(f["renamed"] == small * updates and f["created"] == big and not f["pending"]
                   for f in figures.values())
    safe = all(f["peak"] <= LIMIT and f["429s"] == 0 for f in figures.values())
    table.goals.append((f"K = {writers[-1]}: {small} small tenants done within {GOAL_SECONDS:.0f} s while the "
                        f"big sync runs, >= {GOAL_SPEEDUP:.0f}x sooner than K = {writers[0]}; peak <= {LIMIT}, 0 429s",
                        f"{fast['small_done']:.0f} s ({fast['small_after_writing']:.0f} s writing), "
                        f"{speedup:.1f}x sooner writing; peak {max(f['peak'] for f in figures.values())}, "
                        f"{sum(f['429s'] for f in figures.values())} 429s",
                        complete and safe and fast["small_done"] <= GOAL_SECONDS and speedup >= GOAL_SPEEDUP))
    return [table]


def drive(url: str, writers: int, small: int, updates: int, big: int, scratch: Path) -> dict[str, float]:
    """In the child process: the deployment on the local runner, every tenant's run at once."""
    from coa_sync.models import FileSource, RunRequest, Tenant, new_run_id
    from coa_sync_local.runner import LocalRunner, RunnerOptions

    with LocalRunner(RunnerOptions(pleo_url=url, writers=writers, plan_rows=0,
                                   rate_window_seconds=WINDOW)) as runner:
        for n, name in enumerate(tenants(small)):
            chart = scratch / f"{name}.csv"
            rows = range(big) if name == BIG else range(updates)
            chart.write_text("externalId,code,name,active\n" + "".join(f"e{i},{i},Renamed {i},true\n" for i in rows))
            runner.add_tenant(Tenant(tenant_id=name, company_id=company(n), pleo_secret_name=f"coa-sync/{name}/pleo",
                                     source=FileSource(uri=str(chart))), {"apiKey": api_key(name)})
        fetching = time.monotonic()
        for name in tenants(small):  # as the runs queue would start them, one fetch after another
            runner._deliver("fetch", RunRequest(tenant_id=name, trigger="schedule", run_id=new_run_id())
                            .model_dump(mode="json"))
        for event in runner._drain_events():  # each diff as S3 notifies it
            runner._deliver("diff", event)
        writing = time.monotonic()
        pending = runner._pump()
    return {"fetching": fetching, "writing": writing, "pending": pending}


if __name__ == "__main__":
    url, k, tenant_count, update_count, big_count, directory = sys.argv[1:]
    print(json.dumps(drive(url, int(k), int(tenant_count), int(update_count), int(big_count), Path(directory))))
