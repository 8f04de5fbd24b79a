"""StackOne (unified accounting API): one linked accounting system's accounts, read-only.

Auth (documented): HTTP Basic with the API key as user and an empty password, plus the
`x-account-id` header naming the linked account. Lists answer {"next": cursor, "data": [...]}
and take `page_size` (default 25) and `next`. Documented ends: the page holding the last
records has no cursor, or the cursor leads to {"next": null, "data": null}; an "early cursor
return" hands back pages shorter than asked that still carry a cursor, so only a missing
cursor ends the list. Every field of an account is optional; `active` is a boolean, "true",
"false" or null (null counts as active: unknown never archives anything).

Errors are {statusCode, message, timestamp}. 408 (the system behind StackOne was slow, with
Retry-After) and 429 (Retry-After: 60) are retried, as StackOne's SDKs do; 401, 403, 404
(unknown linked account) and 412 (linked account disabled) are not. The limit is 1000 requests
in any 60 seconds per API key: a bucket of 100 refilling 900 a minute never goes past it.

StackOne has no endpoint that creates, updates or archives an account (its accounting writes
are journals booked against existing accounts): as a target it is read, and every action a copy
would take is reported as unsupported by the target, never sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, StringConstraints, field_validator

from coa_sync import deadline as deadlines
from coa_sync.adapters.http import error_message
from coa_sync.connectors.base import (
    ConnectorResponseError,
    RetryingHttp,
    WriteResult,
    parse_record,
    raised,
    unsupported,
)
from coa_sync.models import Action, ItemError, Model, SourceAccount, SourceSnapshot, StackOneSource
from coa_sync.targets import CAPABILITIES
from coa_sync.tokenbucket import BudgetFactory, Rate, bucket_for, budget_key

SYSTEM = "stackone"
PAGE_SIZE = 100
KEY_RATE = Rate(per_minute=900, burst=100)  # within the documented 1000 in any 60 s per API key


class StackOneCredentials(Model):
    """The secret: {"apiKey": ...}."""

    api_key: SecretStr


class StackOneAccount(BaseModel):
    """One documented AccountingAccount, the fields we use; without an id and a name it cannot be synced."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    code: str | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"\S")]
    active: bool | None = None

    @field_validator("active", mode="before")
    @classmethod
    def _documented_forms(cls, value: object) -> object:
        """A boolean, "true", "false" or null: nothing else (not 1, not "yes")."""
        if value is None or type(value) is bool:
            return value
        if value in ("true", "false"):
            return value == "true"
        raise ValueError('should be true, false, "true", "false" or null')


def key_rate(config: StackOneSource) -> Rate:
    return raised(config, KEY_RATE)


class StackOneConnector:
    # Read-only: no documented endpoint writes an account (see docs/connectors.md). As a target it reads the
    # chart a copy would change, and every action is reported as unsupported by the target.
    capabilities = CAPABILITIES[SYSTEM]

    def __init__(
        self,
        config: StackOneSource,
        credentials: StackOneCredentials,
        *,
        budget: BudgetFactory = bucket_for,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
        deadline: deadlines.Deadline = deadlines.NONE,
    ) -> None:
        self.config = config
        api_key = credentials.api_key.get_secret_value()
        self._auth = httpx.BasicAuth(api_key, "")
        self._headers = {"x-account-id": config.account_id}
        whole_key = budget(budget_key(SYSTEM, config.base_url, api_key), key_rate(config))
        self._http = RetryingHttp(SYSTEM, config.base_url, describe=_describe, transport=transport, sleep=sleep,
                                  max_attempts=max_attempts, deadline=deadline,
                                  budgets=lambda _method, _path: (whole_key,))
        self._collection = f"/unified/accounting/companies/{config.company_id}/accounts"

    def close(self) -> None:
        self._http.close()

    def write(self, actions: Sequence[Action]) -> WriteResult:
        """Nothing is sent: every action fails with the reason (the plan sets them aside before they are queued)."""
        result = WriteResult()
        unsupported(actions, self.capabilities, SYSTEM, result)
        return result

    def read_accounts(self) -> SourceSnapshot:
        accounts: list[SourceAccount] = []
        errors: list[ItemError] = []
        params: dict[str, Any] = {"page_size": PAGE_SIZE}
        seen: set[str] = set()
        page = 1
        while True:
            document = self._http.json("GET", self._collection, params=params, auth=self._auth, headers=self._headers)
            data, cursor = _page(document, page)
            for index, item in enumerate(data):
                account = _account(item, f"stackone page {page} item {index}", errors)
                if account is not None:
                    accounts.append(account)
            if not cursor:
                return SourceSnapshot(accounts=accounts, errors=errors)
            if cursor in seen:  # a loop would read the same pages for ever
                raise ConnectorResponseError(f"{SYSTEM}: accounts page {page}: cursor {cursor!r} came back again")
            seen.add(cursor)
            params, page = {"page_size": PAGE_SIZE, "next": cursor}, page + 1


def _page(document: Any, page: int) -> tuple[list[Any], str | None]:
    """A page's accounts (none for `"data": null`) and its cursor (None or "" at the end)."""
    if not isinstance(document, dict):
        raise ConnectorResponseError(f"{SYSTEM}: accounts page {page}: expected an object")
    data, cursor = document.get("data"), document.get("next")
    if data is not None and not isinstance(data, list):
        raise ConnectorResponseError(f"{SYSTEM}: accounts page {page}: 'data' is not a list")
    if cursor is not None and not isinstance(cursor, str):
        raise ConnectorResponseError(f"{SYSTEM}: accounts page {page}: 'next' is not a string")
    return data or [], cursor


def _account(item: Any, location: str, errors: list[ItemError]) -> SourceAccount | None:
    raw_id = item.get("id") if isinstance(item, dict) else None
    external_id = raw_id if isinstance(raw_id, str) and raw_id else None
    account = parse_record(item, StackOneAccount, location, external_id, errors)
    if account is None:
        return None
    return SourceAccount(external_id=account.id, code=account.code, name=account.name,
                         active=account.active is not False)


def _describe(response: httpx.Response) -> str:
    return error_message(response, _read_message)


def _read_message(body: Any) -> str | None:
    return body["message"] if isinstance(body, dict) and isinstance(body.get("message"), str) else None
