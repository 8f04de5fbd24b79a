"""Pleo's Chart of Accounts API over httpx.

Every request (each retry too) first takes a token from the tenant's rate budget (coa_sync.tokenbucket:
shared by every container through the tenants table, see wiring.pleo_budget), waiting at most
`budget_wait` for it: a longer wait raises PleoBudgetSpent, which says when to come back. Retries only what
may succeed later (429, 5xx, timeouts, dropped connections), honouring Retry-After; every other error is
permanent and raised at once. With OAuth, each request carries the
token coa_sync.tokens hands out (refreshed before it expires), and a 401 is sent again once with a
refreshed token; an authorisation Pleo refused for good raises tokens.ReauthRequired. Credentials live in the
httpx client only: they are never logged, and errors carry Pleo's message, not our request.

httpx is imported when the first client is made (as boto3 is, see adapters.aws): the writer
imports this module for its types and errors at cold start.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import SecretStr, ValidationError

from coa_sync import deadline as deadlines
from coa_sync.adapters import http as retries
from coa_sync.adapters.http import admit, error_message, is_transient, pause, tls
from coa_sync.models import AccountFields, ItemError, Model, PleoAccount, TargetSnapshot
from coa_sync.targets import TargetError, TargetRequestError
from coa_sync.tokenbucket import BudgetSpent, RateBudget
from coa_sync.tokens import TokenRefreshUnavailable

if TYPE_CHECKING:
    import httpx

MAX_BATCH = 1000  # Pleo's documented maximum items per batch create
# Pleo documents no page-size maximum (a public client notes a cap of 100 on another Pleo search):
# ask for 100 unless configured otherwise, and follow the cursor for as many pages as there are.
PAGE_SIZE = 100
# The search body's required fields: Pleo's reference example sends both false, which returns every account.
SEARCH_FLAGS = {"excludeIfAssignedToCategory": False, "excludeIfAssignedToContraAccount": False}
CONTENT_TYPE = "application/json;charset=UTF-8"  # the media type the spec gives every request body
USER_AGENT = "coa-sync"

# Requests sent per endpoint in this process (each retry counts: it spends rate budget).
API_CALLS: Counter[str] = Counter()


class PleoCredentials(Model):
    """An API key (HTTP basic user, empty password) or an OAuth access token."""

    api_key: SecretStr | None = None
    access_token: SecretStr | None = None

    def auth(self) -> httpx.Auth | None:
        import httpx

        if self.api_key is not None:
            return httpx.BasicAuth(self.api_key.get_secret_value(), "")
        return None

    def headers(self) -> dict[str, str]:
        if self.access_token is not None:
            return {"Authorization": f"Bearer {self.access_token.get_secret_value()}"}
        return {}


class BearerTokens(Protocol):
    """OAuth access tokens that refresh themselves (coa_sync.tokens.AccessTokens)."""

    def current(self) -> str: ...
    def after_rejection(self, rejected: str) -> str: ...


class PleoError(TargetError):
    """A Pleo request failed."""


class PleoTransientError(PleoError):
    """Still failing after every retry (429, 5xx, network); worth trying again later."""


class PleoBudgetSpent(PleoTransientError):
    """The tenant's rate budget has no request left within the time the caller may wait; nothing was sent.

    `retry_after`: seconds until the budget has one (at the earliest), for a caller that hands its work
    back rather than waits.
    """

    def __init__(self, kind: str, retry_after: float) -> None:
        super().__init__(f"{kind}: the Pleo rate budget has no request left for another {retry_after:.1f} s")
        self.retry_after = retry_after


class PleoRequestError(PleoError, TargetRequestError):
    """Pleo refused the request (4xx); sending it again will not help."""


class PleoResponseError(PleoError):
    """Pleo answered with something we cannot read; nothing from it is used."""


@dataclass
class BatchResult:
    # By externalId: the account as created (None from a target whose connector answers no account).
    created: dict[str, PleoAccount | None] = field(default_factory=dict)
    failed: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class NewAccount:
    external_id: str
    fields: AccountFields


class PleoClient:
    max_batch = MAX_BATCH  # creates per request (the writer's Target)

    def __init__(
        self,
        base_url: str,
        credentials: PleoCredentials | BearerTokens,
        *,
        budget: RateBudget,
        timeout: float = 15.0,
        max_attempts: int = 5,
        max_wait: float = 60.0,
        budget_wait: float | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        observe: Callable[[str, int, float], None] | None = None,
        page_size: int = PAGE_SIZE,
        deadline: deadlines.Deadline = deadlines.NONE,
    ) -> None:
        import httpx

        static = credentials if isinstance(credentials, PleoCredentials) else None
        if static is not None and static.api_key is None and static.access_token is None:
            raise ValueError("Pleo credentials need an apiKey or an accessToken")
        self._tokens = None if static is not None else credentials
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=static.auth() if static else None,
            headers={**(static.headers() if static else {}), "Accept": "application/json", "User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
            verify=tls(),
        )
        self._budget = budget
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        # Longest wait for the rate budget (max_wait if None): a writer waits briefly, then hands the work back.
        self._budget_wait = max_wait if budget_wait is None else budget_wait
        self._sleep = sleep
        self._page_size = page_size
        # Nothing is started that could not finish before it (OutOfTimeError instead): see coa_sync.deadline.
        self._deadline = deadline
        # Told (endpoint, HTTP status or 0 for no answer, seconds) after every request, for metrics.
        self._observe = observe or (lambda _kind, _status, _seconds: None)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PleoClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- reads ---------------------------------------------------------------------------

    def snapshot(self, company_id: str, progress: Callable[[int], None] | None = None) -> TargetSnapshot:
        """Every account of the company, active and archived, from every cursor page.

        The spec's search filters by a nullable `archived` and says nothing of what a search without
        it returns (the how-to's `includeArchived` is not in the spec): so one search asks for the
        active accounts and one for the archived ones, and the two are merged by id. A server that
        ignores the filter answers everything twice, and each account is kept once.
        """
        accounts: dict[str, PleoAccount] = {}
        errors: dict[tuple[str | None, str], ItemError] = {}
        for archived in (False, True):
            status = "archived" if archived else "active"
            for number, page in enumerate(self._pages(company_id, {"archived": archived}), start=1):
                for index, item in enumerate(page):
                    try:
                        account = PleoAccount.model_validate(item)
                    except ValidationError as exc:
                        external_id = item.get("externalId") if isinstance(item, dict) else None
                        error = ItemError(location=f"pleo {status} page {number} item {index}",
                                          external_id=external_id if isinstance(external_id, str) else None,
                                          message=_first_error(exc))
                        errors.setdefault((error.external_id, error.message), error)  # once, if read twice
                    else:
                        accounts[account.id] = account  # the later read wins
                if progress:
                    progress(len(accounts))
        return TargetSnapshot(accounts=list(accounts.values()), errors=list(errors.values()))

    def find(self, company_id: str, external_id: str) -> PleoAccount | None:
        """The account with this externalId, active or archived (a search for each, as in snapshot)."""
        for archived in (False, True):
            for page in self._pages(company_id, {"archived": archived, "externalId": external_id}):
                for item in page:
                    if isinstance(item, dict) and item.get("externalId") == external_id:
                        try:
                            return PleoAccount.model_validate(item)
                        except ValidationError as exc:
                            raise PleoResponseError(f"search for {external_id!r}: {_first_error(exc)}") from None
        return None

    def _pages(self, company_id: str, filters: dict[str, Any]) -> Iterator[list[Any]]:
        params: dict[str, Any] = {"limit": self._page_size}
        body = {"companyId": company_id, **SEARCH_FLAGS, **filters}
        number = 0
        while True:
            number += 1
            document = self._request("search", "POST", "/v1/chart-of-accounts:search", params=params, json=body)
            data, pagination = document.get("data"), document.get("pagination")
            if not isinstance(data, list) or not isinstance(pagination, dict):
                raise PleoResponseError(f"search page {number}: expected 'data' list and 'pagination' object")
            yield data
            if not pagination.get("hasNextPage"):
                return
            cursor = pagination.get("endCursor")
            if not isinstance(cursor, str) or not cursor:
                raise PleoResponseError(f"search page {number}: hasNextPage without an endCursor")
            params = {"limit": self._page_size, "after": cursor}

    # -- writes --------------------------------------------------------------------------

    def batch_create(self, company_id: str, accounts: Sequence[NewAccount]) -> BatchResult:
        if not 1 <= len(accounts) <= MAX_BATCH:
            raise ValueError(f"a batch create takes 1..{MAX_BATCH} accounts, not {len(accounts)}")
        items = [{"externalId": a.external_id, **a.fields.model_dump(), "archived": False} for a in accounts]
        document = self._request("batch_create", "POST", "/v1/chart-of-accounts/batch",
                                 json={"companyId": company_id, "items": items})
        data = document.get("data")
        if not isinstance(data, dict):
            raise PleoResponseError("batch create: expected a 'data' object")
        result = BatchResult()
        try:
            for item in data.get("created") or []:
                account = PleoAccount.model_validate(item)
                result.created[account.external_id] = account
            for item in data.get("failed") or []:
                reasons = [str(reason) for reason in item.get("reasons") or ["OTHER"]]
                result.failed[str(item["request"]["externalId"])] = reasons
        except (ValidationError, KeyError, TypeError, AttributeError) as exc:
            raise PleoResponseError(f"batch create: unreadable created/failed item: {exc}") from None
        return result

    def put(self, account_id: str, fields: AccountFields, *, archived: bool,
            metadata: dict[str, Any] | None = None) -> PleoAccount:
        """Update, unarchive and archive alike. Pleo does not say whether PUT patches or replaces the
        record, so it is sent whole: with the `metadata` read from Pleo, which other tools may have
        stored and a replace would otherwise wipe."""
        document = self._request("put", "PUT", f"/v1/chart-of-accounts/{account_id}",
                                 json={**fields.model_dump(), "archived": archived, "metadata": metadata})
        try:
            return PleoAccount.model_validate(document.get("data"))
        except ValidationError as exc:
            raise PleoResponseError(f"update {account_id}: {_first_error(exc)}") from None

    # -- transport -----------------------------------------------------------------------

    def _request(self, kind: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        import httpx

        first_started = time.monotonic()
        headers = {"Content-Type": CONTENT_TYPE} if "json" in kwargs else {}  # httpx would send application/json
        attempt, rejected, refreshed = 0, None, False
        while True:
            attempt += 1
            if self._tokens is not None:  # refreshed before it expires; after a 401, once
                headers["Authorization"] = f"Bearer {self._bearer(rejected)}"
                rejected = None
            try:
                admit(self._budget, self._deadline, self._timeout, kind, self._budget_wait)
            except BudgetSpent as spent:
                raise PleoBudgetSpent(kind, spent.retry_after) from None
            API_CALLS[kind] += 1
            started = time.monotonic()
            try:
                response = self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:  # timeouts, refused and dropped connections
                self._observe(kind, 0, time.monotonic() - started)
                if tls := retries.tls_problem(exc):
                    raise PleoError(f"{kind}: {tls}") from None
                problem, wait = type(exc).__name__, retries.backoff(attempt)
            else:
                self._observe(kind, response.status_code, time.monotonic() - started)
                if response.status_code == 401 and self._tokens is not None and not refreshed:
                    rejected, refreshed = headers["Authorization"].removeprefix("Bearer "), True
                    attempt -= 1  # not a failed attempt: the same request, with a refreshed token
                    continue
                if is_transient(response.status_code):
                    problem = f"HTTP {response.status_code}"
                    wait = retries.wait_before_retry(response, attempt)
                elif response.is_error:
                    raise PleoRequestError(response.status_code, _message(response))
                else:
                    return _json(response, kind)
            if attempt >= self._max_attempts or wait > self._max_wait:
                raise PleoTransientError(f"{kind}: {problem} after {attempt} attempt(s)")
            retries.announce_retry("Pleo", kind, problem, time.monotonic() - first_started, attempt + 1,
                                   self._max_attempts)
            pause(wait, self._deadline, self._timeout, f"{kind}: {problem}", self._sleep)

    def _bearer(self, rejected: str | None) -> str:
        assert self._tokens is not None
        try:
            return self._tokens.current() if rejected is None else self._tokens.after_rejection(rejected)
        except TokenRefreshUnavailable as exc:  # worth trying again later, like any transient failure
            raise PleoTransientError(str(exc)) from None


def _json(response: httpx.Response, kind: str) -> dict[str, Any]:
    if response.status_code == 204:
        return {}
    try:
        document = response.json()
    except ValueError:
        raise PleoResponseError(f"{kind}: HTTP {response.status_code} with a body that is not JSON") from None
    if not isinstance(document, dict):
        raise PleoResponseError(f"{kind}: expected a JSON object")
    return document


def _message(response: httpx.Response) -> str:
    return error_message(response, _read_message)


def _read_message(document: Any) -> str | None:
    # Pleo does not document its error body; take the first of the usual keys that holds text.
    if isinstance(document, dict):
        for key in ("message", "detail", "error", "title"):
            if isinstance(document.get(key), str):
                return document[key]
    return None


def _first_error(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}" if where else str(problem["msg"])
