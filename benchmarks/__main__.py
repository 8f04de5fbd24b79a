"""`python -m benchmarks`: every benchmark section, one table (or two) each, and benchmarks/RESULTS.md.

    python -m benchmarks            # the default sizes (about 30 minutes on 2 cores, 20 of them section 10);
                                    # writes RESULTS.md
    python -m benchmarks --quick    # smaller sizes, prints only (unless --output is given)
    python -m benchmarks --full     # also the local end-to-end sync of 100,000 when it looks feasible, and
                                    # the command line syncing a 50 MB CSV of 800,000 rows (section 7)

Everything talks to 127.0.0.1 only (the Pleo emulator) and to moto; no AWS account is used.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import (
    api_calls,
    cold_start,
    diff_scale,
    diff_send,
    large_file,
    local_e2e,
    local_state,
    many_tenants,
    rate_budget,
    writers,
)
from benchmarks.common import Table, verdict

SECTIONS = {
    "1": api_calls.run,
    "2": rate_budget.run,
    "3": diff_scale.run,
    "4": local_e2e.run,
    "5": cold_start.run,
    "6": local_state.run,
    "7": large_file.run,
    "8": diff_send.run,
    "9": writers.run,
    "10": many_tenants.run,
}
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes; prints only unless --output is given")
    size.add_argument("--full", action="store_true", help="also sync 100,000 accounts end to end locally")
    parser.add_argument("--only", default="".join(SECTIONS), type=_sections,
                        help="sections to run, e.g. 13, or 10 for the tenth (default: all)")
    parser.add_argument("--output", type=Path,
                        help=f"markdown file to write (default: {RESULTS.name}; none with --quick)")
    args = parser.parse_args(argv)
    output = args.output or (None if args.quick else RESULTS)
    mode = "quick" if args.quick else "full" if args.full else "default"
    header = [
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m benchmarks`"
        + (f" --{mode}" if mode != "default" else "") + (f" --only {''.join(args.only)}"
                                                           if args.only != list(SECTIONS) else ""),
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (nproc), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load average at start {_load()}",
    ]
    print("\n".join(header), flush=True)
    started = time.perf_counter()
    tables: list[Table] = []
    for key in args.only:
        section_started = time.perf_counter()
        produced = SECTIONS[key](args.quick, args.full) if key in "47" else SECTIONS[key](args.quick)
        for table in produced:
            print("\n" + table.text(), flush=True)
        print(f"  ({time.perf_counter() - section_started:.0f} s)", flush=True)
        tables += produced
    goals = Table("Goals", ["goal", "measured", "verdict"],
                  [[goal, measured, verdict(met)] for table in tables for goal, measured, met in table.goals])
    footer = f"All sections took {time.perf_counter() - started:.0f} s; load average at the end {_load()}."
    print("\n" + goals.text() + "\n\n" + footer)
    if output:
        body = "\n\n".join(table.markdown() for table in [goals, *tables])
        output.write_text("# coa-sync benchmark results\n\n" + "  \n".join(header) + "  \n" + footer
                          + "\n\nEvery figure below is from this one run. Regenerate with `make bench` "
                          "(`python -m benchmarks`).\n\n" + body + "\n")
        print(f"wrote {output}")
    return 0


def _sections(only: str) -> list[str]:
    keys = re.findall(r"10|[1-9]", only)
    if "".join(keys) != only:
        raise argparse.ArgumentTypeError(f"sections are 1 to {len(SECTIONS)}, e.g. 13 or 10: got {only!r}")
    return keys


def _load() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1/5/15 min)"


if __name__ == "__main__":
    raise SystemExit(main())
