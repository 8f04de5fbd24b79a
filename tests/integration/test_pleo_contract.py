"""The contract check itself (tests/conftest.py's pleo_contract_log): it catches what breaks the contract."""

from __future__ import annotations

import json

import httpx
import pytest
from coa_sync.adapters.pleo import PleoClient, PleoCredentials, PleoRequestError
from coa_sync_local.emulators import pleo_contract

from tests.support import API_KEY, COMPANY, budget


def logged(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.pleo_off_contract("the test serves an answer the contract refuses, to see it caught")
def test_an_answer_off_the_contract_is_logged(pleo, pleo_contract_log):
    search = pleo._handlers["search"]

    def null_cursor(request):
        status, payload = search(request)
        payload["pagination"]["endCursor"] = None  # the spec's cursors are strings, never null
        return status, payload

    pleo._handlers["search"] = null_cursor
    with PleoClient(pleo.url, PleoCredentials(api_key=API_KEY), budget=budget()) as client:
        client.snapshot(COMPANY)
    (first, second) = logged(pleo_contract_log)
    assert first == second
    assert first["kind"] == "response" and first["endpoint"] == "search" and first["status"] == 200
    assert "pagination.endCursor: None" in first["problem"]


@pytest.mark.pleo_off_contract("the test sends, as coa-sync's client, a request the contract refuses")
def test_a_request_from_the_client_off_the_contract_is_refused_and_logged(pleo, pleo_contract_log):
    with PleoClient(pleo.url, PleoCredentials(api_key=API_KEY), budget=budget(),
                    page_size=1000) as client, pytest.raises(PleoRequestError) as refused:
        client.snapshot(COMPANY)
    assert refused.value.status == 400
    assert refused.value.message == "query limit: 1000 is greater than the maximum of 100"
    assert [(v["kind"], v["status"]) for v in logged(pleo_contract_log)] == [("request", 400)]


def test_others_requests_refused_are_not_the_clients_violations(pleo, pleo_contract_log):
    response = httpx.post(f"{pleo.url}/v1/chart-of-accounts:search", json={"companyId": COMPANY},
                          auth=(API_KEY, ""))
    assert response.status_code == 400
    assert logged(pleo_contract_log) == []  # the 400 itself is a documented answer


def test_the_document_is_pleos_six_account_endpoints():
    spec = pleo_contract._openapi().spec
    assert sorted((spec / "paths").keys()) == ["/v1/chart-of-accounts", "/v1/chart-of-accounts/batch",
                                               "/v1/chart-of-accounts/{accountId}", "/v1/chart-of-accounts:search"]
    search = spec / "components" / "schemas" / "BookkeepingAccountSearchRequestV1"
    assert sorted((search / "required").read_value()) == ["companyId", "excludeIfAssignedToCategory",
                                           "excludeIfAssignedToContraAccount"]
    assert "includeArchived" not in (search / "properties").read_value()
