"""Shared by the benchmark sections: a chart generator, the result table, and a sync driver.

The driver plays one run without SQS or moto: it reads Pleo with the real client (what the
fetch λ does), plans with the real diff, and feeds the real Writer the plan's actions as
SQS records, in batches of 1000 in plan order, as the writer's event source mapping would.
Its run holds the tenant's lock throughout and nothing was applied before (_OneRun), so every
action is live and fresh: the driver measures Pleo traffic, not the ledger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from coa_sync.adapters.pleo import API_CALLS, PleoClient, PleoCredentials
from coa_sync.diff import plan as make_plan
from coa_sync.models import ActionMessage, DeadLetter, Plan, RunLock, SourceSnapshot, Tenant
from coa_sync.pipeline.write import Record, Writer
from coa_sync.tokenbucket import RateBudget

COMPANY = "12abc3d4-e567-890e-1234-abc56e78fabc"
API_KEY = "bench-api-key"
TENANT = Tenant.model_validate({"tenantId": "bench", "companyId": COMPANY, "pleoSecretName": "coa-sync/bench/pleo",
                                 "source": {"kind": "file", "uri": "unused"}})
RUN = "bench"
WRITER_BATCH = 1000  # the template's WriterBatchSize default
NAMES = ("Office Supplies", "Travel", "Software Subscriptions", "Marketing", "Meals and Entertainment",
         "Consulting Fees", "Rent", "Utilities", "Insurance", "Bank Charges")


def account(n: int, **changes: object) -> dict:
    """Account number n in API shape (a Pleo seed, or an AS row with `active`)."""
    row = {"externalId": f"ACC-{n:07d}", "code": str(100000 + n), "name": f"{NAMES[n % len(NAMES)]} {n}",
           "taxCodeExternalId": "VAT25" if n % 3 else None}
    return {**row, **changes}


def source(rows: Iterable[dict]) -> SourceSnapshot:
    return SourceSnapshot.model_validate({"accounts": list(rows)})


@dataclass
class Table:
    title: str
    headers: Sequence[str]
    rows: list[Sequence[object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    goals: list[tuple[str, str, bool]] = field(default_factory=list)  # (goal, measured, met)

    def text(self) -> str:
        cells = [[str(h) for h in self.headers], *[[_cell(v) for v in row] for row in self.rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.headers))]
        lines = [f"== {self.title} =="]
        for index, row in enumerate(cells):
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(row, widths, strict=True))))
            if index == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines + [f"  * {note}" for note in self._notes()])

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.headers))) + "|"]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines + ([""] + [f"- {note}" for note in self._notes()] if self._notes() else []))

    def _notes(self) -> list[str]:
        return self.notes + [f"Goal {goal}: {measured}, {verdict(met)}." for goal, measured, met in self.goals]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


class _DeadLetters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def send(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


class _OneRun:
    """The writer's fences and redelivery for one run that holds its tenant's lock from start to end: every
    action is its live run's and none was settled before; nothing is handed back to a queue (there is none:
    a retry or leftover shows in SyncResult.retried)."""

    def lock(self, tenant_id: str) -> RunLock:
        return RunLock(run_id=RUN, expires_at=2**40, taken_at=0)

    def renew(self, tenant_id: str, run_id: str, ttl_seconds: int) -> bool:
        return run_id == RUN

    def outcomes(self, tenant_id: str, run_id: str, seqs: set[int]) -> dict[int, dict[str, set[int]]]:
        return {}

    def later(self, receipt_handles: Sequence[str], seconds: int) -> int:
        return len(receipt_handles)

    def requeue(self, received: Sequence[tuple[str, ActionMessage]]) -> None:
        raise AssertionError("a one-run driver delivers every message once: nothing is on its last delivery")


@dataclass
class SyncResult:
    plan: Plan
    calls: Counter[str]
    dead: list[DeadLetter]
    retried: int


def drive_sync(url: str, wanted: SourceSnapshot, budget: RateBudget,
               client_options: dict | None = None) -> SyncResult:
    """Snapshot Pleo, plan, and apply the plan through the real Writer; counts every Pleo request."""
    API_CALLS.clear()

    def client(_tenant: Tenant | None = None) -> PleoClient:
        return PleoClient(url, PleoCredentials(api_key=API_KEY), budget=budget, **(client_options or {}))

    with client() as pleo:
        target = pleo.snapshot(COMPANY)
    result = make_plan(wanted.columns(), target.columns())
    dead = _DeadLetters()
    run = _OneRun()
    writer = Writer(tenant=lambda _id: TENANT, target_for=client, dead_letters=dead, fences=run, queue=run,
                    lock_ttl_seconds=900)
    retried = 0
    for start in range(0, len(result.actions), WRITER_BATCH):
        chunk = result.actions[start:start + WRITER_BATCH]
        records = [Record(f"m{start + i}", ActionMessage(tenant_id=TENANT.tenant_id, run_id=RUN,
                                                         company_id=COMPANY, seq=start + i,
                                                         action=action).model_dump_json())
                   for i, action in enumerate(chunk)]
        report = writer.apply(records)
        retried += sum(outcome == "retry" for outcome in report.outcomes.values())
    return SyncResult(result, Counter(API_CALLS), dead.letters, retried)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


Section = Callable[[bool], list[Table]]
