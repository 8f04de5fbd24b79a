"""How the command line tells a failure (coa_sync_local.errors): exit codes 2, 3 and 130 never look like
1 ("items failed"), and under --json stdout gets exactly one object."""

from __future__ import annotations

import json

from coa_sync_local.errors import UsageError, report


def test_an_unexpected_error_is_exit_3_with_its_traceback_and_one_json_object(capsys):
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        assert report(exc, as_json=True) == 3
    out, err = capsys.readouterr()
    assert json.loads(out) == {"error": {"message": "unexpected error: RuntimeError: boom", "code": "internal"}}
    assert "Traceback" in err and err.rstrip().endswith("coa-sync: error: unexpected error: RuntimeError: boom")


def test_a_usage_error_is_exit_2_naming_its_option_and_details(capsys):
    assert report(UsageError("Pleo refused", code="pleo_refused", status=401), as_json=True) == 2
    assert json.loads(capsys.readouterr().out) == {"error": {"message": "Pleo refused", "code": "pleo_refused",
                                                             "status": 401}}


def test_an_unknown_run_reads_as_its_message_and_ctrl_c_is_130(capsys):
    assert report(KeyError("no run R for any tenant"), as_json=False) == 2
    assert capsys.readouterr().err == "coa-sync: error: no run R for any tenant\n"
    assert report(KeyboardInterrupt(), as_json=True) == 130
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "interrupted"
