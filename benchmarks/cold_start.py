"""Section 5: a cold-start proxy: each handler's import and first calls (benchmarks.handler_import), and built sizes."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from collections import Counter

from benchmarks.common import Table
from benchmarks.handler_import import FUNCTIONS, PROBE, ROOT, app, chain, environment, measure, world

GOAL_MS = 300
BUILD = ROOT / ".aws-sam" / "build"


def run(quick: bool) -> list[Table]:
    repeats = 3 if quick else 5
    table = Table("5. Cold start proxy: each handler in a fresh interpreter, as deployed (ms, medians)",
                  ["handler", "import", "import, best", "import, no bytecode", "first call", "second call",
                   "import + first call"])
    with tempfile.TemporaryDirectory() as cached, tempfile.TemporaryDirectory() as empty, world() as w:
        # Bytecode as the built layer ships it: a private cache, filled by a first chain that is not measured.
        warm = {"PYTHONPYCACHEPREFIX": cached, "PYTHONDONTWRITEBYTECODE": ""}
        chain(w, [w.tenant("warm-a"), w.tenant("warm-b")], **warm)
        runs = [chain(w, [w.tenant(f"r{n}-a"), w.tenant(f"r{n}-b")], **warm) for n in range(repeats)]
        for function in FUNCTIONS:
            imported, first, second = ([times[function][i] for times in runs] for i in range(3))
            compiled = measure(function, repeats, PYTHONPYCACHEPREFIX=empty, PYTHONDONTWRITEBYTECODE="1")
            table.rows.append([function, *(f"{value:.0f}" for value in (
                statistics.median(imported), min(imported), statistics.median(compiled), statistics.median(first),
                statistics.median(second), statistics.median([a + b for a, b in zip(imported, first, strict=True)])))])
        packages = by_package(warm)
    worst = max(float(row[1]) for row in table.rows)
    worst_total = max(float(row[6]) for row in table.rows)
    table.notes += [
        "benchmarks/handler_import.py: each handler in a fresh interpreter with the deployed function's "
        "environment (the template's variables; Tracing: Active, so Powertools' tracer on and the X-Ray SDK in "
        "its Lambda mode), and bytecode precompiled as the built layer ships it (a private PYTHONPYCACHEPREFIX "
        "filled by a first, unmeasured run); 'no bytecode' compiles every module it imports. On this machine, "
        f"not Lambda's arm64; medians of {repeats} (import, best: the fastest).",
        "first call, second call: the handler then called twice in that process with two equivalent events (a "
        "run of each of two tenants: fetch of its S3 file source and of Pleo, diff of the manifest, the writer "
        "with the run's 4 actions, the webhook's signed GET of the run), against moto (in the benchmark process, "
        "reached over HTTP on 127.0.0.1) and the Pleo emulator. Both include moto's and the emulator's time; "
        "their difference is what the first call pays once.",
        "Moved from import to the first call (the cold start's total is import + first call): importing boto3 "
        "and building each client the call uses, httpx and the shared TLS context, Powertools' parameters, the "
        "validators of the models the call uses (pydantic defer_build), X-Ray's patching of botocore and httpx. "
        "Gone from both: X-Ray patching every other library it knows (sqlite3, requests...), clients a path "
        "never calls, connectors of other kinds, validators of unused models, Powertools' S3Event classes "
        "(diff), and a TLS context per Pleo client (now one per process).",
    ]
    table.goals.append((f"handler import < {GOAL_MS} ms",
                        f"worst median {worst:.0f} ms (import + first call: worst {worst_total:.0f} ms)",
                        worst < GOAL_MS))
    tables = [table, packages]
    if BUILD.is_dir():
        sizes = Table("5b. Built sizes (.aws-sam/build, du)", ["artifact", "KiB"])
        for folder in sorted(path for path in BUILD.iterdir() if path.is_dir()):
            kib = int(subprocess.run(["du", "-sk", str(folder)], capture_output=True, text=True,
                                     check=True).stdout.split()[0])
            sizes.rows.append([folder.name, kib])
        pycs = sum(1 for _ in BUILD.rglob("*.pyc"))
        sizes.notes.append(f"From the last `sam build` in this checkout (not rebuilt here). .pyc files in it: {pycs}; "
                           "Lambda's /opt and /var/task are read-only, so without them every cold start compiles "
                           "every module it imports (the 'no bytecode' column above).")
        tables.append(sizes)
    return tables


def by_package(bytecode: dict[str, str]) -> Table:
    """Each handler's import once under `-X importtime`, its own time summed per top-level package."""
    shares: dict[str, Counter[str]] = {}
    for function in FUNCTIONS:
        log = subprocess.run([sys.executable, "-X", "importtime", "-c", PROBE, app(function)],
                             env=environment(function, **bytecode), capture_output=True, text=True, check=True).stderr
        shares[function] = Counter()
        for line in log.splitlines()[1:]:
            if line.startswith("import time:"):
                own, _, name = line.removeprefix("import time:").split("|")
                shares[function][name.strip().split(".")[0]] += int(own) / 1000
    packages = Counter()
    for counts in shares.values():
        packages.update(counts)
    top = [name for name, _ in packages.most_common(10)]
    table = Table("5a. Where the import time goes (-X importtime, own time per top-level package, ms)",
                  ["package", *FUNCTIONS])
    for name in top:
        table.rows.append([name, *(f"{shares[f][name]:.0f}" for f in shares)])
    rest = [sum(counts.values()) - sum(counts[name] for name in top) for counts in shares.values()]
    table.rows.append(["everything else", *(f"{ms:.0f}" for ms in rest)])
    table.notes.append("One traced import per handler, as deployed, bytecode cached (tracing adds overhead: read the "
                       "shares, not the sums).")
    return table
