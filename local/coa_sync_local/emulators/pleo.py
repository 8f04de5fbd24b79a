"""A Pleo Chart of Accounts API emulator: a real HTTP server on 127.0.0.1, as strict as the spec.

Modelled on Pleo's published OpenAPI definition ("Chart of Accounts API" 24.9.0) and its how-tos,
never on our own client, so tests against it catch our misreadings rather than repeat them. Every
request is checked against pleo-chart-of-accounts.yaml (the definition's six account endpoints) by
openapi-core, and refused as the spec would refuse it; where the spec is silent, the emulator takes
the strictest plausible reading, so a client that works here works whichever way Pleo reads it.
`lenient=True` (`--lenient`) plays the how-to's reading of the one point where the two disagree.

    POST   /v1/chart-of-accounts:search      cursor pages (limit, after, before, offset)
    POST   /v1/chart-of-accounts/batch       1..1000 items; 201 with data.created / data.failed
    POST   /v1/chart-of-accounts             single create: 201, 200 matched existing, 409
    GET    /v1/chart-of-accounts/{id}
    PUT    /v1/chart-of-accounts/{id}        replaces the whole record
    DELETE /v1/chart-of-accounts/{id}        204, or 409 for an account flagged `linked`

Behaviour, and its source: SPEC is the published definition (pleo-chart-of-accounts.yaml), HOW-TO
Pleo's how-tos, READING the strictest plausible reading where both are silent (the client must cope
with every plausible reading, so the emulator takes the one that refuses most), OURS what no Pleo
document covers and the emulator needs to be usable.

    SPEC     required fields, types, formats (uuid), lengths (externalId 1..255, name and code 0..255),
             1..1000 batch items, enums, cursor pattern ^[A-Z2-7=~]+$: else 400
    SPEC     search requires companyId, excludeIfAssignedToCategory, excludeIfAssignedToContraAccount
    SPEC     `after` with `before`, `offset` with a cursor: 400
    SPEC     batch answers 201 even when items fail; reasons EXTERNAL_ID_ALREADY_EXISTS,
             EXTERNAL_ID_EMPTY, NAME_EMPTY, OTHER
    SPEC     single create: 201 created, 200 "request matched existing account", 409 externalId exists
    SPEC     PUT 400 "tax code does not exist in Pleo"; DELETE 409 for an account linked to entries
    SPEC     pagination: hasNextPage, hasPreviousPage, currentRequestPagination, total, and
             startCursor/endCursor (strings: left out of an empty page, never null)
    SPEC     credentials: the API key as HTTP basic user with an empty password, or a Bearer token
    HOW-TO   credentials are checked before routing: an unknown path without them is 401
    READING  includeArchived is ignored: it is not in the spec, only in the sync how-to
             (--lenient: honoured when `archived` is absent, as the how-to reads)
    READING  a search without `archived` returns active accounts only (undocumented)
    READING  a limit under 1 or over 100 is a 400, not silently capped (no maximum documented;
             a public client notes 100 on another Pleo search)
    READING  PUT replaces the whole record: what the body leaves out, metadata too, becomes null
    READING  a field the schema refuses fails the whole batch (400: "contains invalid input"), so
             over-long items never get the per-item EXTERNAL_ID_TOO_LONG, NAME_TOO_LONG, CODE_TOO_LONG
    READING  a blank (whitespace) externalId or name is EXTERNAL_ID_EMPTY / NAME_EMPTY
             (PUT and single create: 400), as the reasons' names say
    READING  single create answers 200 only when every field it sends equals the existing
             account's ("matched" is undocumented); otherwise 409
    READING  a JSON body is read as the spec's application/json;charset=UTF-8 whatever its
             parameters; any other media type is 415
    OURS     an unknown taxCodeExternalId, when the company has a tax-code list: OTHER / PUT 400
    OURS     sorting_keys is a 400 ("not emulated"): coa-sync never sorts
    OURS     order is creation order; a cursor is the base32 of an account's sequence number, so it
             stays valid while accounts are created or deleted
    OURS     error bodies {"status", "error", "message"}, the message naming the field
             (`body items[1].name`); Pleo documents no error body
    OURS     a credential belongs to one company: another company's companyId is 403, its ids 404
    OURS     rate limit: Pleo's 600/min (its docs give the figure, not what it counts) as a sliding window
             per company, every credential of the company in it (per credential would be the looser
             reading); X-RateLimit-Limit and -Remaining on every answer, 429 with Retry-After (whole
             seconds) and X-RateLimit-Reset-Ms (Pleo documents no rate-limit headers)

With COA_SYNC_PLEO_CONTRACT_LOG set (see pleo_contract), every answer is checked against the
document too, and violations are logged. Faults (`inject`, `chaos`) let tests play the failures a real
network and a real Pleo produce: 5xx, 429, slow answers and connections dropped before or after the work.

Run it by hand: `python -m coa_sync_local.emulators.pleo --company UUID --api-key KEY` (`--help` for more).
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
import signal
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote

from coa_sync_local.emulators import _base, pleo_contract
from coa_sync_local.emulators._base import HOST, MAX_BODY_BYTES, EmulatorBase, Reply, serve_until_stopped
from coa_sync_local.emulators.pleo_auth import AuthorizationServer

ENDPOINTS = ("search", "batch_create", "create", "get", "put", "delete")
# Requests sent by coa-sync's own Pleo client carry this User-Agent: the contract log names the ones refused.
CLIENT_AGENT = "coa-sync"

EXTERNAL_ID_ALREADY_EXISTS = "EXTERNAL_ID_ALREADY_EXISTS"
EXTERNAL_ID_EMPTY = "EXTERNAL_ID_EMPTY"
NAME_EMPTY = "NAME_EMPTY"
OTHER = "OTHER"

# What a single create or a PUT says in its 400 for the reason a batch item would get.
_REASON_TEXT = {
    EXTERNAL_ID_EMPTY: "externalId must not be blank",
    NAME_EMPTY: "name must not be empty",
    OTHER: "taxCodeExternalId: tax code does not exist in Pleo",
}
_COLLECTION = "/v1/chart-of-accounts"
_SEED_KEYS = {"externalId", "name", "code", "archived", "taxCodeExternalId", "metadata", "linked"}
_WRITABLE = (("external_id", "externalId"), ("name", "name"), ("archived", "archived"), ("code", "code"),
             ("tax_code_external_id", "taxCodeExternalId"), ("metadata", "metadata"))


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
        return json.loads(self.body)  # the contract has checked it is a JSON object

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


def _fields(obj: dict) -> dict:
    """The writable fields of a create request, batch item or PUT body (the contract checked their types);
    what it leaves out is None."""
    return {attribute: copy.deepcopy(obj.get(key)) for attribute, key in _WRITABLE}


def _uuid(value: str) -> str:
    """The canonical (lower-case) form of a UUID the contract has checked, so comparisons ignore spelling."""
    return str(uuid.UUID(value))


# --- cursors and pages --------------------------------------------------------------


def _encode_cursor(seq: int) -> str:
    return base64.b32encode(seq.to_bytes(8, "big")).decode()  # A-Z, 2-7 and '=': the spec's cursor pattern


def _decode_cursor(cursor: str, name: str) -> int:
    try:
        raw = base64.b32decode(cursor)
        if len(raw) != 8:
            raise ValueError(cursor)
    except (ValueError, binascii.Error):
        raise ApiError(400, f"query {name}: {cursor!r} is not a cursor this server gave out") from None
    return int.from_bytes(raw, "big")


@dataclass
class _PageParams:
    limit: int
    after: int | None
    before: int | None
    offset: int | None
    echo: dict  # pagination.currentRequestPagination


def _page_params(request: _Request, default_size: int, cap: int) -> _PageParams:
    after, before, offset = request.arg("after"), request.arg("before"), request.arg("offset")
    if after is not None and before is not None:
        raise ApiError(400, "query: give either after or before, not both")
    if offset is not None and (after is not None or before is not None):
        raise ApiError(400, "query: offset cannot be used together with after or before")
    if request.arg("sorting_keys") is not None:
        raise ApiError(400, "query sorting_keys: sorting is not emulated (coa-sync does not sort)")
    limit = request.arg("limit")
    # Within the contract's 1..100, the server may still serve fewer than asked (tests shrink the cap).
    size = min(default_size if limit is None else int(limit), cap)
    echo: dict = {"parameters": {}, "limit": size, "sortingKeys": [], "sortingOrder": []}
    echo.update({k: v for k, v in (("after", after), ("before", before)) if v is not None})
    if offset is not None:
        echo["offset"] = int(offset)
    return _PageParams(
        limit=size,
        after=None if after is None else _decode_cursor(after, "after"),
        before=None if before is None else _decode_cursor(before, "before"),
        offset=None if offset is None else int(offset),
        echo=echo,
    )


def _page(accounts: list[_Account], seqs: list[int], keep: Callable[[_Account], bool], params: _PageParams):
    """(items, has_previous, has_next): a bisect to the cursor, then a walk of at most one page."""

    def walk(indices: Iterable[int]):
        return filter(keep, map(accounts.__getitem__, indices))

    limit = params.limit
    if params.offset is not None:
        items = list(itertools.islice(walk(range(len(accounts))), params.offset, params.offset + limit + 1))
        has_previous = params.offset > 0 and any(itertools.islice(walk(range(len(accounts))), 1))
        return items[:limit], has_previous, len(items) > limit
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

    def matches(self, fields: dict) -> bool:
        return all(getattr(self, attribute) == fields[attribute] for attribute, _ in _WRITABLE)


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

    def content_reasons(self, fields: dict) -> list[str]:
        """What the per-item reasons say of fields the contract let through (lengths are its own 400)."""
        reasons = []
        if fields["external_id"] is not None and not fields["external_id"].strip():
            reasons.append(EXTERNAL_ID_EMPTY)
        if not fields["name"].strip():
            reasons.append(NAME_EMPTY)
        tax_code = fields["tax_code_external_id"]
        if tax_code is not None and self.tax_codes is not None and tax_code not in self.tax_codes:
            reasons.append(OTHER)
        return reasons


def _seed_fields(spec: dict) -> dict:
    unknown = set(spec) - _SEED_KEYS
    if unknown or "externalId" not in spec or "name" not in spec:
        raise ValueError(f"seed account needs externalId and name, may have {sorted(_SEED_KEYS)}: {spec!r}")
    return {**_fields(spec), "archived": bool(spec.get("archived", False)), "linked": bool(spec.get("linked", False))}


# --- the emulator -------------------------------------------------------------------


class PleoEmulator(EmulatorBase):
    """Pleo's Chart of Accounts API, in memory, served over HTTP on 127.0.0.1.

    `calls` counts admitted requests that reached an endpoint (including those it answered 4xx, those
    the contract refused too; not 401s, 429s or injected faults that skip the work), keyed by ENDPOINTS.
    `responses` counts every response sent, by status; `faults_fired` counts faults by kind;
    `violations` lists what broke the contract: requests from coa-sync's client that it refused, and,
    while responses are checked (pleo_contract), answers of this emulator that it refuses.
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
        lenient: bool = False,
        token_ttl: float = 900.0,
    ):
        if page_size_cap < 1 or default_page_size < 1 or rate_limit < 1 or rate_window_seconds <= 0:
            raise ValueError("page sizes and rate_limit must be >= 1, rate_window_seconds > 0")
        super().__init__(rate_limit=rate_limit, rate_window_seconds=rate_window_seconds, port=port)
        self.page_size_cap = page_size_cap
        self.default_page_size = min(default_page_size, page_size_cap)
        self.lenient = lenient
        self.violations: list[dict] = []
        # Pleo's authorisation server, on the same port (/oauth/...): see pleo_auth.
        self.oauth = AuthorizationServer(token_ttl=token_ttl, companies=lambda: list(self._companies))
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

    def add_oauth_client(self, client_id: str, client_secret: str, redirect_uris: Iterable[str]) -> None:
        """Register an OAuth client (an integration) with its exact redirect URIs; see pleo_auth."""
        self.oauth.add_client(client_id, client_secret, redirect_uris)

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
        # so this replaces the base's route-then-_authenticate order; _route and _company are Pleo's own.
        if body is None:
            raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
        path, _, query = target.partition("?")
        path = unquote(path)
        if path.startswith("/oauth/"):  # the authorisation server: no API credentials, its own errors
            return self.oauth.handle(method, path, query, headers, body)
        company_id = self._company(headers.get("Authorization"))
        always.update(self._rate_headers(self._admit(company_id)))  # one window per company
        endpoint, account_id = _route(method, path)
        request = _Request(company_id, account_id, parse_qs(query, keep_blank_values=True), body)

        def serve() -> Reply:
            problem = pleo_contract.request_problem(method, path, query, headers, body)
            if problem is not None:
                if (headers.get("User-Agent") or "").startswith(CLIENT_AGENT):
                    self._violation("request", endpoint, problem.status, problem.message)
                raise ApiError(problem.status, problem.message)
            return Reply(*self._handlers[endpoint](request))

        reply = self._serve_endpoint(endpoint, serve)
        if pleo_contract.checking_responses() and not reply.drop:
            payload = b"" if reply.payload is None else json.dumps(reply.payload).encode()
            problem = pleo_contract.response_problem(method, path, query, headers, body, reply.status,
                                                     self.CONTENT_TYPE, payload)
            if problem is not None:
                self._violation("response", endpoint, reply.status, problem)
        return reply

    def _violation(self, kind: str, endpoint: str, status: int, problem: str) -> None:
        with self._lock:
            self.violations.append({"kind": kind, "endpoint": endpoint, "status": status, "problem": problem})
        pleo_contract.log_violation(kind, endpoint, status, problem)

    def _error_body(self, error: _base.ApiError) -> dict:
        return {"status": error.status, "error": http.HTTPStatus(error.status).phrase, "message": error.message}

    def _company(self, header: str | None) -> str:
        """The company the request's credential acts for; 401 without one."""
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
        why = None
        with self._lock:
            company_id = self._credentials.get(credential) if credential and credential[1] else None
        if company_id is None and credential is not None and credential[0] == "bearer":
            company_id, why = self.oauth.company_for(credential[1])
        if company_id is None:
            if why:  # an OAuth access token that expired or was revoked (RFC 6750)
                raise ApiError(401, f"invalid_token: {why}", {"WWW-Authenticate": f'Bearer error="invalid_token", '
                                                                               f'error_description="{why}"'})
            raise ApiError(
                401,
                "missing or unknown credentials: send 'Authorization: Bearer <token>' or basic auth "
                "with the API key as user and an empty password",
                {"WWW-Authenticate": 'Bearer, Basic realm="pleo"'},
            )
        return company_id

    # endpoint handlers: run under self._lock, return (status, payload) or raise ApiError

    def _search(self, request: _Request) -> tuple[int, dict]:
        body = request.json()
        company = self._company_for(request, body)
        params = _page_params(request, self.default_page_size, self.page_size_cap)
        status = body.get("archived")
        if status is None:
            # Strict: the spec has no includeArchived and does not say what an absent `archived` returns:
            # active accounts only. Lenient: the how-to's `includeArchived: true` adds the archived ones.
            status = None if self.lenient and body.get("includeArchived") is True else False
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
            "total": total,
        }
        if items:  # the spec's cursors are strings, never null: an empty page has none
            pagination |= {"startCursor": _encode_cursor(items[0].seq), "endCursor": _encode_cursor(items[-1].seq)}
        return 200, {"data": [account.to_api() for account in items], "pagination": pagination}

    def _search_filter(self, company: _Company, body: dict) -> tuple[list, list[_Account] | None]:
        """The field conditions, and the accounts an index narrows them to (None: walk all)."""
        conditions: list[Callable[[_Account], bool]] = []
        for key, attribute in (("externalId", "external_id"), ("code", "code"), ("name", "name")):
            value = body.get(key)
            if value is not None:
                conditions.append(lambda account, a=attribute, v=value: getattr(account, a) == v)
        codes = body.get("codes")
        if codes is not None:
            conditions.append(lambda account, wanted=frozenset(codes): account.code in wanted)
        candidates = None
        ids = body.get("ids")
        if ids is not None:
            wanted_ids = frozenset(_uuid(value) for value in ids if value is not None)
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
        created, failed = [], []
        for item in body["items"]:  # in order: an externalId created earlier in the batch exists for later items
            fields = _fields(item)
            reasons = ([EXTERNAL_ID_ALREADY_EXISTS] if fields["external_id"] in company.by_external_id else []) \
                + company.content_reasons(fields)
            if reasons:
                failed.append({"reasons": reasons, "request": item})
            else:
                created.append(self._insert(company, fields).to_api())
        return 201, {"data": {"created": created, "failed": failed}}

    def _create(self, request: _Request) -> tuple[int, dict]:
        body = request.json()
        company = self._company_for(request, body)
        fields = _fields(body)
        invalid = company.content_reasons(fields)
        if invalid:
            raise ApiError(400, "; ".join(_REASON_TEXT[reason] for reason in invalid))
        existing = company.by_external_id.get(fields["external_id"])
        if existing is not None:
            if existing.matches(fields):  # "Request matched existing account."
                return 200, {"data": existing.to_api()}
            raise ApiError(409, f"an account with externalId {fields['external_id']!r} already exists")
        return 201, {"data": self._insert(company, fields).to_api()}

    def _get(self, request: _Request) -> tuple[int, dict]:
        return 200, {"data": self._account_for(request).to_api()}

    def _put(self, request: _Request) -> tuple[int, dict]:
        account = self._account_for(request)
        fields = {**_fields(request.json()), "external_id": None}  # externalId is not writable here
        company = self._companies[account.company_id]
        reasons = company.content_reasons(fields)
        if reasons:
            raise ApiError(400, "; ".join(_REASON_TEXT[reason] for reason in reasons))
        # Replaces the whole record: what the body leaves out becomes null; id, companyId, externalId stay.
        account.name, account.code = fields["name"], fields["code"]
        account.tax_code_external_id, account.metadata = fields["tax_code_external_id"], fields["metadata"]
        company.set_archived(account, fields["archived"])
        return 200, {"data": account.to_api()}

    def _delete(self, request: _Request) -> tuple[int, None]:
        account = self._account_for(request)
        if account.linked:
            raise ApiError(409, f"account {account.id} is in use and cannot be deleted; archive it instead")
        self._companies[account.company_id].remove(account)
        del self._by_id[account.id]
        return 204, None

    def _company_for(self, request: _Request, body: dict) -> _Company:
        company_id = _uuid(body["companyId"])
        if company_id != request.company_id:
            raise ApiError(403, f"the credential may not access company {company_id}")
        return self._companies[company_id]

    def _account_for(self, request: _Request) -> _Account:
        account = self._by_id.get(_uuid(request.account_id or ""))
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


READINGS = """where Pleo's spec is silent, this emulator takes the strictest plausible reading:
  - includeArchived (a field of the sync how-to, not of the spec) is ignored
  - a search without `archived` returns active accounts only
  - a limit under 1 or over 100 is a 400 (no maximum is documented)
  - PUT replaces the whole record: what the body leaves out, metadata too, becomes null
  - a field the schema refuses fails a whole batch (400), not just its item
  - single create answers 200 "matched existing account" only when every field it sends is equal
--lenient plays the how-to's reading instead: includeArchived: true (without `archived`) returns
archived accounts too. Every request is checked against pleo-chart-of-accounts.yaml."""


def main(argv: list[str] | None = None, prog: str = "python -m coa_sync_local.emulators.pleo") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve an emulated Pleo Chart of Accounts API on 127.0.0.1 until Ctrl-C.",
        epilog=READINGS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.add_argument("--page-size-cap", type=int, default=100,
                        help="serve at most this many accounts a page (1..100; default 100)")
    parser.add_argument("--rate-limit", type=int, default=600, help="requests per minute per company")
    parser.add_argument("--lenient", action="store_true",
                        help="honour the how-to's includeArchived (default: the spec's strict reading)")
    oauth = parser.add_argument_group("Pleo's OAuth 2.0 authorisation server (/oauth/authorize, /oauth/token)")
    oauth.add_argument("--oauth-client", action="append", default=[], metavar="ID:SECRET",
                       help="an OAuth client that may connect companies (repeatable; a test credential)")
    oauth.add_argument("--redirect-uri", action="append", default=[], metavar="URI",
                       help="a redirect URI the clients registered, matched exactly (repeatable)")
    oauth.add_argument("--token-ttl", type=float, default=900.0, metavar="SECONDS",
                       help="access tokens' lifetime, expires_in (default 900: Pleo's 15 minutes)")
    args = parser.parse_args(argv)
    if len(args.company) != len(args.api_key):
        parser.error("give one --api-key per --company")
    if args.accounts and len(args.company) != 1:
        parser.error("--accounts seeds one company: give exactly one --company")
    emulator = PleoEmulator(port=args.port, page_size_cap=args.page_size_cap, rate_limit=args.rate_limit,
                            lenient=args.lenient, token_ttl=args.token_ttl)
    for client in args.oauth_client:
        client_id, colon, secret = client.partition(":")
        if not colon or not client_id or not secret:
            parser.error(f"--oauth-client takes ID:SECRET, not {client!r}")
        emulator.add_oauth_client(client_id, secret, args.redirect_uri)
    try:
        seed = json.loads(args.accounts.read_text()) if args.accounts else []
        for company_id, api_key in zip(args.company, args.api_key, strict=True):
            emulator.add_company(company_id, api_keys=[api_key], accounts=seed)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    # Ctrl-C stops it even when started with SIGINT ignored (as a script's background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return serve_until_stopped(emulator, "Pleo", parser)


if __name__ == "__main__":
    raise SystemExit(main())
