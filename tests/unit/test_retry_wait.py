"""How long the Pleo client and every connector wait before retrying a 429/5xx answer."""

from __future__ import annotations

import httpx
from coa_sync.adapters.http import wait_before_retry


def test_retry_after_zero_means_now_not_our_backoff():
    assert wait_before_retry(httpx.Response(429, headers={"Retry-After": "0"}), attempt=3) == 0.0


def test_retry_after_seconds_are_taken_as_asked():
    assert wait_before_retry(httpx.Response(503, headers={"Retry-After": "7"}), attempt=1) == 7.0


def test_without_retry_after_the_backoff_grows_with_the_attempt_and_stays_bounded():
    waits = [wait_before_retry(httpx.Response(503), attempt=attempt) for attempt in (1, 8)]
    assert 0 <= waits[0] <= 0.5 and 0 <= waits[1] <= 30.0
