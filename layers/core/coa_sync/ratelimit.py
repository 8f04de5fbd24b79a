"""Client-side rate limiting: at most `limit` requests in any `window` seconds per tenant.

A sliding-window log rather than a token bucket: a token bucket lets a full bucket plus
the refill through in the first window, and Pleo counts requests per minute. The log
holds at most `limit` timestamps, so it stays small (500 floats per tenant).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds spent waiting, for metrics and benchmarks

    def acquire(self, timeout: float | None = None) -> bool:
        """Wait until one more request fits in the window, then record it and answer True.

        With a timeout: False at once, recording nothing, if the wait would take longer than that.
        """
        with self._lock:
            while True:
                now = self._clock()
                while self._sent and now >= self._sent[0] + self.window:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return True
                # At least a millisecond: a float-rounded zero pause would spin forever.
                pause = max(self._sent[0] + self.window - now, 0.001)
                if timeout is not None and pause > timeout:
                    return False
                if timeout is not None:
                    timeout -= pause
                self.waited += pause
                self._sleep(pause)


_limiters: dict[str, SlidingWindowLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(tenant_id: str, limit: int, window: float = 60.0) -> SlidingWindowLimiter:
    """One limiter per tenant per process, so every client of a tenant shares its budget."""
    with _registry_lock:
        limiter = _limiters.get(tenant_id)
        if limiter is None or limiter.limit != limit or limiter.window != window:
            limiter = _limiters[tenant_id] = SlidingWindowLimiter(limit, window)
        return limiter


def forget() -> None:
    """Drop every limiter, as a new process starts (the local runner's cold starts)."""
    with _registry_lock:
        _limiters.clear()
