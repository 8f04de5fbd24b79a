"""The diff: Pleo's matching rules, branch by branch, and what it refuses to guess."""

from __future__ import annotations

from coa_sync.diff import plan
from coa_sync.models import ActionKind, ItemError, PleoAccount, SourceAccount, SourceSnapshot, TargetSnapshot


def src(external_id, name, code=None, active=True, tax=None):
    return SourceAccount(external_id=external_id, name=name, code=code, active=active, tax_code_external_id=tax)


def pleo(external_id, name, code=None, archived=False, tax=None, id=None):
    return PleoAccount(id=id or f"id-{external_id}", external_id=external_id, name=name, code=code,
                       archived=archived, tax_code_external_id=tax)


def run(source, target, errors=()):
    source, target = SourceSnapshot(accounts=source, errors=list(errors)), TargetSnapshot(accounts=target)
    return plan(source.columns(), target.columns())


def kinds(result):
    return {a.external_id: a.kind for a in result.actions}


def test_seed_scenario_gives_the_documented_action_table():
    # Pleo's "How to Sync Accounts" scenario, row by row.
    result = run(
        [src("ext-1000", "Office Supplies", "1000"), src("ext-2000", "Travel", "2000"),
         src("ext-3000", "Software", "3000"), src("ext-4000", "Marketing", "4000")],
        [pleo("5000", "Entertainment", "5000"), pleo("ext-4000", "Advertising", "4000"),
         pleo("ext-2000", "Travel", "2000", archived=True), pleo("ext-1000", "Office Supplies", "1000")],
    )
    assert kinds(result) == {"ext-2000": ActionKind.UNARCHIVE, "ext-3000": ActionKind.CREATE,
                             "ext-4000": ActionKind.UPDATE, "5000": ActionKind.ARCHIVE}
    assert result.noop == 1
    assert result.errors == []


def test_create_carries_the_source_fields():
    (action,) = run([src("a", "Cash", "1000", tax="VAT25")], []).actions
    assert action.kind == ActionKind.CREATE
    assert (action.desired.name, action.desired.code, action.desired.tax_code_external_id) == ("Cash", "1000", "VAT25")
    assert action.account_id is None


def test_unarchive_also_updates_name_and_code():
    (action,) = run([src("a", "New name", "2")], [pleo("a", "Old name", "1", archived=True)]).actions
    assert action.kind == ActionKind.UNARCHIVE
    assert action.account_id == "id-a"
    assert action.desired.name == "New name" and action.desired.code == "2"
    assert action.changes == ["name", "code"]


def test_unarchive_even_when_nothing_else_differs():
    (action,) = run([src("a", "Same", "1")], [pleo("a", "Same", "1", archived=True)]).actions
    assert action.kind == ActionKind.UNARCHIVE and action.changes == []


def test_update_on_name_code_or_tax_code_difference():
    result = run(
        [src("n", "B", "1"), src("c", "A", "2"), src("t", "A", "1", tax="VAT25")],
        [pleo("n", "A", "1"), pleo("c", "A", "1"), pleo("t", "A", "1", tax="VAT12")],
    )
    changes = {a.external_id: a.changes for a in result.actions}
    assert kinds(result) == {"n": ActionKind.UPDATE, "c": ActionKind.UPDATE, "t": ActionKind.UPDATE}
    assert changes == {"n": ["name"], "c": ["code"], "t": ["tax_code_external_id"]}


def test_update_keeps_the_before_state_for_review():
    (action,) = run([src("a", "New", "1")], [pleo("a", "Old", "1")]).actions
    assert action.before is not None and action.before.name == "Old"


def test_identical_accounts_need_nothing():
    result = run([src("a", "Cash", "1000", tax="T")], [pleo("a", "Cash", "1000", tax="T")])
    assert result.actions == [] and result.noop == 1


def test_empty_code_and_missing_code_are_the_same():
    result = run([src("a", "Cash", "")], [pleo("a", "Cash", None)])
    assert result.actions == []


def test_archive_resends_the_account_as_pleo_has_it():
    (action,) = run([], [pleo("gone", "Old", "9", tax="T")]).actions
    assert action.kind == ActionKind.ARCHIVE
    assert (action.desired.name, action.desired.code, action.desired.tax_code_external_id) == ("Old", "9", "T")


def test_inactive_source_account_archives_its_active_pleo_twin():
    result = run([src("a", "Cash", active=False)], [pleo("a", "Cash")])
    assert kinds(result) == {"a": ActionKind.ARCHIVE}


def test_inactive_source_account_without_pleo_twin_is_not_created():
    assert run([src("a", "Cash", active=False)], []).actions == []


def test_archived_pleo_account_not_in_source_is_left_archived():
    assert run([], [pleo("a", "Cash", archived=True)]).actions == []


def test_matching_is_by_external_id_only_never_by_code_or_name():
    result = run([src("new-id", "Cash", "1000")], [pleo("old-id", "Cash", "1000")])
    assert kinds(result) == {"new-id": ActionKind.CREATE, "old-id": ActionKind.ARCHIVE}


def test_duplicate_source_external_ids_are_errors_and_left_alone():
    result = run([src("a", "One"), src("a", "Two"), src("b", "Fine")], [pleo("a", "Old")])
    assert kinds(result) == {"b": ActionKind.CREATE}
    (error,) = result.errors
    assert error.external_id == "a" and error.field == "externalId" and "2 times" in error.message


def test_duplicate_even_when_one_copy_is_inactive():
    result = run([src("a", "One"), src("a", "Two", active=False)], [])
    assert result.actions == [] and [e.external_id for e in result.errors] == ["a"]


def test_duplicate_pleo_external_ids_are_errors_and_left_alone():
    result = run([], [pleo("a", "One", id="1"), pleo("a", "Two", id="2")])
    assert result.actions == []
    assert [(e.external_id, e.location) for e in result.errors] == [("a", "pleo")]


def test_unreadable_source_row_holds_back_its_archive():
    # A row we could not read must not make its Pleo twin look orphaned.
    bad = ItemError(external_id="a", field="name", message="is empty", location="accounts.csv:3")
    result = run([], [pleo("a", "Cash")], errors=[bad])
    assert result.actions == []
    assert result.errors == [bad]


def test_source_errors_without_external_id_are_reported():
    bad = ItemError(field="externalId", message="is missing", location="accounts.csv:7")
    result = run([src("b", "Fine")], [], errors=[bad])
    assert kinds(result) == {"b": ActionKind.CREATE} and result.errors == [bad]


def test_counts_cover_every_kind():
    counts = run(
        [src("c", "C"), src("u", "New"), src("z", "Z")],
        [pleo("u", "Old"), pleo("z", "Z", archived=True), pleo("x", "X"), pleo("same", "S")],
    ).counts()
    assert (counts.create, counts.update, counts.unarchive, counts.archive, counts.noop) == (1, 1, 1, 2, 0)
