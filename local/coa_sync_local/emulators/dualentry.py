"""A DualEntry emulator (public API, accounts): real HTTP on 127.0.0.1.

Modelled on DualEntry's public docs (the "Create account (v1)" OpenAPI in shared/seeds and
the authentication, pagination and list-accounts guides), not on our connector:

    GET  /public/v1/accounts/   limit (1..100, larger is silently capped), offset, number, is_active
    POST /public/v1/accounts/   PublicAccountSchemaCreateIn -> 201 PublicAccountSchemaOut

Documented: the API key goes in X-API-KEY (missing: 401, invalid: 403); errors are
{"success": false, "errors": {field: [message]}}; name 2..256, number 100..9999999999,
account_type and currency from their enums, is_active and parent_account_id required.

Our reading where the docs are silent (tests pin it down): list answers {"items", "count"}
(as the v2 list does) in creation order, inactive accounts included; a number already used
is 400 on `number`; a parent_account_id that does not exist is 400 on `parent_account_id`.
`raw_accounts` are served exactly as given, to play malformed records.

Run it by hand: `python -m coa_sync_local.emulators.dualentry --api-key KEY`.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

from coa_sync_local.emulators._base import ApiError, EmulatorBase, Reply, Request, route, serve_until_stopped

ACCOUNT_TYPES = ("bank", "accounts_receivable", "other_current_asset", "fixed_asset", "unbilled_receivable",
                 "deferred_expense", "other_asset", "investment", "accounts_payable", "credit_card",
                 "deferred_revenue", "long_term_liability", "other_current_liability", "equity", "income",
                 "cost_of_goods_sold", "expense", "other_income", "other_expense")
MAX_LIMIT = 100
REQUIRED = ("name", "number", "account_type", "currency_iso_4217_code", "is_active", "parent_account_id")


class DualEntryEmulator(EmulatorBase):
    NAME = "dualentry"
    ENDPOINTS = ("list", "create")

    def __init__(self, *, max_limit: int = MAX_LIMIT, **options: Any) -> None:
        super().__init__(**options)
        self.max_limit = max_limit  # the documented cap is 100; lower it to test clients that trust their limit
        self._orgs: dict[str, list[Any]] = {}  # api key -> accounts (API shape, creation order)
        self._ids = itertools.count(1001)

    def add_organization(self, api_key: str, *, accounts: list[dict[str, Any]] = (),
                         raw_accounts: list[Any] = ()) -> None:
        """`accounts`: {number, name[, is_active, account_type, id]}; `raw_accounts` are served as given."""
        with self._lock:
            chart = self._orgs[api_key] = []
            for spec in accounts:
                chart.append(self._account(spec))
            chart.extend(raw_accounts)

    def accounts(self, api_key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self._orgs[api_key] if isinstance(a, dict)]

    def set_active(self, api_key: str, number: int, active: bool) -> None:
        with self._lock:
            for account in self._orgs[api_key]:
                if isinstance(account, dict) and account.get("number") == number:
                    account["is_active"] = active

    def _account(self, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": spec.get("id") or next(self._ids), "name": spec["name"], "number": spec["number"],
            "description": spec.get("description", ""), "is_active": spec.get("is_active", True),
            "is_system": False, "company_id": spec.get("company_id"),
            "parent_account_id": spec.get("parent_account_id"),
            "account_type": spec.get("account_type", "expense"),
            "currency_iso_4217_code": spec.get("currency_iso_4217_code"), "category_1099": "",
            "system_ref": None, "created_by": None, "updated_by": None,
        }

    def _route(self, method: str, path: str):
        return route([("/public/v1/accounts/", "GET", "list", self._list),
                      ("/public/v1/accounts/", "POST", "create", self._create)], method, path)

    def _authenticate(self, endpoint: str, request: Request) -> Any:
        key = request.headers.get("X-API-KEY")
        if not key:
            raise ApiError(401, "API key authentication failed", fields={"__all__": ["API key authentication failed"]})
        with self._lock:
            if key not in self._orgs:
                raise ApiError(403, "invalid or revoked API key",
                               fields={"__all__": ["API key authentication failed"]})
        return key

    def _error_body(self, error: ApiError) -> Any:
        return {"success": False, "errors": error.fields or {"__all__": [error.message]}}

    def _list(self, request: Request) -> Reply:
        chart = self._orgs[request.credential]
        limit = _integer(request.arg("limit"), 100, "limit", minimum=1)
        offset = _integer(request.arg("offset"), 0, "offset", minimum=0)
        items = chart
        number = request.arg("number")
        if number is not None:
            wanted = _integer(number, 0, "number", minimum=0)
            items = [a for a in items if isinstance(a, dict) and a.get("number") == wanted]
        active = request.arg("is_active")
        if active is not None:
            items = [a for a in items if isinstance(a, dict) and a.get("is_active") is (active.lower() == "true")]
        page = items[offset: offset + min(limit, self.max_limit)]
        return Reply(200, {"items": [dict(a) if isinstance(a, dict) else a for a in page], "count": len(items)})

    def _create(self, request: Request) -> Reply:
        chart = self._orgs[request.credential]
        body = request.json()
        if not isinstance(body, dict):
            raise ApiError(400, "body must be an object", fields={"__all__": ["Input should be a valid dictionary"]})
        problems: dict[str, list[str]] = {}
        for name in REQUIRED:
            if name not in body:
                problems[name] = ["Field required"]
        name = body.get("name")
        if "name" in body and (not isinstance(name, str) or not 2 <= len(name) <= 256):
            problems["name"] = ["String should have at least 2 characters" if isinstance(name, str) and len(name) < 2
                                else "String should have at most 256 characters" if isinstance(name, str)
                                else "Input should be a valid string"]
        number = body.get("number")
        if "number" in body:
            if not isinstance(number, int) or isinstance(number, bool):
                problems["number"] = ["Input should be a valid integer"]
            elif number < 100:
                problems["number"] = ["Input should be greater than or equal to 100"]
            elif number > 9_999_999_999:
                problems["number"] = ["Input should be less than or equal to 9999999999"]
            elif any(isinstance(a, dict) and a.get("number") == number for a in chart):
                problems["number"] = [f"Account with number {number} already exists."]
        if "account_type" in body and body["account_type"] not in ACCOUNT_TYPES:
            problems["account_type"] = [f"Input should be one of: {', '.join(ACCOUNT_TYPES)}"]
        currency = body.get("currency_iso_4217_code")
        if currency is not None and not (isinstance(currency, str) and len(currency) == 3 and currency.isupper()):
            problems["currency_iso_4217_code"] = ["Input should be a valid currency code"]
        if "is_active" in body and not isinstance(body["is_active"], bool):
            problems["is_active"] = ["Input should be a valid boolean"]
        parent = body.get("parent_account_id")
        if parent is not None and not any(isinstance(a, dict) and a.get("id") == parent for a in chart):
            problems["parent_account_id"] = [f"Account {parent} does not exist."]
        if problems:
            raise ApiError(400, "validation failed", fields=problems)
        account = self._account(body)
        chart.append(account)
        return Reply(201, dict(account))


def _integer(raw: str | None, default: int, name: str, *, minimum: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad query", fields={"__all__": [f"int_parsing query.{name}"]}) from None
    if value < minimum:
        raise ApiError(400, "bad query", fields={"__all__": [f"greater_than_equal query.{name}"]})
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coa_sync_local.emulators.dualentry",
                                     description="Serve an emulated DualEntry accounts API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--accounts", type=Path, help="JSON list of {number, name, is_active, account_type}")
    args = parser.parse_args(argv)
    emulator = DualEntryEmulator(port=args.port)
    emulator.add_organization(args.api_key, accounts=json.loads(args.accounts.read_text()) if args.accounts else [])
    return serve_until_stopped(emulator, "DualEntry")


if __name__ == "__main__":
    raise SystemExit(main())
