"""DualEntry (public API): accounts as a source, and account creation as a target.

Auth (documented): the API key in the X-API-KEY header (401 missing, 403 invalid). Lists page
by limit/offset (limit capped at 100). Errors are {"success": false, "errors": {field: [msg]}}.
DualEntry has no idempotency key: a create first looks the number up, so a create delivered
twice finds the account the first made instead of making a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from coa_sync.adapters.http import error_message
from coa_sync.connectors.base import (
    Capabilities,
    ConnectorRequestError,
    ConnectorResponseError,
    RetryingHttp,
    WriteResult,
    field_reasons,
    parse_record,
    unsupported,
)
from coa_sync.models import Action, DualEntrySource, ItemError, Model, SourceAccount, SourceSnapshot
from coa_sync.ratelimit import SlidingWindowLimiter, limiter_for

SYSTEM = "dualentry"
PAGE_SIZE = 100  # documented maximum limit
COLLECTION = "/public/v1/accounts/"
MIN_NUMBER, MAX_NUMBER = 100, 9_999_999_999
MIN_NAME, MAX_NAME = 2, 256


class AccountType(StrEnum):
    """The documented AccountType enum."""

    BANK = "bank"
    ACCOUNTS_RECEIVABLE = "accounts_receivable"
    OTHER_CURRENT_ASSET = "other_current_asset"
    FIXED_ASSET = "fixed_asset"
    UNBILLED_RECEIVABLE = "unbilled_receivable"
    DEFERRED_EXPENSE = "deferred_expense"
    OTHER_ASSET = "other_asset"
    INVESTMENT = "investment"
    ACCOUNTS_PAYABLE = "accounts_payable"
    CREDIT_CARD = "credit_card"
    DEFERRED_REVENUE = "deferred_revenue"
    LONG_TERM_LIABILITY = "long_term_liability"
    OTHER_CURRENT_LIABILITY = "other_current_liability"
    EQUITY = "equity"
    INCOME = "income"
    COST_OF_GOODS_SOLD = "cost_of_goods_sold"
    EXPENSE = "expense"
    OTHER_INCOME = "other_income"
    OTHER_EXPENSE = "other_expense"


class DualEntryCredentials(Model):
    """The secret: {"apiKey": ...}."""

    api_key: SecretStr


class DualEntryAccount(BaseModel):
    """One item of the documented PublicAccountSchemaOut, the fields we use."""

    model_config = ConfigDict(extra="ignore")

    id: int
    number: int = Field(ge=MIN_NUMBER, le=MAX_NUMBER)
    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"\S")]
    is_active: bool
    account_type: AccountType
    parent_account_id: int | None = None


class DualEntryConnector:
    capabilities = Capabilities(max_batch=1, idempotent_create=True, update=False, archive=False)

    def __init__(
        self,
        config: DualEntrySource,
        credentials: DualEntryCredentials,
        *,
        account_type: AccountType = AccountType.EXPENSE,
        limiter: SlidingWindowLimiter | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
    ) -> None:
        self.config = config
        self._account_type = account_type  # what new accounts are created as: Pleo has no account type
        self._headers = {"X-API-KEY": credentials.api_key.get_secret_value()}
        self._http = RetryingHttp(
            SYSTEM, config.base_url, describe=_describe, transport=transport, sleep=sleep, max_attempts=max_attempts,
            limiter=limiter or limiter_for(f"{SYSTEM}:{config.secret_name}", config.rate_limit_per_minute))

    def close(self) -> None:
        self._http.close()

    def _list(self, params: dict[str, Any], page: int) -> tuple[list[Any], int | None]:
        """One page's items and the total `count` (None if the answer has none)."""
        document = self._http.json("GET", COLLECTION, params=params, headers=self._headers)
        items = document.get("items") if isinstance(document, dict) else None
        if not isinstance(items, list):
            raise ConnectorResponseError(f"{SYSTEM}: accounts page {page}: expected an 'items' list")
        count = document.get("count")
        return items, count if isinstance(count, int) and not isinstance(count, bool) else None

    # -- source ----------------------------------------------------------------------------

    def read_accounts(self) -> SourceSnapshot:
        accounts: list[SourceAccount] = []
        errors: list[ItemError] = []
        offset, page = 0, 1
        while True:
            items, count = self._list({"limit": PAGE_SIZE, "offset": offset}, page)
            for index, item in enumerate(items):
                account = _account(item, f"dualentry page {page} item {index}", errors)
                if account is not None:
                    accounts.append(account)
            offset, page = offset + len(items), page + 1
            # The documented end is a short or empty page; with a `count` we go by it instead, so a
            # server that caps pages below our limit cannot make a full chart look short.
            if not items or (offset >= count if count is not None else len(items) < PAGE_SIZE):
                return SourceSnapshot(accounts=accounts, errors=errors)

    # -- target ----------------------------------------------------------------------------

    def write(self, actions: Sequence[Action]) -> WriteResult:
        result = WriteResult()
        for action in unsupported(actions, self.capabilities, SYSTEM, result):
            number, problems = create_problems(action)
            if problems:
                result.failed[action.external_id] = problems
                continue
            existing = self._by_number(number)
            if existing is not None:
                if existing.get("name") == action.desired.name:
                    result.applied.append(action.external_id)  # an earlier delivery made it
                else:
                    result.failed[action.external_id] = [
                        f"number: {number} already belongs to DualEntry account {existing.get('id')} "
                        f"named {existing.get('name')!r}"]
                continue
            body = {"name": action.desired.name, "number": number, "account_type": self._account_type.value,
                    "currency_iso_4217_code": None, "is_active": True, "parent_account_id": None}
            try:
                self._http.request("POST", COLLECTION, json=body, headers=self._headers)
            except ConnectorRequestError as exc:
                result.failed[action.external_id] = error_reasons(exc)
            else:
                result.applied.append(action.external_id)
        return result

    def _by_number(self, number: int) -> dict[str, Any] | None:
        for item in self._list({"number": number, "limit": PAGE_SIZE, "offset": 0}, 1)[0]:
            if isinstance(item, dict) and item.get("number") == number:
                return item
        return None


def _account(item: Any, location: str, errors: list[ItemError]) -> SourceAccount | None:
    raw_id = item.get("id") if isinstance(item, dict) else None
    external_id = str(raw_id) if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
    account = parse_record(item, DualEntryAccount, location, external_id, errors)
    if account is None:
        return None
    return SourceAccount(external_id=str(account.id), code=str(account.number), name=account.name,
                         active=account.is_active)


def create_problems(action: Action) -> tuple[int, list[str]]:
    """DualEntry's documented limits, checked before sending: (the number, problems)."""
    problems = []
    code = action.desired.code
    number = 0
    if code is None or not code.isdigit():
        problems.append(f"number: DualEntry needs an integer account number as the code, got {code!r}")
    else:
        number = int(code)
        if not MIN_NUMBER <= number <= MAX_NUMBER:
            problems.append(f"number: must be {MIN_NUMBER}..{MAX_NUMBER}, got {number}")
    if not MIN_NAME <= len(action.desired.name) <= MAX_NAME:
        problems.append(f"name: must be {MIN_NAME}..{MAX_NAME} characters, got {len(action.desired.name)}")
    return number, problems


def error_reasons(exc: ConnectorRequestError) -> list[str]:
    """{"success": false, "errors": {field: [msg]}} as one reason per field message."""
    errors = exc.body.get("errors") if isinstance(exc.body, dict) else None
    if not isinstance(errors, dict) or not errors:
        return [f"{SYSTEM} HTTP {exc.status}: {exc.message}"]
    return field_reasons(errors)


def _describe(response: httpx.Response) -> str:
    return error_message(response, _read_errors)


def _read_errors(body: Any) -> str | None:
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, dict) and errors:
        return "; ".join(f"{key}: {', '.join(map(str, value)) if isinstance(value, list) else value}"
                         for key, value in errors.items())
    return None
