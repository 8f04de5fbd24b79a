"""Section 1: Pleo API calls our code makes vs the physical minimum, and vs a naive loop.

Physical minimum = search pages (every Pleo account read once, page cap per call: one search for the
active accounts and one for the archived, each at least one page, since the spec does not say what a
search without an `archived` filter returns) + ceil(creates / 1000) + one PUT per update, unarchive and
archive.
"""

from __future__ import annotations

import math
import time

from coa_sync.adapters.pleo import MAX_BATCH
from coa_sync.tokenbucket import Rate, TokenBucket
from coa_sync_local.emulators.pleo import PleoEmulator

from benchmarks.common import API_KEY, COMPANY, Table, account, drive_sync, source


def scenarios(n: int) -> list[tuple[str, list[dict], list[dict]]]:
    """(name, Pleo seed, AS rows) for an initial sync, 24 h of 1% drift and a mass reactivation."""
    base = [account(i) for i in range(n)]
    changed = n // 100
    renames, new = changed * 4 // 10, changed * 3 // 10
    touched = range(0, n, n // (changed - new))[:changed - new]  # spread over the chart
    drifted = [dict(row) for row in base]
    for k, i in enumerate(touched):
        drifted[i] |= {"name": f"Renamed {i}"} if k < renames else {"active": False}
    drifted += [account(i) for i in range(n, n + new)]
    reactivate = n // 20
    archived = [row | {"archived": i % (n // reactivate) == 0} for i, row in enumerate(base)]
    return [
        (f"initial sync of {n:,} into an empty Pleo", [], base),
        (f"24 h drift: 1% of {n:,} ({renames} renamed, {new} new, {changed - new - renames} deactivated)",
         base, drifted),
        (f"mass reactivation: {reactivate:,} archived accounts active again", archived, base),
    ]


def run(quick: bool) -> list[Table]:
    n = 10_000 if quick else 100_000
    table = Table(f"1. Pleo API calls vs the physical minimum ({n:,} accounts)",
                  ["scenario", "search", "batch", "put", "calls", "minimum", "ratio", "naive loop", "wall s"])
    ratios = []
    for name, seed, rows in scenarios(n):
        with PleoEmulator(rate_limit=10**9) as pleo:
            pleo.add_company(COMPANY, api_keys=[API_KEY], accounts=seed)
            started = time.perf_counter()
            result = drive_sync(pleo.url, source(rows), TokenBucket(Rate(10**9, 10**9)))
            wall = time.perf_counter() - started
            assert not result.dead and not result.retried, (result.dead[:3], result.retried)
            assert sum(pleo.calls.values()) == sum(result.calls.values())  # the server saw each one
            cap = pleo.page_size_cap
        counts = result.plan.counts()
        archived = sum(bool(row.get("archived")) for row in seed)
        pages = max(1, math.ceil((len(seed) - archived) / cap)) + max(1, math.ceil(archived / cap))
        minimum = pages + math.ceil(counts.create / MAX_BATCH) + counts.update + counts.unarchive + counts.archive
        calls = sum(result.calls.values())
        naive = len(rows) + len(result.plan.actions)
        ratios.append(calls / minimum)
        table.rows.append([name, result.calls["search"], result.calls["batch_create"], result.calls["put"],
                           calls, minimum, f"{calls / minimum:.2f}", naive, wall])
    table.notes += [
        "Real PleoClient (snapshot, batch_create, put) + real diff.plan + real Writer against the emulator on "
        "127.0.0.1 (rate limit lifted); SQS/moto skipped: the plan's actions are fed to the Writer as SQS records "
        "in batches of 1000, in plan order. Calls = the API_CALLS counter, checked against what the emulator served.",
        f"Page size {cap} (the client's default and the emulator's cap); each of the two filtered searches "
        "(archived false, archived true) takes at least one page, so an empty Pleo takes 2.",
        "Naive loop = one search per AS row + one POST/PUT per action.",
    ]
    table.goals.append(("calls / physical minimum = 1.00", f"worst scenario {max(ratios):.2f}", max(ratios) <= 1.0))
    return [table]
