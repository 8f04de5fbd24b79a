"""The Pleo client over real HTTP against the emulator: pages, retries, limits, errors."""

from __future__ import annotations

import time

import httpx
import pytest
from coa_sync.adapters.pleo import (
    API_CALLS,
    NewAccount,
    PleoBudgetSpent,
    PleoClient,
    PleoCredentials,
    PleoRequestError,
    PleoTransientError,
)
from coa_sync.models import AccountFields
from coa_sync.tokenbucket import Rate, TokenBucket
from coa_sync_local.emulators.pleo import PleoEmulator

from tests.support import API_KEY, COMPANY, budget


def client(emulator: PleoEmulator, *, limit=500, window=60.0, credentials=None, **options) -> PleoClient:
    return PleoClient(emulator.url, credentials or PleoCredentials(api_key=API_KEY),
                      budget=budget(limit, window), **{"timeout": 2.0, **options})


def seed(emulator: PleoEmulator, count: int, *, archived_every: int = 0) -> None:
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=[
        {"externalId": f"ext-{n}", "code": str(n), "name": f"Account {n}",
         "archived": bool(archived_every and n % archived_every == 0)}
        for n in range(count)])


def new(external_id: str, name: str = "Name") -> NewAccount:
    return NewAccount(external_id, AccountFields(name=name, code="1"))


def test_snapshot_reads_every_page_active_and_archived():
    with PleoEmulator(page_size_cap=50) as emulator:
        seed(emulator, 1234, archived_every=3)
        API_CALLS.clear()
        with client(emulator) as pleo:
            snapshot = pleo.snapshot(COMPANY)
    assert sorted(a.external_id for a in snapshot.accounts) == sorted(f"ext-{n}" for n in range(1234))
    assert sum(a.archived for a in snapshot.accounts) == len(range(0, 1234, 3))
    # 822 active and 412 archived accounts, 50 a page (the server's cap decides): ceil(822/50) + ceil(412/50).
    assert API_CALLS["search"] == 17 + 9
    assert snapshot.errors == []


def test_each_search_names_the_status_it_wants_and_sends_the_required_flags(pleo):
    bodies = []
    search = pleo._handlers["search"]

    def spy(request):
        bodies.append(request.json())
        return search(request)

    pleo._handlers["search"] = spy
    with client(pleo) as api:
        api.snapshot(COMPANY)
    flags = {"companyId": COMPANY, "excludeIfAssignedToCategory": False, "excludeIfAssignedToContraAccount": False}
    assert bodies == [{**flags, "archived": False}, {**flags, "archived": True}]


def test_oauth_token_works_like_an_api_key():
    with PleoEmulator() as emulator:
        emulator.add_company(COMPANY, tokens=["tok-1"], accounts=[{"externalId": "a", "name": "A", "archived": False}])
        with client(emulator, credentials=PleoCredentials(access_token="tok-1")) as pleo:
            assert [a.external_id for a in pleo.snapshot(COMPANY).accounts] == ["a"]


def test_bad_credentials_are_a_permanent_error(pleo):
    with client(pleo, credentials=PleoCredentials(api_key="wrong")) as bad, pytest.raises(PleoRequestError) as info:
        bad.snapshot(COMPANY)
    assert info.value.status == 401
    assert "wrong" not in str(info.value)


def test_429_waits_for_retry_after_then_succeeds(pleo):
    pleo.inject("rate_limit", count=1, endpoint="search", retry_after=1)
    with client(pleo) as api:
        started = time.monotonic()
        api.snapshot(COMPANY)
    assert time.monotonic() - started >= 1.0
    assert pleo.responses[429] == 1 and pleo.responses[200] == 2  # the active accounts' search again, the archived


def test_5xx_and_dropped_connections_are_retried(pleo):
    pleo.inject("error", count=2, endpoint="batch_create", status=503)
    pleo.inject("drop", count=1, endpoint="batch_create")
    with client(pleo) as api:
        result = api.batch_create(COMPANY, [new("a")])
    assert list(result.created) == ["a"]
    assert len(pleo.accounts(COMPANY)) == 1


def test_retry_after_a_lost_response_reports_already_exists(pleo):
    # Pleo created the account but the answer was lost: the retry meets the existing account.
    pleo.inject("drop_after", count=1, endpoint="batch_create")
    with client(pleo) as api:
        result = api.batch_create(COMPANY, [new("a")])
    assert result.failed == {"a": ["EXTERNAL_ID_ALREADY_EXISTS"]}
    assert len(pleo.accounts(COMPANY)) == 1


def test_gives_up_after_max_attempts_with_a_transient_error(pleo):
    pleo.inject("error", count=10, status=500)
    with client(pleo, max_attempts=3) as api, pytest.raises(PleoTransientError, match="after 3 attempt"):
        api.snapshot(COMPANY)
    assert pleo.responses[500] == 3


def test_retry_after_longer_than_the_wait_budget_is_not_slept(pleo):
    pleo.inject("rate_limit", count=1, retry_after=120)
    with client(pleo, max_wait=5) as api, pytest.raises(PleoTransientError, match="HTTP 429"):
        api.snapshot(COMPANY)


def test_timeouts_are_retried(pleo):
    pleo.inject("slow", count=1, delay=1.5)
    API_CALLS.clear()
    with client(pleo, timeout=0.5) as api:
        assert api.snapshot(COMPANY).accounts == []
    assert API_CALLS["search"] == 3  # the first search timed out and was sent again, then the second


def test_batch_create_reports_created_and_failed_with_reasons(pleo):
    with client(pleo) as api:
        result = api.batch_create(COMPANY, [new("a"), new("b", name=""), new("a"), new("  ")])
    assert list(result.created) == ["a"]
    assert result.failed == {"b": ["NAME_EMPTY"], "a": ["EXTERNAL_ID_ALREADY_EXISTS"], "  ": ["EXTERNAL_ID_EMPTY"]}


def test_batch_size_limits_are_checked_before_sending(pleo):
    with client(pleo) as api:
        with pytest.raises(ValueError):
            api.batch_create(COMPANY, [])
        with pytest.raises(ValueError):
            api.batch_create(COMPANY, [new(f"e{n}") for n in range(1001)])
        assert len(api.batch_create(COMPANY, [new(f"e{n}") for n in range(1000)]).created) == 1000
    assert pleo.calls["batch_create"] == 1


def test_put_is_a_full_update_and_find_sees_archived(pleo):
    with client(pleo) as api:
        created = api.batch_create(COMPANY, [NewAccount("a", AccountFields(name="A", code="1",
                                                                           tax_code_external_id="T"))]).created["a"]
        api.put(created.id, AccountFields(name="A2"), archived=True)
        found = api.find(COMPANY, "a")
    assert found is not None and found.archived and found.name == "A2"
    assert found.code is None and found.tax_code_external_id is None


def test_put_on_unknown_account_is_a_404(pleo):
    with client(pleo) as api, pytest.raises(PleoRequestError) as info:
        api.put("00000000-0000-4000-8000-000000000000", AccountFields(name="A"), archived=False)
    assert info.value.status == 404


def test_client_budget_keeps_under_the_server_limit():
    # A minute played in one second: the server allows 12 per window, the client spends 10.
    with PleoEmulator(rate_limit=12, rate_window_seconds=1.0) as emulator:
        seed(emulator, 0)
        with client(emulator, limit=10, window=1.0) as api:
            for _ in range(35):
                api.find(COMPANY, "nothing")
    assert emulator.responses[429] == 0
    assert emulator.responses[200] == 70  # a find searches the active accounts, then the archived


def test_a_budget_spent_for_longer_than_the_client_may_wait_sends_nothing_and_says_when_to_come_back(pleo):
    budget = TokenBucket(Rate(per_minute=2, burst=1, headroom=1.0))  # one request, then one every 30 s
    with PleoClient(pleo.url, PleoCredentials(api_key=API_KEY), budget=budget, max_wait=5.0) as api:
        api.batch_create(COMPANY, [new("a")])
        with pytest.raises(PleoBudgetSpent) as spent:
            api.batch_create(COMPANY, [new("b")])
    assert isinstance(spent.value, PleoTransientError)  # the writer retries it, as any transient failure
    assert 29 < spent.value.retry_after <= 30 and pleo.calls["batch_create"] == 1
    assert str(spent.value).startswith("batch_create: the Pleo rate budget has no request left for another")


def test_unexpected_page_shape_is_a_clear_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": []})

    api = PleoClient("http://127.0.0.1:9", PleoCredentials(api_key="k"), budget=budget(),
                     transport=httpx.MockTransport(handler))
    with pytest.raises(Exception, match="search page 1: expected 'data' list"):
        api.snapshot(COMPANY)


def test_retry_after_zero_means_retry_now(pleo):
    slept: list[float] = []
    pleo.inject("rate_limit", count=1, endpoint="search", retry_after=0)
    with client(pleo, sleep=slept.append) as api:
        api.snapshot(COMPANY)
    assert slept == [0.0]
