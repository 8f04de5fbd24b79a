"""A StackOne emulator (unified accounting API, accounts): real HTTP on 127.0.0.1, read-only.

Modelled on StackOne's public docs, not on our connector. The one endpoint:

    GET /unified/accounting/companies/{id}/accounts   page_size, next -> {"next", "data"}

Sources: [sdk] StackOne's TypeScript SDK (accounting_list_company_accounts,
AccountingAccountsPaginated, AccountingAccount, its error models and retry codes),
[guide-pages] the pagination guide, [guide-errors] the error codes guide, [guide-rates] the
rate-limiting guide, [seed] the journals batch example (shared/seeds: Basic auth, x-account-id);
[ours] our strictest reading where they are silent.

| behaviour | source |
|---|---|
| HTTP Basic, the API key as user and an empty password; 401 otherwise | seed, sdk |
| `x-account-id` names the linked account: required (400 without), 404 when unknown | sdk, guide-errors; ours for 400 |
| a linked account that is disabled: 412 | guide-errors |
| an API key without the scope: 403 (`forbid(key)`) | guide-errors |
| an account is {id, remote_id, company_id, code, name, type: {value, source_value}, active} | sdk |
| `active` as seeded: true, false, "true", "false" or null (all documented) | sdk |
| `page_size` default 25; more than 100 is served as 100 | sdk; ours for the cap |
| the cursor leads on; after the last record it answers `{"next": null, "data": null}` | guide-pages |
| ... or, with `end="last_page"`, the page holding the last records has no cursor | guide-pages |
| with `page_shape="short"`, early cursor returns: pages of a third of page_size, with a cursor | guide-pages |
| an unreadable cursor is 400 | guide-errors ("incorrectly formatted request parameters") |
| errors `{statusCode, message, timestamp}` | sdk |
| 1000 requests in any 60 seconds per API key (across its linked accounts); 429 with Retry-After | guide-rates |
| 408 with Retry-After when the provider behind it is slow: played by `inject("timeout")` | guide-errors, guide-rates |
| no account create, update or archive: a POST is 405, `accounts/batch` is 404 | sdk (no such operation) |

`raw_accounts` are served exactly as given, to play malformed records.

Run it by hand: `python -m coa_sync_local.emulators.stackone --api-key KEY --account-id ID --company ID
[--shape full|short] [--end null|last_page]`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coa_sync_local.emulators._base import ApiError, EmulatorBase, Raw, Reply, Request, route, serve_until_stopped

MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 100, 25
PAGE_SHAPES = ("full", "short")
ENDS = ("null", "last_page")
TYPES = {"asset", "liability", "equity", "revenue", "expense"}


class StackOneEmulator(EmulatorBase):
    NAME = "stackone"
    ENDPOINTS = ("list",)
    SHAPES = {"page_shape": PAGE_SHAPES, "end": ENDS}  # documented alternatives, default first

    def __init__(self, *, page_shape: str = "full", end: str = "null", rate_limit: int = 1000,
                 rate_window_seconds: float = 60.0, **options: Any) -> None:
        super().__init__(rate_limit=rate_limit, rate_window_seconds=rate_window_seconds, **options)
        self._check_shapes(page_shape=page_shape, end=end)
        self.page_shape, self.end = page_shape, end
        self._keys: dict[str, bool] = {}  # api key -> may read accounting data
        self._linked: dict[str, tuple[str, list[Any]]] = {}  # x-account-id -> (company id, accounts)
        self._disabled: set[str] = set()

    def add_linked_account(self, account_id: str, api_key: str, company_id: str, *,
                           accounts: list[dict[str, Any]] = (), raw_accounts: list[Any] = ()) -> None:
        """`accounts`: {code, name[, active, id, type]}; `raw_accounts` are served as given."""
        with self._lock:
            self._keys.setdefault(api_key, True)
            chart: list[Any] = [self._account(company_id, spec) for spec in accounts]
            chart.extend(Raw(item) for item in raw_accounts)
            self._linked[account_id] = (company_id, chart)

    def accounts(self, account_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self._linked[account_id][1] if isinstance(a, dict)]

    def disable_linked_account(self, account_id: str) -> None:
        with self._lock:
            self._disabled.add(account_id)

    def forbid(self, api_key: str) -> None:
        """The key stays valid but loses the accounting scope (403)."""
        with self._lock:
            self._keys[api_key] = False

    @staticmethod
    def _account(company_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        remote = spec.get("id") or str(uuid.uuid4())
        kind = spec.get("type", "expense")
        return {"id": remote, "remote_id": remote, "company_id": company_id, "code": spec.get("code"),
                "name": spec["name"],
                "type": {"value": kind if kind in TYPES else "unmapped_value", "source_value": kind},
                "active": spec.get("active", True)}

    # -- the API -----------------------------------------------------------------------

    def _route(self, method: str, path: str):
        return route([("/unified/accounting/companies/{company_id}/accounts", "GET", "list", self._list)],
                     method, path)

    def _authenticate(self, endpoint: str, request: Request) -> Any:
        scheme, _, value = (request.headers.get("Authorization") or "").strip().partition(" ")
        user = ""
        if scheme.lower() == "basic":
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                user = base64.b64decode(value, validate=True).decode().partition(":")[0]
        with self._lock:
            if user not in self._keys:
                raise ApiError(401, "Unauthorized")
            if not self._keys[user]:
                raise ApiError(403, "Forbidden")
            account_id = request.headers.get("x-account-id")
            if not account_id:
                raise ApiError(400, "x-account-id header is required")
            linked = self._linked.get(account_id)
            if linked is None or linked[0] != request.params.get("company_id"):
                raise ApiError(404, "Not Found")
            if account_id in self._disabled:
                raise ApiError(412, "Precondition failed")
        return user, account_id

    def _admit_request(self, endpoint: str, request: Request) -> int:
        return self._admit(request.credential[0])  # the limit is the API key's, whichever account it reads

    def _error_body(self, error: ApiError) -> Any:
        return {"statusCode": error.status, "message": error.message, "timestamp": _now()}

    def _list(self, request: Request) -> Reply:
        chart = self._linked[request.credential[1]][1]
        raw_size = request.arg("page_size")
        if raw_size is not None and (not raw_size.isdigit() or int(raw_size) < 1):
            raise ApiError(400, "page_size must be a positive integer")
        size = min(int(raw_size or DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        if self.page_shape == "short":
            size = max(1, size // 3)  # an early cursor return: the page is cut short, the cursor goes on
        start = _decode_cursor(request.arg("next")) if request.arg("next") else 0
        if start >= len(chart) and self.end == "null":
            return Reply(200, {"next": None, "data": None})
        page = chart[start: start + size]
        end = start + len(page)
        more = end < len(chart) or self.end == "null"
        cursor = base64.urlsafe_b64encode(f"o:{end}".encode()).decode() if more else None
        return Reply(200, {"next": cursor, "data": [a.item if isinstance(a, Raw) else dict(a) for a in page]})


def _decode_cursor(cursor: str) -> int:
    try:
        kind, _, offset = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "o" or not offset.isdigit():
            raise ValueError(cursor)
        return int(offset)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, f"invalid next cursor: {cursor!r}") from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coa_sync_local.emulators.stackone",
                                     description="Serve an emulated StackOne accounting API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8083)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--account-id", required=True, help="the x-account-id of the linked account")
    parser.add_argument("--company", required=True, help="the accounting company id")
    parser.add_argument("--accounts", type=Path, help="JSON list of {code, name, active}")
    parser.add_argument("--shape", choices=PAGE_SHAPES, default="full",
                        help="full pages, or early cursor returns (short pages that still carry a cursor)")
    parser.add_argument("--end", choices=ENDS, default="null",
                        help='end the list with {"next": null, "data": null}, or with no cursor on the last page')
    args = parser.parse_args(argv)
    emulator = StackOneEmulator(port=args.port, page_shape=args.shape, end=args.end)
    emulator.add_linked_account(args.account_id, args.api_key, args.company,
                                accounts=json.loads(args.accounts.read_text()) if args.accounts else [])
    return serve_until_stopped(emulator, "StackOne", parser)


if __name__ == "__main__":
    raise SystemExit(main())
