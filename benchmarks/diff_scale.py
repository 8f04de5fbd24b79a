"""Section 3: coa_sync.diff.plan over 10k / 100k / 1M accounts: time and peak RSS.

Each size runs in a fresh interpreter (`python -m benchmarks.diff_scale SIZE`), which plays
the diff λ: it gets both snapshots as JSON bytes (as S3 hands them over, decompressed),
parses them into SourceSnapshot / TargetSnapshot, and plans. Memory per stage comes from
the kernel's high-water mark (VmHWM), reset between stages (/proc/self/clear_refs); the
process peak is the largest of them. (Not ru_maxrss: on Linux a child's ru_maxrss starts
from the parent's RSS at fork, which would report the harness's size, not the diff's.)

The mix per 100 Pleo accounts: 1 archived and active in the AS (unarchive), 1 renamed
(update), 1 gone from the AS (archive), 1 archived and gone (nothing), 96 equal; plus 1
new AS account per 100 (create).
"""

from __future__ import annotations

import cProfile
import gc
import json
import pstats
import subprocess
import sys
import time
from pathlib import Path

from coa_sync.diff import plan
from coa_sync.models import SourceSnapshot, TargetSnapshot

from benchmarks.common import Table

GOAL_SECONDS, GOAL_MIB = 3.0, 1024
ROOT = Path(__file__).resolve().parent.parent


def _row(n: int, name: str) -> str:
    tax = '"VAT25"' if n % 3 else "null"
    return f'"externalId":"ACC-{n:07d}","code":"{100000 + n}","name":"{name}","taxCodeExternalId":{tax}'


def snapshots_json(n: int) -> tuple[bytes, bytes]:
    source, target = [], []
    for i in range(n):
        kind, name = i % 100, f"Account {i}"
        archived = "true" if kind in (0, 3) else "false"
        target.append(f'{{"id":"00000000-0000-4000-8000-{i:012d}",{_row(i, name)},"archived":{archived}}}')
        if kind not in (2, 3):
            source.append(f"{{{_row(i, f'Renamed {i}' if kind == 1 else name)},\"active\":true}}")
    source += [f"{{{_row(i, f'Account {i}')},\"active\":true}}" for i in range(n, n + n // 100)]
    return (f'{{"accounts":[{",".join(source)}]}}'.encode(), f'{{"accounts":[{",".join(target)}]}}'.encode())


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
    gc.collect()
    baseline = _rss_mib("VmRSS")
    source_json, target_json = snapshots_json(n)
    peaks = [_reset_peak()]
    started = time.perf_counter()
    source, target = SourceSnapshot.model_validate_json(source_json), TargetSnapshot.model_validate_json(target_json)
    parse_seconds = time.perf_counter() - started
    del source_json, target_json
    gc.collect()
    inputs = _rss_mib("VmRSS") - baseline
    peaks.append(_reset_peak())
    before = _rss_mib("VmRSS")
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    result = plan(source, target)
    if profiler:
        profiler.disable()
    diff_seconds = time.perf_counter() - started
    peaks.append(_rss_mib("VmHWM"))
    diff_mib = peaks[-1] - before
    top = []
    if profiler:
        stats = pstats.Stats(profiler).stats  # (file, line, function) -> (calls, ncalls, tottime, cumtime, callers)
        total = sum(entry[2] for entry in stats.values())
        for (file, line, function), entry in sorted(stats.items(), key=lambda item: -item[1][2])[:6]:
            top.append([f"{Path(file).name}:{line}({function})", entry[1], entry[2] / total])
    return {"n": n, "parse": parse_seconds, "diff": diff_seconds, "peak": max(peaks), "inputs": inputs,
            "diff_mib": diff_mib, "actions": len(result.actions), "top": top}


def measure(n: int, profile: bool = False) -> dict:
    command = [sys.executable, "-m", "benchmarks.diff_scale", str(n), *(["--profile"] if profile else [])]
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(output)


def run(quick: bool) -> list[Table]:
    sizes = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    table = Table("3. Diff scale: coa_sync.diff.plan, each size in a fresh process",
                  ["accounts", "actions", "parse JSON s", "diff s", "peak RSS MiB", "inputs MiB", "diff MiB"])
    results = [measure(n) for n in sizes]
    for r in results:
        table.rows.append([r["n"], r["actions"], r["parse"], r["diff"], r["peak"], r["inputs"], r["diff_mib"]])
    largest = results[-1]
    table.notes += [
        "parse JSON = SourceSnapshot/TargetSnapshot.model_validate_json of the snapshot bytes (what the diff λ does "
        "after reading S3); inputs MiB = RSS held by both parsed snapshots; diff MiB = the rise of RSS during plan(); "
        "peak RSS = the process's high-water mark VmHWM (interpreter, JSON bytes, models and plan together; ru_maxrss "
        "is not used: a child's starts at the parent's RSS at fork).",
    ]
    size = f"{largest['n']:,} accounts"
    table.goals += [
        (f"diff of {size} < {GOAL_SECONDS:g} s", f"plan() {largest['diff']:.2f} s (+ {largest['parse']:.2f} s to "
         "parse the snapshots)", largest["diff"] < GOAL_SECONDS),
        (f"diff of {size} < 1 GiB", f"peak RSS {largest['peak']:,.0f} MiB", largest["peak"] < GOAL_MIB),
    ]
    tables = [table]
    if largest["diff"] >= GOAL_SECONDS or largest["peak"] >= GOAL_MIB:
        profiled = measure(100_000, profile=True)
        tables.append(Table("3b. Where plan() spends its time (cProfile, 100,000 accounts, top by own time)",
                            ["function", "calls", "share of own time"],
                            [[f, c, f"{share:.0%}"] for f, c, share in profiled["top"]]))
    return tables


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]), "--profile" in sys.argv[2:])))
