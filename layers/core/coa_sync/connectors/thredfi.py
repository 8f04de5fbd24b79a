"""Thredfi (accounting platform API): chart of accounts as a source; account creation and archive as a target.

Auth (documented): POST /v1/platform/oauth2/token/ with Basic partner_uuid:api_key gives a
partner token; POST /v1/platform/{business_id}/oauth2/token/ with that token as Bearer gives
a business-scoped token (both expire after `expires_in` seconds, 3600). Tokens are cached per
process and fetched anew shortly before expiry, or at once when a request answers 401.

Reads (documented): list pages come as {count, page_info: {total_pages, ...}, results} (the
endpoint's reference) or {count, next, previous, results} (the pagination guide); both are read.
No read carries an external_id, so an account is matched by its `id` or its `code`. Errors come
as {error_code, message, detail: {field_errors}, request_id} (the OpenAPI) or {error, error_code,
details: {field: [msg]}} (the error-handling guide); both are read. Thredfi states no rate limit:
we keep to 60 requests a minute with bursts of 10 per partner (the strictest figures any of our
systems states) and honour 429 with Retry-After.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any
from urllib.parse import quote

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
from coa_sync.models import Action, ActionKind, ItemError, Model, SourceAccount, SourceSnapshot, ThredfiSource
from coa_sync.targets import CAPABILITIES
from coa_sync.tokenbucket import BudgetFactory, Rate, bucket_for, budget_key

SYSTEM = "thredfi"
PAGE_SIZE = 100  # documented maximum page_size
REFRESH_MARGIN = 60.0  # fetch a new token this many seconds before the old one expires
MAX_CODE, MAX_NAME, MAX_EXTERNAL_ID = 50, 255, 100  # documented limits of AccountCreateAPIRequest
RATE = Rate(per_minute=60, burst=10)  # our choice: Thredfi states none


class ThredfiCredentials(Model):
    """The secret: {"partnerUuid": ..., "apiKey": ...}."""

    partner_uuid: str = Field(min_length=1)
    api_key: SecretStr


class ThredfiAccount(BaseModel):
    """One item of the documented list response, the fields we use (each is on every documented read)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: Annotated[str, StringConstraints(min_length=1)]
    code: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CODE)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"\S")]
    is_active: bool


_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def forget_tokens() -> None:
    with _tokens_lock:
        _tokens.clear()


class ThredfiConnector:
    # One create or archive per request; a create is idempotent by external_id. No update endpoint is documented.
    capabilities = CAPABILITIES[SYSTEM]

    def __init__(
        self,
        config: ThredfiSource,
        credentials: ThredfiCredentials,
        *,
        budget: BudgetFactory = bucket_for,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_attempts: int = 5,
        deadline: deadlines.Deadline = deadlines.NONE,
    ) -> None:
        self.config = config
        self._credentials = credentials
        self._clock = clock
        partner = budget(budget_key(SYSTEM, config.base_url, credentials.partner_uuid), raised(config, RATE))
        self._http = RetryingHttp(SYSTEM, config.base_url, describe=_describe, transport=transport, sleep=sleep,
                                  max_attempts=max_attempts, deadline=deadline,
                                  budgets=lambda _method, _path: (partner,))
        self._token_key = (config.base_url, credentials.partner_uuid, config.business_id)
        self._collection = f"/v1/platform/businesses/{config.business_id}/general-ledger/chart-of-accounts/"

    def close(self) -> None:
        self._http.close()

    # -- auth ------------------------------------------------------------------------------

    def _token(self) -> str:
        with _tokens_lock:
            cached = _tokens.get(self._token_key)
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        partner = self._grant("/v1/platform/oauth2/token/",
                              auth=httpx.BasicAuth(self._credentials.partner_uuid,
                                                   self._credentials.api_key.get_secret_value()),
                              json={"grant_type": "client_credentials", "client_id": self._credentials.partner_uuid})
        business = self._grant(f"/v1/platform/{self.config.business_id}/oauth2/token/",
                               headers={"Authorization": f"Bearer {partner[0]}"})
        with _tokens_lock:
            _tokens[self._token_key] = business
        return business[0]

    def _grant(self, path: str, **kwargs: Any) -> tuple[str, float]:
        document = self._http.json("POST", path, **kwargs)
        token = document.get("access_token") if isinstance(document, dict) else None
        expires_in = document.get("expires_in") if isinstance(document, dict) else None
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
            raise ConnectorResponseError(f"{SYSTEM}: {path}: expected access_token and expires_in")
        return token, self._clock() + max(0.0, float(expires_in) - REFRESH_MARGIN)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A business-scoped request; a 401 (token expired or revoked) gets one fresh token and one more try."""
        for fresh in (False, True):
            headers = {"Authorization": f"Bearer {self._token()}"}
            try:
                return self._http.request(method, path, headers=headers, **kwargs)
            except ConnectorRequestError as exc:
                if exc.status != 401 or fresh:
                    raise
                with _tokens_lock:
                    _tokens.pop(self._token_key, None)
        raise AssertionError("unreachable")

    # -- source ----------------------------------------------------------------------------

    def read_accounts(self) -> SourceSnapshot:
        accounts: list[SourceAccount] = []
        errors: list[ItemError] = []
        page = 1
        while True:
            # include_zero_balance is documented to default to true; asking for it keeps an account
            # without a balance from ever looking gone (and its Pleo twin from being archived).
            response = self._call("GET", self._collection,
                                  params={"page": page, "page_size": PAGE_SIZE, "include_zero_balance": "true"})
            results, more = _page(response, page)
            for index, item in enumerate(results):
                account = _account(item, f"thredfi page {page} item {index}", self.config.external_id_from, errors)
                if account is not None:
                    accounts.append(account)
            if not more or not results:
                return SourceSnapshot(accounts=accounts, errors=errors)
            page += 1

    # -- target ----------------------------------------------------------------------------

    def write(self, actions: Sequence[Action], parents: Mapping[str, str] | None = None) -> WriteResult:
        """Creates and archives, one request each, both safe to deliver twice.

        A create sends `external_id`, so a second delivery gets the first account back (200). An
        archive is the documented soft delete, addressed by that external_id (the path takes a UUID,
        a code or an external_id). `parents` optionally maps an action's externalId to its parent
        account's code (Thredfi takes a parent's UUID, code or external_id; Pleo's chart is flat).
        """
        result = WriteResult()
        for action in unsupported(actions, self.capabilities, SYSTEM, result):
            if action.kind is ActionKind.ARCHIVE:
                self._archive(action, result)
            else:
                self._create(action, (parents or {}).get(action.external_id), result)
        return result

    def _create(self, action: Action, parent: str | None, result: WriteResult) -> None:
        problems = create_problems(action)
        if problems:
            result.failed[action.external_id] = problems
            return
        body = {"code": action.desired.code, "name": action.desired.name, "external_id": action.external_id}
        if parent is not None:
            body["parent_id"] = parent
        try:
            self._call("POST", self._collection, json=body)
        except ConnectorRequestError as exc:
            result.failed[action.external_id] = error_reasons(exc)
        else:
            result.applied.append(action.external_id)  # 201 created, or 200: it already existed

    def _archive(self, action: Action, result: WriteResult) -> None:
        """DELETE answers the account with is_active false. A 409 (Thredfi's docs: "invalid state transition")
        may mean an earlier delivery archived it already: the account is read back to tell."""
        path = f"{self._collection}{quote(action.external_id, safe='')}/"
        try:
            self._call("DELETE", path)
        except ConnectorRequestError as exc:
            if exc.status != 409 or not self._inactive(path):
                result.failed[action.external_id] = error_reasons(exc)
                return
        result.applied.append(action.external_id)

    def _inactive(self, path: str) -> bool:
        try:
            document = self._call("GET", path).json()
        except (ConnectorRequestError, ValueError):
            return False
        return isinstance(document, dict) and document.get("is_active") is False


def _account(item: Any, location: str, match_by: str, errors: list[ItemError]) -> SourceAccount | None:
    raw_id = item.get(match_by) if isinstance(item, dict) else None
    account = parse_record(item, ThredfiAccount, location, raw_id if isinstance(raw_id, str) and raw_id else None,
                           errors)
    if account is None:
        return None
    return SourceAccount(external_id=getattr(account, match_by), code=account.code, name=account.name,
                         active=account.is_active)


def create_problems(action: Action) -> list[str]:
    """Thredfi's documented request limits, checked before sending."""
    problems = []
    code = action.desired.code
    if not code:
        problems.append("code: Thredfi requires an account code")
    elif len(code) > MAX_CODE:
        problems.append(f"code: at most {MAX_CODE} characters in Thredfi, got {len(code)}")
    if len(action.desired.name) > MAX_NAME:
        problems.append(f"name: at most {MAX_NAME} characters in Thredfi")
    if len(action.external_id) > MAX_EXTERNAL_ID:
        problems.append(f"external_id: at most {MAX_EXTERNAL_ID} characters in Thredfi, got {len(action.external_id)}")
    return problems


def error_reasons(exc: ConnectorRequestError) -> list[str]:
    """Thredfi's error body as reasons: error_code and message (and request_id), then each field error."""
    return [f"{SYSTEM} HTTP {exc.status}: {exc.message}", *field_reasons(_field_errors(exc.body))]


def _field_errors(body: Any) -> dict[str, Any]:
    """{field: [msg]}: the OpenAPI's detail.field_errors, or the guide's details."""
    if not isinstance(body, dict):
        return {}
    detail = body.get("detail")
    found = detail.get("field_errors") if isinstance(detail, dict) else body.get("details")
    return found if isinstance(found, dict) else {}


def _describe(response: httpx.Response) -> str:
    return error_message(response, lambda body: _read_error(body, response.reason_phrase))


def _read_error(body: Any, reason_phrase: str) -> str | None:
    """'error_code: message (request_id …)' from either documented error shape."""
    if not isinstance(body, dict):
        return None
    text = f"{body.get('error_code') or 'error'}: {body.get('message') or body.get('error') or reason_phrase}"
    if body.get("request_id"):
        text += f" (request_id {body['request_id']})"
    return text


def _page(response: httpx.Response, page: int) -> tuple[list[Any], bool]:
    """A page's results, and whether another page follows: by page_info.total_pages, or by `next`.

    The guide's `next` is a URL; it is read only as "there is more": the next request is built here,
    so the bearer token never follows a link to another host.
    """
    try:
        document = response.json()
    except ValueError:
        raise ConnectorResponseError(f"{SYSTEM}: chart-of-accounts page {page} is not JSON") from None
    results = document.get("results") if isinstance(document, dict) else None
    info = document.get("page_info") if isinstance(document, dict) else None
    total_pages = info.get("total_pages") if isinstance(info, dict) else None
    if isinstance(results, list) and isinstance(total_pages, int) and not isinstance(total_pages, bool):
        return results, page < total_pages
    if isinstance(results, list) and "next" in document and isinstance(document["next"], str | None):
        return results, bool(document["next"])
    raise ConnectorResponseError(f"{SYSTEM}: chart-of-accounts page {page}: expected 'results' with "
                                 "'page_info.total_pages' or 'next'")
