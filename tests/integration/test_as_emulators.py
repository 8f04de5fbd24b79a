"""The accounting-system emulators pinned to their vendors' documented behaviour, over raw HTTP.

These do not use our connectors, so a misreading in a connector cannot hide behind the same
misreading here. Each vendor's documented alternatives (page shapes, list shapes, list ends,
error bodies) are played by an emulator option, and each is pinned here.
"""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from tests.as_systems import (
    BUSINESS,
    LINKED_ACCOUNT,
    PARTNER,
    SECRET_KEY,
    STACKONE_COMPANY,
    chart,
    dualentry,
    stackone,
    thredfi,
)

COA = f"/v1/platform/businesses/{BUSINESS}/general-ledger/chart-of-accounts/"
# The fields of a list item in "List chart of accounts" (its example response): nothing else is served.
THREDFI_LIST_FIELDS = {
    "id", "code", "name", "currency", "account_type", "account_type_display", "account_subtype",
    "account_subtype_display", "parent_account_code", "current_balance", "current_balance_formatted",
    "debit_balance", "credit_balance", "period_balance", "period_balance_formatted", "has_children",
    "hierarchy_level", "is_active"}
# ChartOfAccountDetail's required fields (the create, detail and archive answers).
THREDFI_DETAIL_FIELDS = THREDFI_LIST_FIELDS | {
    "description", "institution_name", "iban", "sort_code", "account_number_mask", "total_debits",
    "total_credits", "last_entry_date", "last_entry_reference", "sub_accounts"}
DUALENTRY_V2 = "/public/v2/accounts/"
DUALENTRY_V1 = "/public/v1/accounts/"
# The fields of an item in "List accounts" (v2): no account_type, no parent_account_id.
DUALENTRY_LIST_FIELDS = {"id", "name", "number", "description", "is_active", "is_system", "company_id",
                         "created_by", "updated_by"}
STACKONE_ACCOUNTS = f"/unified/accounting/companies/{STACKONE_COMPANY}/accounts"
STACKONE_FIELDS = {"id", "remote_id", "company_id", "code", "name", "type", "active"}


def thredfi_token(http: httpx.Client, business: str = BUSINESS) -> dict[str, str]:
    partner = http.post("/v1/platform/oauth2/token/", auth=(PARTNER, SECRET_KEY),
                        json={"grant_type": "client_credentials", "client_id": PARTNER}).json()
    assert partner["token_type"] == "Bearer" and partner["expires_in"] == 3600
    scoped = http.post(f"/v1/platform/{business}/oauth2/token/",
                       headers={"Authorization": f"Bearer {partner['access_token']}"})
    assert scoped.status_code == 200 and scoped.json()["scope"] == "business_access"
    return {"Authorization": f"Bearer {scoped.json()['access_token']}"}


# -- Thredfi -------------------------------------------------------------------------------


def test_thredfi_page_info_shape_caps_pages_at_100_and_serves_only_the_documented_list_fields():
    with thredfi(chart(130)) as system, httpx.Client(base_url=system.emulator.url) as http:
        auth = thredfi_token(http)
        page = http.get(COA, params={"page_size": 500, "page": 2}, headers=auth).json()
        assert set(page) == {"count", "page_info", "results"}
        assert page["page_info"] == {"total_count": 130, "current_page": 2, "total_pages": 2, "page_size": 100}
        assert len(page["results"]) == 30 and all(set(item) == THREDFI_LIST_FIELDS for item in page["results"])
        assert http.get(COA, params={"page": 3, "page_size": 100}, headers=auth).status_code == 404


def test_thredfi_links_shape_pages_by_count_next_and_previous():
    with thredfi(chart(45), page_shape="links") as system, httpx.Client(base_url=system.emulator.url) as http:
        auth = thredfi_token(http)
        first = http.get(COA, headers=auth).json()  # the documented default: 20 a page
        assert set(first) == {"count", "next", "previous", "results"}
        assert (first["count"], len(first["results"]), first["previous"]) == (45, 20, None)
        assert first["next"].endswith(f"{COA}?page=2&page_size=20")
        last = http.get(COA, params={"page": 3}, headers=auth).json()
        assert (len(last["results"]), last["next"]) == (5, None) and last["previous"].endswith("page=2&page_size=20")


def test_thredfi_never_serves_an_external_id_not_even_after_a_create_that_set_one():
    with thredfi(chart(1)) as system, httpx.Client(base_url=system.emulator.url) as http:
        auth = thredfi_token(http)
        body = {"code": "8000", "name": "Petty Cash", "external_id": "qbo-8000"}
        first = http.post(COA, json=body, headers=auth)
        again = http.post(COA, json=body, headers=auth)  # idempotent by external_id
        assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]
        assert set(first.json()) == THREDFI_DETAIL_FIELDS
        listed = http.get(COA, headers=auth).json()["results"]
        assert all("external_id" not in item for item in listed)
        by_external_id = http.get(f"{COA}qbo-8000/", headers=auth)  # but it finds the account by it
        assert by_external_id.status_code == 200 and by_external_id.json()["code"] == "8000"


@pytest.mark.parametrize("error_shape", ["openapi", "guide"])
def test_thredfi_validation_errors_come_in_either_documented_shape(error_shape):
    with thredfi(chart(1), error_shape=error_shape) as system, httpx.Client(base_url=system.emulator.url) as http:
        auth = thredfi_token(http)
        answer = http.post(COA, headers=auth, json={"name": "No code", "account_type": "revenue",
                                                    "is_non_cash_expense": True, "balance_behavior": "sideways"})
        body = answer.json()
    assert answer.status_code == 400 and body["error_code"] == "validation_error"
    if error_shape == "openapi":
        assert set(body) == {"error_code", "message", "detail", "request_id"}
        fields = body["detail"]["field_errors"]
    else:
        assert set(body) == {"error", "error_code", "details"}
        fields = body["details"]
    assert set(fields) == {"code", "is_non_cash_expense", "balance_behavior"}


def test_thredfi_tokens_are_scoped_expire_and_fail_with_the_documented_codes():
    with thredfi(chart(1)) as system, httpx.Client(base_url=system.emulator.url) as http:
        system.emulator.add_business("99999999-0000-0000-0000-000000000000", "another-partner")
        auth = thredfi_token(http)
        other = http.get("/v1/platform/businesses/99999999-0000-0000-0000-000000000000/general-ledger/"
                         "chart-of-accounts/", headers=auth)
        assert other.status_code == 403 and other.json()["error_code"] == "permission_denied"
        assert http.get(COA).json()["error_code"] == "authentication_required"
        system.emulator.expire_tokens()
        expired = http.get(COA, headers=auth)
        assert expired.status_code == 401 and expired.json()["error_code"] == "invalid_token"
        assert http.post("/v1/platform/oauth2/token/", auth=(PARTNER, "wrong"), json={}).status_code == 401


def test_thredfi_archive_is_a_soft_delete_refused_with_a_balance_or_active_children():
    with thredfi([]) as system, httpx.Client(base_url=system.emulator.url) as http:
        system.emulator.add_business(BUSINESS, PARTNER, accounts=[
            {"code": "1000", "name": "Parent"}, {"code": "1000-01", "name": "Child", "parent_code": "1000"},
            {"code": "2000", "name": "Has money", "current_balance": 1250},
            {"code": "3000", "name": "Plain", "external_id": "qbo-3000"}])
        auth = thredfi_token(http)
        archived = http.delete(f"{COA}qbo-3000/", headers=auth)  # by external_id (or UUID, or code)
        assert archived.status_code == 200 and archived.json()["is_active"] is False
        assert set(archived.json()) == THREDFI_DETAIL_FIELDS
        listed = {a["code"]: a for a in http.get(COA, headers=auth).json()["results"]}
        assert listed["3000"]["is_active"] is False  # soft: still listed, inactive
        assert http.delete(f"{COA}3000/", headers=auth).status_code == 409  # already archived
        money = http.delete(f"{COA}2000/", headers=auth)
        parent = http.delete(f"{COA}1000/", headers=auth)
        assert (money.status_code, parent.status_code) == (422, 422)
        assert "non-zero balance" in money.json()["message"] and "active child" in parent.json()["message"]
        assert http.delete(f"{COA}1000-01/", headers=auth).status_code == 200
        assert http.delete(f"{COA}1000/", headers=auth).status_code == 200  # no active child left
        assert http.delete(f"{COA}no-such/", headers=auth).status_code == 404


def test_thredfi_include_zero_balance_false_leaves_out_accounts_without_a_balance():
    with thredfi([]) as system, httpx.Client(base_url=system.emulator.url) as http:
        system.emulator.add_business(BUSINESS, PARTNER, accounts=[
            {"code": "1", "name": "Empty"}, {"code": "2", "name": "Funded", "current_balance": 5}])
        auth = thredfi_token(http)
        assert len(http.get(COA, headers=auth).json()["results"]) == 2  # documented default: true
        only = http.get(COA, params={"include_zero_balance": "false"}, headers=auth).json()["results"]
        assert [a["code"] for a in only] == ["2"]


# -- DualEntry -----------------------------------------------------------------------------


@pytest.mark.parametrize("list_shape", ["object", "array"])
def test_dualentry_v2_list_comes_in_either_documented_shape_and_caps_limit_silently(list_shape):
    with dualentry(chart(130), list_shape=list_shape) as system, httpx.Client(base_url=system.emulator.url) as http:
        key = {"X-API-KEY": SECRET_KEY}
        page = http.get(DUALENTRY_V2, params={"limit": 500}, headers=key).json()
        items = page["items"] if list_shape == "object" else page
        if list_shape == "object":
            assert set(page) == {"items", "count"} and page["count"] == 130
        else:
            assert isinstance(page, list)
        assert len(items) == 100 and all(set(item) == DUALENTRY_LIST_FIELDS for item in items)
        bad = http.get(DUALENTRY_V2, params={"limit": 0}, headers=key)
        assert bad.status_code == 400 and bad.json() == {
            "success": False, "errors": {"__all__": ["greater_than_equal query.limit"]}}


def test_dualentry_keys_are_401_when_missing_and_403_when_wrong():
    with dualentry(chart(1)) as system, httpx.Client(base_url=system.emulator.url) as http:
        assert http.get(DUALENTRY_V2).status_code == 401
        wrong = http.get(DUALENTRY_V2, headers={"X-API-KEY": "x"})
        assert wrong.status_code == 403
        assert wrong.json() == {"success": False, "errors": {"__all__": ["API key authentication failed"]}}


def test_dualentry_create_validation_is_422_field_by_field_and_get_by_number_finds_it():
    with dualentry(chart(1)) as system, httpx.Client(base_url=system.emulator.url) as http:
        key = {"X-API-KEY": SECRET_KEY}
        answer = http.post(DUALENTRY_V1, headers=key, json={
            "name": "X", "number": 99, "account_type": "cash", "currency_iso_4217_code": None, "is_active": True})
        assert answer.status_code == 422 and answer.json()["success"] is False
        assert set(answer.json()["errors"]) == {"name", "number", "account_type", "parent_account_id"}
        assert http.post(DUALENTRY_V1, headers=key, content=b"not json").status_code == 400
        travel = {"name": "Travel", "number": 6100, "account_type": "expense", "currency_iso_4217_code": None,
                  "is_active": True, "parent_account_id": None}
        made = http.post(DUALENTRY_V1, headers=key, json=travel)
        assert made.status_code == 201 and made.json()["number"] == 6100
        taken = http.post(DUALENTRY_V1, headers=key, json=travel)
        assert taken.status_code == 422 and "number" in taken.json()["errors"]
        assert http.get(f"{DUALENTRY_V1}6100/", headers=key).json()["name"] == "Travel"
        assert http.get(f"{DUALENTRY_V1}6200/", headers=key).status_code == 404


def test_dualentry_throttles_with_its_documented_token_buckets_per_key_and_per_route():
    with dualentry(chart(1)) as system, httpx.Client(base_url=system.emulator.url) as http:
        key = {"X-API-KEY": SECRET_KEY}
        statuses = [http.get(DUALENTRY_V2, headers=key).status_code for _ in range(11)]
        assert statuses == [200] * 10 + [429]  # a burst of 10 per route and method
        refused = http.get(DUALENTRY_V2, headers=key)
        assert refused.json()["success"] is False and int(refused.headers["Retry-After"]) >= 1
        assert http.get(f"{DUALENTRY_V1}1001/", headers=key).status_code == 200  # another route has its own
        time.sleep(1.1)
        assert http.get(DUALENTRY_V2, headers=key).status_code == 200  # refilled at one a second


# -- StackOne ------------------------------------------------------------------------------


def stackone_client(system) -> httpx.Client:
    return httpx.Client(base_url=system.emulator.url, auth=(SECRET_KEY, ""),
                        headers={"x-account-id": LINKED_ACCOUNT})


def read_all(http: httpx.Client, page_size: int) -> list[dict]:
    pages, cursor = [], None
    while True:
        params = {"page_size": page_size, **({"next": cursor} if cursor else {})}
        page = http.get(STACKONE_ACCOUNTS, params=params).json()
        pages.append(page)
        cursor = page["next"]
        if not cursor:
            return pages


def test_stackone_serves_only_documented_fields_and_ends_with_next_and_data_both_null():
    with stackone(chart(5)) as system, stackone_client(system) as http:
        pages = read_all(http, page_size=5)
    assert [len(p["data"] or []) for p in pages] == [5, 0]
    assert pages[-1] == {"next": None, "data": None}
    assert all(set(item) == STACKONE_FIELDS for item in pages[0]["data"])
    assert set(pages[0]["data"][0]["type"]) == {"value", "source_value"}


def test_stackone_can_end_on_the_last_short_page_instead():
    with stackone(chart(17), end="last_page") as system, stackone_client(system) as http:
        pages = read_all(http, page_size=10)
    assert [(len(p["data"]), p["next"] is None) for p in pages] == [(10, False), (7, True)]


def test_stackone_early_cursor_return_hands_back_short_pages_with_a_cursor():
    with stackone(chart(20), page_shape="short") as system, stackone_client(system) as http:
        pages = read_all(http, page_size=10)
    sizes = [len(p["data"] or []) for p in pages]
    assert sum(sizes) == 20 and all(size < 10 for size in sizes) and pages[-1]["data"] is None


def test_stackone_errors_are_status_code_message_timestamp_for_each_documented_status():
    with stackone(chart(3)) as system, stackone_client(system) as http:
        system.emulator.inject("timeout", endpoint="list", retry_after=7)
        slow = http.get(STACKONE_ACCOUNTS)
        assert slow.status_code == 408 and slow.headers["Retry-After"] == "7"
        assert set(slow.json()) == {"statusCode", "message", "timestamp"} and slow.json()["statusCode"] == 408
        assert http.get(STACKONE_ACCOUNTS, headers={"x-account-id": "nope"}).status_code == 404
        assert http.get(STACKONE_ACCOUNTS, params={"next": "garbage"}).status_code == 400
        system.emulator.disable_linked_account(LINKED_ACCOUNT)
        disabled = http.get(STACKONE_ACCOUNTS)
        assert disabled.status_code == 412 and disabled.json()["statusCode"] == 412
        with httpx.Client(base_url=system.emulator.url, auth=("bad", "")) as wrong:
            assert wrong.get(STACKONE_ACCOUNTS, headers={"x-account-id": LINKED_ACCOUNT}).status_code == 401


def test_stackone_has_no_account_write_endpoint():
    with stackone(chart(1)) as system, stackone_client(system) as http:
        assert http.post(STACKONE_ACCOUNTS, json={"name": "A"}).status_code == 405
        assert http.post(f"{STACKONE_ACCOUNTS}/batch", json={"items": [{"name": "A"}]}).status_code == 404


def test_stackone_limits_each_api_key_across_its_linked_accounts():
    with stackone(chart(1), rate_limit=3) as system:
        system.emulator.add_linked_account("second-linked", SECRET_KEY, STACKONE_COMPANY)
        auth = "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()
        with httpx.Client(base_url=system.emulator.url, headers={"Authorization": auth}) as http:
            statuses = [http.get(STACKONE_ACCOUNTS, headers={"x-account-id": account}).status_code
                        for account in (LINKED_ACCOUNT, "second-linked", LINKED_ACCOUNT, "second-linked")]
    assert statuses == [200, 200, 200, 429]
