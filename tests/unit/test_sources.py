"""Reading chart-of-accounts files: every bad row named by file and line, the rest kept."""

from __future__ import annotations

import json

import pytest
from coa_sync.sources import SourceFormatError, read_source

HEADER = "externalId,code,name,active,taxCodeExternalId\n"


def csv(text: str):
    return read_source((HEADER + text).encode(), "accounts.csv")


def test_reads_a_good_csv():
    snapshot = csv("ext-1,1000,Cash,true,VAT25\next-2,,Bank,false,\n")
    assert [(a.external_id, a.code, a.name, a.active, a.tax_code_external_id) for a in snapshot.accounts] == [
        ("ext-1", "1000", "Cash", True, "VAT25"), ("ext-2", None, "Bank", False, None)]
    assert snapshot.errors == []


def test_tax_code_column_is_optional():
    snapshot = read_source(b"externalId,code,name,active\na,1,Cash,yes\n", "a.csv")
    assert snapshot.accounts[0].tax_code_external_id is None and snapshot.accounts[0].active


def test_bad_rows_are_reported_with_line_and_external_id_and_the_rest_is_kept():
    snapshot = csv("ok-1,1,Cash,true,\n,2,No id,true,\nbad-name,3,,true,\nbad-active,4,X,maybe,\n"
                   f"long,{'9' * 256},Long code,true,\nok-2,5,Bank,true,\n")
    assert [a.external_id for a in snapshot.accounts] == ["ok-1", "ok-2"]
    found = {(e.location, e.external_id, e.field) for e in snapshot.errors}
    assert found == {("accounts.csv:3", None, "externalId"), ("accounts.csv:4", "bad-name", "name"),
                     ("accounts.csv:5", "bad-active", "active"), ("accounts.csv:6", "long", "code")}
    messages = {e.field: e.message for e in snapshot.errors}
    assert messages["externalId"] == "is empty" and messages["name"] == "is empty"
    assert "255" in messages["code"]


def test_blank_name_is_an_error():
    (error,) = csv("a,1,   ,true,\n").errors
    assert (error.external_id, error.field, error.message) == ("a", "name", "is blank")


def test_row_with_wrong_number_of_fields_is_named():
    (error,) = csv("a,1,Cash,true,,extra\n").errors
    assert error.location == "accounts.csv:2" and "fields" in error.message


def test_missing_column_rejects_the_whole_file():
    with pytest.raises(SourceFormatError, match=r"a\.csv:1: missing column\(s\) active"):
        read_source(b"externalId,code,name\na,1,Cash\n", "a.csv")


def test_invalid_utf8_names_the_line():
    with pytest.raises(SourceFormatError, match=r"a\.csv:3: not valid UTF-8"):
        read_source(HEADER.encode() + b"a,1,Cash,true,\nb,2,Caf\xe9,true,\n", "a.csv")


def test_unicode_names_are_kept():
    assert csv("a,1,Kørsel & Rejser 旅费,true,\n").accounts[0].name == "Kørsel & Rejser 旅费"


def test_byte_order_mark_is_ignored():
    snapshot = read_source(b"\xef\xbb\xbf" + (HEADER + "a,1,Cash,true,\n").encode(), "a.csv")
    assert snapshot.accounts[0].external_id == "a"


def test_json_list_with_numbers_as_codes():
    data = json.dumps([{"externalId": 1000, "code": 1000, "name": "Cash", "active": True}]).encode()
    (account,) = read_source(data, "chart.json").accounts
    assert (account.external_id, account.code) == ("1000", "1000")


def test_json_object_with_accounts_and_bad_items_by_index():
    data = json.dumps({"accounts": [{"externalId": "a", "code": "1", "name": "Cash", "active": True},
                                    {"externalId": "b", "code": "2", "name": 5.5, "active": True},
                                    "not an object",
                                    {"externalId": "d", "code": "4", "name": "X", "active": "nope"}]}).encode()
    snapshot = read_source(data, "chart.json")
    assert [a.external_id for a in snapshot.accounts] == ["a"]
    assert {(e.location, e.external_id) for e in snapshot.errors} == {("chart.json[1]", "b"), ("chart.json[2]", None),
                                                                       ("chart.json[3]", "d")}


def test_json_wrong_type_is_named():
    data = json.dumps([{"externalId": "a", "code": "1", "name": ["x"], "active": True}]).encode()
    (error,) = read_source(data, "chart.json").errors
    assert (error.external_id, error.field, error.location) == ("a", "name", "chart.json[0]")


def test_malformed_json_names_line_and_column():
    with pytest.raises(SourceFormatError, match=r"chart\.json:2:\d+: malformed JSON"):
        read_source(b'[\n{"externalId": }\n]', "chart.json")


def test_unknown_file_type():
    with pytest.raises(SourceFormatError, match="unknown file type"):
        read_source(b"", "chart.xlsx")


def test_empty_csv_is_an_empty_chart_not_an_error():
    snapshot = read_source(HEADER.encode(), "a.csv")
    assert snapshot.accounts == [] and snapshot.errors == []
