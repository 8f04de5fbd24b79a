"""The client-side limiter never lets more than `limit` requests into any window."""

from __future__ import annotations

from coa_sync.ratelimit import SlidingWindowLimiter, limiter_for
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import FakeClock


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 20), st.lists(st.floats(0, 3), max_size=80))
def test_no_window_ever_holds_more_than_the_limit(limit, gaps):
    clock = FakeClock()
    limiter = SlidingWindowLimiter(limit, window=10.0, clock=clock, sleep=clock.sleep)
    sent = []
    for gap in gaps:
        clock.now += gap
        limiter.acquire()
        sent.append(clock.now)
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + 10.0) <= limit


def test_waits_only_when_the_window_is_full():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(500, window=60.0, clock=clock, sleep=clock.sleep)
    for _ in range(500):
        limiter.acquire()
    assert clock.now == 0.0
    limiter.acquire()
    assert clock.now == 60.0 and limiter.waited == 60.0


def test_one_limiter_per_tenant():
    assert limiter_for("t1", 500) is limiter_for("t1", 500)
    assert limiter_for("t1", 500) is not limiter_for("t2", 500)
