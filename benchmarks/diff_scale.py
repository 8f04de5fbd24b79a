"""Section 3: the diff λ's work on 10k / 100k / 1M accounts: time and peak RSS.

Each size runs in a fresh interpreter (`python -m benchmarks.diff_scale SIZE`), which plays
the diff λ: the fetch side's SnapshotStore.put writes both snapshots (gzip JSON columns) to an
in-memory S3, then, timed, the λ's SnapshotStore.get reads them back (gunzip + parse: all of
the λ's read but the network) and coa_sync.diff.plan plans. Memory per stage comes from the
kernel's high-water mark (VmHWM), reset between stages (/proc/self/clear_refs); the peak is the
largest of the read and plan stages (writing the inputs is the harness's, not the λ's). (Not
ru_maxrss: on Linux a child's ru_maxrss starts from the parent's RSS at fork, which would
report the harness's size, not the diff's.)

The mix per 100 Pleo accounts: 1 archived and active in the AS (unarchive), 1 renamed
(update), 1 gone from the AS (archive), 1 archived and gone (nothing), 96 equal; plus 1
new AS account per 100 (create).
"""

from __future__ import annotations

import cProfile
import gc
import io
import json
import pstats
import subprocess
import sys
import time
from pathlib import Path

from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.diff import plan
from coa_sync.models import SourceColumns, TargetColumns

from benchmarks.common import Table

GOAL_SECONDS, GOAL_MIB = 3.0, 1024
ROOT = Path(__file__).resolve().parent.parent


class _MemoryS3:
    """Just what SnapshotStore calls, kept in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Key: str, Body: bytes, **_: object) -> None:
        self.objects[Key] = Body

    def get_object(self, *, Key: str, **_: object) -> dict:
        return {"Body": io.BytesIO(self.objects[Key])}


def _accounts(numbers: range, name) -> dict:
    return {"external_id": [f"ACC-{n:07d}" for n in numbers], "code": [str(100000 + n) for n in numbers],
            "name": [name(n) for n in numbers], "tax_code_external_id": ["VAT25" if n % 3 else None for n in numbers]}


def write_snapshots(n: int, files: SnapshotStore) -> None:
    """Both charts of n Pleo accounts, written as the fetch λ writes them (already sorted by externalId)."""
    kept = [i for i in range(n) if i % 100 not in (2, 3)] + list(range(n, n + n // 100))
    source = _accounts(kept, lambda i: f"Renamed {i}" if i < n and i % 100 == 1 else f"Account {i}")
    files.put("source.json.gz", SourceColumns(**source, active=[True] * len(kept)))
    target = _accounts(range(n), lambda i: f"Account {i}")
    files.put("target.json.gz", TargetColumns(**target, id=[f"00000000-0000-4000-8000-{i:012d}" for i in range(n)],
                                              archived=[i % 100 in (0, 3) for i in range(n)]))


def _rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (high-water mark since the last reset), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def _reset_peak() -> float:
    """The high-water mark so far; then restart it from the current RSS."""
    peak = _rss_mib("VmHWM")
    Path("/proc/self/clear_refs").write_text("5")
    return peak


def child(n: int, profile: bool) -> dict:
    files = SnapshotStore("bench", s3=_MemoryS3())
    write_snapshots(n, files)
    gc.collect()
    _reset_peak()
    baseline = _rss_mib("VmRSS")
    started = time.perf_counter()
    source, target = files.get("source.json.gz", SourceColumns), files.get("target.json.gz", TargetColumns)
    read_seconds = time.perf_counter() - started
    peaks = [_reset_peak()]
    inputs = _rss_mib("VmRSS") - baseline
    before = _rss_mib("VmRSS")
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    result = plan(source, target)
    if profiler:
        profiler.disable()
    plan_seconds = time.perf_counter() - started
    peaks.append(_rss_mib("VmHWM"))
    top = []
    if profiler:
        stats = pstats.Stats(profiler).stats  # (file, line, function) -> (calls, ncalls, tottime, cumtime, callers)
        total = sum(entry[2] for entry in stats.values())
        for (file, line, function), entry in sorted(stats.items(), key=lambda item: -item[1][2])[:6]:
            top.append([f"{Path(file).name}:{line}({function})", entry[1], entry[2] / total])
    return {"n": n, "read": read_seconds, "plan": plan_seconds, "peak": max(peaks), "inputs": inputs,
            "plan_mib": peaks[-1] - before, "actions": len(result.actions), "top": top}


def measure(n: int, profile: bool = False) -> dict:
    command = [sys.executable, "-m", "benchmarks.diff_scale", str(n), *(["--profile"] if profile else [])]
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(output)


def run(quick: bool) -> list[Table]:
    sizes = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    table = Table("3. Diff scale: the diff λ's read and coa_sync.diff.plan, each size in a fresh process",
                  ["accounts", "actions", "read s", "plan() s", "read + plan s", "peak RSS MiB", "inputs MiB",
                   "plan MiB"])
    results = [measure(n) for n in sizes]
    for r in results:
        table.rows.append([r["n"], r["actions"], r["read"], r["plan"], r["read"] + r["plan"], r["peak"],
                           r["inputs"], r["plan_mib"]])
    largest = results[-1]
    total = largest["read"] + largest["plan"]
    table.notes += [
        "read = SnapshotStore.get of both snapshots from (in-memory) S3: gunzip, parse the JSON columns, check their "
        "shape, as the diff λ does; inputs MiB = RSS held by both read snapshots; plan MiB = the rise of RSS during "
        "plan(); peak RSS = the process's high-water mark VmHWM while reading and planning (interpreter, snapshot "
        "bytes, columns and plan together; ru_maxrss is not used: a child's starts at the parent's RSS at fork).",
    ]
    size = f"{largest['n']:,} accounts"
    table.goals += [
        (f"diff of {size} < {GOAL_SECONDS:g} s", f"read + plan {total:.2f} s (plan() alone {largest['plan']:.2f} s)",
         total < GOAL_SECONDS),
        (f"diff of {size} < 1 GiB", f"peak RSS {largest['peak']:,.0f} MiB", largest["peak"] < GOAL_MIB),
    ]
    tables = [table]
    if total >= GOAL_SECONDS or largest["peak"] >= GOAL_MIB:
        profiled = measure(100_000, profile=True)
        tables.append(Table("3b. Where plan() spends its time (cProfile, 100,000 accounts, top by own time)",
                            ["function", "calls", "share of own time"],
                            [[f, c, f"{share:.0%}"] for f, c, share in profiled["top"]]))
    return tables


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]), "--profile" in sys.argv[2:])))
