"""Section 2: one tenant, update-heavy: how much of 500 requests a minute the shared budget lets through, and 429s.

The budget and the Pleo client alone, as the functions build them (wiring.pleo_budget, one
SharedBudget per client over the tenants table on moto's DynamoDB in process, made atomic as
DynamoDB is), against the Pleo emulator answering 429 past 600 a window per company. Each
container (a thread with its own client and lease) PUTs updates one after another for as long as
the run lasts. A minute is played in a few seconds (PLEO_RATE_WINDOW_SECONDS), and the budget's
hold shrinks with it.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left

import boto3
from coa_sync import wiring
from coa_sync.adapters import aws
from coa_sync.adapters.pleo import PleoClient, PleoCredentials
from coa_sync.models import AccountFields
from coa_sync.settings import PleoSettings
from coa_sync_local import moto_atomic
from coa_sync_local.emulators.pleo import PleoEmulator
from coa_sync_local.environ import environment
from moto import mock_aws

from benchmarks.common import API_KEY, COMPANY, TENANT, Table, account

LIMIT, PLEO_LIMIT = 500, 600
WINDOWS = 4  # each run lasts this many windows
GOAL = 0.95
AWS = {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class RecordingEmulator(PleoEmulator):
    """Notes when each request reaches the rate limit, as Pleo would count it."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.arrivals: list[float] = []

    def _admit(self, credential: object) -> int:
        self.arrivals.append(time.monotonic())
        return super()._admit(credential)


def peak_in_window(times: list[float], window: float) -> int:
    ordered = sorted(times)
    return max((bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0)


def measure(window: float, containers: int) -> dict[str, float]:
    moto_atomic.apply()
    aws.reset()  # the budgets' DynamoDB client is made afresh, in this moto world
    with environment(AWS), mock_aws(), RecordingEmulator(rate_limit=PLEO_LIMIT, rate_window_seconds=window) as pleo:
        boto3.client("dynamodb").create_table(
            TableName="tenants", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        pleo.add_company(COMPANY, api_keys=[API_KEY], accounts=[account(n) for n in range(100)])
        ids = [item["id"] for item in pleo.accounts(COMPANY)]
        settings = PleoSettings(tenants_table="tenants", snapshot_bucket="unused", pleo_base_url=pleo.url,
                                pleo_rate_window_seconds=window, pleo_rate_limit_per_minute=LIMIT)
        credentials = PleoCredentials(api_key=API_KEY)
        budgets = [wiring.pleo_budget(settings, TENANT, credentials) for _ in range(containers)]
        started = time.monotonic()
        end = started + WINDOWS * window

        def container(n: int) -> None:
            with PleoClient(pleo.url, credentials, budget=budgets[n]) as client:
                sent = 0
                while time.monotonic() < end:
                    client.put(ids[(n + sent * containers) % len(ids)], AccountFields(name=f"Renamed {sent}"),
                               archived=False)
                    sent += 1

        threads = [threading.Thread(target=container, args=(n,)) for n in range(containers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        arrivals = list(pleo.arrivals)
        throttled = pleo.responses[429]
    aws.reset()
    span = max(arrivals) - min(arrivals)
    return {"requests": len(arrivals), "peak": peak_in_window(arrivals, window),
            "mean": (len(arrivals) - 1) * window / span, "429s": throttled,
            "trips": sum(budget.round_trips for budget in budgets) / max(1, len(arrivals)),
            "waited": sum(budget.waited for budget in budgets)}


def run(quick: bool) -> list[Table]:
    table = Table(f"2. Rate budget: one tenant, update-heavy, {LIMIT}/min shared, Pleo {PLEO_LIMIT}/min",
                  ["window s (= 1 min)", "containers", "requests", "peak in a window", "mean per window",
                   "budget used", "429s", "table round trips / request", "budget waited s"])
    met = True
    for window, containers in ([(6.0, 8)] if quick else [(6.0, 1), (6.0, 8), (12.0, 8)]):
        figures = measure(window, containers)
        used = figures["mean"] / LIMIT
        met &= used >= GOAL and figures["peak"] <= LIMIT and figures["429s"] == 0
        table.rows.append([f"{window:g}", containers, figures["requests"], figures["peak"], figures["mean"],
                           f"{used:.1%}", figures["429s"], f"{figures['trips']:.2f}", figures["waited"]])
    table.notes += [
        f"Each run lasts {WINDOWS} windows; containers are threads, each with its own Pleo client and budget "
        "object (its own lease), all on one bucket in the tenants table (moto's DynamoDB in process), as "
        "separate Lambda containers would be. Every request is a PUT (update-heavy).",
        "Peak = most requests the emulator admitted in any window (Pleo counts on arrival); mean per window = "
        "the rate requests arrived at, first to last, per window; budget used = mean / 500. The budget refills "
        "483 a minute after a bucket of 5 (Rate.within(500, 60 s, hold 1.5 s)): 96.6% is its ceiling, by "
        "design, so that no minute can see more than 500 however its tokens are held.",
        "Table round trips / request: conditional updates of the bucket per Pleo request (leases of up to "
        "5 tokens; more when a caller finds the bucket's state changed since it last looked).",
    ]
    table.goals.append((f"budget used >= {GOAL:.0%} of {LIMIT}/min, peak <= {LIMIT}, 0 429s",
                        f"lowest {min(float(r[5].rstrip('%')) for r in table.rows):.1f}%, "
                        f"peak {max(r[3] for r in table.rows)}, {sum(r[6] for r in table.rows)} 429s", met))
    return [table]
