"""DualEntry (public API): accounts as a source, and account creation as a target.

Auth (documented): the API key in the X-API-KEY header (401 missing, 403 invalid or revoked).
Reads come from GET /public/v2/accounts/ (what DualEntry's own CLI reads), paged by limit/offset
(limit capped at 100). Its reference answers {"items": [...], "count": n}; the pagination guide
says lists answer a bare array, ending on an empty page or one shorter than asked: both are read.
A list item documents no account_type, so none is needed. Errors are {"success": false,
"errors": {field: [msg]}}; a refused create is 422 (400: a malformed request).

Rate limits (documented), per API key, as token buckets: 300 a minute with bursts of 50 across
every endpoint, and 60 a minute with bursts of 10 per route and method; both are kept to.

DualEntry has no idempotency key: a create first looks the number up (GET
/public/v1/accounts/{number}/, 404 when absent), so a create delivered twice finds the account
the first made instead of making a second; a 422 to a create is looked up once more, for a POST
retried after its 201 was lost.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from coa_sync import deadline as deadlines
from coa_sync.adapters.http import error_message
from coa_sync.connectors.base import (
    ConnectorRequestError,
    ConnectorResponseError,
    RetryingHttp,
    WriteResult,
    field_reasons,
    parse_record,
    raised,
    unsupported,
)
from coa_sync.models import Action, DualEntrySource, ItemError, Model, SourceAccount, SourceSnapshot
from coa_sync.targets import CAPABILITIES
from coa_sync.tokenbucket import BudgetFactory, Rate, RateBudget, bucket_for, budget_key

SYSTEM = "dualentry"
PAGE_SIZE = 100  # documented maximum limit
LIST = "/public/v2/accounts/"
CREATE = "/public/v1/accounts/"
MIN_NUMBER, MAX_NUMBER = 100, 9_999_999_999
MIN_NAME, MAX_NAME = 2, 256
KEY_RATE = Rate(per_minute=300, burst=50)  # documented: all requests of an API key
ROUTE_RATE = Rate(per_minute=60, burst=10)  # documented: an API key's requests to one route and method
_NUMBER_IN_PATH = re.compile(r"/\d+/$")


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
    """One item of the documented v2 list, the fields we use (each is on the documented item)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: int
    number: int = Field(ge=MIN_NUMBER, le=MAX_NUMBER)
    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"\S")]
    is_active: bool


def key_rate(config: DualEntrySource) -> Rate:
    return raised(config, KEY_RATE)


class DualEntryConnector:
    capabilities = CAPABILITIES[SYSTEM]

    def __init__(
        self,
        config: DualEntrySource,
        credentials: DualEntryCredentials,
        *,
        account_type: AccountType = AccountType.EXPENSE,
        budget: BudgetFactory = bucket_for,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
        deadline: deadlines.Deadline = deadlines.NONE,
    ) -> None:
        self.config = config
        self._account_type = account_type  # what new accounts are created as: Pleo has no account type
        api_key = credentials.api_key.get_secret_value()
        self._headers = {"X-API-KEY": api_key}
        whole_key = budget(budget_key(SYSTEM, config.base_url, api_key), key_rate(config))

        def budgets(method: str, path: str) -> tuple[RateBudget, RateBudget]:
            route = _NUMBER_IN_PATH.sub("/{account_number}/", path)
            return whole_key, budget(budget_key(SYSTEM, config.base_url, api_key, method, route), ROUTE_RATE)

        self._http = RetryingHttp(SYSTEM, config.base_url, describe=_describe, transport=transport, sleep=sleep,
                                  max_attempts=max_attempts, deadline=deadline,
                                  budgets=budgets)

    def close(self) -> None:
        self._http.close()

    # -- source ----------------------------------------------------------------------------

    def read_accounts(self) -> SourceSnapshot:
        accounts: list[SourceAccount] = []
        errors: list[ItemError] = []
        offset, page = 0, 1
        while True:
            items, count = self._page({"limit": PAGE_SIZE, "offset": offset}, page)
            for index, item in enumerate(items):
                account = _account(item, f"dualentry page {page} item {index}", errors)
                if account is not None:
                    accounts.append(account)
            offset, page = offset + len(items), page + 1
            # The documented end is a short or empty page; with a `count` we go by it instead, so a
            # server that caps pages below our limit cannot make a full chart look short.
            if not items or (offset >= count if count is not None else len(items) < PAGE_SIZE):
                return SourceSnapshot(accounts=accounts, errors=errors)

    def _page(self, params: dict[str, Any], page: int) -> tuple[list[Any], int | None]:
        """One page's items, and the total `count` when the answer is {items, count} rather than a bare array."""
        document = self._http.json("GET", LIST, params=params, headers=self._headers)
        if isinstance(document, list):
            return document, None
        items = document.get("items") if isinstance(document, dict) else None
        if not isinstance(items, list):
            raise ConnectorResponseError(f"{SYSTEM}: accounts page {page}: expected a list, or an object with an "
                                         "'items' list")
        count = document.get("count")
        return items, count if isinstance(count, int) and not isinstance(count, bool) else None

    # -- target ----------------------------------------------------------------------------

    def write(self, actions: Sequence[Action]) -> WriteResult:
        result = WriteResult()
        for action in unsupported(actions, self.capabilities, SYSTEM, result):
            number, problems = create_problems(action)
            if problems:
                result.failed[action.external_id] = problems
                continue
            if self._made_before(action, number, result):
                continue
            body = {"name": action.desired.name, "number": number, "account_type": self._account_type.value,
                    "currency_iso_4217_code": None, "is_active": True, "parent_account_id": None}
            try:
                self._http.request("POST", CREATE, json=body, headers=self._headers)
            except ConnectorRequestError as exc:
                # A 422 may answer our own retry: the first POST made the account, its 201 was lost.
                if exc.status != 422 or not self._made_before(action, number, result):
                    result.failed[action.external_id] = error_reasons(exc)
            else:
                result.applied.append(action.external_id)
        return result

    def _made_before(self, action: Action, number: int, result: WriteResult) -> bool:
        """Whether the number is taken, recorded in `result`: applied if by this account (an earlier delivery
        made it), failed if by another."""
        existing = self._by_number(number)
        if existing is None:
            return False
        if existing.get("name") == action.desired.name:
            result.applied.append(action.external_id)
        else:
            result.failed[action.external_id] = [f"number: {number} already belongs to DualEntry account "
                                                 f"{existing.get('id')} named {existing.get('name')!r}"]
        return True

    def _by_number(self, number: int) -> dict[str, Any] | None:
        try:
            found = self._http.json("GET", f"{CREATE}{number}/", headers=self._headers)
        except ConnectorRequestError as exc:
            if exc.status == 404:
                return None
            raise
        return found if isinstance(found, dict) else None


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
