"""Section 7: a large chart file synced by the command line as a user runs it: wall time and peak memory.

`coa-sync sync --source chart.csv` (a 50 MB CSV of 800,000 rows with --full; smaller by default)
into an empty company of the Pleo emulator, which runs in a process of its own (so only the
command's memory is counted) at Pleo's rate limit, with the client at its 500 requests a minute.
The command's peak memory is its own high-water mark (VmHWM), read as it exits (not ru_maxrss:
see benchmarks/diff_scale.py). The plan it prints is summarised past 100 rows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import API_KEY, COMPANY, NAMES, Table

FULL, DEFAULT, QUICK = 800_000, 80_000, 10_000
GOAL_SECONDS, GOAL_MIB = 300.0, 2048  # for 800,000 rows
# Runs the command line in this process and reports its own high-water mark on the way out.
_MEASURED = ("import sys, atexit\n"
             "def hwm():\n"
             "    status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
             "    print('VmHWM', status['VmHWM'].split()[0], file=sys.stderr)\n"
             "atexit.register(hwm)\n"
             "from coa_sync_local.cli import main\n"
             "sys.exit(main(sys.argv[1:]))\n")


def write_chart(path: Path, n: int) -> int:
    """n active rows, about 63 bytes each (800,000 make 50 MB); the file's size in bytes."""
    with path.open("w") as out:
        out.write("externalId,code,name,active,taxCodeExternalId\n")
        for i in range(n):
            out.write(f"ACC-{i:07d},{100000 + i},{NAMES[i % len(NAMES)]} {i} - Operations,true,"
                      f"{'VAT25' if i % 3 else ''}\n")
    return path.stat().st_size


def sync(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        chart = Path(folder) / "chart.csv"
        size = write_chart(chart, n)
        emulator = subprocess.Popen(
            [sys.executable, "-m", "coa_sync_local.emulators.pleo", "--company", COMPANY, "--api-key", API_KEY,
             "--port", "0"], stdout=subprocess.PIPE, text=True)
        try:
            assert emulator.stdout is not None
            url = re.search(r"http://\S+", emulator.stdout.readline()).group()  # type: ignore[union-attr]
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", _MEASURED, "sync", "--source", str(chart), "--pleo-url", url,
                 "--company-id", COMPANY, "--pleo-api-key", API_KEY, "--state-dir", str(Path(folder) / "state")],
                capture_output=True, text=True, check=False, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            wall = time.perf_counter() - started
        finally:
            emulator.terminate()
            emulator.wait()
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"applied {n} create" in result.stdout, result.stdout[-2000:]
    hwm = int(re.search(r"VmHWM (\d+)", result.stderr).group(1))  # type: ignore[union-attr]
    return {"rows": n, "MB": size / 1e6, "wall": wall, "MiB": hwm / 1024,
            "stdout lines": len(result.stdout.splitlines()), "stderr KB": len(result.stderr) / 1000}


def run(quick: bool, full: bool = False) -> list[Table]:
    n = QUICK if quick else FULL if full else DEFAULT
    measured = sync(n)
    table = Table("7. A large chart file through the command line: initial sync into an empty Pleo",
                  ["rows", "file MB", "wall s", "peak MiB", "stdout lines", "stderr KB"],
                  [[measured["rows"], measured["MB"], measured["wall"], measured["MiB"], measured["stdout lines"],
                    measured["stderr KB"]]])
    table.notes += [
        "`coa-sync sync --source chart.csv` in a process of its own (state in a fresh directory) against the Pleo "
        "emulator in another; the client keeps to 500 requests a minute, so 800 batch creates take at least a "
        "minute whatever else is fast.",
        "Where the time goes at this size (py-spy): the diff λ queueing one SQS message per action through boto3 "
        "into moto (80,000 SendMessageBatch calls for 800,000 actions) is over half of it; the writer loop (moto's "
        "SQS in process, the writer, Pleo's batch creates) about a third; reading the file about 5%.",
    ]
    if n == FULL:
        table.goals += [(f"CLI sync of a {measured['MB']:.0f} MB CSV ({n:,} rows) < {GOAL_SECONDS:g} s",
                         f"{measured['wall']:.0f} s", measured["wall"] < GOAL_SECONDS),
                        (f"... peak memory < {GOAL_MIB} MiB", f"{measured['MiB']:.0f} MiB",
                         measured["MiB"] < GOAL_MIB)]
    return [table]


if __name__ == "__main__":
    for line in run(quick="--quick" in sys.argv, full="--full" in sys.argv)[0].text().splitlines():
        print(line)
