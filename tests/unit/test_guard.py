"""The mass-archive guard: a source that returns nothing or far fewer never wipes the chart."""

from __future__ import annotations

from coa_sync.diff import plan
from coa_sync.guard import hold_archives
from coa_sync.models import ActionKind, PleoAccount, SourceAccount, SourceSnapshot, TargetSnapshot


def chart(active_in_pleo: int, kept_in_source: int, new_in_source: int = 0):
    target = TargetSnapshot(accounts=[PleoAccount(id=f"id{n}", external_id=f"e{n}", name=f"A{n}")
                                      for n in range(active_in_pleo)])
    source = SourceSnapshot(accounts=[SourceAccount(external_id=f"e{n}", name=f"A{n}") for n in range(kept_in_source)]
                            + [SourceAccount(external_id=f"new{n}", name="N") for n in range(new_in_source)])
    return source.columns(), target.columns()


def guarded(source, target, **limits):
    return hold_archives(plan(source, target), source, target, **limits)


def test_an_empty_source_archives_nothing_and_says_why():
    source, target = chart(active_in_pleo=3, kept_in_source=0)
    result = guarded(source, target)
    assert result.actions == [] and len(result.held) == 3
    assert "no active accounts" in result.held_reason


def test_archives_within_max_of_count_and_percent_go_ahead():
    source, target = chart(active_in_pleo=200, kept_in_source=180)  # 20 archives = 10% of 200
    result = guarded(source, target)
    assert result.counts().archive == 20 and result.held == []


def test_more_than_the_percentage_is_held_but_creates_still_go():
    source, target = chart(active_in_pleo=200, kept_in_source=179, new_in_source=2)  # 21 archives > 20
    result = guarded(source, target)
    assert {a.kind for a in result.actions} == {ActionKind.CREATE}
    assert len(result.held) == 21 and "21 of 200" in result.held_reason


def test_small_charts_may_lose_up_to_the_minimum_count():
    source, target = chart(active_in_pleo=12, kept_in_source=2)  # 10 archives: allowed by N=10
    assert guarded(source, target).counts().archive == 10
    source, target = chart(active_in_pleo=12, kept_in_source=1)  # 11: held
    assert len(guarded(source, target).held) == 11


def test_limits_are_settings():
    source, target = chart(active_in_pleo=100, kept_in_source=95)
    assert len(guarded(source, target, min_archives=2, percent=1).held) == 5
    assert guarded(source, target, min_archives=5, percent=0).held == []


def test_a_plan_without_archives_is_untouched():
    source, target = chart(active_in_pleo=0, kept_in_source=0, new_in_source=3)
    result = plan(source, target)
    assert hold_archives(result, source, target) is result
