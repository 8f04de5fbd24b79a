"""A DualEntry emulator (public API, accounts): real HTTP on 127.0.0.1.

Modelled on DualEntry's public docs, not on our connector. Endpoints:

    GET  /public/v2/accounts/                  limit (1..100, larger silently capped), offset, number, is_active
    GET  /public/v1/accounts/{account_number}/ one account
    POST /public/v1/accounts/                  PublicAccountSchemaCreateIn -> 201 PublicAccountSchemaOut

Sources: [ref-v2-list] "List accounts" (v2), [ref-v1-get] "Get account" (v1), [seed] the "Create
account (v1)" OpenAPI (shared/seeds), [guide-auth], [guide-pages], [guide-errors] and
[guide-rates] the authentication, pagination, error-handling and rate-limiting guides, [cli]
DualEntry's own CLI (which lists /public/v2/accounts/ as {items, count}); [ours] our strictest
reading where they are silent.

| behaviour | source |
|---|---|
| the key in X-API-KEY: missing 401, invalid or revoked 403 | guide-auth |
| ... both with `{"__all__": ["API key authentication failed"]}` | guide-auth |
| errors `{"success": false, "errors": {field or "__all__": [msg]}}` | guide-errors, seed |
| the v2 list answers `{"items": [...], "count": n}` (`count`: all matches) | ref-v2-list, cli |
| ... or, with `list_shape="array"`, a bare array of items | guide-pages |
| list items carry only ref-v2-list's fields: no account_type, no parent_account_id | ref-v2-list |
| limit 1..100, default 100, above 100 silently capped; offset >= 0 | guide-pages |
| limit < 1 or offset < 0: 400 `{"__all__": ["greater_than_equal query.limit"]}` | guide-pages |
| filters `number` and `is_active` | ref-v2-list |
| the list is in creation order and includes inactive accounts | ours |
| get by number: PublicAccountSchemaOut; an unknown number is 404 | ref-v1-get; ours for the body |
| create: name 2..256, number 100..9999999999, enums; every PublicAccountSchemaCreateIn field required | seed |
| a refused create is 422 field by field; a body that is not a JSON object is 400 | guide-errors, seed |
| a number already used, or a parent_account_id that does not exist: 422 on that field | ours |
| token buckets per API key: burst 50, 5 a second overall; burst 10, 1 a second per route and method | guide-rates |
| the overall bucket is checked first; when it refuses, the route's is not charged | guide-rates |
| a refusal is 429 with Retry-After (whole seconds until a token) | guide-errors, guide-rates |
| GET /public/v1/accounts/ (no list schema is documented for v1) is not served | ours |

`raw_accounts` are served exactly as given, to play malformed records.

Run it by hand: `python -m coa_sync_local.emulators.dualentry --api-key KEY [--shape object|array]`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path
from typing import Any

from coa_sync_local.emulators._base import ApiError, EmulatorBase, Raw, Reply, Request, route, serve_until_stopped

ACCOUNT_TYPES = ("bank", "accounts_receivable", "other_current_asset", "fixed_asset", "unbilled_receivable",
                 "deferred_expense", "other_asset", "investment", "accounts_payable", "credit_card",
                 "deferred_revenue", "long_term_liability", "other_current_liability", "equity", "income",
                 "cost_of_goods_sold", "expense", "other_income", "other_expense")
MAX_LIMIT = 100
REQUIRED = ("name", "number", "account_type", "currency_iso_4217_code", "is_active", "parent_account_id")
LIST_SHAPES = ("object", "array")
LIST_FIELDS = ("id", "name", "number", "description", "is_active", "is_system", "company_id", "created_by",
               "updated_by")
OUT_FIELDS = ("id", "name", "number", "description", "is_active", "is_system", "company_id", "parent_account_id",
              "account_type", "currency_iso_4217_code", "category_1099", "system_ref")
KEY_RATE = (50, 5.0)  # documented: burst, tokens a second, for all of an API key's requests
ROUTE_RATE = (10, 1.0)  # documented: for an API key's requests to one route and method
API_ACTOR = {"actor_type": "api_key", "email": None, "first_name": None, "last_name": None,
             "timestamp": "2026-01-01T00:00:00Z"}


class _Bucket:
    """The server's token bucket: a request takes a token, or learns how long until one is there."""

    def __init__(self, burst: int, per_second: float) -> None:
        self.burst, self.per_second = burst, per_second
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self, now: float) -> float:
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second


class DualEntryEmulator(EmulatorBase):
    NAME = "dualentry"
    ENDPOINTS = ("list", "get", "create")
    SHAPES = {"list_shape": LIST_SHAPES}  # documented alternatives, default first

    def __init__(self, *, list_shape: str = "object", max_limit: int = MAX_LIMIT,
                 key_rate: tuple[int, float] = KEY_RATE, route_rate: tuple[int, float] = ROUTE_RATE,
                 **options: Any) -> None:
        super().__init__(**options)
        self._check_shapes(list_shape=list_shape)
        self.list_shape = list_shape
        self.max_limit = max_limit  # the documented cap is 100; lower it to test clients that trust their limit
        self.key_rate, self.route_rate = key_rate, route_rate
        self._buckets: dict[Any, _Bucket] = {}
        self._orgs: dict[str, list[dict[str, Any] | Raw]] = {}  # api key -> accounts, creation order
        self._ids = itertools.count(1001)

    def add_organization(self, api_key: str, *, accounts: list[dict[str, Any]] = (),
                         raw_accounts: list[Any] = ()) -> None:
        """`accounts`: {number, name[, is_active, account_type, id]}; `raw_accounts` are served as given."""
        with self._lock:
            chart = self._orgs[api_key] = []
            chart.extend(self._account(spec) for spec in accounts)
            chart.extend(Raw(item) for item in raw_accounts)

    def accounts(self, api_key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self._orgs[api_key] if isinstance(a, dict)]

    def set_active(self, api_key: str, number: int, active: bool) -> None:
        with self._lock:
            for account in self._orgs[api_key]:
                if isinstance(account, dict) and account["number"] == number:
                    account["is_active"] = active

    def _account(self, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": spec.get("id") or next(self._ids), "name": spec["name"], "number": spec["number"],
            "description": spec.get("description", ""), "is_active": spec.get("is_active", True),
            "is_system": False, "company_id": spec.get("company_id"),
            "parent_account_id": spec.get("parent_account_id"),
            "account_type": spec.get("account_type", "expense"),
            "currency_iso_4217_code": spec.get("currency_iso_4217_code"), "category_1099": "",
            "system_ref": None, "created_by": API_ACTOR, "updated_by": API_ACTOR,
        }

    # -- the API -----------------------------------------------------------------------

    def _route(self, method: str, path: str):
        return route([("/public/v2/accounts/", "GET", "list", self._list),
                      ("/public/v1/accounts/{account_number}/", "GET", "get", self._get),
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

    def _admit_request(self, endpoint: str, request: Request) -> None:
        now = time.monotonic()
        with self._lock:
            for scope, rate in ((request.credential, self.key_rate), ((request.credential, endpoint), self.route_rate)):
                bucket = self._buckets.setdefault(scope, _Bucket(*rate))
                wait = bucket.take(now)
                if wait:
                    raise ApiError(429, "rate limit exceeded", fields={"__all__": ["Rate limit exceeded"]},
                                   headers={"Retry-After": str(max(1, math.ceil(wait)))})

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
            items = [a for a in items if isinstance(a, dict) and a["number"] == wanted]
        active = request.arg("is_active")
        if active is not None:
            items = [a for a in items if isinstance(a, dict) and a["is_active"] is (active.lower() == "true")]
        page = [_view(a, LIST_FIELDS) for a in items[offset: offset + min(limit, self.max_limit)]]
        return Reply(200, page if self.list_shape == "array" else {"items": page, "count": len(items)})

    def _get(self, request: Request) -> Reply:
        number = _integer(request.params["account_number"], 0, "account_number", minimum=0)
        for account in self._orgs[request.credential]:
            if isinstance(account, dict) and account["number"] == number:
                return Reply(200, _view(account, OUT_FIELDS))
        raise ApiError(404, "Not found.")

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
            elif any(isinstance(a, dict) and a["number"] == number for a in chart):
                problems["number"] = [f"Account with number {number} already exists."]
        if "account_type" in body and body["account_type"] not in ACCOUNT_TYPES:
            problems["account_type"] = [f"Input should be one of: {', '.join(ACCOUNT_TYPES)}"]
        currency = body.get("currency_iso_4217_code")
        if currency is not None and not (isinstance(currency, str) and len(currency) == 3 and currency.isupper()):
            problems["currency_iso_4217_code"] = ["Input should be a valid currency code"]
        if "is_active" in body and not isinstance(body["is_active"], bool):
            problems["is_active"] = ["Input should be a valid boolean"]
        parent = body.get("parent_account_id")
        if parent is not None and not any(isinstance(a, dict) and a["id"] == parent for a in chart):
            problems["parent_account_id"] = [f"Account {parent} does not exist."]
        if problems:
            raise ApiError(422, "validation failed", fields=problems)
        account = self._account(body)
        chart.append(account)
        return Reply(201, _view(account, OUT_FIELDS))


def _view(account: dict[str, Any] | Raw, fields: tuple[str, ...]) -> Any:
    return account.item if isinstance(account, Raw) else {name: account[name] for name in fields}


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
    parser.add_argument("--shape", choices=LIST_SHAPES, default="object",
                        help="the v2 list as its reference shows it ({items, count}) or as the pagination guide does")
    args = parser.parse_args(argv)
    emulator = DualEntryEmulator(port=args.port, list_shape=args.shape)
    emulator.add_organization(args.api_key, accounts=json.loads(args.accounts.read_text()) if args.accounts else [])
    return serve_until_stopped(emulator, "DualEntry", parser)


if __name__ == "__main__":
    raise SystemExit(main())
