"""A StackOne emulator (unified accounting API, accounts): real HTTP on 127.0.0.1.

Modelled on StackOne's public docs (the journals batch example in shared/seeds and the
accounting SDK reference), not on our connector:

    GET  /unified/accounting/companies/{id}/accounts         page_size, next -> {"next", "data"}
    POST /unified/accounting/companies/{id}/accounts/batch   {"items": [...]} -> 202 with `errors`

Documented: HTTP Basic (API key as user, empty password) and `x-account-id` on every
request; list pages carry a `next` cursor (null on the last page); AccountingAccount has
id, remote_id, company_id, code, name, type, active; a batch write answers 202
{"statusCode", "message", "timestamp", "errors"} with errors[i] the list of messages for
items[i] (empty when it went through).

Assumed (StackOne documents no account-create endpoint): `accounts/batch` in the journals'
shape; an item needs a name ("Missing field: name") and a code not already used. Errors
are {"statusCode", "message", "timestamp"}; an unknown x-account-id is 404; page_size caps
at 100. `raw_accounts` are served exactly as given, to play malformed records.

Run it by hand: `python -m coa_sync_local.emulators.stackone --api-key KEY --account-id ID --company ID`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coa_sync_local.emulators._base import ApiError, EmulatorBase, Reply, Request, route, serve_until_stopped

MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 100, 25


class StackOneEmulator(EmulatorBase):
    NAME = "stackone"
    ENDPOINTS = ("list", "batch")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._keys: set[str] = set()
        self._linked: dict[str, tuple[str, list[Any]]] = {}  # x-account-id -> (company id, accounts)

    def add_linked_account(self, account_id: str, api_key: str, company_id: str, *,
                           accounts: list[dict[str, Any]] = (), raw_accounts: list[Any] = ()) -> None:
        """`accounts`: {code, name[, active, id, type]}; `raw_accounts` are served as given."""
        with self._lock:
            self._keys.add(api_key)
            chart: list[Any] = [self._account(company_id, spec) for spec in accounts]
            chart.extend(raw_accounts)
            self._linked[account_id] = (company_id, chart)

    def accounts(self, account_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self._linked[account_id][1] if isinstance(a, dict)]

    @staticmethod
    def _account(company_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        remote = spec.get("id") or str(uuid.uuid4())
        return {"id": remote, "remote_id": remote, "company_id": company_id, "code": spec.get("code"),
                "name": spec["name"], "type": spec.get("type", "expense"), "active": spec.get("active", True)}

    def _route(self, method: str, path: str):
        collection = "/unified/accounting/companies/{company_id}/accounts"
        return route([(collection, "GET", "list", self._list),
                      (collection + "/batch", "POST", "batch", self._batch)], method, path)

    def _authenticate(self, endpoint: str, request: Request) -> Any:
        scheme, _, value = (request.headers.get("Authorization") or "").strip().partition(" ")
        user = ""
        if scheme.lower() == "basic":
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                user = base64.b64decode(value, validate=True).decode().partition(":")[0]
        with self._lock:
            if user not in self._keys:
                raise ApiError(401, "Unauthorized")
            account_id = request.headers.get("x-account-id")
            if not account_id:
                raise ApiError(400, "x-account-id header is required")
            linked = self._linked.get(account_id)
        if linked is None:
            raise ApiError(404, f"account {account_id} not found")
        if linked[0] != request.params.get("company_id"):
            raise ApiError(404, f"company {request.params.get('company_id')} not found")
        return account_id

    def _error_body(self, error: ApiError) -> Any:
        return {"statusCode": error.status, "message": error.message, "timestamp": _now()}

    def _list(self, request: Request) -> Reply:
        chart = self._linked[request.credential][1]
        raw_size = request.arg("page_size")
        if raw_size is not None and (not raw_size.isdigit() or int(raw_size) < 1):
            raise ApiError(400, "page_size must be a positive integer")
        size = min(int(raw_size or DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        start = _decode_cursor(request.arg("next")) if request.arg("next") else 0
        page = chart[start: start + size]
        end = start + len(page)
        cursor = base64.urlsafe_b64encode(f"o:{end}".encode()).decode() if end < len(chart) else None
        return Reply(200, {"next": cursor, "data": [dict(a) if isinstance(a, dict) else a for a in page]})

    def _batch(self, request: Request) -> Reply:
        company_id, chart = self._linked[request.credential]
        body = request.json()
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise ApiError(400, "items must be a non-empty array")
        errors: list[list[str]] = []
        for item in items:
            problems = []
            if not isinstance(item, dict):
                errors.append(["Item must be an object"])
                continue
            if not isinstance(item.get("name"), str) or not item["name"].strip():
                problems.append("Missing field: name")
            code = item.get("code")
            if code is not None and any(isinstance(a, dict) and a.get("code") == code for a in chart):
                problems.append(f"Account code already exists: {code}")
            if not problems:
                chart.append(self._account(company_id, {**item, "id": None}))
            errors.append(problems)
        return Reply(202, {"statusCode": 202, "message": "Batch operation accepted", "timestamp": _now(),
                           "errors": errors})


def _decode_cursor(cursor: str) -> int:
    try:
        kind, _, offset = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "o" or not offset.isdigit():
            raise ValueError(cursor)
        return int(offset)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, f"invalid next cursor: {cursor!r}") from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coa_sync_local.emulators.stackone",
                                     description="Serve an emulated StackOne accounting API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8083)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--account-id", required=True, help="the x-account-id of the linked account")
    parser.add_argument("--company", required=True, help="the accounting company id")
    parser.add_argument("--accounts", type=Path, help="JSON list of {code, name, active}")
    args = parser.parse_args(argv)
    emulator = StackOneEmulator(port=args.port)
    emulator.add_linked_account(args.account_id, args.api_key, args.company,
                                accounts=json.loads(args.accounts.read_text()) if args.accounts else [])
    return serve_until_stopped(emulator, "StackOne")


if __name__ == "__main__":
    raise SystemExit(main())
