"""A Thredfi emulator (accounting platform API, chart of accounts): real HTTP on 127.0.0.1.

Modelled on Thredfi's public docs (the "Create account" OpenAPI in shared/seeds, the
authentication guide and the "List chart of accounts" reference), not on our connector:

    POST /v1/platform/oauth2/token/                 Basic partner_uuid:api_key -> partner token
    POST /v1/platform/{business_id}/oauth2/token/   Bearer partner token -> business-scoped token
    GET  /v1/platform/businesses/{business_id}/general-ledger/chart-of-accounts/   page, page_size
    POST /v1/platform/businesses/{business_id}/general-ledger/chart-of-accounts/   create

Documented: tokens expire after `expires_in` (3600) seconds; list pages are
{count, page_info: {total_count, current_page, total_pages, page_size}, results}, default 20
per page, at most 100; a create with an existing external_id answers 200 with that account;
parent_id may be a UUID, a code or an external_id; is_non_cash_expense only on expense
accounts; balance_behavior is debit_positive, credit_positive or blank; code 1..50, name
<= 255, external_id <= 100; errors are {error_code, message, detail, request_id}.

Our reading where the docs are silent (tests pin it down): an expired or unknown token is
401 `token_expired` / `authentication_failed`; a business-scoped token only works for its own
business, a partner token for its partner's businesses (403 otherwise); a page past the last
is 404; a code already used is 409 `conflict`; an account created without account_type is an expense
account; the list is in creation order and includes
inactive accounts. `raw_accounts` serve items exactly as given, to play malformed records.

Run it by hand: `python -m coa_sync_local.emulators.thredfi --partner UUID --api-key KEY --business UUID`.
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

from coa_sync_local.emulators._base import ApiError, EmulatorBase, Reply, Request, route, serve_until_stopped

ACCOUNT_TYPES = ("asset", "liability", "equity", "revenue", "expense")
SUBTYPES = ("current_assets", "non_current_assets", "current_liabilities", "non_current_liabilities",
            "share_capital", "share_premium", "reserves", "retained_earnings", "revenue", "other_operating_income",
            "finance_income", "direct_costs", "operating_expenses", "finance_costs", "income_tax")
BALANCE_BEHAVIORS = ("", "debit_positive", "credit_positive")
MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 100, 20


@dataclass
class _Business:
    id: str
    partner: str
    currency: str = "GBP"
    accounts: list[dict[str, Any]] = field(default_factory=list)  # API shape, creation order


class ThredfiEmulator(EmulatorBase):
    NAME = "thredfi"
    ENDPOINTS = ("partner_token", "business_token", "list", "create")

    def __init__(self, *, token_ttl: int = 3600, **options: Any) -> None:
        super().__init__(**options)
        self.token_ttl = token_ttl
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
        """`accounts`: {code, name[, is_active, external_id, account_type, parent_code, id]};
        `raw_accounts`: items served exactly as given (malformed records)."""
        with self._lock:
            business = self._businesses[business_id] = _Business(business_id, partner_uuid)
            for spec in accounts:
                self._insert(business, {"parent_account_code": spec.get("parent_code"), **{
                    k: v for k, v in spec.items() if k != "parent_code"}})
            business.accounts.extend(raw_accounts)

    def accounts(self, business_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self._businesses[business_id].accounts if isinstance(a, dict)]

    def set_active(self, business_id: str, code: str, active: bool) -> None:
        with self._lock:
            for account in self._businesses[business_id].accounts:
                if isinstance(account, dict) and account.get("code") == code:
                    account["is_active"] = active

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (as after an hour)."""
        with self._lock:
            self._tokens = {token: (p, b, 0.0) for token, (p, b, _) in self._tokens.items()}

    # -- the API -----------------------------------------------------------------------

    def _route(self, method: str, path: str):
        collection = "/v1/platform/businesses/{business_id}/general-ledger/chart-of-accounts/"
        return route([
            ("/v1/platform/oauth2/token/", "POST", "partner_token", self._partner_token),
            ("/v1/platform/{business_id}/oauth2/token/", "POST", "business_token", self._business_token),
            (collection, "GET", "list", self._list),
            (collection, "POST", "create", self._create),
        ], method, path)

    def _authenticate(self, endpoint: str, request: Request) -> Any:
        scheme, _, value = (request.headers.get("Authorization") or "").strip().partition(" ")
        if endpoint == "partner_token":
            if scheme.lower() != "basic":
                raise ApiError(401, "send Basic partner_uuid:api_key", code="authentication_failed")
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            with self._lock:
                if not user or self._partners.get(user) != password:
                    raise ApiError(401, "invalid partner credentials", code="authentication_failed")
            return ("partner", user)
        if scheme.lower() != "bearer" or not value:
            raise ApiError(401, "Authentication credentials were not provided.", code="authentication_failed")
        with self._lock:
            grant = self._tokens.get(value)
        if grant is None:
            raise ApiError(401, "invalid token", code="authentication_failed")
        partner, business, expiry = grant
        if time.monotonic() >= expiry:
            raise ApiError(401, "token has expired", code="token_expired")
        wanted = request.params.get("business_id")
        if endpoint == "business_token" and business is not None:
            raise ApiError(403, "a business-scoped token cannot mint tokens", code="permission_denied")
        if wanted is not None:
            owner = self._businesses.get(wanted)
            if owner is None:
                raise ApiError(404, f"no business {wanted}", code="not_found")
            if owner.partner != partner or (business is not None and business != wanted):
                raise ApiError(403, f"the token may not access business {wanted}", code="permission_denied")
        return ("token", partner)

    def _error_body(self, error: ApiError) -> Any:
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
        total = len(business.accounts)
        pages = max(1, -(-total // size))
        if page > pages:
            raise ApiError(404, "Invalid page.", code="not_found")
        results = business.accounts[(page - 1) * size: page * size]
        return Reply(200, {"count": total, "page_info": {"total_count": total, "current_page": page,
                                                         "total_pages": pages, "page_size": size},
                           "results": [dict(a) if isinstance(a, dict) else a for a in results]})

    def _create(self, request: Request) -> Reply:
        business = self._businesses[request.params["business_id"]]
        body = _form_or_json(request)
        external_id = body.get("external_id")
        if isinstance(external_id, str) and external_id:
            for account in business.accounts:
                if isinstance(account, dict) and account.get("external_id") == external_id:
                    return Reply(200, dict(account))  # documented idempotency
        fields = _validate(body)
        parent = body.get("parent_id")
        parent_code = None
        if parent not in (None, ""):
            match = next((a for a in business.accounts if isinstance(a, dict) and parent in
                          (a.get("id"), a.get("code"), a.get("external_id"))), None)
            if match is None:
                raise ApiError(400, "Invalid input", code="validation_error",
                               fields={"parent_id": [f"No account with UUID, code or external_id {parent!r}."]})
            parent_code = match["code"]
        if any(isinstance(a, dict) and a.get("code") == body["code"] for a in business.accounts):
            raise ApiError(409, f"An account with code {body['code']!r} already exists.", code="conflict")
        account = self._insert(business, {**fields, "parent_account_code": parent_code})
        return Reply(201, dict(account))

    def _insert(self, business: _Business, spec: dict[str, Any]) -> dict[str, Any]:
        account = {
            "id": spec.get("id") or str(uuid.uuid4()),
            "code": spec["code"],
            "name": spec["name"],
            "currency": business.currency,
            "account_type": spec.get("account_type") or "expense",
            "account_subtype": spec.get("account_subtype") or None,
            "parent_account_code": spec.get("parent_account_code"),
            "has_children": False,
            "hierarchy_level": 0,
            "is_active": spec.get("is_active", True),
            "description": spec.get("description", ""),
            "external_id": spec.get("external_id"),
            "current_balance": 0,
        }
        business.accounts.append(account)
        return account


def _form_or_json(request: Request) -> dict[str, Any]:
    if "x-www-form-urlencoded" in (request.headers.get("Content-Type") or ""):
        from urllib.parse import parse_qsl

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


def _validate(body: dict[str, Any]) -> dict[str, Any]:
    """The documented AccountCreateAPIRequest rules: 400 validation_error with field_errors."""
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
    args = parser.parse_args(argv)
    emulator = ThredfiEmulator(port=args.port)
    emulator.add_partner(args.partner, args.api_key)
    emulator.add_business(args.business, args.partner,
                          accounts=json.loads(args.accounts.read_text()) if args.accounts else [])
    return serve_until_stopped(emulator, "Thredfi")


if __name__ == "__main__":
    raise SystemExit(main())
