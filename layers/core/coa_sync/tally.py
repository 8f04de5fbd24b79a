"""Counting a run's actions once each, however often they are delivered.

SQS delivers at least once, a killed writer's batch comes back whole, and a diff cut off may
send some actions again: counters that add one per delivery would close a run early (as many
settled as planned while some of its actions still wait) or end it with applied = 2 x planned.
So every action carries its seq (its place in the run), each outcome is recorded as the set of
seqs it reached, and the counts are the sizes of those sets:

    applied[kind] = |kind|                                applied is applied, whatever came before
    failed        = |failed - applied|                     dead-lettered, and not applied since (redrive)
    superseded    = |superseded - applied - failed|       left queued when a newer run took over

Adding a seq twice changes nothing, so recording the same outcome again (a redelivery, a retried
invocation) is harmless. The sets are kept in shards of SHARD seqs (one small item each).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SHARD = 1000
KINDS = ("create", "update", "unarchive", "archive")
OUTCOMES = (*KINDS, "failed", "superseded")


def shard_of(seq: int) -> int:
    return seq // SHARD


def by_shard(seqs: Iterable[int]) -> dict[int, set[int]]:
    shards: dict[int, set[int]] = {}
    for seq in seqs:
        shards.setdefault(shard_of(seq), set()).add(seq)
    return shards


def counts(sets: Mapping[str, Iterable[int]]) -> dict[str, int]:
    """The counts of one shard's outcome sets, each seq counted under one outcome only."""
    applied: set[int] = set()
    tally = {}
    for kind in KINDS:  # a seq is one action, of one kind: counted once even if a set said otherwise
        seqs = set(sets.get(kind, ())) - applied
        tally[kind] = len(seqs)
        applied |= seqs
    failed = set(sets.get("failed", ())) - applied
    tally["failed"] = len(failed)
    tally["superseded"] = len(set(sets.get("superseded", ())) - applied - failed)
    return tally


def done(sets: Mapping[str, Iterable[int]], seq: int, *, redriven: bool = False) -> bool:
    """Whether the action already reached its end: applied, or dead-lettered (unless it is being redriven)."""
    if any(seq in sets.get(kind, ()) for kind in KINDS):
        return True
    return not redriven and seq in sets.get("failed", ())
