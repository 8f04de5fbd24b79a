"""The Pleo emulator, over real HTTP: what the sync's client and tests rely on it to do."""

import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from coa_sync_local.emulators.pleo import PleoEmulator

COMPANY = str(uuid.uuid4())
OTHER_COMPANY = str(uuid.uuid4())
KEY, TOKEN, OTHER_KEY = "pls_test_key", "oauth-token", "pls_other_key"
ROOT = Path(__file__).resolve().parents[2]
WELL_FORMED_CURSOR = base64.b32encode(bytes(8)).decode()  # base32, as Pleo's cursors are
# The search body's required fields besides companyId.
FLAGS = {"excludeIfAssignedToCategory": False, "excludeIfAssignedToContraAccount": False}
JSON = {"Content-Type": "application/json"}


def seed(n, prefix="ext-", **extra):
    return [
        {"externalId": f"{prefix}{i}", "name": f"Account {i}", "code": str(1000 + i), **extra}
        for i in range(n)
    ]


def item(external_id, name="Name", **extra):
    return {"externalId": external_id, "name": name, "archived": False, **extra}


@pytest.fixture
def emu():
    with PleoEmulator(page_size_cap=3, default_page_size=2) as emulator:
        emulator.add_company(COMPANY, api_keys=[KEY], tokens=[TOKEN], tax_codes=["VAT25", "VAT0"])
        emulator.add_company(OTHER_COMPANY, api_keys=[OTHER_KEY], accounts=seed(1, prefix="other-"))
        yield emulator


def http_client(url, key=KEY):
    # Plain HTTP: verify=False spares each client loading the CA bundle (~30 ms).
    return httpx.Client(base_url=url, auth=(key, ""), timeout=5, verify=False)


@pytest.fixture
def client(emu):
    with http_client(emu.url) as c:
        yield c


def search(client, body=None, **params):
    return client.post(
        "/v1/chart-of-accounts:search", params=params, json={"companyId": COMPANY, **FLAGS, **(body or {})}
    )


def batch(client, items, company=COMPANY):
    return client.post("/v1/chart-of-accounts/batch", json={"companyId": company, "items": items})


def basic(key, password=""):
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()}


def read_all(client, body=None, **params):
    """Every page of a search; the pages too, for assertions on pagination."""
    pages, after = [], None
    while True:
        page = search(client, body, **params, **({"after": after} if after else {})).json()
        pages.append(page)
        if not page["pagination"]["hasNextPage"]:
            return [a for p in pages for a in p["data"]], pages
        after = page["pagination"]["endCursor"]


def add_accounts(emu, accounts):
    """Create accounts in the fixture's COMPANY through the batch endpoint."""
    with http_client(emu.url) as c:
        for start in range(0, len(accounts), 1000):
            items = [{"archived": False, **a} for a in accounts[start : start + 1000]]
            assert batch(c, items).json()["data"]["failed"] == []


# --- lifecycle, auth -----------------------------------------------------------------


def test_binds_loopback_and_stops_serving():
    emulator = PleoEmulator().start()
    url = emulator.url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    emulator.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/v1/chart-of-accounts/x", timeout=1)


def test_stop_closes_kept_alive_connections():
    emulator = PleoEmulator().start()
    emulator.add_company(COMPANY, api_keys=[KEY])
    connection = http.client.HTTPConnection("127.0.0.1", int(emulator.url.rsplit(":", 1)[1]), timeout=2)
    connection.request("GET", f"/v1/chart-of-accounts/{uuid.uuid4()}", headers=basic(KEY))
    assert connection.getresponse().read() and connection.sock is not None
    emulator.stop()
    with pytest.raises((http.client.HTTPException, OSError)):
        connection.request("GET", f"/v1/chart-of-accounts/{uuid.uuid4()}", headers=basic(KEY))
        connection.getresponse()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("nope"),
        basic(KEY, "secret"),
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic %%%"},
    ],
    ids=["missing", "unknown-key", "non-empty-password", "unknown-token", "garbled-basic"],
)
def test_missing_or_unknown_credentials_are_401(emu, headers):
    response = httpx.post(
        f"{emu.url}/v1/chart-of-accounts:search", json={"companyId": COMPANY}, headers=headers
    )
    assert response.status_code == 401
    assert response.json()["status"] == 401 and response.json()["error"] == "Unauthorized"
    assert emu.calls.total() == 0


def test_basic_api_key_and_bearer_token_are_accepted(emu):
    for headers in (basic(KEY), {"Authorization": f"Bearer {TOKEN}"}):
        response = httpx.post(
            f"{emu.url}/v1/chart-of-accounts:search", json={"companyId": COMPANY, **FLAGS}, headers=headers
        )
        assert response.status_code == 200, response.text
    assert emu.calls["search"] == 2


def test_another_companys_data_is_403_by_company_and_404_by_id(emu, client):
    assert search(client, {"companyId": OTHER_COMPANY}).status_code == 403
    assert batch(client, [item("x")], company=OTHER_COMPANY).status_code == 403
    create = client.post("/v1/chart-of-accounts", json={"companyId": OTHER_COMPANY, **item("x")})
    assert create.status_code == 403
    other_id = emu.accounts(OTHER_COMPANY)[0]["id"]
    assert client.get(f"/v1/chart-of-accounts/{other_id}").status_code == 404
    assert (
        client.put(f"/v1/chart-of-accounts/{other_id}", json={"name": "n", "archived": True}).status_code
        == 404
    )
    assert client.delete(f"/v1/chart-of-accounts/{other_id}").status_code == 404
    assert emu.accounts(OTHER_COMPANY)[0]["name"] == "Account 0" and emu.accounts(COMPANY) == []


# --- search ---------------------------------------------------------------------------


def test_search_reads_every_account_once_across_capped_pages(emu, client):
    add_accounts(emu, seed(10))
    accounts, pages = read_all(client, limit=100)
    assert [a["externalId"] for a in accounts] == [f"ext-{i}" for i in range(10)]
    assert [len(p["data"]) for p in pages] == [3, 3, 3, 1]
    first, last = pages[0]["pagination"], pages[-1]["pagination"]
    assert first["currentRequestPagination"]["limit"] == 3  # clamped to the cap
    assert first["hasPreviousPage"] is False and last["hasPreviousPage"] is True
    assert last["hasNextPage"] is False and first["total"] == 10
    assert last["endCursor"] == last["startCursor"]
    assert set(accounts[0]) == {
        "id",
        "companyId",
        "externalId",
        "code",
        "name",
        "archived",
        "taxCodeExternalId",
        "metadata",
    }
    assert len(search(client).json()["data"]) == 2  # default page size


def test_cursors_survive_inserts_and_deletes_during_paging(emu, client):
    add_accounts(emu, seed(6))
    first = search(client, limit=3).json()
    seen = [a["externalId"] for a in first["data"]]
    assert batch(client, [item("late-1"), item("late-2")]).status_code == 201
    assert client.delete(f"/v1/chart-of-accounts/{first['data'][0]['id']}").status_code == 204
    after = first["pagination"]["endCursor"]
    while after:
        page = search(client, limit=3, after=after).json()
        seen += [a["externalId"] for a in page["data"]]
        after = page["pagination"]["endCursor"] if page["pagination"]["hasNextPage"] else None
    assert seen == [f"ext-{i}" for i in range(6)] + ["late-1", "late-2"]


def test_before_cursor_pages_backwards(emu, client):
    add_accounts(emu, seed(7))
    last = read_all(client, limit=3)[1][-1]
    page = search(client, limit=3, before=last["pagination"]["startCursor"]).json()
    assert [a["externalId"] for a in page["data"]] == ["ext-3", "ext-4", "ext-5"]
    assert page["pagination"]["hasNextPage"] is True and page["pagination"]["hasPreviousPage"] is True


@pytest.mark.parametrize(
    "params",
    [
        {"after": "not-base32"},
        {"after": "AAAA"},
        {"before": "~~~~"},
        {"after": WELL_FORMED_CURSOR, "before": WELL_FORMED_CURSOR},
        {"limit": "0"},
        {"limit": "ten"},
        {"limit": "101"},  # no maximum is documented: over 100 is refused, not capped
        {"offset": "1", "after": WELL_FORMED_CURSOR},
        {"offset": "-1"},
        {"sorting_keys": "name", "sorting_order": "ASC"},
        {"sorting_order": "UP"},
    ],
)
def test_bad_page_parameters_are_400(client, params):
    response = search(client, **params)
    assert response.status_code == 400 and response.json()["message"]


@pytest.mark.parametrize("missing", ["companyId", "excludeIfAssignedToCategory", "excludeIfAssignedToContraAccount"])
def test_a_search_without_a_required_field_is_400_naming_it(client, missing):
    body = {key: value for key, value in {"companyId": COMPANY, **FLAGS}.items() if key != missing}
    response = client.post("/v1/chart-of-accounts:search", json=body)
    assert response.status_code == 400
    assert response.json()["message"] == f"body: '{missing}' is a required property"


def test_offset_pages_count_from_the_first_match(emu, client):
    add_accounts(emu, seed(5))
    page = search(client, offset=3, limit=3).json()
    assert [a["externalId"] for a in page["data"]] == ["ext-3", "ext-4"]
    assert page["pagination"]["hasPreviousPage"] is True and page["pagination"]["hasNextPage"] is False
    assert page["pagination"]["currentRequestPagination"]["offset"] == 3


def test_any_well_formed_cursor_is_accepted(client):
    assert search(client, after=WELL_FORMED_CURSOR).status_code == 200
    assert search(client, before=WELL_FORMED_CURSOR).status_code == 200


def test_archived_filters_strictly_ignore_include_archived(emu, client):
    add_accounts(emu, [item("active"), item("gone", archived=True)])

    def ids(body):
        return [a["externalId"] for a in read_all(client, body)[0]]

    assert ids({}) == ["active"]  # no `archived`: active accounts only
    assert ids({"includeArchived": True}) == ["active"]  # not in the spec: ignored
    assert ids({"archived": None}) == ["active"]
    assert ids({"archived": True}) == ["gone"]
    assert ids({"includeArchived": True, "archived": False}) == ["active"]
    assert search(client, {"includeArchived": True}).json()["pagination"]["total"] == 1
    assert search(client, {"archived": True}).json()["pagination"]["total"] == 1


def test_lenient_reading_honours_include_archived():
    with PleoEmulator(lenient=True) as emulator, http_client(emulator.url) as c:
        emulator.add_company(COMPANY, api_keys=[KEY], accounts=[item("active"), item("gone", archived=True)])
        assert [a["externalId"] for a in search(c, {"includeArchived": True}).json()["data"]] == ["active", "gone"]
        assert [a["externalId"] for a in search(c).json()["data"]] == ["active"]
        assert [a["externalId"] for a in search(c, {"includeArchived": True, "archived": True}).json()["data"]] \
            == ["gone"]


def test_field_filters(emu, client):
    add_accounts(emu, seed(5))
    two = emu.accounts(COMPANY)[2]
    assert [a["id"] for a in search(client, {"externalId": "ext-2"}).json()["data"]] == [two["id"]]
    assert [a["externalId"] for a in search(client, {"codes": ["1001", "1003"]}).json()["data"]] == [
        "ext-1",
        "ext-3",
    ]
    assert search(client, {"ids": [two["id"].upper()]}).json()["data"] == [two]
    assert search(client, {"name": "Account 4", "code": "1004"}).json()["pagination"]["total"] == 1
    assert search(client, {"ids": ["nope"]}).status_code == 400
    assert search(client, {"archived": "yes"}).status_code == 400


# --- batch create --------------------------------------------------------------------


def test_batch_of_1000_is_created_and_0_or_1001_are_400(emu, client):
    response = batch(client, [item(f"b-{i}") for i in range(1000)])
    assert response.status_code == 201
    assert len(response.json()["data"]["created"]) == 1000 and response.json()["data"]["failed"] == []
    for size in (0, 1001):
        response = batch(client, [item(f"c-{i}") for i in range(size)])
        assert response.status_code == 400 and "items" in response.json()["message"]
    assert len(emu.accounts(COMPANY)) == 1000


def test_batch_reports_each_reason_and_keeps_what_it_created(emu, client):
    add_accounts(emu, [item("exists")])
    items = [
        item("ok-1", code="1", taxCodeExternalId="VAT25", metadata={"erp": {"id": 1}}),
        item("exists"),
        item("   "),
        item("blank-name", name="  "),
        item("empty-name", name=""),
        item("bad-tax", taxCodeExternalId="VAT99"),
        item("ok-1"),  # created earlier in this batch
        item(" ", name=""),
        item("ok-2", archived=True),
    ]
    response = batch(client, items)
    assert response.status_code == 201
    data = response.json()["data"]
    assert [a["externalId"] for a in data["created"]] == ["ok-1", "ok-2"]
    assert data["created"][0] | {"id": None} == {
        "id": None,
        "companyId": COMPANY,
        "externalId": "ok-1",
        "code": "1",
        "name": "Name",
        "archived": False,
        "taxCodeExternalId": "VAT25",
        "metadata": {"erp": {"id": 1}},
    }
    assert data["created"][1]["archived"] is True
    assert [f["reasons"] for f in data["failed"]] == [
        ["EXTERNAL_ID_ALREADY_EXISTS"],
        ["EXTERNAL_ID_EMPTY"],
        ["NAME_EMPTY"],
        ["NAME_EMPTY"],
        ["OTHER"],
        ["EXTERNAL_ID_ALREADY_EXISTS"],
        ["EXTERNAL_ID_EMPTY", "NAME_EMPTY"],
    ]
    assert [f["request"] for f in data["failed"]] == items[1:8]
    assert [a["externalId"] for a in emu.accounts(COMPANY)] == ["exists", "ok-1", "ok-2"]


@pytest.mark.parametrize(
    ("bad_item", "problem"),
    [
        (item(""), "body items[1].externalId: '' should be non-empty"),
        (item("x" * 256), "body items[1].externalId: '" + "x" * 256 + "' is too long"),
        (item("long-name", name="n" * 256), "body items[1].name: '" + "n" * 256 + "' is too long"),
        (item("long-code", code="c" * 256), "body items[1].code: '" + "c" * 256 + "' is too long"),
    ],
)
def test_a_field_the_schema_refuses_fails_the_whole_batch(emu, client, bad_item, problem):
    response = batch(client, [item("fine"), bad_item])
    assert response.status_code == 400 and response.json()["message"] == problem
    assert emu.accounts(COMPANY) == []


@pytest.mark.parametrize(
    ("bad_item", "field"),
    [
        ({"externalId": "a", "archived": False}, "body items[1]: 'name' is a required property"),
        ({"externalId": "a", "name": "n", "archived": "no"}, "body items[1].archived"),
        ({"externalId": 7, "name": "n", "archived": False}, "body items[1].externalId"),
        ({"externalId": "a", "name": "n", "archived": False, "metadata": []}, "body items[1].metadata"),
        ({"externalId": "a", "name": "n", "archived": False, "metadata": {"k": "v"}}, "body items[1].metadata.k"),
        ("not an object", "body items[1]"),
    ],
)
def test_malformed_batch_item_is_400_for_the_whole_request(emu, client, bad_item, field):
    response = batch(client, [item("fine"), bad_item])
    assert response.status_code == 400
    assert field in response.json()["message"]
    assert emu.accounts(COMPANY) == []


# --- single create, get, put, delete ---------------------------------------------------


def test_single_create_then_200_when_it_matches_and_409_when_it_differs(emu, client):
    body = {"companyId": COMPANY, **item("one", code="1")}
    created = client.post("/v1/chart-of-accounts", json=body)
    assert created.status_code == 201
    account = created.json()["data"]
    assert client.get(f"/v1/chart-of-accounts/{account['id']}").json() == {"data": account}
    matched = client.post("/v1/chart-of-accounts", json=body)  # "Request matched existing account."
    assert matched.status_code == 200 and matched.json() == {"data": account}
    assert client.post("/v1/chart-of-accounts", json={**body, "name": "Other"}).status_code == 409
    response = client.post("/v1/chart-of-accounts", json={**body, "externalId": "two", "name": " "})
    assert response.status_code == 400 and "name" in response.json()["message"]
    assert len(emu.accounts(COMPANY)) == 1


def test_put_is_a_full_update(emu, client):
    add_accounts(emu, [item("e1", code="1000", taxCodeExternalId="VAT25", metadata={"a": {"b": 1}})])
    account = emu.accounts(COMPANY)[0]
    response = client.put(
        f"/v1/chart-of-accounts/{account['id']}", json={"name": "Renamed", "archived": True}
    )
    assert response.status_code == 200
    expected = {
        **account,
        "name": "Renamed",
        "archived": True,
        "code": None,
        "taxCodeExternalId": None,
        "metadata": None,
    }
    assert response.json()["data"] == expected and emu.accounts(COMPANY) == [expected]
    body = {
        "name": "Back",
        "archived": False,
        "code": "2000",
        "externalId": "ignored",
        "taxCodeExternalId": "VAT0",
    }
    updated = client.put(f"/v1/chart-of-accounts/{account['id']}", json=body).json()["data"]
    assert updated == {
        **expected,
        "name": "Back",
        "archived": False,
        "code": "2000",
        "taxCodeExternalId": "VAT0",
    }


@pytest.mark.parametrize(
    "body",
    [
        {"archived": False},
        {"name": "n"},
        {"name": "", "archived": False},
        {"name": "n" * 256, "archived": False},
        {"name": "n", "archived": False, "code": "c" * 256},
        {"name": "n", "archived": False, "taxCodeExternalId": "X"},
        {"name": 5, "archived": False},
        {"name": "n", "archived": False, "metadata": {"k": 1}},
    ],
)
def test_put_validation_is_400_and_changes_nothing(emu, client, body):
    add_accounts(emu, [item("e1")])
    account = emu.accounts(COMPANY)[0]
    response = client.put(f"/v1/chart-of-accounts/{account['id']}", json=body)
    assert response.status_code == 400 and response.json()["message"]
    assert emu.accounts(COMPANY) == [account]


def test_put_and_get_unknown_ids_are_404(client):
    unknown = uuid.uuid4()
    assert (
        client.put(f"/v1/chart-of-accounts/{unknown}", json={"name": "n", "archived": False}).status_code
        == 404
    )
    assert client.get(f"/v1/chart-of-accounts/{unknown}").status_code == 404


def test_delete_is_204_409_when_linked_and_404_when_unknown(emu):
    emu.add_company(
        company := str(uuid.uuid4()),
        api_keys=["k2"],
        accounts=[{"externalId": "free", "name": "F"}, {"externalId": "used", "name": "U", "linked": True}],
    )
    free, used = emu.accounts(company)
    with http_client(emu.url, "k2") as c:
        assert c.delete(f"/v1/chart-of-accounts/{free['id']}").status_code == 204
        assert c.delete(f"/v1/chart-of-accounts/{used['id']}").status_code == 409
        assert c.delete(f"/v1/chart-of-accounts/{free['id']}").status_code == 404
    assert emu.accounts(company) == [used]


# --- HTTP behaviour -------------------------------------------------------------------


def test_http_errors_are_json_with_status_error_and_message(emu, client):
    cases = [
        (client.get("/v1/unknown"), 404),
        (client.get("/v1/chart-of-accounts:search"), 405),
        (client.post("/v1/chart-of-accounts:search", content=b"{not json", headers=JSON), 400),
        (client.post("/v1/chart-of-accounts:search", json=[1]), 400),
        (client.post("/v1/chart-of-accounts:search", json={}), 400),
        (client.post("/v1/chart-of-accounts/batch", content=b" " * (5 * 1024 * 1024 + 1)), 413),
        (client.get("/v1/chart-of-accounts/not-a-uuid"), 400),
        (client.post("/v1/chart-of-accounts/batch", content=b"{}", headers={"Content-Type": "text/plain"}), 415),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["status"] == status and body["error"] and body["message"]
        assert response.headers["X-RateLimit-Limit"] == "600"
    assert cases[1][0].headers["Allow"] == "POST"
    assert "companyId" in cases[4][0].json()["message"]
    assert cases[2][0].json()["message"] == "body: not valid JSON"
    assert "application/json;charset=UTF-8" in cases[7][0].json()["message"]
    assert emu.responses[400] == 4 and emu.responses[413] == 1 and emu.responses[415] == 1


def test_keep_alive_serves_many_requests_on_one_connection(emu):
    connection = http.client.HTTPConnection("127.0.0.1", int(emu.url.rsplit(":", 1)[1]), timeout=2)
    body = json.dumps({"companyId": COMPANY, **FLAGS})
    for _ in range(3):
        connection.request("POST", "/v1/chart-of-accounts:search", body=body, headers={**basic(KEY), **JSON})
        assert connection.getresponse().read()
        socket_in_use = connection.sock
    connection.request("POST", "/v1/chart-of-accounts:search", body=body, headers={**basic(KEY), **JSON})
    assert connection.getresponse().status == 200 and connection.sock is socket_in_use
    connection.close()


def test_rate_limit_is_429_with_retry_after_then_recovers():
    with PleoEmulator(rate_limit=5, rate_window_seconds=0.5) as emulator:
        emulator.add_company(COMPANY, api_keys=[KEY])
        with http_client(emulator.url) as c:
            remaining = [search(c).headers["X-RateLimit-Remaining"] for _ in range(5)]
            assert remaining == ["4", "3", "2", "1", "0"]
            limited = search(c)
            assert limited.status_code == 429 and limited.json()["status"] == 429
            assert limited.headers["Retry-After"] == "1"  # whole seconds, even for a 0.5 s window
            reset_ms = int(limited.headers["X-RateLimit-Reset-Ms"])
            assert 0 < reset_ms <= 500
            assert emulator.calls["search"] == 5 and emulator.responses[429] == 1
            time.sleep(reset_ms / 1000 + 0.01)
            assert search(c).status_code == 200


def test_the_rate_limit_counts_every_credential_of_a_company_together_and_companies_apart():
    with PleoEmulator(rate_limit=4, rate_window_seconds=30) as emulator:
        emulator.add_company(COMPANY, api_keys=[KEY, "pls_second_key"])
        emulator.add_company(OTHER_COMPANY, api_keys=[OTHER_KEY])
        with http_client(emulator.url) as first, http_client(emulator.url, "pls_second_key") as second, \
                http_client(emulator.url, OTHER_KEY) as other:
            assert [search(c).status_code for c in (first, second, first, second)] == [200] * 4
            assert search(second).status_code == 429  # the company's fifth, whichever key sends it
            assert search(other, {"companyId": OTHER_COMPANY}).status_code == 200  # another company's own


# --- faults -----------------------------------------------------------------------------


def test_error_and_rate_limit_faults_answer_without_doing_the_work(emu, client):
    emu.inject("error", endpoint="batch_create", status=502)
    emu.inject("rate_limit", retry_after=7)
    assert batch(client, [item("a")]).status_code == 502
    limited = batch(client, [item("a")])
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert emu.accounts(COMPANY) == [] and emu.calls["batch_create"] == 0
    assert batch(client, [item("a")]).status_code == 201
    assert emu.faults_fired == {"error": 1, "rate_limit": 1}


def test_faults_only_hit_their_endpoint_and_count(emu, client):
    emu.inject("error", count=2, endpoint="put")
    assert search(client).status_code == 200
    add_accounts(emu, [item("a")])
    url = f"/v1/chart-of-accounts/{emu.accounts(COMPANY)[0]['id']}"
    statuses = [client.put(url, json={"name": "n", "archived": False}).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_drop_closes_the_connection_before_the_work(emu, client):
    emu.inject("drop", endpoint="batch_create")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        batch(client, [item("a")])
    assert emu.accounts(COMPANY) == [] and emu.responses.total() == 0
    assert batch(client, [item("a")]).status_code == 201


def test_drop_after_does_the_work_then_closes_the_connection(emu, client):
    emu.inject("drop_after", endpoint="batch_create")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        batch(client, [item("a")])
    assert [a["externalId"] for a in emu.accounts(COMPANY)] == ["a"]
    assert emu.calls["batch_create"] == 1
    retried = batch(client, [item("a")]).json()["data"]
    assert retried["failed"][0]["reasons"] == ["EXTERNAL_ID_ALREADY_EXISTS"]


def test_slow_fault_delays_then_serves(emu, client):
    emu.inject("slow", delay=0.2)
    started = time.monotonic()
    assert search(client).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_clear_faults_drops_queued_faults_and_chaos(emu, client):
    emu.inject("error", count=5)
    emu.chaos(1.0, kinds=["error"])
    emu.clear_faults()
    assert search(client).status_code == 200


def chaos_run(seed, probability=0.5):
    """Outcomes of 40 sequential requests under chaos: a status code, or 'drop'."""
    with PleoEmulator() as emulator:
        emulator.add_company(COMPANY, api_keys=[KEY])
        emulator.chaos(probability, seed=seed, delay=0.001)
        outcomes = []
        with http_client(emulator.url) as c:
            for i in range(40):
                try:
                    outcomes.append(batch(c, [item(f"e{i}")]).status_code)
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    outcomes.append("drop")
        return outcomes, len(emulator.accounts(COMPANY))


def test_chaos_is_deterministic_by_seed_and_off_at_zero():
    first, same, other = chaos_run(1), chaos_run(1), chaos_run(2)
    assert first == same and first != other
    outcomes = first[0]
    assert {"drop", 201, 429} <= set(outcomes) and set(outcomes) & {500, 502, 503, 504}
    assert chaos_run(1, probability=0) == ([201] * 40, 40)


def test_fault_arguments_are_checked(emu):
    for call in (
        lambda: emu.inject("explode"),
        lambda: emu.inject("error", endpoint="nope"),
        lambda: emu.inject("error", status=200),
        lambda: emu.chaos(2.0),
        lambda: emu.chaos(0.1, endpoints=["nope"]),
    ):
        with pytest.raises(ValueError):
            call()


# --- seeding, CLI ---------------------------------------------------------------------


def test_seeding_checks_its_input_and_snapshots_are_copies(emu):
    with pytest.raises(ValueError):
        emu.add_company("not-a-uuid")
    with pytest.raises(ValueError):
        emu.add_company(str(uuid.uuid4()), api_keys=[KEY])  # the key belongs to COMPANY
    with pytest.raises(ValueError):
        emu.add_company(str(uuid.uuid4()), accounts=[{"externalId": "a", "name": "A"}] * 2)
    with pytest.raises(ValueError):
        emu.add_company(str(uuid.uuid4()), accounts=[{"externalId": "a", "nmae": "A"}])
    snapshot = emu.accounts(OTHER_COMPANY)
    snapshot[0]["name"] = "changed"
    assert emu.accounts(OTHER_COMPANY)[0]["name"] == "Account 0"


def test_cli_serves_until_interrupted(tmp_path):
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps([{"externalId": "e1", "name": "One", "code": "1"}]))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "local"), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coa_sync_local.emulators.pleo",
            "--port",
            "0",
            "--company",
            COMPANY,
            "--api-key",
            KEY,
            "--accounts",
            str(accounts),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline()).group()
        page = httpx.post(f"{url}/v1/chart-of-accounts:search", json={"companyId": COMPANY, **FLAGS}, auth=(KEY, ""))
        assert [a["externalId"] for a in page.json()["data"]] == ["e1"]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
        process.stdout.close()
