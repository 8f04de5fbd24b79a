"""The command line's contract with scripts (coa_sync_local.errors): exit codes, and under --json one
JSON object on stdout for every failure, bad options included, never a traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from tests.support import API_KEY, COMPANY, SEED_SOURCE, coa_sync, write_csv

NOWHERE = "http://127.0.0.1:9"  # never reached: every case below fails before a request


def sync_args(source: str, **overrides: str) -> list[str]:
    options = {"--source": source, "--pleo-url": NOWHERE, "--company-id": COMPANY, "--pleo-api-key": API_KEY,
               **overrides}
    return ["sync", *[part for option, value in options.items() if value is not None for part in (option, value)]]


def failure(result: subprocess.CompletedProcess[str]) -> dict:
    """The one JSON object a failing --json command prints, after checking it failed as bad input."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    (line,) = result.stdout.splitlines()
    return json.loads(line)["error"]


@pytest.mark.parametrize(("overrides", "option", "words"), [
    ({"--pleo-api-key": ""}, "--pleo-api-key", "argument --pleo-api-key: is empty (an unset shell variable?)"),
    ({"--company-id": ""}, "--company-id", "argument --company-id: is empty"),
    ({"--company-id": "  "}, "--company-id", "argument --company-id: is blank"),
    ({"--tenant": "Acme Corp"}, "--tenant", "argument --tenant: 'Acme Corp' is not a tenant id"),
    ({"--pleo-url": "localhost:8080"}, "--pleo-url", "argument --pleo-url: must be an http(s) URL"),
    ({"--pleo-url": None}, "--pleo-url", "--pleo-url is required (or --target-kind thredfi|dualentry|stackone)"),
    ({"--archive-guard-min": "-1"}, "--archive-guard-min", "argument --archive-guard-min: "),
    ({"--frobnicate": "1"}, "--frobnicate", "unrecognized arguments: --frobnicate"),
])
def test_each_bad_option_is_exit_2_with_one_json_object_naming_it(tmp_path, overrides, option, words):
    source = write_csv(tmp_path / "chart.csv", SEED_SOURCE)
    error = failure(coa_sync(*sync_args(source, **overrides), "--json"))
    assert error["option"] == option and words in error["message"]


def test_without_json_a_bad_option_is_one_line_on_stderr_and_nothing_on_stdout(tmp_path):
    result = coa_sync(*sync_args(write_csv(tmp_path / "chart.csv", SEED_SOURCE), **{"--pleo-api-key": ""}))
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert "coa-sync: error: argument --pleo-api-key: is empty" in result.stderr


@pytest.mark.parametrize(("args", "code", "words"), [
    (["runs", "--limit", "0"], "usage", "argument --limit: must be a whole number of at least 1"),
    (["show", "20260101T000000Z-deadbeef"], "not_found", "no run 20260101T000000Z-deadbeef"),
    (["approve", "RUN", "--pleo-url", NOWHERE, "--pleo-token", ""], "usage", "argument --pleo-token: is empty"),
])
def test_run_control_failures_are_one_json_object_too(args, code, words):
    error = failure(coa_sync(*args, "--json"))
    assert error["code"] == code and words in error["message"]


def test_a_source_that_cannot_be_read_is_a_json_error_naming_the_option(tmp_path):
    (tmp_path / "chart.csv").write_text("externalId|code|name|active\n")
    error = failure(coa_sync(*sync_args(str(tmp_path / "chart.csv")), "--json"))
    assert (error["code"], error["option"]) == ("bad_source", "--source")
    assert error["message"].endswith("the first line reads 'externalId|code|name|active'")
    missing = failure(coa_sync(*sync_args(str(tmp_path / "nope.csv")), "--json"))
    assert missing["code"] == "bad_source" and "cannot read source" in missing["message"]


def test_credentials_pleo_refuses_are_a_json_error(pleo, tmp_path):
    source = write_csv(tmp_path / "chart.csv", SEED_SOURCE)
    error = failure(coa_sync(*sync_args(source, **{"--pleo-url": pleo.url, "--pleo-api-key": "pls_wrong"}), "--json"))
    assert (error["code"], error["status"]) == ("pleo_refused", 401) and "pls_wrong" not in error["message"]


def test_a_closed_stdout_ends_quietly_with_141_not_a_broken_pipe_traceback():
    # `coa-sync dlq list | head`: the reader is gone before the command writes.
    process = subprocess.Popen([sys.executable, "-m", "coa_sync_local.cli", "dlq", "list"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr


def test_the_emulator_names_itself_and_a_busy_port_is_a_usage_error():
    usage = coa_sync("emulator", "--help")
    assert usage.returncode == 0 and usage.stdout.startswith("usage: coa-sync emulator ")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = coa_sync("emulator", "--company", COMPANY, "--api-key", API_KEY, "--port", str(port))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
