"""The diff on stored columns: the same plan as Pleo's rules applied account by account, and the
columns' own checks and round trip."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from coa_sync.diff import plan
from coa_sync.models import (
    AccountFields,
    Action,
    ActionKind,
    ItemError,
    Plan,
    PleoAccount,
    SourceAccount,
    SourceColumns,
    SourceSnapshot,
    TargetColumns,
    TargetSnapshot,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

# Few ids, names and codes, so that charts share accounts, repeat ids and have equal rows.
ids = st.sampled_from(["a", "b", "b!", "c", "ÆØÅ", "x" * 255])
names = st.sampled_from(["Cash", "Bank", "Cash "])
codes = st.sampled_from([None, "", "1000"])
taxes = st.sampled_from([None, "", "VAT25"])


@st.composite
def charts(draw):
    source = [SourceAccount(external_id=draw(ids), name=draw(names), code=draw(codes), active=draw(st.booleans()),
                            tax_code_external_id=draw(taxes)) for _ in range(draw(st.integers(0, 8)))]
    target = [PleoAccount(id=f"id-{n}", external_id=draw(ids), name=draw(names), code=draw(codes),
                          archived=draw(st.booleans()), tax_code_external_id=draw(taxes))
              for n in range(draw(st.integers(0, 8)))]
    source_errors = [ItemError(external_id=i, message="bad") for i in draw(st.lists(st.none() | ids, max_size=2))]
    target_errors = [ItemError(external_id=i, message="bad", location="pleo")
                     for i in draw(st.lists(st.none() | ids, max_size=2))]
    return SourceSnapshot(accounts=source, errors=source_errors), TargetSnapshot(accounts=target, errors=target_errors)


def rules(source: SourceSnapshot, target: TargetSnapshot) -> Plan:
    """Pleo's matching rules account by account, in externalId order (as the columns hold the rows)."""
    errors = [*source.errors, *target.errors]
    held = {e.external_id for e in errors if e.external_id is not None}
    source_counts = Counter(a.external_id for a in source.accounts)
    target_counts = Counter(a.external_id for a in target.accounts)
    named = {e.external_id for e in source.errors}  # a source that names its duplicates itself is not repeated
    for i in sorted(i for i, n in source_counts.items() if n > 1 and i not in named):
        errors.append(ItemError(external_id=i, field="externalId",
                                message=f"appears {source_counts[i]} times in the source; it is left alone"))
    for i in sorted(i for i, n in target_counts.items() if n > 1):
        errors.append(ItemError(external_id=i, field="externalId", location="pleo",
                                message=f"{target_counts[i]} Pleo accounts share it; it is left alone"))
    held |= {i for i, n in (source_counts + target_counts).items() if source_counts[i] > 1 or target_counts[i] > 1}
    by_id = sorted(source.accounts, key=lambda a: a.external_id)
    wanted = {a.external_id: a for a in by_id if a.active and a.external_id not in held}
    existing = {a.external_id: a for a in sorted(target.accounts, key=lambda a: a.external_id)
                if a.external_id not in held}
    actions, noop = [], 0
    for i, account in wanted.items():
        pleo = existing.get(i)
        if pleo is None:
            actions.append(Action(kind=ActionKind.CREATE, external_id=i, desired=account.fields()))
            continue
        changes = [f for f in ("name", "code", "tax_code_external_id") if getattr(pleo, f) != getattr(account, f)]
        if not pleo.archived and not changes:
            noop += 1
            continue
        kind = ActionKind.UNARCHIVE if pleo.archived else ActionKind.UPDATE
        actions.append(Action(kind=kind, external_id=i, account_id=pleo.id, desired=account.fields(),
                              before=pleo.fields(), changes=changes))
    for i, pleo in existing.items():
        if not pleo.archived and i not in wanted:
            actions.append(Action(kind=ActionKind.ARCHIVE, external_id=i, account_id=pleo.id, desired=pleo.fields(),
                                  before=pleo.fields()))
    return Plan(actions=actions, noop=noop, errors=errors)


@settings(max_examples=500, deadline=None)
@given(charts())
def test_the_plan_is_the_rules_applied_account_by_account(chart):
    source, target = chart
    assert plan(source.columns(), target.columns()) == rules(source, target)


def test_the_stored_layout_is_one_list_per_field():
    source = SourceSnapshot(accounts=[SourceAccount(external_id="b", name="B", code="2", tax_code_external_id="V"),
                                      SourceAccount(external_id="a", name="A", active=False)])
    stored = json.loads(source.columns().model_dump_json())
    assert stored == {"externalId": ["a", "b"], "name": ["A", "B"], "code": [None, "2"],
                      "taxCodeExternalId": [None, "V"], "active": [False, True], "errors": [], "notes": []}
    target = TargetSnapshot(accounts=[PleoAccount(id="1", external_id="a", name="A", archived=True),
                                      PleoAccount(id="2", external_id="b", name="B", metadata={"erp": {"id": 7}})],
                            errors=[ItemError(external_id="z", message="bad", location="pleo active page 1 item 2")])
    assert json.loads(target.columns().model_dump_json()) == {
        "externalId": ["a", "b"], "name": ["A", "B"], "code": [None, None], "taxCodeExternalId": [None, None],
        "id": ["1", "2"], "archived": [True, False],
        "errors": [{"message": "bad", "externalId": "z", "field": None, "location": "pleo active page 1 item 2"}],
        "metadata": {"2": {"erp": {"id": 7}}}}  # only the accounts that have any


def test_columns_read_back_as_written_and_as_accounts_again():
    accounts = [SourceAccount(external_id=i, name=f"N{i}", code=i, active=i != "b") for i in ("c", "a", "b", "a")]
    source = SourceSnapshot(accounts=accounts, errors=[ItemError(message="bad", location="chart.csv:9")])
    columns = source.columns()
    assert SourceColumns.model_validate_json(columns.model_dump_json()) == columns
    # Sorted by externalId; copies of one keep the order they were read in.
    assert columns.snapshot() == SourceSnapshot(accounts=[accounts[1], accounts[3], accounts[2], accounts[0]],
                                                errors=source.errors)


@pytest.mark.parametrize(("document", "message"), [
    ({"externalId": ["b", "a"], "name": ["B", "A"], "code": [None, None], "taxCodeExternalId": [None, None],
      "active": [True, True]}, "rows must be sorted by externalId"),
    ({"externalId": ["a", "b"], "name": ["A"], "code": [None, None], "taxCodeExternalId": [None, None],
      "active": [True, True]}, "name: expected a list with one value per externalId"),
    ({"externalId": ["a"], "name": ["A"], "code": [None], "taxCodeExternalId": [None], "active": True},
     "active: expected a list with one value per externalId"),
    ({"externalId": ["a"], "name": ["A"], "code": [None], "taxCodeExternalId": [None]}, "active\n  Field required"),
])
def test_columns_that_do_not_line_up_are_refused(document, message):
    with pytest.raises(ValidationError, match=message):
        SourceColumns.model_validate_json(json.dumps(document))


def test_pleo_columns_carry_ids_and_archived_flags():
    target = TargetColumns(external_id=["a"], name=["A"], code=["1"], tax_code_external_id=[None], id=["id-a"],
                           archived=[False])
    (action,) = plan(SourceColumns(external_id=[], name=[], code=[], tax_code_external_id=[], active=[]),
                     target).actions
    assert (action.kind, action.account_id, action.desired) == (ActionKind.ARCHIVE, "id-a", AccountFields(name="A",
                                                                                                         code="1"))
