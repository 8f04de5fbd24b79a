"""Chart-of-accounts files (CSV or JSON) read into a source snapshot.

Columns / keys: externalId, code, name, active (required in CSV and JSON alike), and optionally
taxCodeExternalId. docs/errors.md lists every message. The rules:

- A file that cannot be read as a whole (not UTF-8, no header naming the columns, malformed JSON)
  raises SourceFormatError, so a half-read chart never reaches the diff.
- CSV may be separated by commas, semicolons (what Excel saves in many European locales) or
  tabs: the header line tells which (the one that names the required columns).
- A row that cannot be read for sure (a field count off, as an unquoted comma makes; a broken
  quote; a JSON item that is not an object; no readable externalId) is an error with no
  externalId: it could be any account's row, so the guard then holds every archive of the run.
  Reading goes on at the next line.
- A bad field is an error naming the row's externalId: that account is held (never created,
  changed or archived). An externalId with whitespace around it is such an error, and the diff
  holds its trimmed twin too. Control characters (a line break, a tab) in any field are refused.
- Names, codes and tax codes with whitespace around them are trimmed, with a note.
- JSON numbers: an integer (or a float with nothing after the point, 1001.0) as externalId, code
  or tax code is read as its digits ("1001"); a fraction is an error (a number cannot say
  whether "4000.10" was meant); a name must be a string.
- An externalId on several rows is an error naming their lines; the diff uses none of those rows.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationError
from pydantic_core import PydanticCustomError

from coa_sync.models import Code, ExternalId, ItemError, SourceAccount, SourceName, SourceSnapshot, TaxCode

REQUIRED_COLUMNS = ("externalId", "code", "name", "active")
OPTIONAL_COLUMNS = ("taxCodeExternalId",)
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
TEXT_FIELDS = ("externalId", "code", "name", "taxCodeExternalId")
TRIMMED_FIELDS = ("code", "name", "taxCodeExternalId")
NUMBER_FIELDS = ("externalId", "code", "taxCodeExternalId")  # a JSON number here is read as its digits

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_NAMES = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab"}


class SourceFormatError(ValueError):
    """The file as a whole cannot be read; nothing from it is used."""


def _no_control_characters(value: str | None) -> str | None:
    found = _CONTROL.search(value) if value is not None else None
    if found is not None:
        character = found.group()
        raise PydanticCustomError(
            "control_character", "holds {what} (U+{code}) at character {position}; control characters are refused",
            {"what": _CONTROL_NAMES.get(character, "a control character"), "code": f"{ord(character):04X}",
             "position": found.start() + 1})
    return value


def _no_whitespace_around(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "is blank")
    if value != value.strip():
        raise PydanticCustomError("whitespace_around", "has whitespace around it; it and {trimmed} are left alone",
                                  {"trimmed": repr(value.strip())})
    return value


Text = AfterValidator(_no_control_characters)


class SourceRow(SourceAccount):
    """One row of a file: `active` must be given, no field may hold a control character, and an externalId
    may not have whitespace around it (it would make a look-alike of the account it means)."""

    external_id: Annotated[ExternalId, Text, AfterValidator(_no_whitespace_around)]
    name: Annotated[SourceName, Text]
    code: Annotated[Code, Text] = None
    tax_code_external_id: Annotated[TaxCode, Text] = None
    active: bool


Rows = Iterator[tuple[int, dict[str, Any] | str]]  # (line or item index, the row or why it is unreadable)


def read_source(data: bytes, name: str) -> SourceSnapshot:
    notes: list[ItemError] = []
    rows, where, numbers = _rows(_decode(data, name), name, notes)
    accounts: list[SourceAccount] = []
    positions: list[int] = []
    errors: list[ItemError] = []
    for position, row in rows:
        account = _parse_row(row, where(position), errors, notes, numbers)
        if account is not None:
            accounts.append(account)
            positions.append(position)
    errors += _repeats(accounts, positions, where)
    return SourceSnapshot(accounts=accounts, errors=errors, notes=notes)


def check_readable(data: bytes, name: str) -> None:
    """SourceFormatError if the file cannot be read as a whole, as read_source would raise; its rows are not read."""
    _rows(_decode(data, name), name, [])


def _rows(text: str, name: str, notes: list[ItemError]) -> tuple[Rows, Callable[[int], str], bool]:
    """The file's rows, how to name a row's place, and whether numbers may stand for text (JSON)."""
    if name.lower().endswith(".json"):
        return _json_rows(text, name), _item_location(name), True
    if name.lower().endswith(".csv"):
        return _csv_rows(text, name, notes), _line_location(name), False
    raise SourceFormatError(f"{name}: unknown file type; use .csv or .json")


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceFormatError(f"{name}:{line}: not valid UTF-8 (byte {exc.start})") from None


def _line_location(name: str) -> Callable[[int], str]:
    return lambda line: f"{name}:{line}"


def _item_location(name: str) -> Callable[[int], str]:
    return lambda index: f"{name}[{index}]"


# -- CSV -------------------------------------------------------------------------------------


def _csv_rows(text: str, name: str, notes: list[ItemError]) -> Rows:
    lines = io.StringIO(text, newline="")
    delimiter, header = _header(lines.readline(), name)
    if delimiter != ",":
        notes.append(ItemError(location=f"{name}:1", message=f"read as {DELIMITERS[delimiter]}-separated values"))
    return _records(lines, delimiter, header)


def _header(first_line: str, name: str) -> tuple[str, list[str]]:
    """The delimiter whose split of the first line names the most required columns, and the columns."""
    best: tuple[int, str, list[str]] | None = None
    for delimiter in DELIMITERS:
        columns = [column.strip() for column in next(csv.reader([first_line], delimiter=delimiter), [])]
        found = sum(column in columns for column in REQUIRED_COLUMNS)
        if best is None or found > best[0]:
            best = (found, delimiter, columns)
    assert best is not None
    found, delimiter, columns = best
    if found < len(REQUIRED_COLUMNS):
        missing = ", ".join(column for column in REQUIRED_COLUMNS if column not in columns)
        seen = f"the first line reads {first_line.rstrip(chr(13) + chr(10))!r}" if first_line else "the file is empty"
        raise SourceFormatError(f"{name}:1: missing column(s) {missing}; expected "
                                f"{','.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)} separated by commas, semicolons "
                                f"or tabs; {seen}")
    return delimiter, columns


def _records(lines: io.StringIO, delimiter: str, header: list[str]) -> Rows:
    """Each record as a dict by column, or why it cannot be read; a malformed record skips to the next line."""
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    first_line = 2 - reader.line_num  # the line a record starts on is first_line + lines the reader has read
    while True:
        start, line = lines.tell(), first_line + reader.line_num
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, f"is malformed CSV ({exc})"
            lines.seek(start)
            lines.readline()  # go on at the next line: a broken quote must not swallow the rest of the file
            first_line = line + 1 - reader.line_num
            continue
        if not "".join(fields).strip():
            continue  # an empty line, or one of only delimiters (spreadsheets leave them): not an account
        if len(fields) != len(header):
            hint = " (a field that holds the delimiter must be quoted)" if len(fields) > len(header) else ""
            yield line, f"has {len(fields)} fields, header has {len(header)}{hint}"
        else:
            yield line, dict(zip(header, fields, strict=True))


# -- JSON ------------------------------------------------------------------------------------


def _json_rows(text: str, name: str) -> Rows:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceFormatError(f"{name}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from None
    items = document.get("accounts") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise SourceFormatError(f"{name}: expected a list of accounts or an object with an 'accounts' list")
    return ((index, item if isinstance(item, dict) else f"is a {type(item).__name__}, not an object")
            for index, item in enumerate(items))


# -- one row ---------------------------------------------------------------------------------


def _parse_row(row: dict[str, Any] | str, location: str, errors: list[ItemError], notes: list[ItemError],
               numbers: bool) -> SourceAccount | None:
    if isinstance(row, str):
        errors.append(ItemError(location=location, message=f"row {row}"))
        return None
    if numbers:
        row = _numbers_as_text(row, location, errors)
        if row is None:
            return None
    row = _trimmed(row, location, notes)
    external_id = row.get("externalId")
    external_id = _printable(external_id) if isinstance(external_id, str) and external_id.strip() else None
    try:
        return SourceRow.model_validate(row)
    except ValidationError as exc:
        for problem in exc.errors():
            field = ".".join(str(part) for part in problem["loc"]) or None
            errors.append(ItemError(location=location, external_id=external_id, field=field,
                                    message=_describe(problem)))
        return None


def _numbers_as_text(row: dict[str, Any], location: str, errors: list[ItemError]) -> dict[str, Any] | None:
    """JSON numbers as the digits a file means by them; None (with an error) for a number with a fraction."""
    converted = {}
    for key in NUMBER_FIELDS:
        value = row.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and not value.is_integer():
            external_id = row.get("externalId") if key != "externalId" else None
            errors.append(ItemError(location=location, field=key,
                                    external_id=_printable(external_id) if isinstance(external_id, str) else None,
                                    message=f"is the number {value!r}, which has a fraction: write it as a string, "
                                            "so that no digit is lost"))
            return None
        converted[key] = str(int(value))
    return {**row, **converted} if converted else row


def _trimmed(row: dict[str, Any], location: str, notes: list[ItemError]) -> dict[str, Any]:
    """Names, codes and tax codes without whitespace around them (a blank name stays blank: an error)."""
    trimmed = {}
    for key in TRIMMED_FIELDS:
        value = row.get(key)
        if isinstance(value, str) and value != value.strip() and (value.strip() or key != "name"):
            trimmed[key] = value.strip()
    if not trimmed:
        return row
    external_id = row.get("externalId")
    for key, value in trimmed.items():
        notes.append(ItemError(location=location, field=key,
                               external_id=_printable(external_id) if isinstance(external_id, str) else None,
                               message=f"whitespace around it removed: {_printable(row[key])!r} -> "
                                       f"{_printable(value)!r}"))
    return {**row, **trimmed}


def _repeats(accounts: list[SourceAccount], positions: list[int], where: Callable[[int], str]) -> list[ItemError]:
    """An error for each externalId on several rows, naming them all (the diff, which holds such an
    externalId, no longer knows where its rows came from). The rows stay: they are still the source's."""
    seen: set[str] = set()
    repeated: set[str] = set()
    for account in accounts:
        (repeated if account.external_id in seen else seen).add(account.external_id)
    if not repeated:
        return []
    rows: dict[str, list[int]] = {}
    for account, position in zip(accounts, positions, strict=True):
        if account.external_id in repeated:
            rows.setdefault(account.external_id, []).append(position)
    return [ItemError(location=where(places[0]), external_id=external_id, field="externalId",
                      message=f"appears {len(places)} times in the source "
                              f"({', '.join(where(place) for place in places)}); it is left alone")
            for external_id, places in sorted(rows.items())]


def _printable(text: str) -> str:
    """The text, with any lone surrogate (a JSON file may escape one: "\\ud800") spelled as an escape.

    Such a string cannot be written as UTF-8: left in an error it would make the snapshot unwritable.
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _describe(problem: Any) -> str:
    if problem["type"] == "missing":
        return "is missing"
    if problem["type"] == "string_unicode":
        return "is not valid unicode text (it holds a lone surrogate)"
    if problem["type"] in ("string_too_short", "string_pattern_mismatch"):
        return "is empty" if problem.get("input") == "" else "is blank"
    return str(problem["msg"])
