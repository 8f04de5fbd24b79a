"""Reading HTTP answers, shared by the Pleo client and the connectors: when to try again, how long to wait,
what an error answer says, and a word while a server is slow to answer; and every wait before a request
bounded by the caller's deadline (coa_sync.deadline): a request is started only while it can still finish
in time."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from coa_sync.deadline import Deadline, OutOfTimeError
from coa_sync.observability import logger
from coa_sync.tokenbucket import BudgetSpent

# A retry after an error answer (429, 5xx) is announced once the request has taken this long; a retry
# after no answer at all (a timeout, a dropped connection) always is: five 15 s timeouts are a minute.
ANNOUNCE_AFTER_SECONDS = 5.0

if TYPE_CHECKING:
    import ssl

    import httpx

    from coa_sync.tokenbucket import RateBudget


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


def admit(budget: RateBudget, deadline: Deadline, request_seconds: float, doing: str,
          max_wait: float = math.inf) -> None:
    """Before a request: take a token from the rate budget, waiting at most `max_wait` for it and only while
    the request still fits after the wait. Nothing is taken when it does not: OutOfTimeError if the deadline
    is what the wait would pass, else BudgetSpent (how long until a token is due)."""
    deadline.require(request_seconds, doing)
    fits = deadline.left() - request_seconds
    wait = min(max_wait, fits)
    try:
        budget.acquire(timeout=None if math.isinf(wait) else wait)
    except BudgetSpent:
        if fits <= max_wait:
            raise OutOfTimeError(f"{doing}: the rate budget frees a request too late for the time left") from None
        raise


def pause(wait: float, deadline: Deadline, request_seconds: float, doing: str,
          sleep: Callable[[float], None]) -> None:
    """Before a retry: sleep `wait` only if the retried request still fits after it."""
    deadline.require(wait + request_seconds, f"{doing} (retry after {wait:.1f} s)")
    sleep(wait)


def is_transient(status: int) -> bool:
    """429 and 5xx may succeed later; every other error answer will not."""
    return status == 429 or status >= 500


def tls_problem(exc: BaseException) -> str | None:
    """What a failed TLS handshake says (a certificate not trusted, expired, for another host), or None for
    any other transport error. Sending the request again cannot fix it, so it is never retried."""
    import ssl

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not accepted ({cause.verify_message}); check the URL and the server's certificate"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error ({cause.reason or cause}); check the URL and the server's TLS set-up"
        cause = cause.__cause__ or cause.__context__
    return None


def announce_retry(system: str, request: str, problem: str, waited: float, attempt: int, attempts: int) -> None:
    """Say, while retrying, that a server is slow or failing, rather than waiting in silence."""
    answered = problem.startswith("HTTP ")
    if answered and waited < ANNOUNCE_AFTER_SECONDS:
        return
    what = (f"{system} answered {problem} ({request}, {waited:.0f} s so far)" if answered
            else f"{system} has not answered for {waited:.0f} s ({request}: {problem})")
    logger.warning(f"{what}; attempt {attempt} of {attempts}")


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
