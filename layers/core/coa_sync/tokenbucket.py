"""Rate budgets: the limits Pleo and the accounting systems state, as token buckets.

A `Rate` is what a budget keeps the requests reaching the server within: in any stretch of T
seconds at most `burst + refill * T`, where `refill` is `per_minute / 60` less the HEADROOM. The
headroom is for the vendors' own buckets: the server sees each request a little late or early, and a
client pacing at exactly the stated rate would meet a 429 (and its Retry-After) about every other
request once the burst is spent. A limit stated as "N in any W seconds" (Pleo's 500 a minute) is
`Rate.within(N, W, hold)`: figures chosen so that the bound never passes N in W seconds, whoever
takes the tokens.

What a caller draws on is a `RateBudget`: the figures and `acquire(timeout)`, which waits for a
token or, when the next one is further away than the caller may wait, takes nothing and raises
BudgetSpent with how long until one is due, so the caller can hand its work back instead of waiting.
This module's TokenBucket lives in one process (tests, and tools without a table); the budget every
container and function shares is coa_sync.adapters.budget's, in the tenants table.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

HEADROOM = 0.95  # of a vendor's stated refill rate
# Rate.within: the burst is about 1% of the limit, at least one request and at most a lease's worth
# (coa_sync.adapters.budget leases up to 5 tokens a take).
MAX_WINDOW_BURST = 5


@dataclass(frozen=True)
class Rate:
    """A limit: `per_minute` sustained (paced at `headroom` of it), `burst` back to back from a full bucket."""

    per_minute: float
    burst: float
    headroom: float = HEADROOM

    def __post_init__(self) -> None:
        if self.per_minute <= 0:
            raise ValueError(f"per_minute must be > 0, got {self.per_minute}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")
        if not 0 < self.headroom <= 1:
            raise ValueError(f"headroom must be in (0, 1], got {self.headroom}")

    @property
    def refill(self) -> float:
        """Tokens a second."""
        return self.per_minute * self.headroom / 60.0

    @classmethod
    def within(cls, limit: int, window: float, hold: float) -> Rate:
        """At most `limit` requests reach the server in any `window` seconds, though a token may be taken up
        to `hold` seconds before its request arrives (a lease held, the way to the server).

        A bucket of capacity c refilling at r a second lets at most c + r * T be taken in T seconds; their
        requests arrive within T + hold, so c + r * (window + hold) <= limit bounds every window. The
        capacity is about 1% of the limit and the rest is refill: at 500 a minute with a 1.5 s hold, c = 5
        and r = 495 / 61.5 a second, 483 a minute (96.6% of the limit, sustained). The Rate's burst is
        c + r * hold: a budget that hands tokens out at once (TokenBucket) may let that much through at
        once, one that leases them (SharedBudget) keeps c in its bucket and the rest for the hold.
        """
        if limit < 1 or window <= 0 or hold < 0:
            raise ValueError("limit must be >= 1, window > 0 and hold >= 0")
        capacity = min(MAX_WINDOW_BURST, max(1, limit // 100))
        if capacity >= limit:
            raise ValueError(f"a limit of {limit} leaves nothing to refill: at least {capacity + 1}")
        refill = (limit - capacity) / (window + hold)
        return cls(per_minute=refill * 60.0, burst=capacity + refill * hold, headroom=1.0)


class BudgetSpent(Exception):
    """The budget has no token within the time the caller may wait; nothing was taken.

    `retry_after`: seconds until the next token is due (at the earliest: others may take it first).
    """

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"the rate budget has no token for another {retry_after:.1f} s")
        self.retry_after = retry_after


@runtime_checkable
class RateBudget(Protocol):
    rate: Rate

    def acquire(self, timeout: float | None = None) -> None:
        """Take one token, waiting for it; BudgetSpent at once if it is more than `timeout` s away."""
        ...


BudgetFactory = Callable[[str, Rate], RateBudget]


def budget_key(system: str, base_url: str, secret: str, *scope: str) -> str:
    """A rate budget's key: the system, where it is, a fingerprint of the credential it counts against
    (never the credential itself) and, for a per-route budget, the route."""
    fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return ":".join((system, base_url.rstrip("/"), fingerprint, *scope))


class TokenBucket:
    """A budget in one process: a request that finds the bucket empty reserves the next token and sleeps until
    it is due, so callers on many threads are admitted in turn."""

    def __init__(self, rate: Rate, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(rate.burst)  # below zero: tokens already promised to waiting callers
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds callers spent waiting, for tests and metrics

    def acquire(self, timeout: float | None = None) -> None:
        refill = self.rate.refill
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.rate.burst), self._tokens + (now - self._stamp) * refill)
            self._stamp = now
            wait = max(0.0, (1.0 - self._tokens) / refill)
            if timeout is not None and wait > timeout:
                raise BudgetSpent(wait)
            self._tokens -= 1.0
            self.waited += wait
        if wait:
            self._sleep(wait)


_buckets: dict[tuple[str, Rate], TokenBucket] = {}
_registry_lock = threading.Lock()


def bucket_for(key: str, rate: Rate) -> TokenBucket:
    """One bucket per key (e.g. an API key's fingerprint and a route) and rate, per process."""
    with _registry_lock:
        bucket = _buckets.get((key, rate))
        if bucket is None:
            bucket = _buckets[(key, rate)] = TokenBucket(rate)
        return bucket


def forget() -> None:
    """Drop every bucket, as a new process starts (the local runner's cold starts)."""
    with _registry_lock:
        _buckets.clear()
