"""Chart-of-accounts files (CSV or JSON) read into a source snapshot.

Columns / keys: externalId, code, name, active, and optionally taxCodeExternalId.
A bad row is reported with its file and line (CSV) or item index (JSON) and the rest of
the file is read; a file that cannot be read as a whole raises SourceFormatError, so a
half-read chart never reaches the diff.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from pydantic import ConfigDict, ValidationError

from coa_sync.models import ItemError, SourceAccount, SourceSnapshot

REQUIRED_COLUMNS = ("externalId", "code", "name", "active")
OPTIONAL_COLUMNS = ("taxCodeExternalId",)


class SourceFormatError(ValueError):
    """The file as a whole cannot be read; nothing from it is used."""


class SourceRow(SourceAccount):
    # Files often carry codes and ids as numbers: 3000 means "3000".
    model_config = ConfigDict(coerce_numbers_to_str=True, extra="ignore")


def read_source(data: bytes, name: str) -> SourceSnapshot:
    text = _decode(data, name)
    if name.lower().endswith(".json"):
        rows = _json_rows(text, name)
    elif name.lower().endswith(".csv"):
        rows = _csv_rows(text, name)
    else:
        raise SourceFormatError(f"{name}: unknown file type; use .csv or .json")
    accounts: list[SourceAccount] = []
    errors: list[ItemError] = []
    for location, row in rows:
        account = _parse_row(row, location, errors)
        if account is not None:
            accounts.append(account)
    return SourceSnapshot(accounts=accounts, errors=errors)


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceFormatError(f"{name}:{line}: not valid UTF-8 (byte {exc.start})") from None


def _csv_rows(text: str, name: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing:
            raise SourceFormatError(f"{name}:1: missing column(s) {', '.join(missing)}; "
                                    f"expected {','.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}")
        rows = []
        start = reader.line_num + 1
        for row in reader:
            location = f"{name}:{start}"
            if None in row or any(value is None for value in row.values()):
                rows.append((location, {"__shape__": f"has {_width(row)} fields, header has {len(header)}"}))
            else:
                rows.append((location, row))
            start = reader.line_num + 1
        return rows
    except csv.Error as exc:
        # DictReader.line_num only moves on after a good row; the underlying reader knows where it stopped.
        raise SourceFormatError(f"{name}:{reader.reader.line_num}: malformed CSV: {exc}") from None


def _width(row: dict[str | None, Any]) -> int:
    extra = row.get(None) or []
    return sum(value is not None for key, value in row.items() if key is not None) + len(extra)


def _json_rows(text: str, name: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceFormatError(f"{name}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from None
    items = document.get("accounts") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise SourceFormatError(f"{name}: expected a list of accounts or an object with an 'accounts' list")
    rows: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        location = f"{name}[{index}]"
        if isinstance(item, dict):
            rows.append((location, item))
        else:
            rows.append((location, {"__shape__": f"is a {type(item).__name__}, not an object"}))
    return rows


def _parse_row(row: dict[str, Any], location: str, errors: list[ItemError]) -> SourceAccount | None:
    external_id = row.get("externalId")
    external_id = _printable(str(external_id)) if isinstance(external_id, str | int) and external_id != "" else None
    if "__shape__" in row:
        errors.append(ItemError(location=location, message=f"row {row['__shape__']}"))
        return None
    try:
        parsed = SourceRow.model_validate(row)
    except ValidationError as exc:
        for problem in exc.errors():
            field = ".".join(str(part) for part in problem["loc"]) or None
            errors.append(ItemError(location=location, external_id=external_id, field=field,
                                    message=_describe(problem)))
        return None
    return SourceAccount.model_validate(parsed.model_dump())


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
