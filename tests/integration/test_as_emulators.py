"""The accounting-system emulators pinned to their vendors' documented behaviour, over raw HTTP.

These do not use our connectors, so a misreading in a connector cannot hide behind the same
misreading here.
"""

from __future__ import annotations

import httpx

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


def thredfi_token(http: httpx.Client, business: str = BUSINESS) -> str:
    partner = http.post("/v1/platform/oauth2/token/", auth=(PARTNER, SECRET_KEY),
                        json={"grant_type": "client_credentials", "client_id": PARTNER}).json()
    assert partner["token_type"] == "Bearer" and partner["expires_in"] == 3600
    scoped = http.post(f"/v1/platform/{business}/oauth2/token/",
                       headers={"Authorization": f"Bearer {partner['access_token']}"})
    assert scoped.status_code == 200 and scoped.json()["scope"] == "business_access"
    return scoped.json()["access_token"]


def test_thredfi_pages_cap_at_100_and_create_is_idempotent_on_external_id():
    with thredfi(chart(130)) as system, httpx.Client(base_url=system.emulator.url) as http:
        auth = {"Authorization": f"Bearer {thredfi_token(http)}"}
        page = http.get(COA, params={"page_size": 500, "page": 2}, headers=auth).json()
        assert page["page_info"] == {"total_count": 130, "current_page": 2, "total_pages": 2, "page_size": 100}
        assert len(page["results"]) == 30
        body = {"code": "8000", "name": "Petty Cash", "external_id": "qbo-8000"}
        first = http.post(COA, json=body, headers=auth)
        again = http.post(COA, json=body, headers=auth)
        assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]


def test_thredfi_validation_errors_name_the_fields_with_a_request_id():
    with thredfi(chart(1)) as system, httpx.Client(base_url=system.emulator.url) as http:
        auth = {"Authorization": f"Bearer {thredfi_token(http)}"}
        answer = http.post(COA, headers=auth, json={"name": "No code", "account_type": "revenue",
                                                    "is_non_cash_expense": True, "balance_behavior": "sideways"})
        assert answer.status_code == 400
        body = answer.json()
        assert body["error_code"] == "validation_error" and body["request_id"]
        assert set(body["detail"]["field_errors"]) == {"code", "is_non_cash_expense", "balance_behavior"}


def test_thredfi_tokens_are_scoped_and_expire():
    with thredfi(chart(1)) as system, httpx.Client(base_url=system.emulator.url) as http:
        system.emulator.add_business("99999999-0000-0000-0000-000000000000", "another-partner")
        token = thredfi_token(http)
        other = http.get("/v1/platform/businesses/99999999-0000-0000-0000-000000000000/general-ledger/"
                         "chart-of-accounts/", headers={"Authorization": f"Bearer {token}"})
        assert other.status_code == 403 and other.json()["error_code"] == "permission_denied"
        system.emulator.expire_tokens()
        expired = http.get(COA, headers={"Authorization": f"Bearer {token}"})
        assert expired.status_code == 401 and expired.json()["error_code"] == "token_expired"
        wrong = http.post("/v1/platform/oauth2/token/", auth=(PARTNER, "wrong"), json={})
        assert wrong.status_code == 401


def test_dualentry_caps_limit_silently_and_rejects_bad_paging_and_keys():
    with dualentry(chart(130)) as system, httpx.Client(base_url=system.emulator.url) as http:
        key = {"X-API-KEY": SECRET_KEY}
        page = http.get("/public/v1/accounts/", params={"limit": 500}, headers=key).json()
        assert len(page["items"]) == 100 and page["count"] == 130
        bad = http.get("/public/v1/accounts/", params={"limit": 0}, headers=key)
        assert bad.status_code == 400 and bad.json()["success"] is False
        assert http.get("/public/v1/accounts/").status_code == 401
        assert http.get("/public/v1/accounts/", headers={"X-API-KEY": "x"}).json() == {
            "success": False, "errors": {"__all__": ["API key authentication failed"]}}


def test_dualentry_create_rules_come_back_field_by_field():
    with dualentry(chart(1)) as system, httpx.Client(base_url=system.emulator.url) as http:
        answer = http.post("/public/v1/accounts/", headers={"X-API-KEY": SECRET_KEY}, json={
            "name": "X", "number": 99, "account_type": "cash", "currency_iso_4217_code": None, "is_active": True})
        assert answer.status_code == 400
        errors = answer.json()["errors"]
        assert set(errors) == {"name", "number", "account_type", "parent_account_id"}
        made = http.post("/public/v1/accounts/", headers={"X-API-KEY": SECRET_KEY}, json={
            "name": "Travel", "number": 6100, "account_type": "expense", "currency_iso_4217_code": None,
            "is_active": True, "parent_account_id": None})
        assert made.status_code == 201 and made.json()["number"] == 6100


def test_stackone_needs_its_account_header_and_answers_202_with_index_aligned_errors():
    with stackone(chart(3)) as system, httpx.Client(base_url=system.emulator.url, auth=(SECRET_KEY, "")) as http:
        path = f"/unified/accounting/companies/{STACKONE_COMPANY}/accounts"
        assert http.get(path).status_code == 400  # no x-account-id
        header = {"x-account-id": LINKED_ACCOUNT}
        first = http.get(path, params={"page_size": 2}, headers=header).json()
        assert len(first["data"]) == 2 and first["next"]
        last = http.get(path, params={"page_size": 2, "next": first["next"]}, headers=header).json()
        assert len(last["data"]) == 1 and last["next"] is None
        assert http.get(path, params={"next": "garbage"}, headers=header).status_code == 400
        answer = http.post(path + "/batch", headers=header,
                           json={"items": [{"code": "9", "name": "A"}, {"code": "10"}, {"code": "1001", "name": "B"}]})
        assert answer.status_code == 202
        assert answer.json()["errors"] == [[], ["Missing field: name"], ["Account code already exists: 1001"]]
