"""Properties of the diff over random charts: applying a plan converges, and converged is stable."""

from __future__ import annotations

from coa_sync.diff import plan as plan_columns
from coa_sync.models import ActionKind, PleoAccount, SourceAccount, SourceSnapshot, TargetSnapshot
from hypothesis import given, settings
from hypothesis import strategies as st

external_ids = st.sampled_from([f"ext-{n}" for n in range(12)] + ["1000", "ÆØÅ-1", "x" * 255])
names = st.text(min_size=1, max_size=20).filter(str.strip)
codes = st.none() | st.sampled_from(["1000", "2000", "3000", ""])
taxes = st.none() | st.sampled_from(["VAT25", "VAT12"])


@st.composite
def charts(draw):
    source_ids = draw(st.lists(external_ids, unique=True, max_size=10))
    source = [
        SourceAccount(external_id=i, name=draw(names), code=draw(codes), active=draw(st.booleans()),
                      tax_code_external_id=draw(taxes))
        for i in source_ids
    ]
    target_ids = draw(st.lists(external_ids, unique=True, max_size=10))
    target = [
        PleoAccount(id=f"id-{n}", external_id=i, name=draw(names), code=draw(codes),
                    archived=draw(st.booleans()), tax_code_external_id=draw(taxes))
        for n, i in enumerate(target_ids)
    ]
    return SourceSnapshot(accounts=source), TargetSnapshot(accounts=target)


def plan(source: SourceSnapshot, target: TargetSnapshot):
    return plan_columns(source.columns(), target.columns())


def apply(target: TargetSnapshot, actions) -> TargetSnapshot:
    """What Pleo does with the plan's calls: batch create, and PUT as a full update."""
    by_id = {a.id: a for a in target.accounts}
    for action in actions:
        fields = action.desired.model_dump(by_alias=False)
        if action.kind == ActionKind.CREATE:
            new_id = f"new-{action.external_id}"
            by_id[new_id] = PleoAccount(id=new_id, external_id=action.external_id, archived=False, **fields)
        else:
            old = by_id[action.account_id]
            by_id[old.id] = PleoAccount(id=old.id, external_id=old.external_id,
                                        archived=action.kind == ActionKind.ARCHIVE, **fields)
    return TargetSnapshot(accounts=list(by_id.values()))


def active_view(accounts, *, source: bool):
    if source:
        return {a.external_id: (a.name, a.code, a.tax_code_external_id) for a in accounts if a.active}
    return {a.external_id: (a.name, a.code, a.tax_code_external_id) for a in accounts if not a.archived}


@settings(max_examples=300, deadline=None)
@given(charts())
def test_applying_the_plan_makes_pleo_mirror_the_active_source(chart):
    source, target = chart
    after = apply(target, plan(source, target).actions)
    assert active_view(after.accounts, source=False) == active_view(source.accounts, source=True)


@settings(max_examples=300, deadline=None)
@given(charts())
def test_a_second_plan_is_empty(chart):
    source, target = chart
    after = apply(target, plan(source, target).actions)
    second = plan(source, after)
    assert second.actions == []
    assert second.noop == sum(a.active for a in source.accounts)


@settings(max_examples=200, deadline=None)
@given(charts())
def test_each_external_id_gets_at_most_one_action_and_nothing_is_deleted(chart):
    source, target = chart
    result = plan(source, target)
    ids = [a.external_id for a in result.actions]
    assert len(ids) == len(set(ids))
    after = apply(target, result.actions)
    assert {a.id for a in target.accounts} <= {a.id for a in after.accounts}


@settings(max_examples=200, deadline=None)
@given(charts(), st.data())
def test_duplicated_source_ids_are_never_acted_on(chart, data):
    source, target = chart
    if not source.accounts:
        return
    twin = data.draw(st.sampled_from(source.accounts))
    doubled = SourceSnapshot(accounts=[*source.accounts, twin.model_copy(update={"name": twin.name + "!"})])
    result = plan(doubled, target)
    assert twin.external_id not in {a.external_id for a in result.actions}
    assert twin.external_id in {e.external_id for e in result.errors}
