"""Sending dead letters back to the writer (`coa-sync dlq redrive`), fenced like every action.

A dead letter is an action of a run that has closed, and the writer applies only the actions of
a tenant's live run. So before the letters move, each one's run is opened again, if it may be:
it is its tenant's latest run (no newer run has read the charts since) and no other run holds the
tenant. Letters of any other run are superseded when they arrive: a newer run planned afresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from coa_sync.adapters.ledger import RunInProgressError
from coa_sync.models import DeadLetter
from coa_sync.pipeline import runs


@dataclass
class Reopened:
    runs: list[str] = field(default_factory=list)  # run ids whose letters will be applied
    superseded: dict[str, str] = field(default_factory=dict)  # run id -> why its letters will not be


def reopen_for_redrive(letters: Iterable[DeadLetter], ledger: runs.RunLedger, ttl_seconds: int) -> Reopened:
    outcome = Reopened()
    named = sorted({(letter.message.tenant_id, letter.message.run_id) for letter in letters if letter.message})
    for tenant_id, run_id in named:
        record = ledger.get(tenant_id, run_id)
        if record is None:
            outcome.superseded[run_id] = "not in the ledger"
        elif record.ended_at is None and ledger.lock_holder(tenant_id) == run_id:
            outcome.runs.append(run_id)  # live still
        else:
            try:
                reopened = runs.reopen(ledger, record, ttl_seconds)
            except RunInProgressError as busy:
                outcome.superseded[run_id] = f"run {busy.run_id} holds the tenant"
                continue
            if reopened is None:
                outcome.superseded[run_id] = "a newer run of the tenant planned afresh"
            else:
                outcome.runs.append(run_id)
    return outcome
