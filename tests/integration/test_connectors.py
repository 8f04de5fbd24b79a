"""The connectors over real HTTP against their emulators: auth, tokens, every documented page and list
shape, each documented error, retries, rate budgets and writes."""

from __future__ import annotations

import time

import pytest
from coa_sync.connectors import ConnectorRequestError, ConnectorTransientError
from coa_sync.connectors.dualentry import DualEntryConnector, DualEntryCredentials
from coa_sync.connectors.stackone import StackOneConnector, StackOneCredentials
from coa_sync.connectors.thredfi import ThredfiConnector, ThredfiCredentials
from coa_sync.models import AccountFields, Action, ActionKind

from tests.as_systems import BUSINESS, LINKED_ACCOUNT, SECRET_KEY, chart, dualentry, stackone, thredfi

SYSTEMS = pytest.mark.parametrize("system_for", [thredfi, dualentry, stackone],
                                  ids=["thredfi", "dualentry", "stackone"])


def connect(system, *, sleeps=None, **credentials):
    """The system's connector with its documented rate budgets; retry waits recorded in `sleeps` if given."""
    options = {"max_attempts": 3, "sleep": (sleeps.append if sleeps is not None else time.sleep)}
    secret = {**system.secret, **credentials}
    if system.kind == "thredfi":
        return ThredfiConnector(system.config, ThredfiCredentials.model_validate(secret), **options)
    if system.kind == "dualentry":
        return DualEntryConnector(system.config, DualEntryCredentials.model_validate(secret), **options)
    return StackOneConnector(system.config, StackOneCredentials.model_validate(secret), **options)


def create(external_id: str, code: str | None, name: str = "New account") -> Action:
    return Action(kind=ActionKind.CREATE, external_id=external_id, desired=AccountFields(name=name, code=code))


def archive(external_id: str) -> Action:
    return Action(kind=ActionKind.ARCHIVE, external_id=external_id, account_id="pleo-id",
                  desired=AccountFields(name="Gone"))


# -- every system --------------------------------------------------------------------------


@SYSTEMS
def test_a_list_failing_mid_pagination_raises_instead_of_returning_part_of_the_chart(system_for):
    with system_for(chart(250)) as system:
        sleeps: list[float] = []
        system.emulator.inject("error", count=3, endpoint="list", status=503, skip=1)  # page 1 fine, page 2 fails
        with pytest.raises(ConnectorTransientError, match="503 after 3 attempt"):
            connect(system, sleeps=sleeps).read_accounts()
        assert system.emulator.calls["list"] == 1 and system.emulator.responses[503] == 3
        assert len(sleeps) == 2  # it waited between tries


@SYSTEMS
def test_a_408_request_timeout_is_retried_after_its_retry_after(system_for):
    with system_for(chart(150)) as system:
        sleeps: list[float] = []
        system.emulator.inject("timeout", endpoint="list", retry_after=7, skip=1)
        snapshot = connect(system, sleeps=sleeps).read_accounts()
    assert len(snapshot.accounts) == 150 and snapshot.errors == []
    assert sleeps == [7.0] and system.emulator.responses[408] == 1


@SYSTEMS
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


# -- Thredfi -------------------------------------------------------------------------------


@pytest.mark.parametrize("page_shape", ["page_info", "links"])
def test_thredfi_reads_every_page_in_either_documented_page_shape_and_maps_the_fields(page_shape):
    rows = chart(205, inactive_every=50)
    with thredfi(rows, page_shape=page_shape) as system:
        snapshot = connect(system).read_accounts()
        assert system.emulator.calls["list"] == 3
    by_id = {a.external_id: a for a in snapshot.accounts}
    assert len(by_id) == 205 and snapshot.errors == []
    assert (by_id["thr-7"].code, by_id["thr-7"].name, by_id["thr-7"].active) == ("1007", "Account 7", True)
    assert by_id["thr-50"].active is False


def test_thredfi_can_match_by_code_which_its_reads_carry_and_which_is_unique_per_business():
    with thredfi(chart(3)) as system:
        system.config = system.config.model_copy(update={"external_id_from": "code"})
        snapshot = connect(system).read_accounts()
    assert sorted(a.external_id for a in snapshot.accounts) == ["1001", "1002", "1003"]


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


def test_thredfi_renews_a_token_shortly_before_it_expires_without_waiting_for_a_401():
    now = [1000.0]
    with thredfi(chart(2)) as system:
        connector = ThredfiConnector(system.config, ThredfiCredentials.model_validate(system.secret),
                                     clock=lambda: now[0])
        connector.read_accounts()
        now[0] += 3600 - 59  # inside the last minute of the token's hour
        connector.read_accounts()
        assert system.emulator.calls["partner_token"] == 2 and system.emulator.responses[401] == 0


@pytest.mark.parametrize("error_shape", ["openapi", "guide"])
def test_thredfi_wrong_api_key_is_a_permanent_error_in_either_error_shape_without_the_key(error_shape):
    with thredfi(chart(3), error_shape=error_shape) as system, pytest.raises(ConnectorRequestError) as info:
        connect(system, apiKey="not-the-key").read_accounts()
    assert info.value.status == 401 and "authentication_failed: invalid partner credentials" in str(info.value)
    assert "not-the-key" not in str(info.value) and SECRET_KEY not in str(info.value)


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


@pytest.mark.parametrize("error_shape", ["openapi", "guide"])
def test_thredfi_create_checks_its_rules_before_sending_and_surfaces_its_errors(error_shape):
    with thredfi(chart(2), error_shape=error_shape) as system:
        connector = connect(system)
        result = connector.write([
            create("no-code", None),
            create("x" * 101, "9001"),
            create("clash", "1001"),  # the code is taken by another account
            create("orphan", "1001-02"),
        ], parents={"orphan": "no-such-code"})
        assert system.emulator.calls["create"] == 2  # only the clash and the orphan were sent
    assert result.applied == []
    assert result.failed["no-code"] == ["code: Thredfi requires an account code"]
    assert "external_id: at most 100" in result.failed["x" * 101][0]
    (reason,) = result.failed["clash"]
    assert reason.startswith("thredfi HTTP 409: conflict: An account with code '1001' already exists.")
    assert result.failed["orphan"][1:] == ["parent_id: No account with UUID, code or external_id 'no-such-code'."]


def test_thredfi_parent_is_given_by_code():
    with thredfi(chart(2)) as system:
        result = connect(system).write([create("child", "1001-01")], parents={"child": "1001"})
        child = next(a for a in system.emulator.accounts(BUSINESS) if a["external_id"] == "child")
    assert result.applied == ["child"] and child["parent_account_code"] == "1001"


def test_thredfi_archives_through_its_documented_soft_delete_once_and_names_a_refusal():
    with thredfi(chart(2)) as system:
        connector = connect(system)
        assert connector.capabilities.archive
        connector.write([create("keep-me", "7000"), create("archive-me", "7100"), create("has-money", "7200")])
        system.emulator.set_balance(BUSINESS, "7200", 990)
        first = connector.write([archive("archive-me"), archive("has-money")])
        again = connector.write([archive("archive-me")])  # redelivered: Thredfi answers 409, it is already done
        states = {a["code"]: a["is_active"] for a in system.emulator.accounts(BUSINESS)}
    assert first.applied == again.applied == ["archive-me"] and again.failed == {}
    assert states == {"1001": True, "1002": True, "7000": True, "7100": False, "7200": True}
    (reason,) = first.failed["has-money"]
    assert "422" in reason and "non-zero balance" in reason


def test_thredfi_cannot_update_and_says_so():
    update = Action(kind=ActionKind.UPDATE, external_id="thr-1", account_id="a", desired=AccountFields(name="A"))
    with thredfi(chart(1)) as system:
        result = connect(system).write([update])
    assert result.failed == {"thr-1": ["unsupported by the target: thredfi cannot update accounts (Thredfi documents "
                                       "no endpoint that updates an account)"]}


# -- DualEntry -----------------------------------------------------------------------------


@pytest.mark.parametrize("list_shape", ["object", "array"])
def test_dualentry_reads_v2_in_either_documented_list_shape_and_maps_number_to_code(list_shape):
    with dualentry(chart(250, inactive_every=40), list_shape=list_shape) as system:
        snapshot = connect(system).read_accounts()
        assert system.emulator.calls["list"] == 3  # 100, 100, 50: the short page is the end
    by_id = {a.external_id: a for a in snapshot.accounts}
    assert len(by_id) == 250 and snapshot.errors == []  # no account_type on the items, and none needed
    assert by_id["5001"].code == "1001" and by_id["5040"].active is False


def test_dualentry_a_full_last_page_ends_on_count_or_on_the_empty_page_after_it():
    with dualentry(chart(200)) as object_shape:
        assert len(connect(object_shape).read_accounts().accounts) == 200
        assert object_shape.emulator.calls["list"] == 2  # `count` says that is all
    with dualentry(chart(200), list_shape="array") as array_shape:
        assert len(connect(array_shape).read_accounts().accounts) == 200
        assert array_shape.emulator.calls["list"] == 3  # an array has no count: the empty page ends it


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
        with pytest.raises(ConnectorRequestError) as missing:
            connect(system, apiKey="").read_accounts()
        assert missing.value.status == 401


def test_dualentry_malformed_record_names_its_id_and_field():
    with dualentry(chart(2)) as system:
        system.emulator.add_organization("other", raw_accounts=[
            {"id": 7, "number": 42, "name": "Weird", "is_active": True},
            {"id": 8, "number": 1001, "name": "Fine", "is_active": True}])
        snapshot = connect(system, apiKey="other").read_accounts()
    assert [a.external_id for a in snapshot.accounts] == ["8"]
    (error,) = snapshot.errors
    assert (error.external_id, error.field, error.location) == ("7", "number", "dualentry page 1 item 0")


def test_dualentry_create_delivered_twice_leaves_one_account():
    with dualentry(chart(2)) as system:
        connector = connect(system)
        first = connector.write([create("pleo-a", "6100", "Travel")])
        again = connector.write([create("pleo-a", "6100", "Travel")])
        assert first.applied == again.applied == ["pleo-a"]
        assert [a["number"] for a in system.emulator.accounts(SECRET_KEY)].count(6100) == 1
        assert system.emulator.calls["create"] == 1 and system.emulator.calls["get"] == 2


def test_dualentry_create_whose_answer_is_lost_is_applied_once_not_failed_on_its_retry():
    # DualEntry makes the account, the connection closes before the 201: the retried POST meets the number taken.
    with dualentry(chart(2)) as system:
        system.emulator.inject("drop_after", endpoint="create")
        result = connect(system, sleeps=[]).write([create("pleo-a", "6100", "Travel")])
        numbers = [a["number"] for a in system.emulator.accounts(SECRET_KEY)]
    assert result.applied == ["pleo-a"] and result.failed == {}
    assert numbers.count(6100) == 1


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


def test_dualentry_a_422_from_create_is_permanent_and_reported_field_by_field():
    with dualentry(chart(1)) as system:
        system.emulator.inject("error", endpoint="create", status=422)
        sleeps: list[float] = []
        result = connect(system, sleeps=sleeps).write([create("pleo-b", "6300", "Meals")])
    assert result.failed == {"pleo-b": ["__all__: injected 422"]} and sleeps == []


def test_dualentry_a_read_paced_by_its_documented_buckets_is_never_throttled():
    with dualentry(chart(1200)) as system:  # 12 pages on one route: 10 at once, then one a second
        started = time.monotonic()
        snapshot = connect(system).read_accounts()
        elapsed = time.monotonic() - started
        assert len(snapshot.accounts) == 1200 and system.emulator.responses[429] == 0
    assert elapsed >= 2.0  # it waited for tokens instead of being refused


def test_dualentry_a_tighter_limit_than_documented_is_waited_out_not_reported():
    with dualentry(chart(250), route_rate=(2, 2.0)) as system:
        snapshot = connect(system).read_accounts()
        assert len(snapshot.accounts) == 250  # three pages at a burst of two: one 429, its Retry-After waited
        assert system.emulator.responses[429] >= 1 and system.emulator.calls["list"] == 3


# -- StackOne ------------------------------------------------------------------------------


@pytest.mark.parametrize(("page_shape", "end", "calls"), [
    ("full", "null", 4),       # 100, 100, 30, then {"next": null, "data": null}
    ("full", "last_page", 3),  # 100, 100, 30 with no cursor
    ("short", "null", 8),      # early cursor returns: six pages of 33 and one of 32, then the null page
    ("short", "last_page", 7),
])
def test_stackone_reads_every_documented_page_shape_and_end_with_basic_auth_and_account_header(page_shape, end,
                                                                                               calls):
    with stackone(chart(230, inactive_every=23), page_shape=page_shape, end=end) as system:
        snapshot = connect(system).read_accounts()
        assert system.emulator.calls["list"] == calls
    assert len(snapshot.accounts) == 230 and sum(not a.active for a in snapshot.accounts) == 10
    assert snapshot.errors == []


@pytest.mark.parametrize(("act", "status", "words"), [
    (lambda emulator: emulator.disable_linked_account(LINKED_ACCOUNT), 412, "Precondition failed"),
    (lambda emulator: emulator.forbid(SECRET_KEY), 403, "Forbidden"),
    (lambda emulator: None, 401, "Unauthorized"),
])
def test_stackone_refusals_are_permanent_and_carry_its_message(act, status, words):
    with stackone(chart(3)) as system:
        act(system.emulator)
        key = "bad" if status == 401 else SECRET_KEY
        with pytest.raises(ConnectorRequestError) as info:
            connect(system, apiKey=key).read_accounts()
        assert system.emulator.calls["list"] == 0
    assert info.value.status == status and f"stackone: HTTP {status}: {words}" in str(info.value)


def test_stackone_unknown_linked_account_is_a_404():
    with stackone(chart(3)) as system:
        system.config = system.config.model_copy(update={"account_id": "not-linked"})
        with pytest.raises(ConnectorRequestError) as info:
            connect(system).read_accounts()
    assert info.value.status == 404
