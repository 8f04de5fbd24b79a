"""The pure rules under fencing: which message may be applied, how settled actions are counted, and
how every wait is bounded by the time left."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from coa_sync import tally
from coa_sync.adapters.http import admit, pause
from coa_sync.deadline import Deadline, OutOfTimeError
from coa_sync.models import AccountFields, Action, ActionKind, ActionMessage, new_run_id
from coa_sync.pipeline.fence import superseded_because
from coa_sync.tokenbucket import BudgetSpent, Rate, TokenBucket
from hypothesis import given
from hypothesis import strategies as st

from tests.support import FakeClock as Clock

ACTION = Action(kind=ActionKind.CREATE, external_id="e1", desired=AccountFields(name="One"))


def message(run_id: str = "r2", company_id: str | None = "A", seq: int | None = 0) -> ActionMessage:
    return ActionMessage(tenant_id="t", run_id=run_id, company_id=company_id, seq=seq, action=ACTION)


def test_only_the_live_runs_actions_for_the_tenants_company_may_be_applied():
    assert superseded_because(message(), live_run="r2", company_id="A") is None
    assert superseded_because(message(run_id="r1"), "r2", "A") == \
        "run r1 is no longer the tenant's live run (r2 is)"
    assert superseded_because(message(), None, "A") == "run r2 is no longer the tenant's live run (none is)"
    assert superseded_because(message(), "r2", "B") == "planned for company A; the tenant is now company B"
    # Another target is named as Tenant.destination spells it, not as a company.
    elsewhere = message(company_id="thredfi:https://api.thredfi.com:biz-1")
    assert superseded_because(elsewhere, "r2", "thredfi:https://api.thredfi.com:biz-2") == \
        "planned for thredfi:https://api.thredfi.com:biz-1; the tenant is now thredfi:https://api.thredfi.com:biz-2"
    for unfenceable in (message(company_id=None), message(seq=None)):
        assert "queued before actions were fenced" in superseded_because(unfenceable, "r2", "A")


def test_an_action_counts_under_one_outcome_applied_first():
    sets = {"create": {1, 2}, "update": {3}, "failed": {2, 4, 5}, "superseded": {5, 6, 1}}
    assert tally.counts(sets) == {"create": 2, "update": 1, "unarchive": 0, "archive": 0, "failed": 2,
                                  "superseded": 1}
    assert tally.done(sets, 2) and tally.done(sets, 4) and not tally.done(sets, 6)
    assert not tally.done(sets, 4, redriven=True)  # a redriven dead letter is tried again


outcome = st.sampled_from(tally.OUTCOMES)


@given(st.lists(st.tuples(outcome, st.integers(0, 30)), max_size=60), st.data())
def test_recording_an_outcome_again_never_changes_the_counts(recorded, data):
    sets: dict[str, set[int]] = {}
    for name, seq in recorded:
        sets.setdefault(name, set()).add(seq)
    before = tally.counts(sets)
    for name, seq in data.draw(st.lists(st.sampled_from(recorded), max_size=20)) if recorded else []:
        sets[name].add(seq)  # the same outcome of the same action, delivered again
    assert tally.counts(sets) == before
    assert sum(before.values()) == len({seq for seqs in sets.values() for seq in seqs})  # each action once


def test_runs_started_within_one_second_sort_by_when_they_started():
    # "The tenant's latest run" (approve, redrive) is the greatest run id: a retry started the same second
    # as the run that failed must come after it.
    moments = [datetime(2026, 11, 23, 12, 0, 0, ms * 1000, tzinfo=UTC) for ms in (0, 1, 17, 500, 999)]
    for _ in range(20):
        ids = [new_run_id(moment) for moment in moments]
        assert ids == sorted(ids) and all(len(run_id) == len("20261123T120000Z-0a1b2c3d") for run_id in ids)


def test_shards_hold_seqs_by_thousands():
    assert tally.by_shard([0, 999, 1000, 2500]) == {0: {0, 999}, 1: {1000}, 2: {2500}}


def test_a_request_starts_only_while_it_can_finish_and_a_retry_waits_only_if_it_still_fits():
    clock = Clock()
    budget = TokenBucket(Rate(1, 1, headroom=1.0), clock=clock, sleep=clock.sleep)  # a request a minute
    deadline = Deadline(lambda: 100 - clock.now)
    admit(budget, deadline, 15, "search")  # 100 s left, 15 s needed
    with pytest.raises(OutOfTimeError, match="search: the rate budget frees a request too late"):
        admit(budget, deadline, 50, "search")  # the next token is in 60 s, and then 40 s would be left
    with pytest.raises(BudgetSpent):  # the deadline would allow the wait, the caller's own bound not
        admit(budget, deadline, 15, "search", max_wait=30)
    assert clock.now == 0  # nothing waited, nothing taken
    pause(5, deadline, 15, "put: HTTP 503", clock.sleep)
    assert clock.now == 5
    with pytest.raises(OutOfTimeError, match=r"put: HTTP 503 \(retry after 90.0 s\): 95 s left, 105 s needed"):
        pause(90, deadline, 15, "put: HTTP 503", clock.sleep)
    assert clock.now == 5  # not waited
