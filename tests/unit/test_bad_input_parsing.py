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
from coa_sync.guard import hold_mass_archive
from coa_sync.models import ActionKind, PleoAccount, SourceAccount, SourceSnapshot, TargetSnapshot
from coa_sync.ratelimit import SlidingWindowLimiter
from coa_sync.sources import SourceFormatError, read_source

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
    ({"externalId": "a", "code": "1", "name": "Cash", "active": True, "taxCodeExternalId": 25.5}, None),
])
def test_wrong_types_are_named_by_field_and_the_rest_is_read(item, field):
    data = json.dumps([item, {"externalId": "ok", "code": "2", "name": "Bank", "active": True}]).encode()
    snapshot = read_source(data, "chart.json")
    if field is None:  # a number where a string is expected reads as that string, as codes do
        assert [a.external_id for a in snapshot.accounts] == ["a", "ok"]
        return
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


@pytest.mark.parametrize(("content", "message"), [
    (HEADER + 'a,1,"Cash,true,\n', r"chart\.csv:2: malformed CSV: unexpected end of data"),
    (HEADER + 'a,1,Cash,true,\nb,2,"Ba"nk,true,\n', r"chart\.csv:3: malformed CSV: ',' expected after '\"'"),
    ("", r"chart\.csv:1: missing column\(s\) externalId, code, name, active"),
])
def test_malformed_csv_names_the_line_where_reading_stopped(content, message):
    with pytest.raises(SourceFormatError, match=message):
        read_source(content.encode(), "chart.csv")


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
    result = hold_mass_archive(plan(source, target), source, target)
    assert result.actions == [] and [a.external_id for a in result.held] == ["p0", "p1", "p2"]
    assert result.held_reason == "the source has no active accounts; 3 archive(s) held back"


def test_a_bad_row_never_makes_its_pleo_twin_look_orphaned():
    source = read_source((HEADER + "keep,1,,true,\n").encode(), "chart.csv")  # blank name: unreadable
    target = TargetSnapshot(accounts=[PleoAccount(id="1", external_id="keep", name="Keep")])
    assert plan(source.columns(), target.columns()).actions == []


# -- Pleo's side: a page we cannot read stops the fetch; an account we cannot read is held ---------


def client(handler) -> PleoClient:
    return PleoClient("http://127.0.0.1:9", PleoCredentials(api_key="k"), limiter=SlidingWindowLimiter(1000, 1),
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
