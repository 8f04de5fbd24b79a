"""Every wait is bounded by the time left: a function stops starting work it could not finish.

Lambda kills a function at its timeout, wherever it is; work cut off there is lost and its
event comes back whole. So a function gives its adapters a Deadline (the invocation's remaining
time less what the function keeps for itself to wrap up), and before each request, rate-limit
wait or retry pause they ask whether it still fits. What does not fit raises OutOfTimeError:
the caller stops cleanly (the writer hands the rest back to the queue, fetch fails its run and
frees the tenant) instead of being killed in the middle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


class OutOfTimeError(Exception):
    """Not enough time left to start this; nothing of it was done."""


@dataclass(frozen=True)
class Deadline:
    time_left: Callable[[], float]  # seconds the caller may still spend

    def left(self) -> float:
        return self.time_left()

    def require(self, seconds: float, doing: str) -> None:
        """OutOfTimeError unless `seconds` more fit before the deadline."""
        left = self.left()
        if left < seconds:
            raise OutOfTimeError(f"{doing}: {max(left, 0):.0f} s left, {seconds:.0f} s needed")

    @classmethod
    def of(cls, remaining_millis: Callable[[], int], keep_seconds: float) -> Deadline:
        """From Lambda's context.get_remaining_time_in_millis, keeping `keep_seconds` to wrap up."""
        return cls(lambda: remaining_millis() / 1000 - keep_seconds)


NONE = Deadline(lambda: math.inf)  # for callers with no deadline: tools, tests
