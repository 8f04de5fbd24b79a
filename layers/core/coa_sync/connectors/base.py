"""The one interface every accounting-system connector has, and the HTTP plumbing they share.

A source reads the active chart of accounts into a SourceSnapshot: a record it cannot read
becomes an ItemError (naming the record) and the rest is read; a request that fails
(after retries) raises, so a half-read chart never reaches the diff. A target applies
actions and answers, per action, applied or failed with reasons.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import httpx
from pydantic import BaseModel, ValidationError

from coa_sync import deadline as deadlines
from coa_sync.adapters import http as retries
from coa_sync.adapters.http import pause, tls
from coa_sync.deadline import OutOfTimeError
from coa_sync.models import Action, ApiSource, ItemError, SourceSnapshot
from coa_sync.targets import Capabilities, unsupported_reason
from coa_sync.tokenbucket import BudgetSpent, Rate, RateBudget

_M = TypeVar("_M", bound=BaseModel)


class ConnectorError(Exception):
    """Talking to the accounting system failed; nothing read from it is used."""


class ConnectorTransientError(ConnectorError):
    """Still failing after every retry (408, 429, 5xx, network), or out of rate budget: worth trying later."""


class ConnectorRequestError(ConnectorError):
    """The system refused the request (4xx); sending it again will not help."""

    def __init__(self, system: str, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"{system}: HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.body = body  # the decoded error body, for connectors that read it field by field


class ConnectorResponseError(ConnectorError):
    """The system answered with something we cannot read."""


@runtime_checkable
class SourceConnector(Protocol):
    def read_accounts(self) -> SourceSnapshot: ...

    def close(self) -> None: ...


@dataclass
class WriteResult:
    """Per action (by externalId): applied, or failed with reasons. Transient failures raise instead."""

    applied: list[str] = field(default_factory=list)
    failed: dict[str, list[str]] = field(default_factory=dict)


@runtime_checkable
class TargetConnector(Protocol):
    capabilities: Capabilities

    def write(self, actions: Sequence[Action]) -> WriteResult: ...

    def close(self) -> None: ...


def unsupported(actions: Sequence[Action], capabilities: Capabilities, system: str,
                result: WriteResult) -> list[Action]:
    """The actions this target can take; the others fail at once with the reason (the plan sets them aside
    first, so only an action planned for another target gets here)."""
    kept = []
    for action in actions:
        if capabilities.supports(action.kind):
            kept.append(action)
        else:
            result.failed[action.external_id] = [unsupported_reason(system, action.kind)]
    return kept


def read_secret_model(value: Any, model: type[_M], secret_name: str, needs: str) -> _M:
    """A secret's JSON as the connector's credentials model; the message never shows the value."""
    try:
        return model.model_validate(value)
    except ValidationError:
        raise ConnectorError(f"secret {secret_name!r} must be an object with {needs}") from None


# Which rate budgets a request draws on, given its method and path (without the query).
Budgets = Callable[[str, str], Sequence[RateBudget]]


def is_transient(status: int) -> bool:
    """429 and 5xx (as for Pleo), and 408: StackOne answers it, with Retry-After, when the system behind
    it was slow, and its SDKs retry it; for the others a 408 can only mean the same."""
    return status == 408 or retries.is_transient(status)


def raised(config: ApiSource, stated: Rate) -> Rate:
    """The API key's rate: the vendor's stated figures, or the tenant's, where the vendor raised them."""
    return Rate(config.rate_limit_per_minute or stated.per_minute, config.rate_limit_burst or stated.burst)


class RetryingHttp:
    """One system's HTTP client: within its rate budgets, retrying 408/429/5xx/network errors, honouring
    Retry-After.

    Credentials are passed per request (headers or auth) and never appear in errors.
    """

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        budgets: Budgets,
        describe: Callable[[httpx.Response], str],
        timeout: float = 15.0,
        max_attempts: int = 5,
        max_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        deadline: deadlines.Deadline = deadlines.NONE,
    ) -> None:
        self.system = system
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                                  headers={"Accept": "application/json"}, verify=tls())
        self._budgets = budgets
        self._describe = describe
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._sleep = sleep
        self._timeout = timeout
        # Nothing is started that could not finish before it (OutOfTimeError instead): see coa_sync.deadline.
        self._deadline = deadline
        self.calls = 0  # requests sent, retries included

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The 2xx response; ConnectorRequestError for 4xx; ConnectorTransientError once retries run out."""
        first_started = time.monotonic()
        for attempt in range(1, self._max_attempts + 1):
            self._draw(method, path)
            self.calls += 1
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:  # timeouts, refused and dropped connections
                if tls := retries.tls_problem(exc):
                    raise ConnectorError(f"{self.system}: {method} {_path_only(path)}: {tls}") from None
                problem, wait = type(exc).__name__, retries.backoff(attempt)
            else:
                if is_transient(response.status_code):
                    problem = f"HTTP {response.status_code}"
                    wait = retries.wait_before_retry(response, attempt)
                elif response.is_error:
                    raise ConnectorRequestError(self.system, response.status_code, self._describe(response),
                                                _body(response))
                else:
                    return response
            if attempt == self._max_attempts or wait > self._max_wait:
                raise ConnectorTransientError(f"{self.system}: {method} {_path_only(path)}: {problem} "
                                              f"after {attempt} attempt(s)")
            retries.announce_retry(self.system, f"{method} {_path_only(path)}", problem,
                                   time.monotonic() - first_started, attempt + 1, self._max_attempts)
            pause(wait, self._deadline, self._timeout, f"{self.system}: {method} {_path_only(path)}: {problem}",
                  self._sleep)
        raise AssertionError("unreachable")

    def _draw(self, method: str, path: str) -> None:
        """One token from each budget the request counts against, waiting at most `max_wait` for each, and
        only while the request still fits before the deadline after the wait."""
        path = _path_only(path)
        doing = f"{self.system}: {method} {path}"
        self._deadline.require(self._timeout, doing)
        for budget in self._budgets(method, path):
            room = self._deadline.left() - self._timeout
            try:
                budget.acquire(timeout=min(self._max_wait, room))
            except BudgetSpent as exc:
                if exc.retry_after <= self._max_wait:
                    raise OutOfTimeError(f"{doing}: the rate budget frees a request too late for the time left") \
                        from None
                raise ConnectorTransientError(f"{self.system}: {method} {path}: the rate budget "
                                              f"({budget.rate.per_minute:g}/min) has no room for another "
                                              f"{exc.retry_after:.0f} s") from None

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ConnectorResponseError(f"{self.system}: {method} {_path_only(path)}: "
                                         f"HTTP {response.status_code} with a body that is not JSON") from None


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _path_only(path: str) -> str:
    return path.partition("?")[0]


def parse_record(item: Any, model: type[_M], location: str, external_id: str | None,
                 errors: list[ItemError]) -> _M | None:
    """One record of a listing as `model`; None, with ItemErrors added, when it is not an object or does not fit."""
    if not isinstance(item, dict):
        errors.append(ItemError(location=location, message=f"is a {type(item).__name__}, not an object"))
        return None
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        errors.extend(record_error(location, external_id, exc))
        return None


def field_reasons(field_errors: dict[str, Any]) -> list[str]:
    """{field: message or [messages]} as one "field: message" reason per message."""
    return [f"{field_name}: {message}"
            for field_name, messages in field_errors.items()
            for message in (messages if isinstance(messages, list) else [messages])]


def record_error(location: str, external_id: str | None, exc: ValidationError) -> list[ItemError]:
    """A record that does not fit the model: one ItemError per problem, naming the record and field."""
    errors = []
    for problem in exc.errors():
        field_name = ".".join(str(part) for part in problem["loc"]) or None
        message = "is missing" if problem["type"] == "missing" else str(problem["msg"])
        errors.append(ItemError(location=location, external_id=external_id, field=field_name, message=message))
    return errors
