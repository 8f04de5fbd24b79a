"""How a command stops on a signal: Stopped in the main thread, with its exit code; never inside a save."""

from __future__ import annotations

import os
import signal

import pytest
from coa_sync_local.signals import Stopped, deferred, stopping_on_signals


def test_sigterm_raises_stopped_and_the_handlers_before_are_put_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as stopped, stopping_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)  # a moment for the handler to run
    assert (str(stopped.value), stopped.value.exit_code) == ("SIGTERM", 143)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_signal_during_a_deferred_block_waits_for_its_end():
    finished = []
    with pytest.raises(Stopped) as stopped, stopping_on_signals(), deferred():
        os.kill(os.getpid(), signal.SIGINT)
        signal.sigtimedwait([], 0)
        finished.append("the save's bookkeeping")
    assert finished == ["the save's bookkeeping"] and stopped.value.exit_code == 130
