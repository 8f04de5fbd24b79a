"""The failures AWS really produces, played by the local runner (`coa-sync sync --aws-faults LIST`).

The local runner is otherwise a kind AWS: every event arrives once, no function is killed at its
timeout, every container keeps its memory. Deployed, none of that holds, so a user can ask for:

- `duplicate-events`: every S3 notification and asynchronous invocation (fetch, diff) is delivered
  twice, the second copy late (after a few writer batches). AWS: S3 event notifications are
  delivered "at least once" (S3 User Guide, event notifications); a Lambda function invoked
  asynchronously may "receive the same event from Lambda multiple times" (Lambda Developer Guide,
  error handling for asynchronous invocation).
- `timeouts`: some first tries get a virtual deadline that runs out mid-work (a fetch
  mid-pagination, a diff between SendMessageBatch calls, a writer after some Pleo calls); then
  Lambda's retry or SQS's redelivery follows. AWS: at its timeout Lambda stops the function
  wherever it is; a failed asynchronous invocation (timeouts included) is run "two more times";
  an SQS batch whose invocation failed becomes visible again after the visibility timeout.
- `cold-starts`: every invocation is a fresh container: its handler loaded anew, nothing kept in
  process memory (AWS clients, cached secrets, rate-limiter windows). AWS: any invocation may land
  in a new execution environment (Lambda Developer Guide, execution environment lifecycle).
- `sqs-duplicates`: some messages are delivered twice, to two writers at once. AWS: a standard
  queue's at-least-once delivery means "occasionally more than one copy of a message is
  delivered" (SQS Developer Guide, standard queues).

`all` is every one of them. The deadline is virtual: each AWS call and each HTTP request an
invocation makes spends a share of its time (`context.get_remaining_time_in_millis()` counts down
with them, far faster than the clock), and a call that starts or ends past the deadline kills the
invocation (LambdaKilled, which no `except Exception` catches: nothing of the function runs after
a kill), so the scenarios run in seconds. Every choice is drawn from one seeded random generator.
Only first tries are killed, so every killed invocation is finished by its retry, as on AWS once
whatever slowed it passed.

This module is the runner's; nothing of it ships to Lambda.
"""

from __future__ import annotations

import contextvars
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

FAULTS = ("duplicate-events", "timeouts", "cold-starts", "sqs-duplicates")
# The template's timeouts: a killed function dies where its deployed twin would run out.
TIMEOUTS = {"fetch": 300.0, "diff": 900.0, "writer": 300.0}
ASYNC_RETRIES = 2  # Lambda retries a failed asynchronous invocation twice (its default)


class LambdaKilled(BaseException):
    """The invocation reached its deadline: Lambda stops it where it is."""


def parse(listed: str) -> tuple[str, ...]:
    """`--aws-faults` as given: comma-separated names, or `all`; ValueError naming what is unknown."""
    names = [name.strip() for name in listed.split(",") if name.strip()]
    if names == ["all"]:
        return FAULTS
    unknown = [name for name in names if name not in FAULTS]
    if unknown or not names:
        raise ValueError(f"unknown AWS fault(s) {', '.join(unknown) or repr(listed)}; "
                         f"choose from {', '.join(FAULTS)} or all")
    return tuple(dict.fromkeys(names))


@dataclass
class VirtualDeadline:
    """An invocation's time, spent by its calls (virtual seconds each): killed at the call that reaches `timeout`."""

    function: str
    timeout: float
    http_seconds: float  # a request to Pleo or an accounting system
    aws_seconds: float  # an AWS call
    spent: float = 0.0

    def remaining_millis(self) -> int:
        return max(0, int((self.timeout - self.spent) * 1000))

    def spend(self, seconds: float, where: str) -> None:
        self.spent += seconds
        if self.spent >= self.timeout:
            raise LambdaKilled(f"{self.function} killed at its timeout ({where})")


_deadline: contextvars.ContextVar[VirtualDeadline | None] = contextvars.ContextVar("aws_fault_deadline",
                                                                                     default=None)


@contextmanager
def running_until(deadline: VirtualDeadline | None) -> Iterator[None]:
    """Calls made inside spend this invocation's virtual time (None: a normal invocation)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def _spend(http: bool, where: str, call: Any) -> Any:
    deadline = _deadline.get()
    if deadline is None:
        return call()
    seconds = deadline.http_seconds if http else deadline.aws_seconds
    deadline.spend(seconds / 2, f"before {where}")  # waiting for, or sending, the request
    answer = call()
    deadline.spend(seconds / 2, f"after {where}: its answer is lost")
    return answer


@contextmanager
def checkpoints() -> Iterator[None]:
    """While open, every AWS call (botocore) and HTTP request (httpx) in the process is a point where a
    virtual deadline can kill the invocation making it."""
    import httpx
    from botocore.client import BaseClient

    make_api_call = BaseClient._make_api_call
    handle_request = httpx.HTTPTransport.handle_request

    def api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        return _spend(False, f"{service} {operation}", lambda: make_api_call(client, operation, params))

    def http_request(transport: Any, request: Any) -> Any:
        return _spend(True, f"{request.method} {request.url.path}", lambda: handle_request(transport, request))

    with mock.patch.object(BaseClient, "_make_api_call", api_call), \
            mock.patch.object(httpx.HTTPTransport, "handle_request", http_request):
        yield


@dataclass
class AwsFaults:
    """Which faults are on, and the one random generator every choice is drawn from."""

    kinds: tuple[str, ...] = ()
    seed: int = 0
    # How often a chance comes true: a first try killed, a message delivered twice.
    kill_chance: float = 0.5
    duplicate_chance: float = 0.2
    rng: random.Random = field(init=False)
    played: dict[str, int] = field(default_factory=dict)  # what was played, for the summary

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - reproducible faults, not secrets

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def on(self, kind: str) -> bool:
        return kind in self.kinds

    def count(self, what: str, n: int = 1) -> None:
        self.played[what] = self.played.get(what, 0) + n

    def deadline(self, function: str, first_try: bool) -> VirtualDeadline | None:
        """A deadline that runs out mid-work, for some first tries (retries and redeliveries run normally,
        so every killed invocation is finished by its retry, as on AWS once the cause passed)."""
        if not (self.on("timeouts") and first_try and self.rng.random() < self.kill_chance):
            return None
        self.count(f"{function} given a deadline mid-work")
        timeout = TIMEOUTS[function]
        step = timeout / self.rng.randint(2, 40)  # the invocation's time runs out after about this many requests
        # The diff makes AWS calls only (SendMessageBatch after SendMessageBatch); fetch and the writer spend
        # their time on Pleo, at the rate limit.
        return VirtualDeadline(function, timeout, http_seconds=step, aws_seconds=step if function == "diff"
                               else step / 50)

    def twice(self) -> bool:
        """Whether an S3 notification or async invocation is delivered a second time."""
        return self.on("duplicate-events")

    def late_by(self) -> int:
        """After how many writer batches a second copy arrives."""
        return self.rng.randint(0, 4)

    def duplicated(self, messages: list[Any]) -> list[Any]:
        """The messages of a batch that SQS also hands to a second writer."""
        if not self.on("sqs-duplicates"):
            return []
        return [message for message in messages if self.rng.random() < self.duplicate_chance]
