"""Each accounting system end to end: its emulator -> fetch -> diff -> writer -> the Pleo emulator.

What a user cares about: Pleo's active accounts end equal to the system's active chart, a
second run changes nothing, and bad input (a malformed record, wrong credentials, a
throttled list) gives the documented outcome without losing or wrongly archiving anything.
"""

from __future__ import annotations

import pytest
from coa_sync.connectors import ConnectorRequestError
from coa_sync.models import ActionKind

from tests.as_systems import SECRET_KEY, SYSTEMS, chart, external_id
from tests.support import API_KEY, COMPANY

KINDS = sorted(SYSTEMS)


def pleo_active(pleo) -> dict[str, tuple[str | None, str]]:
    return {a["externalId"]: (a["code"], a["name"]) for a in pleo.accounts(COMPANY) if not a["archived"]}


@pytest.mark.parametrize(("kind", "shape"), [
    *((kind, {}) for kind in KINDS),
    ("thredfi", {"page_shape": "links"}),  # the pagination guide's {count, next, previous, results}
    ("dualentry", {"list_shape": "array"}),  # the pagination guide's bare array
], ids=[*KINDS, "thredfi-links", "dualentry-array"])
def test_pleo_ends_equal_to_the_active_chart_and_a_second_run_plans_nothing(kind, shape, emulator, make_runner):
    rows = chart(230, inactive_every=10)  # three pages of 100 on every system
    with SYSTEMS[kind](rows, malformed=True, **shape) as system:
        # Pleo already has: one account the system has deactivated, one it never had, and the
        # twin of the malformed record, which must be left alone rather than archived.
        emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=[
            {"externalId": external_id(kind, "10"), "code": "1010", "name": "Account 10", "archived": False},
            {"externalId": "gone-from-the-as", "code": "9999", "name": "Old", "archived": False},
            {"externalId": system.bad_id, "code": "77", "name": "Twin of a bad record", "archived": False},
        ])
        system.emulator.inject("rate_limit", endpoint=system.list_endpoint, retry_after=1)
        runner = make_runner(system.config, source_credentials=system.secret)

        first = runner.run("acme")

        wanted = {external_id(kind, key): (code, name) for key, code, name, active in rows if active}
        assert pleo_active(emulator) == {**wanted, system.bad_id: ("77", "Twin of a bad record")}
        assert first.failed == [] and first.pending == 0
        counts = first.plan.counts()
        assert (counts.create, counts.archive) == (len(wanted), 2)
        assert system.emulator.responses[429] == 1  # throttled once, waited, and read on
        assert [e.external_id for e in first.plan.errors] == [system.bad_id] * len(first.plan.errors)
        assert first.plan.errors and all(e.location and kind in e.location for e in first.plan.errors)

        second = runner.run("acme")
        assert second.plan.actions == []
        assert second.plan.noop == len(wanted)


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_credentials_stop_the_run_with_a_clear_error_and_change_nothing(kind, emulator, make_runner):
    with SYSTEMS[kind](chart(3)) as system:
        emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=[
            {"externalId": "keep-me", "code": "1", "name": "Kept", "archived": False}])
        runner = make_runner(system.config, source_credentials=system.with_secret(apiKey="wrong-key"))
        with pytest.raises(ConnectorRequestError) as info:
            runner.run("acme")
        assert info.value.status in (401, 403)
        assert kind in str(info.value)
        assert "wrong-key" not in str(info.value) and SECRET_KEY not in str(info.value)
        assert pleo_active(emulator) == {"keep-me": ("1", "Kept")}


def test_a_deactivated_thredfi_account_is_archived_in_pleo_on_the_next_run(emulator, make_runner):
    rows = chart(5)
    with SYSTEMS["thredfi"](rows) as system:
        emulator.add_company(COMPANY, api_keys=[API_KEY])
        runner = make_runner(system.config, source_credentials=system.secret)
        runner.run("acme")
        system.emulator.set_active("3c90c3cc-0d44-4b50-8888-8dd25736052a", "1003", False)
        system.emulator.expire_tokens()  # an hour later: the cached token no longer works
        result = runner.run("acme")
        assert [(a.kind, a.external_id) for a in result.plan.actions] == [(ActionKind.ARCHIVE, "thr-3")]
        assert "thr-3" not in pleo_active(emulator) and len(pleo_active(emulator)) == 4


def test_a_stackone_read_of_short_pages_through_a_408_ending_null_null_syncs_every_active_account(
        emulator, make_runner):
    rows = chart(120, inactive_every=6)
    with SYSTEMS["stackone"](rows, page_shape="short", end="null") as system:
        emulator.add_company(COMPANY, api_keys=[API_KEY])
        system.emulator.inject("timeout", endpoint="list", retry_after=1, skip=2)  # StackOne's provider was slow
        runner = make_runner(system.config, source_credentials=system.secret)

        result = runner.run("acme")

        pages = system.emulator.calls["list"]
        assert system.emulator.responses[408] == 1 and pages == 5  # four short pages of 33 or less, the null page
        wanted = {external_id("stackone", key): (code, name) for key, code, name, active in rows if active}
        assert pleo_active(emulator) == wanted and len(wanted) == 100
        assert result.failed == [] and result.plan.errors == []
        assert runner.run("acme").plan.actions == []
