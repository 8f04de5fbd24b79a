"""The target shapes the plan: what it cannot take is reported with the reason, and both charts are keyed
as it matches accounts (coa_sync.targets)."""

from __future__ import annotations

import pytest
from coa_sync.diff import plan
from coa_sync.models import (
    ItemError,
    PleoAccount,
    SourceAccount,
    SourceSnapshot,
    TargetSnapshot,
    Tenant,
    ThredfiSource,
)
from coa_sync.targets import as_target, for_target, set_aside_unsupported
from pydantic import ValidationError


def planned(source: list[SourceAccount], target: list[PleoAccount]):
    return plan(SourceSnapshot(accounts=source).columns(), TargetSnapshot(accounts=target).columns())


SOURCE = [SourceAccount(external_id="a", code="1", name="New"),
          SourceAccount(external_id="b", code="2", name="Renamed"),
          SourceAccount(external_id="c", code="3", name="Back", active=True),
          SourceAccount(external_id="d", code="4", name="Gone", active=False)]
TARGET = [PleoAccount(id="b", external_id="b", code="2", name="Old name"),
          PleoAccount(id="c", external_id="c", code="3", name="Back", archived=True),
          PleoAccount(id="d", external_id="d", code="4", name="Gone")]


def test_pleo_takes_every_action_and_the_plan_is_left_as_it_is():
    whole = planned(SOURCE, TARGET)
    assert set_aside_unsupported(whole, "pleo") is whole


def test_thredfi_takes_creates_and_archives_and_reports_updates_and_unarchives_with_the_reason():
    shaped = set_aside_unsupported(planned(SOURCE, TARGET), "thredfi")
    assert [(a.kind.value, a.external_id) for a in shaped.actions] == [("create", "a"), ("archive", "d")]
    assert [(a.kind.value, a.external_id) for a in shaped.unsupported] == [("update", "b"), ("unarchive", "c")]
    assert shaped.unsupported_reasons["update"] == shaped.unsupported_reasons["unarchive"] == (
        "unsupported by the target: thredfi cannot update accounts (Thredfi documents no endpoint that updates "
        "an account)")
    assert shaped.counts().update == 0 and shaped.counts().noop == 0  # what is planned is only what it can take


def test_dualentry_takes_only_creates_and_stackone_nothing():
    dualentry = set_aside_unsupported(planned(SOURCE, TARGET), "dualentry")
    assert [a.kind.value for a in dualentry.actions] == ["create"]
    assert "dualentry cannot archive accounts" in dualentry.unsupported_reasons["archive"]
    stackone = set_aside_unsupported(planned(SOURCE, TARGET), "stackone")
    assert stackone.actions == [] and len(stackone.unsupported) == 4
    assert "it is read-only" in stackone.unsupported_reasons["create"]


def test_a_target_that_matches_by_code_is_planned_by_code_on_both_sides():
    source = SourceSnapshot(accounts=[SourceAccount(external_id="5001", code="1001", name="Cash"),
                                      SourceAccount(external_id="5002", code="1002", name="Bank")])
    # What the first copy wrote reads back with Thredfi's own id; its code is the key.
    read_back = SourceSnapshot(accounts=[SourceAccount(external_id="thr-uuid-1", code="1001", name="Cash")])
    second = plan(for_target(source, "thredfi").columns(), as_target(for_target(read_back, "thredfi")).columns())
    assert [(a.kind.value, a.external_id, a.desired.code) for a in second.actions] == [("create", "1002", "1002")]
    assert second.noop == 1
    assert for_target(source, "pleo") is source


@pytest.mark.parametrize("target", ["thredfi", "dualentry"])
def test_a_tax_code_the_target_cannot_hold_plans_nothing_run_after_run(target):
    # The copy was made; the source's tax code has no field in the target, so what reads back has none.
    source = SourceSnapshot(accounts=[SourceAccount(external_id="a", code="6100", name="Travel",
                                                    tax_code_external_id="VAT25")])
    read_back = SourceSnapshot(accounts=[SourceAccount(external_id="de-1", code="6100", name="Travel")])
    again = set_aside_unsupported(plan(for_target(source, target).columns(),
                                       as_target(for_target(read_back, target)).columns()), target)
    assert again.actions == [] and again.unsupported == [] and again.noop == 1


def test_keyed_by_code_an_account_without_a_code_is_an_error_and_an_unreadable_record_holds_every_archive():
    source = SourceSnapshot(accounts=[SourceAccount(external_id="x", name="No code")], errors=[
        ItemError(location="stackone page 1 item 2", external_id="so-9", field="name", message="is missing")])
    keyed = for_target(source, "dualentry")
    assert keyed.accounts == []
    unread, no_code = keyed.errors
    # Its code is unknown: it could be any account's twin, so it names none (coa_sync.guard holds archives).
    assert unread.external_id is None and unread.message == "externalId 'so-9': name: is missing"
    assert (no_code.external_id, no_code.field) == ("x", "code")
    assert "dualentry as the target matches accounts by code" in no_code.message


def test_the_tenants_target_is_pleo_by_default_and_pleo_needs_its_company():
    tenant = Tenant.model_validate({"tenantId": "t", "companyId": "c", "pleoSecretName": "p",
                                    "source": {"kind": "file", "uri": "a.csv"}})
    assert tenant.target.kind == "pleo" and tenant.destination == "c"
    copy = Tenant.model_validate({"tenantId": "t", "source": {"kind": "file", "uri": "a.csv"},
                                  "target": {"kind": "thredfi", "baseUrl": "http://127.0.0.1:1",
                                             "businessId": "ab-12", "secretName": "s"}})
    assert isinstance(copy.target, ThredfiSource) and copy.destination == "thredfi:http://127.0.0.1:1:ab-12"
    with pytest.raises(ValidationError, match="needs companyId and pleoSecretName"):
        Tenant.model_validate({"tenantId": "t", "source": {"kind": "file", "uri": "a.csv"}})
    with pytest.raises(ValidationError, match="a file is read, never written"):
        Tenant.model_validate({"tenantId": "t", "source": {"kind": "file", "uri": "a.csv"},
                               "target": {"kind": "file", "uri": "b.csv"}})
