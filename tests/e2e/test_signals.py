"""A sync stopped by a signal, as scripts and operators stop them: a real `coa-sync sync` process,
stopped while Pleo (the emulator) is slow to answer its second batch create. Whatever stopped it,
the run stays in `runs` with what it had applied, its dead letters and its queued actions, and
the next sync works."""

from __future__ import annotations

import json
import os
import selectors
import shlex
import signal
import subprocess
import sys
import time

import pytest
from coa_sync_local.runner import LocalRunner, RunnerOptions
from coa_sync_local.state import LocalState

from tests.support import API_KEY, COMPANY, coa_sync, sync, write_csv

ACCOUNTS = 1010  # two batch creates: 1000, then 10
FIRST_BATCH = f"writer: 1000/{ACCOUNTS} actions settled"


@pytest.fixture
def slow_pleo(emulator):
    """Pleo answers the first batch create at once and takes 4 s over each one after it."""
    emulator.add_company(COMPANY, api_keys=[API_KEY], tax_codes=["VAT25"])
    emulator.inject("slow", count=5, endpoint="batch_create", delay=4.0, skip=1)
    return emulator


@pytest.fixture
def chart(tmp_path):
    rows = [(f"acc-{n:04d}", str(1000 + n), f"Account {n}", True, "VAT25") for n in range(ACCOUNTS)]
    rows[0] = ("acc-0000", "1000", "Account 0", True, "NO-SUCH-TAX")  # Pleo refuses it: a dead letter
    return write_csv(tmp_path / "chart.csv", rows)


def sync_command(emulator, source) -> list[str]:
    return [sys.executable, "-m", "coa_sync_local.cli", "sync", "--source", str(source), "--pleo-url", emulator.url,
            "--company-id", COMPANY, "--pleo-api-key", API_KEY]


def mid_write(process: subprocess.Popen, emulator) -> None:
    """Return once the first batch create is saved (the runner saves the state before it reports
    progress) and the second one is in Pleo's hands, sleeping there."""
    read_until(process, FIRST_BATCH)
    wait_for(lambda: emulator.faults_fired["slow"] == 1, "the second batch create never reached Pleo")


def wait_for(condition, problem: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, problem
        time.sleep(0.05)


def read_until(process: subprocess.Popen, text: str, timeout: float = 90.0) -> str:
    """The process's stderr up to `text`, read as it comes (unbuffered: no line waits in a buffer)."""
    seen, fd = "", process.stderr.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while text not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left) or not (chunk := os.read(fd, 65536)):
                raise AssertionError(f"no {text!r} on stderr; got:\n{seen}")
            seen += chunk.decode(errors="replace")
    return seen


def the_run() -> dict:
    listed = coa_sync("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)["runs"]
    return run


def assert_kept(emulator, state_dir) -> None:
    """The run is in `runs` with what it applied, its dead letter and its queued actions."""
    # Pleo finishes the batch the process was waiting for: 10 more accounts, the stopped run never heard of.
    wait_for(lambda: emulator.calls["batch_create"] == 2, "Pleo never served the second batch create")
    run = the_run()
    assert run["status"] == "failed" and "interrupted" in run["error"]
    assert run["planned"]["create"] == ACCOUNTS
    assert (run["applied"]["create"], run["failed"]) == (999, 1)  # the first batch, saved as it settled
    with LocalState(state_dir) as state, LocalRunner(RunnerOptions(pleo_url=None), state=state) as runner:
        letters = runner.dead_letters()
        waiting = runner.sqs.get_queue_attributes(QueueUrl=runner.actions_url,
                                                  AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert [(letter.message.run_id, letter.message.action.external_id) for letter in letters] == [
        (run["runId"], "acc-0000")]
    assert int(waiting["ApproximateNumberOfMessages"]) == ACCOUNTS - 1000  # the second batch, still queued


def assert_next_sync_works(emulator, chart) -> None:
    emulator.clear_faults()
    again = sync(emulator, chart, "--json")
    assert again.returncode == 1, again.stderr  # acc-0000 is refused again, and said so
    report = json.loads(again.stdout)
    assert report["status"] == "completed" and [f["externalId"] for f in report["failed"]] == ["acc-0000"]
    assert sorted(a["externalId"] for a in emulator.accounts(COMPANY)) == [f"acc-{n:04d}" for n in range(1, ACCOUNTS)]


def test_a_sigkilled_sync_is_in_runs_with_what_it_applied_and_the_next_sync_works(slow_pleo, chart, state_dir):
    process = subprocess.Popen(sync_command(slow_pleo, chart), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        mid_write(process, slow_pleo)
        process.kill()  # SIGKILL: nothing of the process runs after this
        assert process.wait(timeout=10) == -signal.SIGKILL
    finally:
        process.kill()
        process.stderr.close()
    assert_kept(slow_pleo, state_dir)
    assert_next_sync_works(slow_pleo, chart)


def test_a_sigterm_stops_a_sync_cleanly_with_exit_143(slow_pleo, chart, state_dir):
    process = subprocess.Popen(sync_command(slow_pleo, chart), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        mid_write(process, slow_pleo)
        stopped_at = time.monotonic()
        process.terminate()
        assert process.wait(timeout=20) == 128 + signal.SIGTERM
        assert time.monotonic() - stopped_at < 3.5, "it stopped while Pleo was still answering (4 s)"
        assert "coa-sync: stopped by SIGTERM" in process.stderr.read()
    finally:
        process.kill()
        process.stderr.close()
    assert_kept(slow_pleo, state_dir)
    assert_next_sync_works(slow_pleo, chart)


def test_sigint_stops_a_sync_a_script_started_in_the_background(slow_pleo, chart, state_dir):
    # A shell without job control starts `cmd &` with SIGINT ignored; no terminal either.
    script = shlex.join(sync_command(slow_pleo, chart)) + ' & echo "$!"; wait "$!"; echo "exit=$?"'
    shell = subprocess.Popen(["bash", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        pid = int(shell.stdout.readline())
        mid_write(shell, slow_pleo)
        os.kill(pid, signal.SIGINT)
        out, err = shell.communicate(timeout=20)
    finally:
        shell.kill()
    assert "exit=130" in out, err
    assert "coa-sync: stopped by SIGINT" in err
    assert_kept(slow_pleo, state_dir)
