"""The bad-input catalogue (docs/errors.md), the pure part: each bad file or row gets a message that
names it, and a row's error never stops the rest of the file from being read.

tests/unit/test_sources.py has the everyday cases; these are the rest of the catalogue.
"""

from __future__ import annotations

import json

import httpx
import pytest
from coa_sync.adapters.pleo import PleoClient, PleoCredentials, PleoResponseError, PleoTransientError
from coa_sync.diff import plan
from coa_sync.guard import hold_archives
from coa_sync.models import ActionKind, PleoAccount, SourceAccount, SourceSnapshot, TargetSnapshot
from coa_sync.sources import SourceFormatError, read_source

from tests.support import budget

HEADER = "externalId,code,name,active,taxCodeExternalId\n"
COMPANY = "12abc3d4-e567-890e-1234-abc56e78fabc"


def csv(text: str):
    return read_source((HEADER + text).encode(), "chart.csv")


def errors_by_location(snapshot) -> dict[str, tuple]:
    return {e.location: (e.external_id, e.field, e.message) for e in snapshot.errors}


# -- rows: named by file and line (CSV) or index (JSON), externalId and field; the rest is read ------


def test_over_long_external_id_name_and_code_are_named_and_255_characters_is_fine():
    snapshot = csv(f"{'e' * 256},1,Cash,true,\n"
                   f"long-name,2,{'n' * 256},true,\n"
                   f"long-code,{'9' * 256},Bank,true,\n"
                   f"just-fits,3,{'n' * 255},true,\n")
    assert [a.external_id for a in snapshot.accounts] == ["just-fits"]
    found = errors_by_location(snapshot)
    assert found["chart.csv:2"][:2] == ("e" * 256, "externalId")
    assert found["chart.csv:3"][:2] == ("long-name", "name")
    assert found["chart.csv:4"][:2] == ("long-code", "code")
    assert all("255" in message for _, _, message in found.values())


def test_missing_external_id_in_json_is_named_by_index():
    data = json.dumps([{"code": "1", "name": "Cash", "active": True},
                       {"externalId": "b", "code": "2", "name": "Bank", "active": True}]).encode()
    snapshot = read_source(data, "chart.json")
    assert [a.external_id for a in snapshot.accounts] == ["b"]
    (error,) = snapshot.errors
    assert (error.location, error.external_id, error.field, error.message) == (
        "chart.json[0]", None, "externalId", "is missing")
    assert str(error) == "chart.json[0]: externalId: is missing"


@pytest.mark.parametrize(("item", "field"), [
    ({"externalId": "a", "code": "1", "name": "Cash", "active": [True]}, "active"),
    ({"externalId": "a", "code": {"n": 1}, "name": "Cash", "active": True}, "code"),
    ({"externalId": "a", "code": "1", "name": None, "active": True}, "name"),
    ({"externalId": ["a"], "code": "1", "name": "Cash", "active": True}, "externalId"),
    ({"externalId": "a", "code": "1", "name": "Cash", "active": True, "taxCodeExternalId": 25.5},
     "taxCodeExternalId"),
    ({"externalId": "a", "code": "1", "name": 1001, "active": True}, "name"),
    ({"externalId": "a", "code": "1", "name": "Cash"}, "active"),
])
def test_wrong_types_are_named_by_field_and_the_rest_is_read(item, field):
    data = json.dumps([item, {"externalId": "ok", "code": "2", "name": "Bank", "active": True}]).encode()
    snapshot = read_source(data, "chart.json")
    assert [a.external_id for a in snapshot.accounts] == ["ok"]
    assert {(e.location, e.field) for e in snapshot.errors} == {("chart.json[0]", field)}


def test_a_lone_surrogate_in_json_is_named_and_the_snapshot_can_still_be_written():
    # JSON may escape a lone surrogate ("\ud800"): Python reads it, but it is not text and cannot be
    # written as UTF-8. It must become an error naming the row, not a crash when the snapshot is stored.
    data = (b'[{"externalId": "bad\\ud800", "code": "1", "name": "Cash", "active": true},'
            b' {"externalId": "a", "code": "2", "name": "Caf\\udce9", "active": true},'
            b' {"externalId": "ok", "code": "3", "name": "Bank", "active": true}]')
    snapshot = read_source(data, "chart.json")
    assert [a.external_id for a in snapshot.accounts] == ["ok"]
    assert {(e.location, e.external_id, e.field) for e in snapshot.errors} == {
        ("chart.json[0]", "bad\\ud800", "externalId"), ("chart.json[1]", "a", "name")}
    assert {e.message for e in snapshot.errors} == {"is not valid unicode text (it holds a lone surrogate)"}
    json.loads(snapshot.model_dump_json())  # writable as UTF-8 JSON


# -- whole files: one message naming the file (and line), nothing from it is used ------------------


def test_an_empty_csv_file_names_what_it_expected():
    with pytest.raises(SourceFormatError, match=r"chart\.csv:1: missing column\(s\) externalId, code, name, active; "
                                                r"expected .* or tabs; the file is empty"):
        read_source(b"", "chart.csv")


@pytest.mark.parametrize(("content", "message"), [
    (b"", r"chart\.json:1:1: malformed JSON: Expecting value"),
    (b'{"accounts": {"a": 1}}', r"chart\.json: expected a list of accounts or an object with an 'accounts' list"),
    (b"42", r"chart\.json: expected a list of accounts"),
    (b'[{"externalId": "a"}', r"chart\.json:1:21: malformed JSON: Expecting ',' delimiter"),
    (b'[{"externalId": "caf\xe9"}]', r"chart\.json:1: not valid UTF-8 \(byte 20\)"),
])
def test_malformed_json_or_bytes_name_the_file_and_place(content, message):
    with pytest.raises(SourceFormatError, match=message):
        read_source(content, "chart.json")


# -- an empty source: nothing to read is not an error, but the guard holds every archive back ------


@pytest.mark.parametrize("content", [b"[]", b'{"accounts": []}',
                                     json.dumps([{"externalId": "x", "name": "X", "active": False}]).encode()])
def test_an_empty_or_all_inactive_source_plans_no_archive(content):
    source = read_source(content, "chart.json")
    assert source.errors == []
    target = TargetSnapshot(accounts=[PleoAccount(id=f"id-{n}", external_id=f"p{n}", name=f"P{n}")
                                      for n in range(3)])
    source, target = source.columns(), target.columns()
    result = hold_archives(plan(source, target), source, target)
    assert result.actions == [] and [a.external_id for a in result.held] == ["p0", "p1", "p2"]
    assert result.held_reason == "the source has no active accounts; 3 archive(s) held back"


def test_a_bad_row_never_makes_its_pleo_twin_look_orphaned():
    source = read_source((HEADER + "keep,1,,true,\n").encode(), "chart.csv")  # blank name: unreadable
    target = TargetSnapshot(accounts=[PleoAccount(id="1", external_id="keep", name="Keep")])
    assert plan(source.columns(), target.columns()).actions == []


# -- Pleo's side: a page we cannot read stops the fetch; an account we cannot read is held ---------


def client(handler) -> PleoClient:
    return PleoClient("http://127.0.0.1:9", PleoCredentials(api_key="k"), budget=budget(),
                      max_attempts=2, transport=httpx.MockTransport(handler), sleep=lambda _: None)


def page(data, *, next_cursor: str | None = None) -> dict:
    return {"data": data, "pagination": {"hasNextPage": next_cursor is not None, "endCursor": next_cursor}}


def account(n: int, **extra) -> dict:
    return {"id": f"id-{n}", "externalId": f"e{n}", "name": f"A{n}", "code": None, "archived": False, **extra}


def two_pages(second):
    def handler(request: httpx.Request) -> httpx.Response:
        if "after" not in request.url.params:
            return httpx.Response(200, json=page([account(1)], next_cursor="C1"))
        return second(request)
    return handler


@pytest.mark.parametrize("fail", [
    lambda request: httpx.Response(503, json={"message": "down"}),
    lambda request: httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "slow down"}),
])
def test_a_page_failing_mid_pagination_fails_the_whole_snapshot(fail):
    with pytest.raises(PleoTransientError, match=r"search: HTTP (503|429) after 2 attempt\(s\)"):
        client(two_pages(fail)).snapshot(COMPANY)


def test_a_page_timing_out_mid_pagination_fails_the_whole_snapshot():
    def timeout(request):
        raise httpx.ReadTimeout("timed out", request=request)
    with pytest.raises(PleoTransientError, match=r"search: ReadTimeout after 2 attempt\(s\)"):
        client(two_pages(timeout)).snapshot(COMPANY)


@pytest.mark.parametrize(("body", "message"), [
    ({"items": []}, "search page 2: expected 'data' list and 'pagination' object"),
    ({"data": {"accounts": []}, "pagination": {}}, "search page 2: expected 'data' list and 'pagination' object"),
    ({"data": [], "pagination": {"hasNextPage": True}}, "search page 2: hasNextPage without an endCursor"),
    (["not", "an", "object"], "search: expected a JSON object"),
])
def test_a_page_of_unexpected_shape_fails_the_whole_snapshot(body, message):
    with pytest.raises(PleoResponseError, match=message):
        client(two_pages(lambda request: httpx.Response(200, json=body))).snapshot(COMPANY)


def test_a_page_that_is_not_json_fails_the_whole_snapshot():
    with pytest.raises(PleoResponseError, match="search: HTTP 200 with a body that is not JSON"):
        client(two_pages(lambda request: httpx.Response(200, text="<html>"))).snapshot(COMPANY)


def test_a_pleo_account_of_unexpected_shape_is_named_and_held():
    items = [account(1), {k: v for k, v in account(2).items() if k != "name"}, account(3, archived="perhaps"),
             "not an object", account(4)]
    target = client(lambda request: httpx.Response(200, json=page(items))).snapshot(COMPANY)
    assert [a.external_id for a in target.accounts] == ["e1", "e4"]
    # The same page answers the search for active and for archived accounts: each is named once.
    assert [(e.location, e.external_id) for e in target.errors] == [
        ("pleo active page 1 item 1", "e2"), ("pleo active page 1 item 2", "e3"), ("pleo active page 1 item 3", None)]
    assert target.errors[0].message == "name: Field required"
    # e2 and e3 are neither archived (absent from the AS) nor created again (present in the AS).
    source = SourceSnapshot(accounts=[SourceAccount(external_id="e3", name="Three")])
    actions = {(a.kind, a.external_id) for a in plan(source.columns(), target.columns()).actions}
    assert actions == {(ActionKind.ARCHIVE, "e1"), (ActionKind.ARCHIVE, "e4")}


# -- doubt: a row that cannot be read for sure holds every archive; the rest is synced -------------

PLEO_SIX = TargetSnapshot(accounts=[PleoAccount(id=f"id-{n}", external_id=f"ext-00{n}", name=f"Account {n}",
                                                code=f"100{n}") for n in range(1, 7)])
SIX_ROWS = "".join(f"ext-00{n},100{n},Account {n},true,\n" for n in range(1, 7))


def guarded_plan(content: str, name: str = "chart.csv", target: TargetSnapshot = PLEO_SIX):
    source = read_source(content.encode(), name)
    columns = source.columns()
    return source, hold_archives(plan(columns, target.columns()), columns, target.columns())


@pytest.mark.parametrize(("row", "message"), [
    ("ext-005,1005,Travel, meals,true,", "row has 6 fields, header has 5 (a field that holds the delimiter must be "
                                         "quoted)"),
    ("ext-005,1005,Account 5", "row has 3 fields, header has 5"),
    ('ext-005,1005,"Account 5,true,', "row is malformed CSV (unexpected end of data)"),
    ('ext-005,1005,"Acc"ount 5,true,', "row is malformed CSV (',' expected after '\"')"),
])
def test_a_row_that_cannot_be_read_for_sure_holds_every_archive_and_the_rest_is_synced(row, message):
    rows = SIX_ROWS.replace("ext-005,1005,Account 5,true,", row).replace("ext-006,1006,Account 6,true,\n", "")
    source, result = guarded_plan(HEADER + rows + "new-1,2000,New,true,\n")
    (error,) = source.errors
    assert (str(error), error.external_id) == (f"chart.csv:6: {message}", None)
    # Reading went on at the next line, and what could be read is planned; no archive goes out.
    assert [(a.kind, a.external_id) for a in result.actions] == [(ActionKind.CREATE, "new-1")]
    assert sorted(a.external_id for a in result.held) == ["ext-005", "ext-006"]
    assert result.held_reason == ("1 source row(s) could not be read for sure (chart.csv:6): any of them may be an "
                                  "account Pleo has, so none is taken as gone")


@pytest.mark.parametrize("content", [
    json.dumps([{"externalId": "ext-001", "code": "1001", "name": "Account 1", "active": True}, "ext-002"]),
    json.dumps([{"externalId": "ext-001", "code": "1001", "name": "Account 1", "active": True},
                {"externalId": ["ext-002"], "code": "1002", "name": "Account 2", "active": True}]),
    json.dumps([{"externalId": "ext-001", "code": "1001", "name": "Account 1", "active": True},
                {"code": "1002", "name": "Account 2", "active": True}]),
])
def test_a_json_item_without_a_readable_external_id_holds_every_archive(content):
    _, result = guarded_plan(content, "chart.json")
    assert result.actions == [] and len(result.held) == 5
    assert "(chart.json[1])" in result.held_reason


def test_many_unreadable_rows_are_counted_and_the_first_named():
    rows = "".join(f"bad-{n},1,Too,few\n" for n in range(8))
    _, result = guarded_plan(HEADER + rows)
    assert result.held_reason.startswith("8 source row(s) could not be read for sure (chart.csv:2, chart.csv:3, "
                                         "chart.csv:4, chart.csv:5, chart.csv:6 and 3 more)")


def test_empty_lines_and_lines_of_only_delimiters_are_not_rows():
    source, result = guarded_plan(HEADER + SIX_ROWS.replace("ext-006,1006,Account 6,true,\n", "") + "\n,,,,\n,,\n \n")
    assert source.errors == []
    assert [(a.kind, a.external_id) for a in result.actions] == [(ActionKind.ARCHIVE, "ext-006")]


# -- whitespace: around an externalId it is an error that holds both; names and codes are trimmed --


def test_an_external_id_with_whitespace_around_it_holds_it_and_its_trimmed_twin():
    # An earlier sync (before this rule) created the look-alike 'ext-001 ' in Pleo.
    target = TargetSnapshot(accounts=[*PLEO_SIX.accounts, PleoAccount(id="id-x", external_id="ext-001 ", name="X")])
    source, result = guarded_plan(HEADER + SIX_ROWS.replace("ext-001,", "ext-001 ,").replace("ext-002,", " ext-002,"),
                                  target=target)
    assert [str(e) for e in source.errors] == [
        "chart.csv:2: externalId 'ext-001 ': externalId: has whitespace around it; it and 'ext-001' are left alone",
        "chart.csv:3: externalId ' ext-002': externalId: has whitespace around it; it and 'ext-002' are left alone"]
    # No look-alike created, the real one not archived, the earlier look-alike in Pleo left as it is.
    assert result.actions == [] and result.held == []


def test_names_and_codes_with_whitespace_around_them_are_trimmed_with_a_note():
    source, result = guarded_plan(HEADER + SIX_ROWS.replace("Account 3", " Account 3 ").replace(",1004,", ",1004\t,"))
    assert source.errors == [] and result.actions == [] and result.noop == 6
    assert [str(note) for note in result.notes] == [
        "chart.csv:4: externalId 'ext-003': name: whitespace around it removed: ' Account 3 ' -> 'Account 3'",
        "chart.csv:5: externalId 'ext-004': code: whitespace around it removed: '1004\\t' -> '1004'"]


@pytest.mark.parametrize(("content", "name", "message"), [
    (HEADER + 'a,1,"Travel\nmeals",true,\n', "chart.csv",
     "chart.csv:2: externalId 'a': name: holds a line break (U+000A) at character 7; control characters are refused"),
    (json.dumps([{"externalId": "a", "code": "1\t0", "name": "Cash", "active": True}]), "chart.json",
     "chart.json[0]: externalId 'a': code: holds a tab (U+0009) at character 2; control characters are refused"),
    (json.dumps([{"externalId": "a", "code": "1", "name": "Ca\u0007sh", "active": True}]), "chart.json",
     "chart.json[0]: externalId 'a': name: holds a control character (U+0007) at character 3; control characters "
     "are refused"),
])
def test_control_characters_are_refused_by_field(content, name, message):
    source = read_source(content.encode(), name)
    assert source.accounts == [] and [str(e) for e in source.errors] == [message]


# -- delimiters: what European Excel saves is read; a header that names no columns says what it saw --


@pytest.mark.parametrize(("delimiter", "label"), [(";", "semicolon"), ("\t", "tab")])
def test_semicolon_and_tab_separated_files_are_read_with_a_note(delimiter, label):
    content = "externalId;code;name;active\na;1;Travel, meals;true\n".replace(";", delimiter)
    source = read_source(content.encode(), "chart.csv")
    assert [(a.external_id, a.name) for a in source.accounts] == [("a", "Travel, meals")] and source.errors == []
    assert [str(note) for note in source.notes] == [f"chart.csv:1: read as {label}-separated values"]


def test_a_header_that_names_no_columns_says_what_it_saw():
    with pytest.raises(SourceFormatError) as raised:
        read_source(b"externalId|code|name|active\na|1|Cash|true\n", "chart.csv")
    assert str(raised.value) == (
        "chart.csv:1: missing column(s) externalId, code, name, active; expected "
        "externalId,code,name,active,taxCodeExternalId separated by commas, semicolons or tabs; "
        "the first line reads 'externalId|code|name|active'")


def test_a_semicolon_header_missing_a_column_is_told_by_its_own_delimiter():
    with pytest.raises(SourceFormatError, match=r"chart\.csv:1: missing column\(s\) active; .* the first line reads "
                                                 r"'externalId;code;name'"):
        read_source(b"externalId;code;name\na;1;Cash\n", "chart.csv")


# -- JSON numbers, types and the active flag ------------------------------------------------------


def test_json_integral_floats_are_read_as_their_digits_and_a_fraction_is_an_error():
    data = json.dumps([{"externalId": 7.0, "code": 1001.0, "name": "Cash", "active": True, "taxCodeExternalId": 25},
                       {"externalId": "b", "code": 4000.1, "name": "Bank", "active": True},
                       {"externalId": 3.5, "code": "3", "name": "Card", "active": True}]).encode()
    source = read_source(data, "chart.json")
    assert [(a.external_id, a.code, a.tax_code_external_id) for a in source.accounts] == [("7", "1001", "25")]
    assert [str(e) for e in source.errors] == [
        "chart.json[1]: externalId 'b': code: is the number 4000.1, which has a fraction: write it as a string, so "
        "that no digit is lost",
        "chart.json[2]: externalId: is the number 3.5, which has a fraction: write it as a string, so that no digit "
        "is lost"]


def test_a_json_row_without_active_is_an_error_as_a_csv_row_without_the_column_is():
    (error,) = read_source(json.dumps([{"externalId": "a", "name": "Cash"}]).encode(), "chart.json").errors
    assert str(error) == "chart.json[0]: externalId 'a': active: is missing"


def test_a_numeric_json_name_is_an_error():
    (error,) = read_source(json.dumps([{"externalId": "a", "name": 1001, "active": True}]).encode(),
                           "chart.json").errors
    assert (error.external_id, error.field, error.message) == ("a", "name", "Input should be a valid string")


# -- the same externalId on several rows: named with every line --------------------------------------


def test_duplicate_external_ids_name_their_lines_and_none_of_the_rows_is_used():
    source, result = guarded_plan(HEADER + SIX_ROWS + "ext-002,1002,Again,true,\next-002,1002,Thrice,true,\n")
    assert [str(e) for e in source.errors] == [
        "chart.csv:3: externalId 'ext-002': externalId: appears 3 times in the source (chart.csv:3, chart.csv:8, "
        "chart.csv:9); it is left alone"]
    assert result.actions == [] and result.held == [] and len(result.errors) == 1  # named once, with its lines
    data = json.dumps([{"externalId": "x", "name": "X", "active": True}] * 2).encode()
    (error,) = read_source(data, "chart.json").errors
    assert error.message == "appears 2 times in the source (chart.json[0], chart.json[1]); it is left alone"
