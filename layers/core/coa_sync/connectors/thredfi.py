"""Thredfi (accounting platform API): chart of accounts as a source, and account creation as a target.

Auth (documented): POST /v1/platform/oauth2/token/ with Basic partner_uuid:api_key gives a
partner token; POST /v1/platform/{business_id}/oauth2/token/ with that token as Bearer gives
a business-scoped token (both expire after `expires_in` seconds, 3600). Tokens are cached per
process and fetched anew shortly before expiry, or at once when a request answers 401.
Errors carry `error_code`, `message`, `detail` (with `field_errors`) and `request_id`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
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
from coa_sync.models import Action, ItemError, Model, SourceAccount, SourceSnapshot, ThredfiSource
from coa_sync.ratelimit import SlidingWindowLimiter, limiter_for

SYSTEM = "thredfi"
PAGE_SIZE = 100  # documented maximum page_size
REFRESH_MARGIN = 60.0  # fetch a new token this many seconds before the old one expires
MAX_CODE, MAX_NAME, MAX_EXTERNAL_ID = 50, 255, 100  # documented limits of AccountCreateAPIRequest


class ThredfiCredentials(Model):
    """The secret: {"partnerUuid": ..., "apiKey": ...}."""

    partner_uuid: str = Field(min_length=1)
    api_key: SecretStr


class ThredfiAccount(BaseModel):
    """One item of the documented list response (ChartOfAccountDetail), the fields we use."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(min_length=1)]
    code: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CODE)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"\S")]
    is_active: bool
    external_id: str | None = None
    parent_account_code: str | None = None


_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def forget_tokens() -> None:
    with _tokens_lock:
        _tokens.clear()


class ThredfiConnector:
    capabilities = Capabilities(max_batch=1, idempotent_create=True, update=False, archive=False)

    def __init__(
        self,
        config: ThredfiSource,
        credentials: ThredfiCredentials,
        *,
        limiter: SlidingWindowLimiter | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_attempts: int = 5,
    ) -> None:
        self.config = config
        self._credentials = credentials
        self._clock = clock
        self._http = RetryingHttp(
            SYSTEM, config.base_url, describe=_describe, transport=transport, sleep=sleep, max_attempts=max_attempts,
            limiter=limiter or limiter_for(f"{SYSTEM}:{credentials.partner_uuid}", config.rate_limit_per_minute))
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
            response = self._call("GET", self._collection, params={"page": page, "page_size": PAGE_SIZE})
            results, total_pages = _page(response, page)
            for index, item in enumerate(results):
                account = self._account(item, f"thredfi page {page} item {index}", errors)
                if account is not None:
                    accounts.append(account)
            if page >= total_pages or not results:
                return SourceSnapshot(accounts=accounts, errors=errors)
            page += 1

    def _account(self, item: Any, location: str, errors: list[ItemError]) -> SourceAccount | None:
        wanted = self.config.external_id_from
        raw_id = item.get(wanted) if isinstance(item, dict) else None
        external_id = str(raw_id) if isinstance(raw_id, str | int) and raw_id != "" else None
        account = parse_record(item, ThredfiAccount, location, external_id, errors)
        if account is None:
            return None
        if external_id is None:
            errors.append(ItemError(location=location, field=wanted,
                                    message=f"is missing (account code {account.code!r})"))
            return None
        return SourceAccount(external_id=external_id, code=account.code, name=account.name, active=account.is_active)

    # -- target ----------------------------------------------------------------------------

    def write(self, actions: Sequence[Action], parents: Mapping[str, str] | None = None) -> WriteResult:
        """Creates, one request each; `external_id` makes a create delivered twice return the first (200).

        `parents` optionally maps an action's externalId to its parent account's code (Thredfi
        takes a parent's UUID, code or external_id; Pleo's chart is flat, so actions carry none).
        """
        result = WriteResult()
        for action in unsupported(actions, self.capabilities, SYSTEM, result):
            problems = create_problems(action)
            if problems:
                result.failed[action.external_id] = problems
                continue
            body = {"code": action.desired.code, "name": action.desired.name, "external_id": action.external_id}
            if parents and action.external_id in parents:
                body["parent_id"] = parents[action.external_id]
            try:
                self._call("POST", self._collection, json=body)
            except ConnectorRequestError as exc:
                result.failed[action.external_id] = error_reasons(exc)
            else:
                result.applied.append(action.external_id)  # 201 created, or 200: it already existed
        return result


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
    """Thredfi's error body as reasons: error_code and message, each field error, and the request_id."""
    body = exc.body if isinstance(exc.body, dict) else {}
    reasons = [f"{SYSTEM} HTTP {exc.status}: {exc.message}"]
    detail = body.get("detail")
    field_errors = detail.get("field_errors") if isinstance(detail, dict) else None
    if isinstance(field_errors, dict):
        reasons.extend(field_reasons(field_errors))
    return reasons


def _describe(response: httpx.Response) -> str:
    return error_message(response, lambda body: _read_error(body, response.reason_phrase))


def _read_error(body: Any, reason_phrase: str) -> str | None:
    if not isinstance(body, dict):
        return None
    text = f"{body.get('error_code') or 'error'}: {body.get('message') or reason_phrase}"
    if body.get("request_id"):
        text += f" (request_id {body['request_id']})"
    return text


def _page(response: httpx.Response, page: int) -> tuple[list[Any], int]:
    try:
        document = response.json()
    except ValueError:
        raise ConnectorResponseError(f"{SYSTEM}: chart-of-accounts page {page} is not JSON") from None
    results = document.get("results") if isinstance(document, dict) else None
    info = document.get("page_info") if isinstance(document, dict) else None
    total_pages = info.get("total_pages") if isinstance(info, dict) else None
    if not isinstance(results, list) or not isinstance(total_pages, int):
        raise ConnectorResponseError(f"{SYSTEM}: chart-of-accounts page {page}: expected 'results' and "
                                     "'page_info.total_pages'")
    return results, total_pages
