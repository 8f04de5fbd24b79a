"""The token bucket admits at most its burst plus its refill in any stretch of time, in order, and never
waits longer than it is allowed to."""

from __future__ import annotations

import threading
import time

import pytest
from coa_sync.tokenbucket import HEADROOM, BudgetSpent, Rate, RateBudget, TokenBucket, bucket_for
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import FakeClock


def bucket(per_minute: float, burst: int, clock: FakeClock) -> TokenBucket:
    return TokenBucket(Rate(per_minute, burst), clock=clock, sleep=clock.sleep)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(6, 600), st.lists(st.floats(0, 5), max_size=60))
def test_no_stretch_of_time_admits_more_than_the_burst_plus_the_refill(burst, per_minute, gaps):
    clock = FakeClock()
    limiter = bucket(per_minute, burst, clock)
    admitted = []
    for gap in gaps:
        clock.now += gap
        limiter.acquire()
        admitted.append(clock.now)
    refill = per_minute * HEADROOM / 60.0
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            # requests i..j all fall inside [start, admitted[j]]
            assert j - i + 1 <= burst + refill * (admitted[j] - start) + 1e-6


def test_a_full_bucket_lets_the_burst_through_at_once_then_paces_at_the_refill_rate():
    clock = FakeClock()
    limiter = bucket(60, 10, clock)  # DualEntry's per-route figures
    for _ in range(10):
        limiter.acquire()
    assert clock.now == 0.0
    limiter.acquire()
    assert clock.now == pytest.approx(1 / HEADROOM)
    assert limiter.waited == pytest.approx(1 / HEADROOM)


def test_a_wait_longer_than_the_timeout_is_refused_at_once_and_takes_no_token():
    clock = FakeClock()
    limiter = bucket(6, 1, clock)  # one token every ten seconds (and a little)
    limiter.acquire()
    with pytest.raises(BudgetSpent) as info:
        limiter.acquire(timeout=5)
    assert info.value.retry_after == pytest.approx(10 / HEADROOM) and clock.now == 0.0
    limiter.acquire(timeout=11)  # the refused call reserved nothing: the next token is still the first
    assert clock.now == pytest.approx(10 / HEADROOM)


def test_callers_on_many_threads_share_the_budget_instead_of_each_taking_a_burst():
    limiter = TokenBucket(Rate(6000, 5))  # real time: 100 a second after a burst of 5
    threads = [threading.Thread(target=limiter.acquire) for _ in range(25)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 20 / (100 * HEADROOM) - 0.01
    assert limiter.waited > 0


def test_the_figures_are_checked_and_one_bucket_serves_each_key_and_rate():
    with pytest.raises(ValueError, match="per_minute"):
        Rate(0, 1)
    with pytest.raises(ValueError, match="burst"):
        Rate(60, 0)
    with pytest.raises(ValueError, match="headroom"):
        Rate(60, 1, headroom=0)
    first = bucket_for("dualentry:key-a", Rate(300, 50))
    assert isinstance(first, RateBudget) and first.rate == Rate(300, 50)
    assert bucket_for("dualentry:key-a", Rate(300, 50)) is first
    assert bucket_for("dualentry:key-b", Rate(300, 50)) is not first
    assert bucket_for("dualentry:key-a", Rate(600, 50)) is not first  # a changed override gets a fresh bucket


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 1000), st.sampled_from([1.0, 4.0, 60.0]), st.lists(st.floats(0, 0.05), max_size=300))
def test_a_limit_per_window_as_a_bucket_never_lets_a_window_hold_more(limit, window, gaps):
    clock = FakeClock()
    limiter = TokenBucket(Rate.within(limit, window, hold=window / 30), clock=clock, sleep=clock.sleep)
    sent = []
    for gap in gaps:
        clock.now += gap * window
        limiter.acquire()
        sent.append(clock.now)
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + window) <= limit


def test_pleos_500_a_minute_keeps_95_percent_of_the_limit_with_a_small_burst():
    rate = Rate.within(500, 60.0, hold=1.5)
    assert rate.refill * 60 == pytest.approx(495 / 61.5 * 60) and rate.refill * 60 >= 0.96 * 500  # sustained
    assert rate.burst + rate.refill * 60 == pytest.approx(500)  # the most any minute can see
    assert rate.burst - rate.refill * 1.5 == pytest.approx(5)  # what a bucket that leases for 1.5 s keeps
    assert Rate.within(10, 60.0, hold=2.0).burst - Rate.within(10, 60.0, hold=2.0).refill * 2 == pytest.approx(1)
    with pytest.raises(ValueError, match="nothing to refill"):
        Rate.within(1, 60.0, hold=2.0)
