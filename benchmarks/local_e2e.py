"""Section 4: an initial sync through the real local runner (moto + the Pleo emulator), and where the time goes.

The runner calls the very handlers Lambda runs; the benchmark only wraps a few functions
with timers (the handlers, the adapters' S3/SQS/Pleo calls, the diff, the writer logic),
each booked under the step it ran in. Two sizes are measured, so each step's growth can be
fitted (t = c * N^k) and extrapolated to 100,000; `--full` then runs 100,000 for real when
that extrapolation is under 10 minutes.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

from coa_sync import wiring
from coa_sync.adapters.pleo import PleoClient
from coa_sync.adapters.queues import ActionQueue
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.models import Tenant
from coa_sync.observability import logger
from coa_sync.pipeline import diff as diff_step
from coa_sync.pipeline.write import Writer
from coa_sync_local import runner as runner_module
from coa_sync_local.emulators.pleo import PleoEmulator
from coa_sync_local.runner import LocalRunner, RunnerOptions

from benchmarks.common import API_KEY, COMPANY, Table, account

GOAL_SECONDS, TARGET, FULL_LIMIT_SECONDS = 60.0, 100_000, 600.0
# (step, label, depth) in display order; steps are the keys the clock books time under.
LAYOUT = [
    ("fetch λ", "fetch λ", 0), ("fetch λ: read AS file", "read the AS file", 1),
    ("fetch λ: read Pleo", "read Pleo (search pages)", 1), ("fetch λ: S3 put", "S3 put snapshots + manifest", 1),
    ("diff λ", "diff λ", 0), ("diff λ: S3 get", "S3 get + parse snapshots", 1), ("diff λ: plan", "plan()", 1),
    ("diff λ: S3 put", "S3 put plan", 1), ("diff λ: SQS send", "SQS send (10 per SendMessageBatch)", 1),
    ("writer loop", "writer loop (the runner playing SQS → writer)", 0),
    ("writer loop: SQS receive", "SQS receive (moto's SQS in process, as Lambda's poller)", 1),
    ("writer λ", "writer λ", 1),
    ("Writer.apply", "Writer.apply", 2), ("Writer.apply: Pleo HTTP", "Pleo HTTP (batch create)", 3),
    ("writer loop: rest", "event records, SQS delete, visibility, queue counts", 1),
]

TOP_LEVEL = [key for key, _, depth in LAYOUT if depth == 0] + ["runner other"]


class Clock:
    """Books the time of wrapped calls under the innermost step they run in."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self._step = "runner"
        self._collecting = 0.0

    def _collector(self, phase: str, _info: dict) -> None:
        """A gc callback: Python's garbage collector's own time, across all steps."""
        if phase == "start":
            self._collecting = time.perf_counter()
        else:
            self.seconds["gc"] += time.perf_counter() - self._collecting

    def timed(self, function: Callable, label: str, *, step: bool = False) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            outer = self._step
            key = label if step else f"{outer}: {label}"
            self._step = label if step else outer
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - started
                self._step = outer

        return wrapper

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        targets = [
            (wiring, "source_snapshot", "read AS file", False), (wiring, "pleo_snapshot", "read Pleo", False),
            (SnapshotStore, "put", "S3 put", False), (SnapshotStore, "get", "S3 get", False),
            (diff_step, "plan", "plan", False), (ActionQueue, "send", "SQS send", False),
            (LocalRunner, "_poll", "writer loop", True), (LocalRunner, "_receive_batch", "SQS receive", False),
            (Writer, "apply", "Writer.apply", True), (PleoClient, "_request", "Pleo HTTP", False),
        ]
        load = runner_module._load_handler

        def load_timed(name: str):
            module = load(name)
            module.handler = self.timed(module.handler, f"{name} λ", step=True)
            return module

        with contextlib.ExitStack() as stack:
            for owner, name, label, step in targets:
                if hasattr(owner, name):  # the product may move things; time what is there
                    stack.enter_context(mock.patch.object(owner, name, self.timed(getattr(owner, name), label,
                                                                                  step=step)))
            stack.enter_context(mock.patch.object(runner_module, "_load_handler", load_timed))
            gc.callbacks.append(self._collector)
            stack.callback(gc.callbacks.remove, self._collector)
            yield


def sync(n: int) -> tuple[float, Counter[str]]:
    """Wall seconds and the per-step seconds of an initial sync of n accounts into an empty Pleo."""
    with tempfile.TemporaryDirectory() as folder, PleoEmulator() as pleo:
        chart = Path(folder) / "chart.csv"
        rows = [account(i) for i in range(n)]
        chart.write_text("externalId,code,name,active,taxCodeExternalId\n" + "".join(
            f"{r['externalId']},{r['code']},{r['name']},true,{r['taxCodeExternalId'] or ''}\n" for r in rows))
        pleo.add_company(COMPANY, api_keys=[API_KEY])
        tenant = Tenant.model_validate({"tenantId": "bench", "companyId": COMPANY,
                                        "pleoSecretName": "coa-sync/bench/pleo", "source": {"uri": str(chart)}})
        clock = Clock()
        logger.setLevel("WARNING")  # the handlers' INFO lines would drown the tables
        with LocalRunner(RunnerOptions(pleo_url=pleo.url)) as runner, clock.installed():
            runner.add_tenant(tenant, {"apiKey": API_KEY})
            started = time.perf_counter()
            result = runner.run("bench")
            wall = time.perf_counter() - started
        assert result.applied.create == n and not result.failed and not result.pending, result.to_json()
        assert len(pleo.accounts(COMPANY)) == n
    clock.seconds["total"] = wall
    return wall, clock.seconds


def extrapolate(small: tuple[int, float], large: tuple[int, float], n: int) -> tuple[float, float]:
    """(exponent k, seconds at n) of t = c * N^k through the two measurements."""
    (n1, t1), (n2, t2) = small, large
    # A step cannot get faster with more accounts: k < 0 is noise on a step too small to matter.
    k = max(0.0, math.log(t2 / t1) / math.log(n2 / n1)) if t1 > 0 and t2 > 0 else 1.0
    return k, t2 * (n / n2) ** k


def run(quick: bool, full: bool = False) -> list[Table]:
    large = 2_000 if quick else 10_000
    small = large // 4
    _, first = sync(small)
    _, steps = sync(large)
    measured = {large: steps}
    _derive(first), _derive(steps)
    fitted = {key: extrapolate((small, first[key]), (large, steps[key]), TARGET) for key in steps}
    predicted = sum(fitted[key][1] for key in TOP_LEVEL)
    fitted["total"] = (fitted["total"][0], predicted)
    if full and predicted < FULL_LIMIT_SECONDS:
        measured[TARGET] = _derive(sync(TARGET)[1])
    headers = ["step", *(f"{n:,} s" for n in measured), f"N^k: k ({small:,}→{large:,})",
               f"{TARGET:,} s (extrapolated)"]
    table = Table("4. Local end-to-end initial sync into an empty Pleo (LocalRunner on moto + emulator)", headers)
    for key, label, depth in [*LAYOUT, ("runner other", "runner: load handlers, read plan back, DLQ check", 0),
                              ("total", "total wall", 0), ("gc", "of which Python's garbage collector (all steps)", 1)]:
        k, at_target = fitted.get(key, (1.0, 0.0))
        if key == "gc":  # spread over every step and triggered by allocation counts: not extrapolated
            at_target = "-"
        table.rows.append(["  " * depth + label, *(s.get(key, 0.0) for s in measured.values()), f"{k:.2f}", at_target])
    table.notes += [
        f"Sizes {small:,} and {large:,} measured; each step extrapolated to {TARGET:,} by its own fitted exponent k "
        "(1 = linear, 0 = constant); the total extrapolated is the sum of the top-level steps'. Small steps are noisy.",
        "Everything runs in one process on moto (S3, SQS, DynamoDB, Secrets Manager in memory) with the emulator "
        "serving HTTP on 127.0.0.1 from threads of the same process: SQS and S3 costs are moto's, not AWS's.",
        "The diff λ sends through boto3 (each SendMessageBatch a botocore request moto parses and answers); the "
        "runner, as Lambda's poller, receives and deletes through moto's SQS in process.",
    ]
    worst_key, label = max(((key, label) for key, label, depth in LAYOUT if depth), key=lambda kl: fitted[kl[0]][1])
    k, seconds = fitted[worst_key]
    table.notes.append(f"Largest step at {TARGET:,}: {label.strip()} ({seconds:,.0f} s extrapolated, k = {k:.2f}).")
    took = (f"measured {measured[TARGET]['total']:,.0f} s" if TARGET in measured
            else f"extrapolated from {large:,}: {predicted:,.0f} s")
    table.goals.append((f"local initial sync of {TARGET:,} < {GOAL_SECONDS:g} s", took,
                        measured.get(TARGET, {}).get("total", predicted) < GOAL_SECONDS))
    if full and TARGET not in measured:
        table.notes.append(f"--full: {TARGET:,} not attempted, the extrapolation is over {FULL_LIMIT_SECONDS:g} s.")
    return [table]


def _derive(steps: Counter[str]) -> Counter[str]:
    """Add the steps measured as what is left of their parent."""
    steps["writer loop: rest"] = steps["writer loop"] - steps["writer loop: SQS receive"] - steps["writer λ"]
    steps["runner other"] = steps["total"] - sum(steps[key] for key in TOP_LEVEL if key != "runner other")
    return steps
