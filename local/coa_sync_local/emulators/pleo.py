"""A Pleo Chart of Accounts API emulator: a real HTTP server on 127.0.0.1.

Modelled on Pleo's public docs (OpenAPI "Chart of Accounts API" v24.9.0 and the how-tos),
never on our own client, so tests against it catch our misreadings rather than repeat them.
It serves:

    POST   /v1/chart-of-accounts:search      cursor-paginated search (limit, after, before)
    POST   /v1/chart-of-accounts/batch       1..1000 items; 201 with data.created / data.failed
    POST   /v1/chart-of-accounts             single create; 409 if the externalId exists
    GET    /v1/chart-of-accounts/{id}
    PUT    /v1/chart-of-accounts/{id}        full update (absent optional fields become null)
    DELETE /v1/chart-of-accounts/{id}        204, or 409 for an account flagged `linked`

Where the docs are silent, this is our reading (tests pin it down):

- Search status filter: if `archived` is given (true/false) it filters by it; else
  `includeArchived: true` returns active and archived accounts; else only active ones.
  `externalId`, `code` and `name` match exactly; `codes` and `ids` match any listed value.
- Order is creation order. A cursor is the base32 of an account's creation sequence
  number (not an offset), so cursors stay valid while accounts are created or deleted.
  `total` counts every account matching the filter, not just the page.
- Pleo does not document its error body; we answer `{"status", "error", "message"}`,
  with a message naming the field (and item index) that was wrong.
- `companyId` and account ids must be UUIDs (400 otherwise). A blank (whitespace-only)
  externalId is EXTERNAL_ID_EMPTY, as a blank name is NAME_EMPTY. Batch items are
  created in order, so an externalId created earlier in the same batch makes a later
  item fail with EXTERNAL_ID_ALREADY_EXISTS.
- A credential (bearer token, or API key as HTTP basic user with an empty password)
  belongs to one company: another company's `companyId` is 403, another company's
  account id is 404.
- Rate limiting is a per-credential sliding window over admitted requests. Every response
  carries X-RateLimit-Limit and X-RateLimit-Remaining; a 429 also carries Retry-After
  (whole seconds, at least 1) and X-RateLimit-Reset-Ms (for windows scaled down in tests).

Faults (`inject`, `chaos`) let tests play the failures a real network and a real Pleo
produce: 5xx, 429, slow answers and connections dropped before or after the work.

Run it by hand: `python -m coa_sync_local.emulators.pleo --company UUID --api-key KEY`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import http
import itertools
import json
import math
import re
import signal
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote

from coa_sync_local.emulators import _base
from coa_sync_local.emulators._base import HOST, MAX_BODY_BYTES, EmulatorBase, Reply, serve_until_stopped

MAX_BATCH_ITEMS = 1000
MAX_TEXT_LENGTH = 255
ENDPOINTS = ("search", "batch_create", "create", "get", "put", "delete")

EXTERNAL_ID_ALREADY_EXISTS = "EXTERNAL_ID_ALREADY_EXISTS"
EXTERNAL_ID_EMPTY = "EXTERNAL_ID_EMPTY"
EXTERNAL_ID_TOO_LONG = "EXTERNAL_ID_TOO_LONG"
NAME_EMPTY = "NAME_EMPTY"
NAME_TOO_LONG = "NAME_TOO_LONG"
CODE_TOO_LONG = "CODE_TOO_LONG"
OTHER = "OTHER"

# What a single create or a PUT says in its 400 for the reason a batch item would get.
_REASON_TEXT = {
    EXTERNAL_ID_EMPTY: "externalId must not be empty",
    EXTERNAL_ID_TOO_LONG: f"externalId must be at most {MAX_TEXT_LENGTH} characters",
    NAME_EMPTY: "name must not be empty",
    NAME_TOO_LONG: f"name must be at most {MAX_TEXT_LENGTH} characters",
    CODE_TOO_LONG: f"code must be at most {MAX_TEXT_LENGTH} characters",
    OTHER: "taxCodeExternalId: tax code does not exist",
}
_TYPE_NAMES = {str: "a string", bool: "a boolean", dict: "an object", list: "an array"}
_CURSOR_PATTERN = re.compile(r"^[A-Z2-7=~]+$")
_COLLECTION = "/v1/chart-of-accounts"
_SEED_KEYS = {"externalId", "name", "code", "archived", "taxCodeExternalId", "metadata", "linked"}


class ApiError(_base.ApiError):
    """An HTTP error answer: status, a message naming what was wrong, and extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(status, message, headers=headers)


@dataclass
class _Request:
    company_id: str  # the company the credential belongs to
    account_id: str | None
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> dict:
        try:
            value = json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ApiError(400, f"body is not valid JSON: {error}") from None
        if not isinstance(value, dict):
            raise ApiError(400, "body must be a JSON object")
        return value


# --- request validation -------------------------------------------------------------


def _field(obj: dict, key: str, kind: type, where: str = "", *, required: bool = False):
    """obj[key] checked against a JSON type; None when absent or null (400 if required)."""
    name = f"{where}.{key}" if where else key
    value = obj.get(key)
    if value is None:
        if required:
            raise ApiError(400, f"{name} is required")
        return None
    if not isinstance(value, kind):
        raise ApiError(400, f"{name} must be {_TYPE_NAMES[kind]}")
    return value


def _string_list(obj: dict, key: str) -> list[str] | None:
    values = _field(obj, key, list)
    for index, value in enumerate(values or ()):
        if not isinstance(value, str):
            raise ApiError(400, f"{key}[{index}] must be a string")
    return values


def _uuid(value: str, name: str) -> str:
    """The canonical (lower-case) form of a UUID, so comparisons ignore spelling; else 400."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ApiError(400, f"{name} must be a UUID, got {value!r}") from None


def _account_fields(obj: object, where: str = "") -> dict:
    """The writable fields of a create request or batch item, type-checked (400 if wrong)."""
    if not isinstance(obj, dict):
        raise ApiError(400, f"{where or 'body'} must be an object")
    return {
        "external_id": _field(obj, "externalId", str, where, required=True),
        "name": _field(obj, "name", str, where, required=True),
        "archived": _field(obj, "archived", bool, where, required=True),
        "code": _field(obj, "code", str, where),
        "tax_code_external_id": _field(obj, "taxCodeExternalId", str, where),
        "metadata": _field(obj, "metadata", dict, where),
    }


# --- cursors and pages --------------------------------------------------------------


def _encode_cursor(seq: int) -> str:
    return base64.b32encode(seq.to_bytes(8, "big")).decode()


def _decode_cursor(cursor: str, name: str) -> int:
    try:
        if not _CURSOR_PATTERN.match(cursor):
            raise ValueError(cursor)
        raw = base64.b32decode(cursor)
        if len(raw) != 8:
            raise ValueError(cursor)
    except (ValueError, binascii.Error):
        raise ApiError(400, f"{name} is not a valid cursor: {cursor!r}") from None
    return int.from_bytes(raw, "big")


@dataclass
class _PageParams:
    limit: int
    after: int | None
    before: int | None
    echo: dict  # pagination.currentRequestPagination


def _page_params(query: dict[str, list[str]], default_size: int, cap: int) -> _PageParams:
    after, before = query.get("after", [None])[0], query.get("before", [None])[0]
    if after is not None and before is not None:
        raise ApiError(400, "give either after or before, not both")
    raw_limit = query.get("limit", [None])[0]
    limit = default_size
    if raw_limit is not None:
        if not raw_limit.isdigit() or int(raw_limit) < 1:
            raise ApiError(400, f"limit must be a positive integer, got {raw_limit!r}")
        limit = int(raw_limit)
    limit = min(limit, cap)  # the server caps the page size, as Pleo's does
    echo: dict = {"sortingKeys": [], "sortingOrder": [], "parameters": {}, "limit": limit}
    echo.update({k: v for k, v in (("after", after), ("before", before)) if v is not None})
    return _PageParams(
        limit=limit,
        after=None if after is None else _decode_cursor(after, "after"),
        before=None if before is None else _decode_cursor(before, "before"),
        echo=echo,
    )


def _page(accounts: list[_Account], seqs: list[int], keep: Callable[[_Account], bool], params: _PageParams):
    """(items, has_previous, has_next): a bisect to the cursor, then a walk of at most one page."""

    def walk(indices: Iterable[int]):
        return filter(keep, map(accounts.__getitem__, indices))

    limit = params.limit
    if params.before is None:
        start = 0 if params.after is None else bisect_right(seqs, params.after)
        items = list(itertools.islice(walk(range(start, len(accounts))), limit + 1))
        has_previous = any(walk(range(start - 1, -1, -1)))
        return items[:limit], has_previous, len(items) > limit
    end = bisect_left(seqs, params.before)
    items = list(itertools.islice(walk(range(end - 1, -1, -1)), limit + 1))
    has_next = any(walk(range(end, len(accounts))))
    return items[:limit][::-1], len(items) > limit, has_next


# --- state --------------------------------------------------------------------------


@dataclass(slots=True)
class _Account:
    seq: int  # creation order; what cursors encode
    id: str
    company_id: str
    external_id: str
    name: str
    archived: bool
    code: str | None = None
    tax_code_external_id: str | None = None
    metadata: dict | None = None
    linked: bool = False  # Pleo refuses to delete an account in use

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "companyId": self.company_id,
            "externalId": self.external_id,
            "code": self.code,
            "name": self.name,
            "archived": self.archived,
            "taxCodeExternalId": self.tax_code_external_id,
            "metadata": copy.deepcopy(self.metadata),
        }


@dataclass
class _Company:
    id: str
    tax_codes: frozenset[str] | None  # None: the company has no tax-code list configured
    accounts: list[_Account] = field(default_factory=list)  # creation order
    seqs: list[int] = field(default_factory=list)  # accounts[i].seq, for bisecting to a cursor
    by_external_id: dict[str, _Account] = field(default_factory=dict)
    archived_count: int = 0  # keeps `total` O(1) for the usual status-only searches

    def add(self, account: _Account) -> None:
        self.accounts.append(account)  # sequence numbers only grow, so this stays sorted
        self.seqs.append(account.seq)
        self.by_external_id[account.external_id] = account
        self.archived_count += account.archived

    def remove(self, account: _Account) -> None:
        index = bisect_left(self.seqs, account.seq)
        del self.accounts[index], self.seqs[index]
        del self.by_external_id[account.external_id]
        self.archived_count -= account.archived

    def set_archived(self, account: _Account, archived: bool) -> None:
        self.archived_count += archived - account.archived
        account.archived = archived

    def status_count(self, archived: bool | None) -> int:
        if archived is None:
            return len(self.accounts)
        return self.archived_count if archived else len(self.accounts) - self.archived_count

    def content_reasons(self, name: str, code: str | None, tax_code: str | None) -> list[str]:
        reasons = []
        if not name.strip():
            reasons.append(NAME_EMPTY)
        if len(name) > MAX_TEXT_LENGTH:
            reasons.append(NAME_TOO_LONG)
        if code is not None and len(code) > MAX_TEXT_LENGTH:
            reasons.append(CODE_TOO_LONG)
        if tax_code is not None and self.tax_codes is not None and tax_code not in self.tax_codes:
            reasons.append(OTHER)
        return reasons

    def create_reasons(self, fields: dict) -> list[str]:
        external_id = fields["external_id"]
        reasons = []
        if not external_id.strip():
            reasons.append(EXTERNAL_ID_EMPTY)
        if len(external_id) > MAX_TEXT_LENGTH:
            reasons.append(EXTERNAL_ID_TOO_LONG)
        if external_id in self.by_external_id:
            reasons.append(EXTERNAL_ID_ALREADY_EXISTS)
        return reasons + self.content_reasons(fields["name"], fields["code"], fields["tax_code_external_id"])


def _seed_fields(spec: dict) -> dict:
    unknown = set(spec) - _SEED_KEYS
    if unknown or "externalId" not in spec or "name" not in spec:
        raise ValueError(f"seed account needs externalId and name, may have {sorted(_SEED_KEYS)}: {spec!r}")
    return {
        "external_id": spec["externalId"],
        "name": spec["name"],
        "archived": bool(spec.get("archived", False)),
        "code": spec.get("code"),
        "tax_code_external_id": spec.get("taxCodeExternalId"),
        "metadata": copy.deepcopy(spec.get("metadata")),
        "linked": bool(spec.get("linked", False)),
    }


# --- the emulator -------------------------------------------------------------------


class PleoEmulator(EmulatorBase):
    """Pleo's Chart of Accounts API, in memory, served over HTTP on 127.0.0.1.

    `calls` counts admitted requests that reached an endpoint's handler (including those it
    answered 4xx; not 401s, 429s or injected faults that skip the work), keyed by ENDPOINTS.
    `responses` counts every response sent, by status; `faults_fired` counts faults by kind.
    """

    NAME = "pleo"
    ENDPOINTS = ENDPOINTS
    CHAOS_KINDS = ("error", "rate_limit", "drop", "drop_after", "slow")
    SERVER_VERSION = "PleoEmulator/1"
    CONTENT_TYPE = "application/json;charset=UTF-8"
    REFUSE_CHUNKED = True

    def __init__(
        self,
        *,
        page_size_cap: int = 100,
        default_page_size: int = 50,
        rate_limit: int = 600,
        rate_window_seconds: float = 60.0,
        port: int = 0,
    ):
        if page_size_cap < 1 or default_page_size < 1 or rate_limit < 1 or rate_window_seconds <= 0:
            raise ValueError("page sizes and rate_limit must be >= 1, rate_window_seconds > 0")
        super().__init__(rate_limit=rate_limit, rate_window_seconds=rate_window_seconds, port=port)
        self.page_size_cap = page_size_cap
        self.default_page_size = min(default_page_size, page_size_cap)
        self._companies: dict[str, _Company] = {}
        self._by_id: dict[str, _Account] = {}
        self._credentials: dict[tuple[str, str], str] = {}  # ("basic"|"bearer", secret) -> company
        self._sequence = itertools.count(1)
        self._handlers: dict[str, Callable[[_Request], tuple[int, dict | None]]] = {
            "search": self._search,
            "batch_create": self._batch_create,
            "create": self._create,
            "get": self._get,
            "put": self._put,
            "delete": self._delete,
        }

    # seeding and inspection

    def add_company(
        self,
        company_id: str,
        *,
        api_keys: Iterable[str] = (),
        tokens: Iterable[str] = (),
        accounts: Iterable[dict] = (),
        tax_codes: Iterable[str] | None = None,
    ) -> None:
        """Register a company, the credentials that may act for it, and its starting accounts.

        `accounts` are dicts in API shape (externalId, name; optional code, archived,
        taxCodeExternalId, metadata) plus `linked` (DELETE answers 409); ids are generated.
        `tax_codes`, if given, is the company's tax-code list: other taxCodeExternalIds fail.
        """
        try:
            company_id = str(uuid.UUID(str(company_id)))
        except ValueError:
            raise ValueError(f"company_id must be a UUID, as Pleo's companyId is: {company_id!r}") from None
        credentials = [("basic", key) for key in api_keys] + [("bearer", token) for token in tokens]
        seeds = [_seed_fields(spec) for spec in accounts]
        with self._lock:
            if company_id in self._companies:
                raise ValueError(f"company {company_id} already added")
            taken = [secret for kind, secret in credentials if (kind, secret) in self._credentials]
            if taken:
                raise ValueError(f"credentials already registered for another company: {taken}")
            company = _Company(company_id, None if tax_codes is None else frozenset(tax_codes))
            for fields in seeds:
                if fields["external_id"] in company.by_external_id:
                    raise ValueError(f"duplicate externalId in seed accounts: {fields['external_id']!r}")
                self._insert(company, fields)
            self._companies[company_id] = company
            self._credentials.update(dict.fromkeys(credentials, company_id))

    def add_tax_codes(self, company_id: str, tax_codes: Iterable[str]) -> None:
        """Tax codes created in Pleo later (how a user fixes an item that failed for its tax code)."""
        with self._lock:
            company = self._companies[str(uuid.UUID(str(company_id)))]
            company.tax_codes = (company.tax_codes or frozenset()) | frozenset(tax_codes)

    def accounts(self, company_id: str) -> list[dict]:
        """A snapshot (copies, creation order, API shape) of a company's accounts."""
        with self._lock:
            return [account.to_api() for account in self._companies[str(uuid.UUID(str(company_id)))].accounts]

    # request handling (called from server threads)

    def _rate_headers(self, remaining: int | None) -> dict[str, str]:
        left = self.rate_limit if remaining is None else remaining
        return {"X-RateLimit-Limit": str(self.rate_limit), "X-RateLimit-Remaining": str(left)}

    def _throttle_headers(self, wait: float) -> dict[str, str]:
        # Reset-Ms too: tests scale the window down below a whole second.
        return {**super()._throttle_headers(wait), "X-RateLimit-Reset-Ms": str(max(1, math.ceil(wait * 1000))),
                "X-RateLimit-Remaining": "0"}

    def _process(self, method: str, target: str, headers, body: bytes | None, always: dict[str, str]) -> Reply:
        # Pleo authenticates before routing (an unknown path without credentials is a 401, not a 404),
        # so this replaces the base's route-then-_authenticate order; _route and _credential are Pleo's own.
        if body is None:
            raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
        credential, company_id = self._credential(headers.get("Authorization"))
        always.update(self._rate_headers(self._admit(credential)))
        path, _, query = target.partition("?")
        endpoint, account_id = _route(method, unquote(path))
        request = _Request(company_id, account_id, parse_qs(query, keep_blank_values=True), body)
        return self._serve_endpoint(endpoint, lambda: Reply(*self._handlers[endpoint](request)))

    def _error_body(self, error: _base.ApiError) -> dict:
        return {"status": error.status, "error": http.HTTPStatus(error.status).phrase, "message": error.message}

    def _credential(self, header: str | None) -> tuple[tuple[str, str], str]:
        scheme, _, value = (header or "").strip().partition(" ")
        scheme, value = scheme.lower(), value.strip()
        credential = None
        if scheme == "bearer":
            credential = ("bearer", value)
        elif scheme == "basic":
            try:
                user, colon, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, colon, password = "", "", ""
            if colon and not password:  # the API key is the user name; the password is empty
                credential = ("basic", user)
        with self._lock:
            company_id = self._credentials.get(credential) if credential and credential[1] else None
        if company_id is None:
            raise ApiError(
                401,
                "missing or unknown credentials: send 'Authorization: Bearer <token>' or basic auth "
                "with the API key as user and an empty password",
                {"WWW-Authenticate": 'Bearer, Basic realm="pleo"'},
            )
        return credential, company_id

    # endpoint handlers: run under self._lock, return (status, payload) or raise ApiError

    def _search(self, request: _Request) -> tuple[int, dict]:
        body = request.json()
        company = self._company_for(request, body)
        params = _page_params(request.query, self.default_page_size, self.page_size_cap)
        status = _field(body, "archived", bool)
        if status is None and not _field(body, "includeArchived", bool):
            status = False  # neither given: active accounts only
        conditions, candidates = self._search_filter(company, body)

        def keep(account: _Account) -> bool:
            return (status is None or account.archived is status) and all(c(account) for c in conditions)

        accounts = company.accounts if candidates is None else candidates
        seqs = company.seqs if candidates is None else [account.seq for account in candidates]
        items, has_previous, has_next = _page(accounts, seqs, keep, params)
        total = company.status_count(status) if not conditions else sum(map(keep, accounts))
        pagination = {
            "hasPreviousPage": has_previous,
            "hasNextPage": has_next,
            "currentRequestPagination": params.echo,
            "startCursor": _encode_cursor(items[0].seq) if items else None,
            "endCursor": _encode_cursor(items[-1].seq) if items else None,
            "total": total,
        }
        return 200, {"data": [account.to_api() for account in items], "pagination": pagination}

    def _search_filter(self, company: _Company, body: dict) -> tuple[list, list[_Account] | None]:
        """The field conditions, and the accounts an index narrows them to (None: walk all)."""
        conditions: list[Callable[[_Account], bool]] = []
        for key, attribute in (("externalId", "external_id"), ("code", "code"), ("name", "name")):
            value = _field(body, key, str)
            if value is not None:
                conditions.append(lambda account, a=attribute, v=value: getattr(account, a) == v)
        codes = _string_list(body, "codes")
        if codes is not None:
            conditions.append(lambda account, wanted=frozenset(codes): account.code in wanted)
        candidates = None
        ids = _string_list(body, "ids")
        if ids is not None:
            wanted_ids = frozenset(_uuid(value, f"ids[{index}]") for index, value in enumerate(ids))
            conditions.append(lambda account: account.id in wanted_ids)
            candidates = [self._by_id[i] for i in wanted_ids if i in self._by_id]
        external_id = body.get("externalId")
        if external_id is not None:
            account = company.by_external_id.get(external_id)
            candidates = [account] if account else []
        if candidates is not None:
            candidates = sorted((a for a in candidates if a.company_id == company.id), key=lambda a: a.seq)
        return conditions, candidates

    def _batch_create(self, request: _Request) -> tuple[int, dict]:
        body = request.json()
        company = self._company_for(request, body)
        items = _field(body, "items", list, required=True)
        if not 1 <= len(items) <= MAX_BATCH_ITEMS:
            raise ApiError(400, f"items must hold 1..{MAX_BATCH_ITEMS} accounts, got {len(items)}")
        # A malformed item fails the whole request before anything is created.
        parsed = [_account_fields(item, f"items[{index}]") for index, item in enumerate(items)]
        created, failed = [], []
        for fields, item in zip(parsed, items, strict=True):
            reasons = company.create_reasons(fields)
            if reasons:
                failed.append({"reasons": reasons, "request": item})
            else:
                created.append(self._insert(company, fields).to_api())
        return 201, {"data": {"created": created, "failed": failed}}

    def _create(self, request: _Request) -> tuple[int, dict]:
        body = request.json()
        company = self._company_for(request, body)
        fields = _account_fields(body)
        reasons = company.create_reasons(fields)
        invalid = [_REASON_TEXT[reason] for reason in reasons if reason != EXTERNAL_ID_ALREADY_EXISTS]
        if invalid:
            raise ApiError(400, "; ".join(invalid))
        if reasons:
            raise ApiError(409, f"an account with externalId {fields['external_id']!r} already exists")
        return 201, {"data": self._insert(company, fields).to_api()}

    def _get(self, request: _Request) -> tuple[int, dict]:
        return 200, {"data": self._account_for(request).to_api()}

    def _put(self, request: _Request) -> tuple[int, dict]:
        account = self._account_for(request)
        body = request.json()
        archived = _field(body, "archived", bool, required=True)
        name = _field(body, "name", str, required=True)
        code = _field(body, "code", str)
        tax_code = _field(body, "taxCodeExternalId", str)
        metadata = _field(body, "metadata", dict)
        reasons = self._companies[account.company_id].content_reasons(name, code, tax_code)
        if reasons:
            raise ApiError(400, "; ".join(_REASON_TEXT[reason] for reason in reasons))
        # Full replace: what the body leaves out becomes null; id, companyId, externalId stay.
        account.name, account.code, account.tax_code_external_id = name, code, tax_code
        account.metadata = metadata
        self._companies[account.company_id].set_archived(account, archived)
        return 200, {"data": account.to_api()}

    def _delete(self, request: _Request) -> tuple[int, None]:
        account = self._account_for(request)
        if account.linked:
            raise ApiError(409, f"account {account.id} is in use and cannot be deleted; archive it instead")
        self._companies[account.company_id].remove(account)
        del self._by_id[account.id]
        return 204, None

    def _company_for(self, request: _Request, body: dict) -> _Company:
        company_id = _uuid(_field(body, "companyId", str, required=True), "companyId")
        if company_id != request.company_id:
            raise ApiError(403, f"the credential may not access company {company_id}")
        return self._companies[company_id]

    def _account_for(self, request: _Request) -> _Account:
        account = self._by_id.get(_uuid(request.account_id, "accountId"))
        if account is None or account.company_id != request.company_id:
            raise ApiError(404, f"no account {request.account_id}")
        return account

    def _insert(self, company: _Company, fields: dict) -> _Account:
        account = _Account(seq=next(self._sequence), id=str(uuid.uuid4()), company_id=company.id, **fields)
        company.add(account)
        self._by_id[account.id] = account
        return account


def _route(method: str, path: str) -> tuple[str, str | None]:
    """(endpoint, account id) for a request line, or 404 / 405."""
    account_id = None
    if path == _COLLECTION + ":search":
        allowed = {"POST": "search"}
    elif path == _COLLECTION + "/batch":
        allowed = {"POST": "batch_create"}
    elif path == _COLLECTION:
        allowed = {"POST": "create"}
    elif path.startswith(_COLLECTION + "/") and "/" not in (rest := path[len(_COLLECTION) + 1 :]) and rest:
        allowed, account_id = {"GET": "get", "PUT": "put", "DELETE": "delete"}, rest
    else:
        raise ApiError(404, f"no such path: {path}")
    if method not in allowed:
        raise ApiError(405, f"{method} is not allowed on {path}", {"Allow": ", ".join(allowed)})
    return allowed[method], account_id


# --- CLI ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coa_sync_local.emulators.pleo",
        description="Serve an emulated Pleo Chart of Accounts API on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--host", default=HOST, choices=[HOST], help="loopback only")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (default 8080)")
    parser.add_argument("--company", action="append", required=True, help="companyId (UUID); repeatable")
    parser.add_argument(
        "--api-key", action="append", required=True, help="API key for the --company at the same position"
    )
    parser.add_argument(
        "--accounts", type=Path, help="JSON file: a list of accounts to seed the company with"
    )
    parser.add_argument("--page-size-cap", type=int, default=100)
    parser.add_argument("--rate-limit", type=int, default=600, help="requests per minute per credential")
    args = parser.parse_args(argv)
    if len(args.company) != len(args.api_key):
        parser.error("give one --api-key per --company")
    if args.accounts and len(args.company) != 1:
        parser.error("--accounts seeds one company: give exactly one --company")
    emulator = PleoEmulator(port=args.port, page_size_cap=args.page_size_cap, rate_limit=args.rate_limit)
    try:
        seed = json.loads(args.accounts.read_text()) if args.accounts else []
        for company_id, api_key in zip(args.company, args.api_key, strict=True):
            emulator.add_company(company_id, api_keys=[api_key], accounts=seed)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    # Ctrl-C stops it even when started with SIGINT ignored (as a script's background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return serve_until_stopped(emulator, "Pleo")


if __name__ == "__main__":
    raise SystemExit(main())
