"""The bad-input catalogue (docs/errors.md) through the whole pipeline on moto and the Pleo emulator:
each bad item is named and the rest of the run goes on, or, where going on would be wrong (Pleo could
not be read in full), the run stops before anything is planned or changed.
"""

from __future__ import annotations

import json
import random
import time

import pytest
from coa_sync.adapters import http as retries
from coa_sync.adapters.pleo import PleoResponseError, PleoTransientError
from coa_sync.models import ActionKind
from coa_sync_local.emulators.pleo import ApiError

from tests.support import API_KEY, COMPANY, write_csv

BUCKET = "coa-sync-snapshots-local"
RUN_FILES = ("manifest.json", "plan.json.gz", "source.json.gz", "target.json.gz")


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(retries, "backoff", lambda attempt: random.uniform(0, 0.01))


def active(emulator) -> dict[str, tuple]:
    return {a["externalId"]: (a["code"], a["name"]) for a in emulator.accounts(COMPANY) if not a["archived"]}


def run_files(runner, tenant="acme") -> list[str]:
    listing = runner.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"runs/{tenant}/").get("Contents", [])
    return [o["Key"] for o in listing if o["Key"].rsplit("/", 1)[-1] in RUN_FILES]


def queued(runner) -> int:
    attributes = runner.sqs.get_queue_attributes(QueueUrl=runner.actions_url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def on_later_pages(emulator, fault) -> None:
    """Serve the first search page as usual; call `fault(request)` for every later page."""
    search = emulator._handlers["search"]

    def handler(request):
        if request.query.get("after"):
            fault(request)
        return search(request)

    emulator._handlers["search"] = handler


def unavailable(request):
    raise ApiError(503, "page unavailable")


def throttled(request):
    raise ApiError(429, "slow down", {"Retry-After": "0"})


def too_slow(request):
    time.sleep(0.5)  # longer than the client's timeout in this test


# -- Pleo cannot be read in full: the run stops before planning, Pleo is untouched ------------------


@pytest.mark.parametrize(("fault", "problem"), [(unavailable, "HTTP 503"), (throttled, "HTTP 429"),
                                                (too_slow, "ReadTimeout")])
def test_pleo_failing_mid_pagination_stops_the_run_before_anything_is_planned(
        emulator, make_runner, tmp_path, monkeypatch, fault, problem):
    # 250 Pleo accounts (three pages of 100); the AS renames them all and drops half: a plan made from
    # the first page alone would update 50 and archive 50, and would create those it never saw.
    emulator.add_company(COMPANY, api_keys=[API_KEY],
                         accounts=[{"externalId": f"e{n}", "name": "Old", "archived": False} for n in range(250)])
    monkeypatch.setenv("PLEO_TIMEOUT_SECONDS", "0.2")
    runner = make_runner(write_csv(tmp_path / "chart.csv", [(f"e{n}", "", "New", True) for n in range(0, 250, 2)]),
                         pleo_max_attempts=2)
    before = emulator.accounts(COMPANY)
    on_later_pages(emulator, fault)
    with pytest.raises(PleoTransientError, match=rf"search: {problem} after 2 attempt\(s\)"):
        runner.run("acme")
    assert emulator.accounts(COMPANY) == before
    assert emulator.calls["batch_create"] == emulator.calls["put"] == 0
    assert run_files(runner) == [] and queued(runner) == 0


@pytest.mark.pleo_off_contract("Pleo made to answer pages of a shape its spec does not allow")
@pytest.mark.parametrize(("shape", "message"), [
    (lambda payload: {"accounts": payload["data"]}, "search page 2: expected 'data' list and 'pagination' object"),
    (lambda payload: {**payload, "data": {"items": payload["data"]}},
     "search page 2: expected 'data' list and 'pagination' object"),
    (lambda payload: {**payload, "pagination": {"hasNextPage": True}},
     "search page 2: hasNextPage without an endCursor"),
])
def test_a_pleo_page_of_unexpected_shape_stops_the_run_before_anything_is_planned(
        emulator, make_runner, tmp_path, shape, message):
    emulator.add_company(COMPANY, api_keys=[API_KEY],
                         accounts=[{"externalId": f"e{n}", "name": "Old", "archived": False} for n in range(150)])
    runner = make_runner(write_csv(tmp_path / "chart.csv", [("e0", "", "New", True)]))
    before = emulator.accounts(COMPANY)
    search = emulator._handlers["search"]

    def reshaped(request):
        status, payload = search(request)
        return (status, shape(payload)) if request.query.get("after") else (status, payload)

    emulator._handlers["search"] = reshaped
    with pytest.raises(PleoResponseError, match=message):
        runner.run("acme")
    assert emulator.accounts(COMPANY) == before
    assert run_files(runner) == [] and queued(runner) == 0


@pytest.mark.pleo_off_contract("Pleo made to answer an account without its required name")
def test_a_pleo_account_of_unexpected_shape_is_reported_and_left_alone(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=[
        {"externalId": "odd", "name": "Odd", "archived": False},
        {"externalId": "gone", "name": "Gone", "archived": False},
        {"externalId": "keep", "name": "Keep", "archived": False}])
    # The AS has neither "odd" nor "gone": both would be archived, but "odd" comes back without a name.
    runner = make_runner(write_csv(tmp_path / "chart.csv", [("keep", "", "Keep", True), ("new", "1", "New", True)]))
    search = emulator._handlers["search"]

    def without_name(request):
        status, payload = search(request)
        for item in payload["data"]:
            if item["externalId"] == "odd":
                del item["name"]
        return status, payload

    emulator._handlers["search"] = without_name
    result = runner.run("acme")
    assert {(a.kind, a.external_id) for a in result.plan.actions} == {(ActionKind.ARCHIVE, "gone"),
                                                                       (ActionKind.CREATE, "new")}
    (error,) = result.plan.errors
    assert (error.external_id, error.location, error.message) == ("odd", "pleo active page 1 item 0",
                                                                   "name: Field required")
    assert set(active(emulator)) == {"odd", "keep", "new"}
    assert result.failed == []


# -- bad rows in the AS: named, held, and the rest goes on ------------------------------------------


def test_over_long_names_and_codes_are_named_held_and_the_rest_is_synced(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=[
        {"externalId": "long-name", "name": "Twin", "archived": False}])
    rows = [("long-name", "1", "n" * 256, True), ("long-code", "9" * 256, "Code", True),
            ("e" * 256, "2", "Id", True), ("fits", "3" * 255, "n" * 255, True), ("ok", "4", "Ok", True)]
    runner = make_runner(write_csv(tmp_path / "chart.csv", rows))
    result = runner.run("acme")
    assert {(e.location, e.external_id, e.field) for e in result.plan.errors} == {
        ("chart.csv:2", "long-name", "name"), ("chart.csv:3", "long-code", "code"), ("chart.csv:4", "e" * 256,
                                                                                    "externalId")}
    assert all("at most 255 characters" in e.message for e in result.plan.errors)
    # The bad row's Pleo twin is neither archived nor renamed; the rows that fit are synced.
    assert active(emulator) == {"long-name": (None, "Twin"), "fits": ("3" * 255, "n" * 255), "ok": ("4", "Ok")}
    assert result.failed == [] and result.applied.create == 2


def test_duplicate_external_ids_in_the_source_leave_the_pleo_twin_alone(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=[{"externalId": "d", "name": "Old", "archived": False}])
    rows = [("d", "1", "First", True), ("a", "2", "A", True), ("d", "3", "Second", False), ("x", "4", "X", True),
            ("x", "5", "X again", True)]
    runner = make_runner(write_csv(tmp_path / "chart.csv", rows))
    result = runner.run("acme")
    assert {(e.external_id, e.field, e.message) for e in result.plan.errors} == {
        ("d", "externalId", "appears 2 times in the source (chart.csv:2, chart.csv:4); it is left alone"),
        ("x", "externalId", "appears 2 times in the source (chart.csv:5, chart.csv:6); it is left alone")}
    assert active(emulator) == {"d": (None, "Old"), "a": ("2", "A")}


def test_invalid_unicode_in_a_json_source_is_named_and_the_rest_is_synced(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=[{"externalId": "twin", "name": "Twin",
                                                                  "archived": False}])
    source = tmp_path / "chart.json"
    source.write_bytes(b'[{"externalId": "bad\\ud800", "code": "1", "name": "Cash", "active": true},'
                       b' {"externalId": "twin", "code": "2", "name": "Caf\\udce9", "active": true},'
                       b' {"externalId": "ok", "code": "3", "name": "K\xc3\xb8rsel \xe6\x97\x85\xe8\xb4\xb9",'
                       b' "active": true}]')
    runner = make_runner(str(source))
    result = runner.run("acme")
    assert {(e.location, e.external_id, e.field) for e in result.plan.errors} == {
        ("chart.json[0]", "bad\\ud800", "externalId"), ("chart.json[1]", "twin", "name")}
    assert active(emulator) == {"twin": (None, "Twin"), "ok": ("3", "Kørsel 旅费")}


@pytest.mark.parametrize("content", [b"[]", json.dumps([{"externalId": "e0", "name": "Zero", "active": False}])
                                     .encode()])
def test_an_empty_or_all_inactive_json_source_archives_nothing(emulator, make_runner, tmp_path, content):
    emulator.add_company(COMPANY, api_keys=[API_KEY],
                         accounts=[{"externalId": f"e{n}", "name": f"E{n}", "archived": False} for n in range(3)])
    (tmp_path / "chart.json").write_bytes(content)
    runner = make_runner(str(tmp_path / "chart.json"))
    before = emulator.accounts(COMPANY)
    result = runner.run("acme")
    assert result.plan.actions == [] and len(result.plan.held) == 3
    assert result.plan.held_reason == "the source has no active accounts; 3 archive(s) held back"
    assert emulator.accounts(COMPANY) == before


def test_every_item_pleo_rejects_is_reported_not_only_the_first_ten(emulator, make_runner, tmp_path):
    emulator.add_company(COMPANY, api_keys=[API_KEY], tax_codes=["VAT25"])
    rows = [(f"bad{n}", str(n), f"Bad {n}", True, "NO-SUCH-TAX") for n in range(15)] + [("ok", "99", "Ok", True)]
    runner = make_runner(write_csv(tmp_path / "chart.csv", rows))
    result = runner.run("acme")
    assert sorted(f.external_id for f in result.failed) == sorted(f"bad{n}" for n in range(15))
    assert all(f.reasons == ["OTHER"] for f in result.failed)
    assert len(runner.dead_letters()) == 15  # and they are all still there
    assert set(active(emulator)) == {"ok"}
