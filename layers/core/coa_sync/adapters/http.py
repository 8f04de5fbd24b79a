"""Reading HTTP answers, shared by the Pleo client and the connectors: when to try again, how long to wait,
and what an error answer says."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    import httpx


@cache
def tls() -> ssl.SSLContext:
    """The TLS settings every HTTP client shares (verify=tls()). Left to itself, httpx builds a context per
    client, loading the CA bundle each time (~70 ms), even for an http:// URL that never uses it."""
    import httpx

    return httpx.create_ssl_context()


def backoff(attempt: int) -> float:
    # Exponential with full jitter, so many writers retrying at once do not move in step.
    return random.uniform(0, min(30.0, 0.25 * 2**attempt))  # noqa: S311 - jitter, not security


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), or None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def wait_before_retry(response: httpx.Response, attempt: int) -> float:
    """What the server asked for (Retry-After: 0 means now), else our own backoff."""
    asked = retry_after(response)
    return backoff(attempt) if asked is None else asked


def is_transient(status: int) -> bool:
    """429 and 5xx may succeed later; every other error answer will not."""
    return status == 429 or status >= 500


def error_message(response: httpx.Response, read: Callable[[Any], str | None]) -> str:
    """What an error answer says: `read` of its JSON body (each system puts it somewhere else),
    else, when the body is not JSON or `read` finds nothing (None), the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        pass
    else:
        text = read(body)
        if text is not None:
            return text
    return response.reason_phrase or "error"
