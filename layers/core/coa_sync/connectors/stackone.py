"""StackOne (unified accounting API): one linked accounting system's accounts, and batch writes.

Auth (documented): HTTP Basic with the API key as user and an empty password, plus the
`x-account-id` header naming the linked account. Lists answer {"next": cursor, "data": [...]}
and take `page_size` and `next`. Batch writes (documented for journals) answer 202 with an
`errors` array aligned by index with the submitted items: an empty entry means that item
went through. StackOne documents no account-create endpoint; the writer posts to
`accounts/batch` in the journals' shape (an assumption, see docs/connectors.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, StringConstraints

from coa_sync.adapters.http import error_message
from coa_sync.connectors.base import (
    Capabilities,
    ConnectorResponseError,
    RetryingHttp,
    WriteResult,
    parse_record,
    unsupported,
)
from coa_sync.models import Action, ItemError, Model, SourceAccount, SourceSnapshot, StackOneSource
from coa_sync.ratelimit import SlidingWindowLimiter, limiter_for

SYSTEM = "stackone"
PAGE_SIZE = 100
MAX_BATCH = 100  # assumed: StackOne documents no item limit for batch writes


class StackOneCredentials(Model):
    """The secret: {"apiKey": ...}."""

    api_key: SecretStr


class StackOneAccount(BaseModel):
    """One item of the documented AccountingAccount, the fields we use."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    code: str | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"\S")]
    active: bool | None = None  # documented as nullable: unknown counts as active


class StackOneConnector:
    capabilities = Capabilities(max_batch=MAX_BATCH, idempotent_create=False, update=False, archive=False)

    def __init__(
        self,
        config: StackOneSource,
        credentials: StackOneCredentials,
        *,
        limiter: SlidingWindowLimiter | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
    ) -> None:
        self.config = config
        self._auth = httpx.BasicAuth(credentials.api_key.get_secret_value(), "")
        self._headers = {"x-account-id": config.account_id}
        self._http = RetryingHttp(
            SYSTEM, config.base_url, describe=_describe, transport=transport, sleep=sleep, max_attempts=max_attempts,
            limiter=limiter or limiter_for(f"{SYSTEM}:{config.account_id}", config.rate_limit_per_minute))
        self._collection = f"/unified/accounting/companies/{config.company_id}/accounts"

    def close(self) -> None:
        self._http.close()

    def read_accounts(self) -> SourceSnapshot:
        accounts: list[SourceAccount] = []
        errors: list[ItemError] = []
        params: dict[str, Any] = {"page_size": PAGE_SIZE}
        page = 1
        while True:
            document = self._http.json("GET", self._collection, params=params, auth=self._auth, headers=self._headers)
            data = document.get("data") if isinstance(document, dict) else None
            if not isinstance(data, list):
                raise ConnectorResponseError(f"{SYSTEM}: accounts page {page}: expected a 'data' list")
            for index, item in enumerate(data):
                account = _account(item, f"stackone page {page} item {index}", errors)
                if account is not None:
                    accounts.append(account)
            cursor = document.get("next")
            if not cursor:
                return SourceSnapshot(accounts=accounts, errors=errors)
            if not isinstance(cursor, str):
                raise ConnectorResponseError(f"{SYSTEM}: accounts page {page}: 'next' is not a string")
            params, page = {"page_size": PAGE_SIZE, "next": cursor}, page + 1

    def write(self, actions: Sequence[Action]) -> WriteResult:
        result = WriteResult()
        creates = unsupported(actions, self.capabilities, SYSTEM, result)
        for start in range(0, len(creates), MAX_BATCH):
            chunk = creates[start:start + MAX_BATCH]
            items = [{"code": a.desired.code, "name": a.desired.name, "active": True} for a in chunk]
            document = self._http.json("POST", f"{self._collection}/batch", json={"items": items},
                                       auth=self._auth, headers=self._headers)
            merge_batch_errors(chunk, document, result)
        return result


def merge_batch_errors(actions: Sequence[Action], document: Any, result: WriteResult) -> None:
    """A 202 answer's `errors[i]` belongs to `actions[i]`: non-empty fails it, empty applies it.

    An answer whose errors cannot be lined up with the items is unreadable: raising leaves the
    actions to be retried rather than guessing which of them went through.
    """
    errors = document.get("errors") if isinstance(document, dict) else None
    if errors is None:
        errors = [[] for _ in actions]  # no errors array at all: every item was accepted
    if not isinstance(errors, list) or len(errors) != len(actions):
        count = len(errors) if isinstance(errors, list) else "no"
        raise ConnectorResponseError(f"{SYSTEM}: batch answer has {count} error entries for {len(actions)} items")
    for action, messages in zip(actions, errors, strict=True):
        if messages is None or messages == []:
            result.applied.append(action.external_id)
        elif isinstance(messages, list):
            result.failed[action.external_id] = [f"{SYSTEM}: {message}" for message in messages]
        else:
            result.failed[action.external_id] = [f"{SYSTEM}: {messages}"]


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
