"""The rate budget every container and function shares: a token bucket per scope in the tenants table.

Item (single table, keys pk/sk, TTL attribute expiresAt):
  BUDGET#<key> / BUDGET   tat, expiresAt   one scope's bucket (a Pleo company, an API key, a route...)

The bucket is one number, `tat`: the time (epoch seconds) at which it will be full again. At `now`
it holds capacity - (tat - now) * refill tokens, all of them once tat <= now. Taking n moves tat to
max(tat, now) + n / refill. DynamoDB cannot take a max, so a take is one of two conditional updates,
each a single round trip and atomic however many containers take at once:

  the bucket is full (tat <= now, or no item):   SET tat = now + m + n / refill
  the bucket is in use (now <= tat <= latest):   SET tat = tat + n / refill

(m: the last round trip's time, within what the caller may wait: tokens from a full bucket are
charged as of when the answer is expected back, so a slow table does not eat the time to use them,
however slow it is. A full bucket is full then too.)

where latest = now + (capacity - n) / refill plus the time the caller may wait. Tokens taken past
the first bound are reserved: they fall due later (as the bucket refills), promised to this caller
in turn, and it sleeps until then (as TokenBucket does). A condition that fails answers the item as
it is (ReturnValuesOnConditionCheckFailure): that says which update to try, or how long until a
token falls due; when that is longer than the caller may wait, nothing is taken and BudgetSpent says
when to come back. Nothing is ever read before a take.

Leases: a take gets up to MAX_LEASE tokens, so most requests cost no round trip: twice as many as
the last take when all of those were used, as many as were used when some lapsed (1 at first). The
size follows what the caller used, not how often it asked: a caller slowed by the table itself (many
containers on one table) still leases in blocks, where one that asks once in a while wastes little.
Tokens fall due when the answer comes back, as far as the bucket allows (see _take). A leased token
is used within `use_by` seconds of falling due or not at all, and counts as spent either way (a
lease whose answer comes back later than that is spent whole, and another taken). A token's request
then reaches the server at most `hold` (= 2 x use_by: the other half is its way there) after its
take: the bucket keeps the Rate's burst less refill x hold, and what reaches the server stays within
burst + refill x T in any T seconds (Rate.within turns Pleo's "500 in any 60 s" into such figures).

Times go to the table to the microsecond, each rounded against the caller.

Clocks: every container reads its own (time.time; Lambda's is NTP-disciplined). One running d seconds
ahead of the others takes at most d x refill tokens early.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from coa_sync.adapters.aws import client
from coa_sync.tokenbucket import BudgetSpent, Rate

PREFIX = "BUDGET#"
SORT_KEY = "BUDGET"
MAX_LEASE = 5
DEFAULT_HOLD = 1.5  # seconds from a token's take to its request's arrival, at most
TRIES = 8  # conditional updates of one take at most (each refusal leaves fewer ways to fail: 4 at most)
ITEM_TTL = 24 * 3600  # an idle bucket is full: its item may go
NEVER = 365 * 24 * 3600.0  # "no timeout", as a wait DynamoDB can compare


def _up(seconds: float) -> float:
    """To the table's grain (times are sent to the microsecond), never less: rounded to nearest, a take from a
    bucket in use would give away up to half a microsecond every time, never given back while it stays in use."""
    return math.ceil(seconds * 1e6) / 1e6


def _down(seconds: float) -> float:
    return math.floor(seconds * 1e6) / 1e6


class SharedBudget:
    """A RateBudget for one key, kept in the table; threads sharing one object share its lease."""

    def __init__(self, key: str, rate: Rate, table_name: str, *, hold: float = DEFAULT_HOLD, lease: int = MAX_LEASE,
                 dynamodb: Any | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.key = key
        self.rate = rate
        self._table = table_name
        self._dynamodb = dynamodb if dynamodb is not None else client("dynamodb")
        self._interval = 1.0 / rate.refill  # seconds a token takes to come back
        self._capacity = max(1.0, rate.burst - rate.refill * hold)
        self._lease_max = max(1, min(lease, int(self._capacity)))
        self._use_by = hold / 2
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._leased = 0  # tokens taken and not yet handed out
        self._due = 0.0  # when they may be used
        self._size = 0  # tokens the last take asked for
        self._tat: float | None = None  # the item's tat as last seen
        self._shared = False  # others took from the bucket since this one last saw it full
        self._trip = 0.0  # seconds the last conditional update took
        self.waited = 0.0  # seconds callers slept for tokens
        self.round_trips = 0  # conditional updates sent

    def acquire(self, timeout: float | None = None) -> None:
        with self._lock:
            now = self._clock()
            if self._leased and now <= self._due + self._use_by:
                wait = max(0.0, self._due - now)
                if timeout is not None and wait > timeout:
                    raise BudgetSpent(wait)
                self._leased -= 1
            else:
                wait = self._lease(now, timeout)
            self.waited += wait
        if wait > 0:
            self._sleep(wait)

    def _lease(self, now: float, timeout: float | None) -> float:
        """Take a new lease and hand out its first token: how long until it is due. A lease whose answer came back
        after its tokens' time to be used (a table slower than a token may be held) is spent: it takes another."""
        for _ in range(TRIES):
            # All of the last lease used: twice as many. Some lapsed: as many as were used.
            size = self._size - self._leased if self._leased else 2 * self._size
            self._size = min(self._lease_max, max(1, size))
            self._leased, self._due = self._take(self._size, now, timeout)
            answered = self._clock()  # the take's round trips are time already waited
            if answered <= self._due + self._use_by:
                self._leased -= 1
                return max(0.0, self._due - answered)
            if timeout is not None:
                timeout -= answered - now
            now = answered
        raise BudgetSpent(self._interval)  # the table answers too slowly for any token to be used in its time

    def _take(self, wanted: int, now: float, timeout: float | None) -> tuple[int, float]:
        """Take `wanted` tokens (or one, if only one falls due in time) as of `now`: how many, and when due.

        Every try is as of the same `now`: tat only grows, so once the full bucket's update is refused the
        in-use one can fail only for want of tokens, and the two never take turns failing.

        When due: the tokens count as taken at any time t with new tat - capacity <= t <= new tat - cost (in
        refill time). Each take then leaves tat at least t + cost and at most t + capacity, and however the
        takes' times interleave, the tokens of every stretch [t1, t2] number at most capacity + refill x
        (t2 - t1). So they are due when the answer arrives, kept within those bounds: a slow answer from a
        bucket still in use does not eat their time to be used."""
        allowed = NEVER if timeout is None else max(0.0, timeout)
        # The conditions are as of the next microsecond: a bucket full by then is full, one that is not is in use,
        # and no time lies between the two (the full one charges from then: at most a microsecond more).
        at = _up(now)
        count = wanted
        for _ in range(TRIES):
            # Full, as far as this one knows: unless others were taking from it lately.
            full = self._tat is None or (self._tat <= at and not self._shared)
            cost = _up(count * self._interval)
            # From a full bucket the tokens are taken as of when the answer is expected back (the last round trip's
            # time on), not as of the ask: a slow table must not eat their time. Capped at the time to use them, a
            # table slower than twice that (many containers on one local moto) lapsed every lease from a full
            # bucket. A full bucket is full then too; what it would refill meanwhile is capped anyway.
            margin = min(self._trip, allowed)
            if full:
                answer = self._update("SET tat = :tat, expiresAt = :expires",
                                      "attribute_not_exists(tat) OR tat <= :now",
                                      {":tat": _up(at + margin) + cost, ":now": at}, now)
            else:
                latest = _down(now + (self._capacity - count) * self._interval + allowed)
                answer = self._update("SET tat = tat + :cost, expiresAt = :expires", "tat BETWEEN :now AND :latest",
                                      {":cost": cost, ":now": at, ":latest": latest}, now)
            taken, self._tat = answer
            if taken:
                answered = self._clock()
                return count, max(self._tat - self._capacity * self._interval, min(self._tat - cost, answered))
            self._shared = full  # a full bucket's update refused: another took from it meanwhile
            if self._tat is None or self._tat <= at:
                continue  # the bucket is full again: the other update
            first = self._tat + self._interval - self._capacity * self._interval - now  # until one token is due
            if first + (count - 1) * self._interval > allowed:
                if first > allowed:
                    raise BudgetSpent(first)
                count = 1  # not a whole lease in time, but one token
        raise BudgetSpent(self._interval)  # not reached: each answer narrows what the next try can meet

    def _update(self, expression: str, condition: str, values: dict[str, float],
                now: float) -> tuple[bool, float | None]:
        """(True, the new tat) if the condition held; (False, the tat the item has, None if none) if not."""
        self.round_trips += 1
        numbers = {name: {"N": f"{value:.6f}"} for name, value in values.items()}  # each on the grain already
        sent = self._clock()
        try:
            response = self._dynamodb.update_item(
                TableName=self._table, Key={"pk": {"S": PREFIX + self.key}, "sk": {"S": SORT_KEY}},
                UpdateExpression=expression, ConditionExpression=condition,
                ExpressionAttributeValues={**numbers, ":expires": {"N": str(int(now) + ITEM_TTL)}},
                ReturnValues="UPDATED_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            self._trip = self._clock() - sent
            tat = exc.response.get("Item", {}).get("tat", {}).get("N")
            return False, None if tat is None else float(tat)
        self._trip = self._clock() - sent
        return True, float(response["Attributes"]["tat"]["N"])


class SharedBudgets:
    """A BudgetFactory over the tenants table: one SharedBudget per key and rate while it lives (a client,
    a connector), so one user of many budgets (DualEntry's routes) keeps each one's lease."""

    def __init__(self, table_name: str, *, hold: float = DEFAULT_HOLD, dynamodb: Any | None = None) -> None:
        self._table = table_name
        self._hold = hold
        self._dynamodb = dynamodb
        self._budgets: dict[tuple[str, Rate], SharedBudget] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str, rate: Rate) -> SharedBudget:
        with self._lock:
            budget = self._budgets.get((key, rate))
            if budget is None:
                budget = self._budgets[(key, rate)] = SharedBudget(key, rate, self._table, hold=self._hold,
                                                                   dynamodb=self._dynamodb)
            return budget
