"""Client-side token buckets: the rate limits accounting systems state as a burst and a refill rate.

A bucket holds at most `burst` tokens and gains `per_minute / 60` of one a second; each request
takes one. A request that finds it empty reserves the next token and sleeps until it is due, so
callers on many threads are admitted in turn, and no stretch of T seconds admits more than
`burst + refill * T`. The refill runs at HEADROOM of the stated rate: the server's own bucket
sees each request a little late or early, and a client pacing at exactly the stated rate would
meet a 429 (and its Retry-After) about every other request once the burst is spent.

What a connector draws on is a `RateBudget`: the figures and `acquire(timeout)`. This module's
bucket lives in one process; a budget shared by every container (e.g. in DynamoDB) is another
`RateBudget`, built by another `BudgetFactory` (connectors take one in `ConnectorDeps.budget`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

HEADROOM = 0.95  # of the stated refill rate


@dataclass(frozen=True)
class Rate:
    """A stated limit: `per_minute` sustained, `burst` back to back from a full bucket."""

    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute <= 0:
            raise ValueError(f"per_minute must be > 0, got {self.per_minute}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")


class BudgetTimeout(Exception):
    """The next token is further away than the caller may wait; nothing was taken."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the rate budget has no token for another {wait:.1f} s")
        self.wait = wait


@runtime_checkable
class RateBudget(Protocol):
    rate: Rate

    def acquire(self, timeout: float | None = None) -> None:
        """Take one token, waiting for it; BudgetTimeout at once if it is more than `timeout` s away."""
        ...


BudgetFactory = Callable[[str, Rate], RateBudget]


class TokenBucket:
    def __init__(self, rate: Rate, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self._refill = rate.per_minute * HEADROOM / 60.0  # tokens a second
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(rate.burst)  # below zero: tokens already promised to waiting callers
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds callers spent waiting, for tests and metrics

    def acquire(self, timeout: float | None = None) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.rate.burst), self._tokens + (now - self._stamp) * self._refill)
            self._stamp = now
            wait = max(0.0, (1.0 - self._tokens) / self._refill)
            if timeout is not None and wait > timeout:
                raise BudgetTimeout(wait)
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
