"""A Thredfi emulator (accounting platform API, chart of accounts): real HTTP on 127.0.0.1.

Modelled on Thredfi's public docs, not on our connector. Endpoints:

    POST   /v1/platform/oauth2/token/                 Basic partner_uuid:api_key -> partner token
    POST   /v1/platform/{business_id}/oauth2/token/   Bearer partner token -> business-scoped token
    GET    /v1/platform/businesses/{business_id}/general-ledger/chart-of-accounts/   list
    POST   /v1/platform/businesses/{business_id}/general-ledger/chart-of-accounts/   create
    GET    .../chart-of-accounts/{account_id}/        detail (UUID, code or external_id)
    DELETE .../chart-of-accounts/{account_id}/        archive: soft delete (UUID, code or external_id)

Sources: [ref-list] "List chart of accounts", [ref-detail] "Get account detail", [ref-archive]
"Archive account (soft delete)", [seed] the "Create account" OpenAPI (shared/seeds), [guide-auth]
the authentication guide and token references, [guide-pages] the pagination guide,
[guide-errors] the error-handling guide; [ours] our strictest reading where they are silent.

| behaviour | source |
|---|---|
| tokens: Basic partner_uuid:api_key, then Bearer partner token for a business token; `expires_in` 3600 | guide-auth |
| a business-scoped token works only for its business; a partner token for its partner's businesses | guide-auth |
| 401 `authentication_required` without credentials, `invalid_token` for an unknown or expired token | guide-errors |
| 401 `authentication_failed` for a wrong partner_uuid:api_key | ours |
| 403 `permission_denied` for another partner's business or another business's token | guide-errors |
| 404 `business_not_found` for an unknown business | guide-errors |
| list: `page` (1), `page_size` (20, at most 100), `include_zero_balance` (true) | ref-list |
| list page `{count, page_info: {total_count, current_page, total_pages, page_size}, results}` | ref-list |
| ... or, with `page_shape="links"`, `{count, next, previous, results}` (absolute URLs) | guide-pages |
| list items carry only the fields of ref-list's example: no external_id, no description | ref-list |
| create, detail and archive answer ChartOfAccountDetail (its required fields; no external_id) | seed |
| a page past the last is 404 `not_found` ("Invalid page.") | ours |
| the list holds inactive accounts too, in creation order | ours |
| create: code required 1..50, name <= 255, external_id <= 100, enums, is_non_cash_expense on expense only | seed |
| create with a known external_id answers 200 with that account | seed |
| parent_id by UUID, code or external_id; an unknown parent is 400 on parent_id | seed; ours for the error |
| a code already used is 409 `conflict`; no account_type makes an expense account | ours |
| the account_id path accepts a UUID, a code or an external_id | ref-detail, ref-archive |
| archive sets is_active false and answers the account (it stays listed, inactive) | ref-archive |
| archive refused with a non-zero balance or an active child: 422 | ref-archive; ours for the status |
| archive of an account already inactive: 409 `conflict` (an "invalid state transition") | seed's 409; ours |
| errors `{error_code, message, detail: {field_errors}, request_id}` | seed (ErrorResponse) |
| ... or, with `error_shape="guide"`, `{error, error_code, details: {field: [msg]}}` | guide-errors |
| rate limit: none documented; 600 a minute per partner, 429 with Retry-After | ours |

`raw_accounts` serve items exactly as given, to play malformed records.

Run it by hand: `python -m coa_sync_local.emulators.thredfi --partner UUID --api-key KEY --business UUID
[--shape page_info|links] [--errors openapi|guide]`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from coa_sync_local.emulators._base import ApiError, EmulatorBase, Raw, Reply, Request, route, serve_until_stopped

ACCOUNT_TYPES = ("asset", "liability", "equity", "revenue", "expense")
SUBTYPES = ("current_assets", "non_current_assets", "current_liabilities", "non_current_liabilities",
            "share_capital", "share_premium", "reserves", "retained_earnings", "revenue", "other_operating_income",
            "finance_income", "direct_costs", "operating_expenses", "finance_costs", "income_tax")
BALANCE_BEHAVIORS = ("", "debit_positive", "credit_positive")
MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 100, 20
PAGE_SHAPES = ("page_info", "links")
ERROR_SHAPES = ("openapi", "guide")
CURRENCY_SIGNS = {"GBP": "£", "EUR": "€", "USD": "$"}
LIST_FIELDS = ("id", "code", "name", "currency", "account_type", "account_type_display", "account_subtype",
               "account_subtype_display", "parent_account_code", "current_balance", "current_balance_formatted",
               "debit_balance", "credit_balance", "period_balance", "period_balance_formatted", "has_children",
               "hierarchy_level", "is_active")
DETAIL_FIELDS = (*LIST_FIELDS, "description", "institution_name", "iban", "sort_code", "account_number_mask",
                 "total_debits", "total_credits", "last_entry_date", "last_entry_reference", "sub_accounts")


@dataclass
class _Business:
    id: str
    partner: str
    currency: str = "GBP"
    accounts: list[dict[str, Any] | Raw] = field(default_factory=list)  # records and raw items, creation order
    external_ids: dict[str, str] = field(default_factory=dict)  # account id -> external_id: kept, never served


class ThredfiEmulator(EmulatorBase):
    NAME = "thredfi"
    ENDPOINTS = ("partner_token", "business_token", "list", "create", "detail", "archive")
    SHAPES = {"page_shape": PAGE_SHAPES, "error_shape": ERROR_SHAPES}  # documented alternatives, default first

    def __init__(self, *, token_ttl: int = 3600, page_shape: str = "page_info", error_shape: str = "openapi",
                 **options: Any) -> None:
        super().__init__(**options)
        self._check_shapes(page_shape=page_shape, error_shape=error_shape)
        self.token_ttl = token_ttl
        self.page_shape = page_shape
        self.error_shape = error_shape
        self._partners: dict[str, str] = {}  # partner uuid -> api key
        self._businesses: dict[str, _Business] = {}
        self._tokens: dict[str, tuple[str, str | None, float]] = {}  # token -> (partner, business or None, expiry)
        self._request_ids = 0

    # -- seeding and inspection --------------------------------------------------------

    def add_partner(self, partner_uuid: str, api_key: str) -> None:
        with self._lock:
            self._partners[partner_uuid] = api_key

    def add_business(self, business_id: str, partner_uuid: str, *, accounts: list[dict[str, Any]] = (),
                     raw_accounts: list[Any] = ()) -> None:
        """`accounts`: {code, name[, is_active, external_id, account_type, parent_code, id, current_balance]};
        `raw_accounts`: items served exactly as given (malformed records)."""
        with self._lock:
            business = self._businesses[business_id] = _Business(business_id, partner_uuid)
            for spec in accounts:
                self._insert(business, {**spec, "parent_account_code": spec.get("parent_code")})
            business.accounts.extend(Raw(item) for item in raw_accounts)

    def accounts(self, business_id: str) -> list[dict[str, Any]]:
        """The stored accounts, each with the external_id the API keeps but never serves (for tests)."""
        with self._lock:
            business = self._businesses[business_id]
            return [{**account, "external_id": business.external_ids.get(account["id"])}
                    for account in business.accounts if isinstance(account, dict)]

    def set_active(self, business_id: str, code: str, active: bool) -> None:
        self._find_by_code(business_id, code)["is_active"] = active

    def set_balance(self, business_id: str, code: str, cents: int) -> None:
        self._find_by_code(business_id, code)["current_balance"] = cents

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (as after an hour)."""
        with self._lock:
            self._tokens = {token: (p, b, 0.0) for token, (p, b, _) in self._tokens.items()}

    def _find_by_code(self, business_id: str, code: str) -> dict[str, Any]:
        with self._lock:
            return next(a for a in self._businesses[business_id].accounts if isinstance(a, dict) and a["code"] == code)

    # -- the API -----------------------------------------------------------------------

    def _route(self, method: str, path: str):
        collection = "/v1/platform/businesses/{business_id}/general-ledger/chart-of-accounts/"
        return route([
            ("/v1/platform/oauth2/token/", "POST", "partner_token", self._partner_token),
            ("/v1/platform/{business_id}/oauth2/token/", "POST", "business_token", self._business_token),
            (collection, "GET", "list", self._list),
            (collection, "POST", "create", self._create),
            (collection + "{account_id}/", "GET", "detail", self._detail),
            (collection + "{account_id}/", "DELETE", "archive", self._archive),
        ], method, path)

    def _authenticate(self, endpoint: str, request: Request) -> Any:
        scheme, _, value = (request.headers.get("Authorization") or "").strip().partition(" ")
        if endpoint == "partner_token":
            if scheme.lower() != "basic":
                raise ApiError(401, "Authentication credentials were not provided.", code="authentication_required")
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            with self._lock:
                if not user or self._partners.get(user) != password:
                    raise ApiError(401, "invalid partner credentials", code="authentication_failed")
            return ("partner", user)
        if scheme.lower() != "bearer" or not value:
            raise ApiError(401, "Authentication credentials were not provided.", code="authentication_required")
        with self._lock:
            grant = self._tokens.get(value)
        if grant is None or time.monotonic() >= grant[2]:
            raise ApiError(401, "Token is invalid or expired", code="invalid_token")
        partner, business, _ = grant
        wanted = request.params.get("business_id")
        if endpoint == "business_token" and business is not None:
            raise ApiError(403, "a business-scoped token cannot mint tokens", code="permission_denied")
        if wanted is not None:
            owner = self._businesses.get(wanted)
            if owner is None:
                raise ApiError(404, f"Business {wanted} not found", code="business_not_found")
            if owner.partner != partner or (business is not None and business != wanted):
                raise ApiError(403, f"the token may not access business {wanted}", code="permission_denied")
        return ("token", partner)

    def _error_body(self, error: ApiError) -> Any:
        if self.error_shape == "guide":
            return {"error": error.message, "error_code": error.code or "error", "details": error.fields}
        with self._lock:
            self._request_ids += 1
            request_id = f"req-{self._request_ids:06d}"
        detail: dict[str, Any] = {"field_errors": error.fields} if error.fields else {}
        return {"error_code": error.code or "error", "message": error.message, "detail": detail,
                "request_id": request_id}

    def _issue(self, partner: str, business: str | None, extra: dict[str, Any]) -> Reply:
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (partner, business, time.monotonic() + self.token_ttl)
        return Reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl, **extra})

    def _partner_token(self, request: Request) -> Reply:
        body = _form_or_json(request)
        if body.get("grant_type", "client_credentials") != "client_credentials":
            raise ApiError(400, "Invalid input", code="validation_error",
                           fields={"grant_type": ["Must be 'client_credentials'."]})
        return self._issue(request.credential[1], None, {})

    def _business_token(self, request: Request) -> Reply:
        business = request.params["business_id"]
        return self._issue(request.credential[1], business, {"scope": "business_access", "business_id": business})

    def _list(self, request: Request) -> Reply:
        business = self._businesses[request.params["business_id"]]
        page = _positive(request.arg("page"), 1, "page")
        size = min(_positive(request.arg("page_size"), DEFAULT_PAGE_SIZE, "page_size"), MAX_PAGE_SIZE)
        chart = business.accounts
        if not _boolean(request.arg("include_zero_balance"), True, "include_zero_balance"):
            chart = [a for a in chart if isinstance(a, Raw) or a.get("current_balance")]
        total = len(chart)
        pages = max(1, -(-total // size))
        if page > pages:
            raise ApiError(404, "Invalid page.", code="not_found")
        results = [self._view(business, a, LIST_FIELDS) for a in chart[(page - 1) * size: page * size]]
        if self.page_shape == "links":
            link = f"{self.url}{request.path}?page={{}}&page_size={size}"
            return Reply(200, {"count": total, "next": link.format(page + 1) if page < pages else None,
                               "previous": link.format(page - 1) if page > 1 else None, "results": results})
        return Reply(200, {"count": total, "page_info": {"total_count": total, "current_page": page,
                                                         "total_pages": pages, "page_size": size},
                           "results": results})

    def _detail(self, request: Request) -> Reply:
        business = self._businesses[request.params["business_id"]]
        return Reply(200, self._view(business, self._lookup(business, request.params["account_id"]), DETAIL_FIELDS))

    def _archive(self, request: Request) -> Reply:
        business = self._businesses[request.params["business_id"]]
        account = self._lookup(business, request.params["account_id"])
        if not account["is_active"]:
            raise ApiError(409, f"Account {account['code']} is already archived.", code="conflict")
        if account.get("current_balance"):
            raise ApiError(422, "Cannot archive account with non-zero balance", code="validation_error")
        if any(isinstance(a, dict) and a.get("parent_account_code") == account["code"] and a["is_active"]
               for a in business.accounts):
            raise ApiError(422, "Cannot archive account with active child accounts", code="validation_error")
        account["is_active"] = False
        return Reply(200, self._view(business, account, DETAIL_FIELDS))

    def _create(self, request: Request) -> Reply:
        business = self._businesses[request.params["business_id"]]
        body = _form_or_json(request)
        external_id = body.get("external_id")
        if isinstance(external_id, str) and external_id:
            existing = self._by_external_id(business, external_id)
            if existing is not None:
                return Reply(200, self._view(business, existing, DETAIL_FIELDS))  # documented idempotency
        fields = _validate(body)
        parent = body.get("parent_id")
        parent_code = None
        if parent not in (None, ""):
            match = self._find(business, parent)
            if match is None:
                raise ApiError(400, "Invalid input", code="validation_error",
                               fields={"parent_id": [f"No account with UUID, code or external_id {parent!r}."]})
            parent_code = match["code"]
        if any(isinstance(a, dict) and a.get("code") == body["code"] for a in business.accounts):
            raise ApiError(409, f"An account with code {body['code']!r} already exists.", code="conflict")
        account = self._insert(business, {**fields, "parent_account_code": parent_code})
        return Reply(201, self._view(business, account, DETAIL_FIELDS))

    # -- records -----------------------------------------------------------------------

    def _insert(self, business: _Business, spec: dict[str, Any]) -> dict[str, Any]:
        account_type = spec.get("account_type") or "expense"
        subtype = spec.get("account_subtype") or None
        account = {
            "id": spec.get("id") or str(uuid.uuid4()), "code": spec["code"], "name": spec["name"],
            "currency": business.currency, "account_type": account_type,
            "account_type_display": account_type.title(), "account_subtype": subtype,
            "account_subtype_display": subtype.replace("_", " ").title() if subtype else None,
            "parent_account_code": spec.get("parent_account_code"),
            "current_balance": spec.get("current_balance", 0), "is_active": spec.get("is_active", True),
            "description": spec.get("description") or "",
        }
        business.accounts.append(account)
        if spec.get("external_id"):
            business.external_ids[account["id"]] = spec["external_id"]
        return account

    def _view(self, business: _Business, account: dict[str, Any] | Raw, fields: tuple[str, ...]) -> Any:
        """An account as the API shows it: computed fields filled in, `fields` only. Raw items as given."""
        if isinstance(account, Raw):
            return account.item
        children = [a for a in business.accounts if isinstance(a, dict) and a.get("parent_account_code") ==
                    account["code"]]
        balance = account.get("current_balance") or 0
        sign = CURRENCY_SIGNS.get(business.currency, "")
        whole = {
            **account, "current_balance_formatted": f"{'-' if balance < 0 else ''}{sign}{abs(balance) / 100:,.2f}",
            "debit_balance": max(balance, 0), "credit_balance": max(-balance, 0), "period_balance": None,
            "period_balance_formatted": None, "has_children": bool(children),
            "hierarchy_level": self._level(business, account), "institution_name": None, "iban": None,
            "sort_code": None, "account_number_mask": None, "total_debits": 0, "total_credits": 0,
            "last_entry_date": None, "last_entry_reference": "",
            "sub_accounts": [self._view(business, child, LIST_FIELDS) for child in children],
        }
        return {name: whole.get(name) for name in fields}

    def _level(self, business: _Business, account: dict[str, Any]) -> int:
        level, parent = 0, account.get("parent_account_code")
        while parent is not None and level < len(business.accounts):
            level += 1
            found = next((a for a in business.accounts if isinstance(a, dict) and a.get("code") == parent), None)
            parent = found.get("parent_account_code") if found else None
        return level

    def _by_external_id(self, business: _Business, external_id: str) -> dict[str, Any] | None:
        ids = [account_id for account_id, known in business.external_ids.items() if known == external_id]
        return next((a for a in business.accounts if isinstance(a, dict) and a.get("id") in ids), None)

    def _find(self, business: _Business, key: Any) -> dict[str, Any] | None:
        """The account with this UUID, code or external_id (the documented flexible lookup)."""
        return next((a for a in business.accounts if isinstance(a, dict) and key in (a.get("id"), a.get("code"))),
                    None) or self._by_external_id(business, key)

    def _lookup(self, business: _Business, key: str) -> dict[str, Any]:
        account = self._find(business, key)
        if account is None:
            raise ApiError(404, f"Account {key} not found", code="not_found")
        return account


def _form_or_json(request: Request) -> dict[str, Any]:
    if "x-www-form-urlencoded" in (request.headers.get("Content-Type") or ""):
        return dict(parse_qsl(request.body.decode()))
    if not request.body:
        return {}
    body = request.json()
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object", code="parse_error")
    return body


def _positive(raw: str | None, default: int, name: str) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, "Invalid input", code="validation_error", fields={name: ["A valid integer is required."]})
    return int(raw)


def _boolean(raw: str | None, default: bool, name: str) -> bool:
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise ApiError(400, "Invalid input", code="validation_error", fields={name: ["Must be a valid boolean."]})
    return raw.lower() == "true"


def _validate(body: dict[str, Any]) -> dict[str, Any]:
    """The documented AccountCreateAPIRequest rules: 400 validation_error with field errors."""
    problems: dict[str, list[str]] = {}

    def text(name: str, *, required: bool = False, min_length: int = 0, max_length: int | None = None) -> None:
        value = body.get(name)
        if value is None:
            if required:
                problems[name] = ["This field is required."]
            return
        if not isinstance(value, str):
            problems[name] = ["Not a valid string."]
        elif len(value) < min_length:
            problems[name] = ["This field may not be blank."]
        elif max_length is not None and len(value) > max_length:
            problems[name] = [f"Ensure this field has no more than {max_length} characters."]

    text("code", required=True, min_length=1, max_length=50)
    text("name", max_length=255)
    text("external_id", max_length=100)
    for name, choices in (("account_type", (*ACCOUNT_TYPES, "")), ("account_subtype", (*SUBTYPES, "")),
                          ("balance_behavior", BALANCE_BEHAVIORS)):
        if body.get(name) is not None and body[name] not in choices:
            problems[name] = [f"\"{body[name]}\" is not a valid choice."]
    if body.get("is_non_cash_expense") and body.get("account_type") != "expense":
        problems["is_non_cash_expense"] = ["is_non_cash_expense can only be set on expense accounts."]
    if problems:
        raise ApiError(400, "Invalid input", code="validation_error", fields=problems)
    return {key: body.get(key) for key in ("code", "name", "account_type", "account_subtype", "description",
                                           "external_id")} | {"name": body.get("name") or body["code"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coa_sync_local.emulators.thredfi",
                                     description="Serve an emulated Thredfi chart-of-accounts API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--partner", required=True, help="partner UUID")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--business", required=True, help="business UUID")
    parser.add_argument("--accounts", type=Path, help="JSON list of {code, name, is_active, external_id}")
    parser.add_argument("--shape", choices=PAGE_SHAPES, default="page_info",
                        help="list pages as the reference shows them (page_info) or as the pagination guide does")
    parser.add_argument("--errors", choices=ERROR_SHAPES, default="openapi",
                        help="error bodies as the OpenAPI shows them or as the error-handling guide does")
    args = parser.parse_args(argv)
    emulator = ThredfiEmulator(port=args.port, page_shape=args.shape, error_shape=args.errors)
    emulator.add_partner(args.partner, args.api_key)
    emulator.add_business(args.business, args.partner,
                          accounts=json.loads(args.accounts.read_text()) if args.accounts else [])
    return serve_until_stopped(emulator, "Thredfi", parser)


if __name__ == "__main__":
    raise SystemExit(main())
