"""The files people really export, through the command line: a row that cannot be read for sure archives
nothing, whitespace creates no look-alike, semicolons are read; and what the command prints about it."""

from __future__ import annotations

import json

import pytest

from tests.support import API_KEY, COMPANY, sync

HEADER = "externalId,code,name,active\n"
ROWS = "".join(f"ext-00{n},100{n},Account {n},true\n" for n in range(1, 7))


@pytest.fixture
def six(emulator):
    """Pleo holding ext-001..ext-006 (Account 1..6), as the file has them."""
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=[
        {"externalId": f"ext-00{n}", "code": f"100{n}", "name": f"Account {n}", "archived": False}
        for n in range(1, 7)])
    return emulator


def accounts(emulator) -> dict[str, tuple[str, bool]]:
    return {a["externalId"]: (a["name"], a["archived"]) for a in emulator.accounts(COMPANY)}


def test_an_unquoted_comma_archives_nothing_and_the_rest_is_synced(six, tmp_path):
    (tmp_path / "chart.csv").write_text(HEADER + ROWS.replace("ext-005,1005,Account 5", "ext-005,1005,Travel, meals")
                                        .replace("Account 6", "Account six") + "new,2000,New,true\n")
    result = sync(six, tmp_path / "chart.csv", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["errors"] == [{"message": "row has 5 fields, header has 4 (a field that holds the delimiter must be "
                                            "quoted)", "externalId": None, "field": None, "location": "chart.csv:6"}]
    assert report["held"]["archive"] == 1 and "chart.csv:6" in report["held"]["reason"]
    assert accounts(six)["ext-005"] == ("Account 5", False)  # not archived
    assert accounts(six)["ext-006"] == ("Account six", False) and accounts(six)["new"] == ("New", False)


def test_the_text_report_of_held_archives_does_not_say_nothing_changed(six, tmp_path):
    (tmp_path / "chart.csv").write_text(HEADER + ROWS.replace("ext-005,1005,Account 5", "ext-005,1005,Travel, meals"))
    result = sync(six, tmp_path / "chart.csv")
    assert result.returncode == 1
    assert "No changes" not in result.stdout
    assert "Nothing to apply now; see what is held back or set aside below." in result.stdout
    assert "Archives held back: 1 source row(s) could not be read for sure (chart.csv:6)" in result.stdout
    assert "Release the held archives with: coa-sync approve " in result.stdout


def test_whitespace_around_an_external_id_creates_no_look_alike_and_archives_nothing(six, tmp_path):
    (tmp_path / "chart.csv").write_text(HEADER + ROWS.replace("ext-001,", "ext-001 ,").replace("Account 3",
                                                                                              " Account 3 "))
    result = sync(six, tmp_path / "chart.csv", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [(e["externalId"], e["field"]) for e in report["errors"]] == [("ext-001 ", "externalId")]
    assert [(n["externalId"], n["field"]) for n in report["notes"]] == [("ext-003", "name")]
    assert accounts(six) == {f"ext-00{n}": (f"Account {n}", False) for n in range(1, 7)}  # no look-alike, no rename
    assert report["api_calls"] == {"search": 2, "batch_create": 0, "put": 0}


def test_a_semicolon_file_from_european_excel_is_read_as_such(six, tmp_path):
    (tmp_path / "chart.csv").write_text((HEADER + ROWS).replace(",", ";").replace("Account 2", "Travel, meals"))
    result = sync(six, tmp_path / "chart.csv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chart.csv:1: read as semicolon-separated values" in result.stdout
    assert accounts(six)["ext-002"] == ("Travel, meals", False)


def test_a_large_plan_is_summarised_and_full_prints_every_row(pleo, tmp_path):
    (tmp_path / "chart.csv").write_text(HEADER + "".join(f"e{n:03d},{n},Account {n},true\n" for n in range(150)))
    summary = sync(pleo, tmp_path / "chart.csv", "--dry-run")
    assert summary.returncode == 0
    assert sum(" create " in line for line in summary.stdout.splitlines()) == 10
    assert "... and 140 more to create" in summary.stdout and "--full shows all" in summary.stdout
    full = sync(pleo, tmp_path / "chart.csv", "--dry-run", "--full")
    assert sum(" create " in line for line in full.stdout.splitlines()) == 150


def test_the_functions_json_logs_show_only_when_asked(six, tmp_path):
    (tmp_path / "chart.csv").write_text(HEADER + ROWS.replace("ext-005,1005,Account 5", "ext-005,1005,Travel, meals"))
    quiet = sync(six, tmp_path / "chart.csv")
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("{")]
    assert "[coa-sync] archives held back (" in quiet.stderr  # a warning, as one human line
    verbose = sync(six, tmp_path / "chart.csv", "--verbose", "--log-format", "json")
    logged = [json.loads(line) for line in verbose.stderr.splitlines() if line.startswith("{")]
    assert {"snapshots written", "plan made", "archives held back"} <= {line["message"] for line in logged}
