"""How a coa-sync command stops when asked to: SIGINT, SIGTERM and SIGHUP raise Stopped in the
main thread, so the command unwinds as it does on Ctrl-C: the local state is saved, the run is
closed as interrupted, and the command exits 128 + the signal's number.

SIGINT is handled even when the command started with it ignored: a shell without job control
(a script) starts a background job (`coa-sync sync ... &`) with SIGINT ignored, and then nothing
but SIGKILL could stop it cleanly. To shield a background sync from the Ctrl-C of the script
that started it, start it in its own session (`setsid coa-sync sync ...`). SIGHUP is left
ignored when it was (`nohup coa-sync sync ...`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Stopped(KeyboardInterrupt):
    """The command was asked to stop by a signal; handled wherever Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def stopping_on_signals() -> Iterator[None]:
    """While inside, SIGINT, SIGTERM and SIGHUP (unless it was ignored) raise Stopped in the main thread;
    the handlers before are put back afterwards (a test calling the CLI in process keeps its own)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    signums = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
               if not (s == signal.SIGHUP and signal.getsignal(s) == signal.SIG_IGN)]
    before = {signum: signal.signal(signum, _stop) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """A block a stop signal does not cut short (a save and what it records it saved): the signal
    is raised as Stopped when the block ends."""
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending is not None:
            signum, _pending = _pending, None
            raise Stopped(signum)


_deferring = 0  # blocks inside deferred(): signals wait
_pending: int | None = None


def _stop(signum: int, _frame: FrameType | None) -> None:
    global _pending
    if _deferring:
        _pending = signum
        return
    raise Stopped(signum)
