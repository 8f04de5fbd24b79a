"""The connectors over real HTTP against their emulators: auth, tokens, pages, retries, writes."""

from __future__ import annotations

import time

import pytest
from coa_sync.connectors import ConnectorRequestError, ConnectorTransientError
from coa_sync.connectors.dualentry import DualEntryConnector, DualEntryCredentials
from coa_sync.connectors.stackone import StackOneConnector, StackOneCredentials
from coa_sync.connectors.thredfi import ThredfiConnector, ThredfiCredentials
from coa_sync.models import AccountFields, Action, ActionKind
from coa_sync.ratelimit import SlidingWindowLimiter

from tests.as_systems import BUSINESS, PARTNER, SECRET_KEY, chart, dualentry, stackone, thredfi


def connect(system, *, sleeps=None, **credentials):
    kind = system.kind
    options = {"limiter": SlidingWindowLimiter(1000), "max_attempts": 3,
               "sleep": (sleeps.append if sleeps is not None else time.sleep)}
    secret = {**system.secret, **credentials}
    if kind == "thredfi":
        return ThredfiConnector(system.config, ThredfiCredentials.model_validate(secret), **options)
    if kind == "dualentry":
        return DualEntryConnector(system.config, DualEntryCredentials.model_validate(secret), **options)
    return StackOneConnector(system.config, StackOneCredentials.model_validate(secret), **options)


def create(external_id: str, code: str | None, name: str = "New account") -> Action:
    return Action(kind=ActionKind.CREATE, external_id=external_id, desired=AccountFields(name=name, code=code))


# -- Thredfi -------------------------------------------------------------------------------


def test_thredfi_token_is_reused_until_it_expires_then_fetched_anew():
    with thredfi(chart(3)) as system:
        connector = connect(system)
        connector.read_accounts()
        connector.read_accounts()
        assert system.emulator.calls["partner_token"] == 1 and system.emulator.calls["business_token"] == 1
        system.emulator.expire_tokens()
        assert len(connector.read_accounts().accounts) == 3  # the 401 got a fresh token, not an error
        assert system.emulator.calls["partner_token"] == 2
        assert system.emulator.responses[401] == 1


def test_thredfi_wrong_api_key_is_a_permanent_error_without_the_key():
    with thredfi(chart(3)) as system, pytest.raises(ConnectorRequestError) as info:
        connect(system, apiKey="not-the-key").read_accounts()
    assert info.value.status == 401 and "authentication_failed" in str(info.value)
    assert "not-the-key" not in str(info.value) and SECRET_KEY not in str(info.value)


def test_thredfi_reads_every_page_and_maps_the_fields():
    rows = chart(205, inactive_every=50)
    with thredfi(rows) as system:
        snapshot = connect(system).read_accounts()
        assert system.emulator.calls["list"] == 3
    by_id = {a.external_id: a for a in snapshot.accounts}
    assert len(by_id) == 205 and snapshot.errors == []
    assert (by_id["thr-7"].code, by_id["thr-7"].name, by_id["thr-7"].active) == ("1007", "Account 7", True)
    assert by_id["thr-50"].active is False


def test_thredfi_external_id_can_come_from_its_external_id_field():
    with thredfi([]) as system:
        system.emulator.add_business(BUSINESS, PARTNER, accounts=[
            {"code": "4000", "name": "Sales", "external_id": "qbo-4000"}, {"code": "4100", "name": "No link"}])
        system.config = system.config.model_copy(update={"external_id_from": "external_id"})
        snapshot = connect(system).read_accounts()
    assert [a.external_id for a in snapshot.accounts] == ["qbo-4000"]
    (error,) = snapshot.errors
    assert error.field == "external_id" and "4100" in error.message


@pytest.mark.parametrize("system_for", [thredfi, dualentry, stackone], ids=["thredfi", "dualentry", "stackone"])
def test_a_list_failing_mid_pagination_raises_instead_of_returning_part_of_the_chart(system_for):
    with system_for(chart(250)) as system:
        sleeps: list[float] = []
        system.emulator.inject("error", count=3, endpoint="list", status=503, skip=1)  # page 1 fine, page 2 fails
        with pytest.raises(ConnectorTransientError, match="503 after 3 attempt"):
            connect(system, sleeps=sleeps).read_accounts()
        assert system.emulator.calls["list"] == 1 and system.emulator.responses[503] == 3
        assert len(sleeps) == 2  # it waited between tries


def test_thredfi_honours_retry_after_and_retries_dropped_connections():
    with thredfi(chart(3)) as system:
        system.emulator.inject("rate_limit", endpoint="list", retry_after=1)
        system.emulator.inject("drop", endpoint="list")
        started = time.monotonic()
        snapshot = connect(system).read_accounts()
        assert time.monotonic() - started >= 1.0
        assert len(snapshot.accounts) == 3 and system.emulator.faults_fired == {"rate_limit": 1, "drop": 1}


def test_thredfi_create_delivered_twice_leaves_one_account():
    with thredfi(chart(2)) as system:
        connector = connect(system)
        first = connector.write([create("pleo-9000", "9000")])
        again = connector.write([create("pleo-9000", "9000")])  # a redelivered message
        assert first.applied == again.applied == ["pleo-9000"] and again.failed == {}
        made = [a for a in system.emulator.accounts(BUSINESS) if a["external_id"] == "pleo-9000"]
        assert len(made) == 1 and made[0]["code"] == "9000"
        assert system.emulator.responses[201] == 1 and system.emulator.responses[200] >= 1


def test_thredfi_create_checks_its_rules_before_sending_and_surfaces_its_errors():
    with thredfi(chart(2)) as system:
        connector = connect(system)
        result = connector.write([
            create("no-code", None),
            create("x" * 101, "9001"),
            create("clash", "1001"),  # the code is taken by another account
            Action(kind=ActionKind.ARCHIVE, external_id="thr-1", account_id="a", desired=AccountFields(name="A")),
        ])
        assert system.emulator.calls["create"] == 1  # only the clash was sent
    assert result.applied == []
    assert result.failed["no-code"] == ["code: Thredfi requires an account code"]
    assert "external_id: at most 100" in result.failed["x" * 101][0]
    (reason,) = result.failed["clash"]
    assert "409" in reason and "conflict" in reason and "request_id req-" in reason
    assert result.failed["thr-1"] == ["thredfi connector cannot archive accounts"]


def test_thredfi_parent_is_given_by_code_and_a_bad_parent_comes_back_field_by_field():
    with thredfi(chart(2)) as system:
        result = connect(system).write([create("child", "1001-01"), create("orphan", "1001-02")],
                                       parents={"child": "1001", "orphan": "no-such-code"})
        child = next(a for a in system.emulator.accounts(BUSINESS) if a["external_id"] == "child")
    assert result.applied == ["child"] and child["parent_account_code"] == "1001"
    reasons = result.failed["orphan"]
    assert reasons[0].startswith("thredfi HTTP 400: validation_error: Invalid input (request_id req-")
    assert reasons[1:] == ["parent_id: No account with UUID, code or external_id 'no-such-code'."]


# -- DualEntry -----------------------------------------------------------------------------


def test_dualentry_reads_full_pages_to_the_end_and_maps_number_to_code():
    with dualentry(chart(200, inactive_every=40)) as system:
        snapshot = connect(system).read_accounts()
        assert system.emulator.calls["list"] == 2  # 100 and 100: `count` says that is all
    by_id = {a.external_id: a for a in snapshot.accounts}
    assert len(by_id) == 200 and by_id["5001"].code == "1001" and by_id["5040"].active is False


def test_dualentry_reads_everything_even_when_the_server_caps_pages_below_our_limit():
    with dualentry(chart(130), max_limit=40) as system:
        snapshot = connect(system).read_accounts()
        assert len(snapshot.accounts) == 130 and system.emulator.calls["list"] == 4


def test_dualentry_missing_or_wrong_key():
    with dualentry(chart(1)) as system:
        with pytest.raises(ConnectorRequestError) as wrong:
            connect(system, apiKey="nope").read_accounts()
        assert wrong.value.status == 403 and "API key authentication failed" in str(wrong.value)
        assert "nope" not in str(wrong.value)


def test_dualentry_malformed_record_names_its_id_and_field():
    with dualentry(chart(2)) as system:
        system.emulator.add_organization("other", raw_accounts=[
            {"id": 7, "number": 1000, "name": "Weird", "is_active": True, "account_type": "not_a_type"},
            {"id": 8, "number": 1001, "name": "Fine", "is_active": True, "account_type": "income"}])
        snapshot = connect(system, apiKey="other").read_accounts()
    assert [a.external_id for a in snapshot.accounts] == ["8"]
    (error,) = snapshot.errors
    assert (error.external_id, error.field, error.location) == ("7", "account_type", "dualentry page 1 item 0")


def test_dualentry_create_delivered_twice_leaves_one_account():
    with dualentry(chart(2)) as system:
        connector = connect(system)
        first = connector.write([create("pleo-a", "6100", "Travel")])
        again = connector.write([create("pleo-a", "6100", "Travel")])
        assert first.applied == again.applied == ["pleo-a"]
        assert [a["number"] for a in system.emulator.accounts(SECRET_KEY)].count(6100) == 1
        assert system.emulator.calls["create"] == 1


def test_dualentry_create_is_validated_before_sending_and_a_taken_number_is_named():
    with dualentry(chart(2)) as system:
        connector = connect(system)
        result = connector.write([
            create("short", "6200", "X"),          # name 2..256
            create("small", "42", "Too small"),    # number 100..9999999999
            create("text", "61-A", "Not a number"),
            create("taken", "1001", "Not Account 1"),
        ])
        assert system.emulator.calls["create"] == 0
    assert result.failed["short"] == ["name: must be 2..256 characters, got 1"]
    assert result.failed["small"] == ["number: must be 100..9999999999, got 42"]
    assert "integer account number" in result.failed["text"][0]
    assert "1001 already belongs to DualEntry account 5001 named 'Account 1'" in result.failed["taken"][0]


# -- StackOne ------------------------------------------------------------------------------


def test_stackone_follows_the_next_cursor_with_basic_auth_and_account_header():
    with stackone(chart(230, inactive_every=23)) as system:
        snapshot = connect(system).read_accounts()
        assert system.emulator.calls["list"] == 3
        with pytest.raises(ConnectorRequestError) as info:
            connect(system, apiKey="bad").read_accounts()
    assert len(snapshot.accounts) == 230 and sum(not a.active for a in snapshot.accounts) == 10
    assert info.value.status == 401


def test_stackone_batch_errors_are_mapped_back_to_their_actions_by_index():
    with stackone(chart(2)) as system:
        result = connect(system).write([
            create("ok-1", "7000", "Fine"),
            create("no-name", "7001", ""),
            create("dup", "1001", "Code taken"),
            create("ok-2", "7002", "Also fine"),
        ])
        codes = sorted(a["code"] for a in system.emulator.accounts("45355976281015164504"))
    assert result.applied == ["ok-1", "ok-2"]
    assert result.failed == {"no-name": ["stackone: Missing field: name"],
                             "dup": ["stackone: Account code already exists: 1001"]}
    assert codes == ["1001", "1002", "7000", "7002"]


def test_a_real_rate_limit_is_waited_out_not_reported():
    with dualentry(chart(250), rate_limit=2, rate_window_seconds=1.0) as system:
        snapshot = connect(system).read_accounts()
        assert len(snapshot.accounts) == 250  # three pages at two requests a second: one 429, waited out
        assert system.emulator.responses[429] >= 1 and system.emulator.calls["list"] == 3


def test_thredfi_renews_a_token_shortly_before_it_expires_without_waiting_for_a_401():
    now = [1000.0]
    with thredfi(chart(2)) as system:
        connector = ThredfiConnector(system.config, ThredfiCredentials.model_validate(system.secret),
                                     limiter=SlidingWindowLimiter(1000), clock=lambda: now[0])
        connector.read_accounts()
        now[0] += 3600 - 59  # inside the last minute of the token's hour
        connector.read_accounts()
        assert system.emulator.calls["partner_token"] == 2 and system.emulator.responses[401] == 0


@pytest.mark.parametrize("system_for", [thredfi, dualentry, stackone], ids=["thredfi", "dualentry", "stackone"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_under_chaos_a_read_is_whole_or_raises_never_partial(system_for, seed):
    rows = chart(260)
    with system_for(rows) as system:
        system.emulator.chaos(0.3, kinds=("error", "rate_limit", "drop", "drop_after"), retry_after=0, seed=seed)
        try:
            snapshot = connect(system, sleeps=[]).read_accounts()
        except ConnectorTransientError:
            return  # gave up after its retries: the run fails, nothing half-read goes on
        assert len(snapshot.accounts) == len(rows) and snapshot.errors == []
        assert sum(system.emulator.faults_fired.values()) > 0  # it did get through faults
