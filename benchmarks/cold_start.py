"""Section 5: a cold-start proxy: handler import time (benchmarks.handler_import), and built sizes."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections import Counter

from benchmarks.common import Table
from benchmarks.handler_import import ENVIRONMENT, PROBE, ROOT, measure

GOAL_MS = 300
BUILD = ROOT / ".aws-sam" / "build"


def timed_import(function: str, repeats: int, env: dict[str, str]) -> list[float]:
    app = str(ROOT / "functions" / function / "app.py")
    return [float(subprocess.run([sys.executable, "-c", PROBE, app], env=env, capture_output=True, text=True,
                                 check=True).stdout) for _ in range(repeats)]


def run(quick: bool) -> list[Table]:
    repeats = 3 if quick else 5
    imports = Table("5. Cold start proxy: importing each handler in a fresh interpreter (ms)",
                    ["handler", "median", "best", "median, all bytecode cached", "median, no bytecode"])
    base = {**os.environ, **ENVIRONMENT, "PYTHONPATH": str(ROOT / "layers" / "core")}
    worst = 0.0
    with tempfile.TemporaryDirectory() as cached, tempfile.TemporaryDirectory() as empty:
        # Bytecode mirrors: one filled by a first import, one left empty (so every module compiles from source).
        warm = {**base, "PYTHONPYCACHEPREFIX": cached}
        warm.pop("PYTHONDONTWRITEBYTECODE", None)
        cold = {**base, "PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1"}
        for function in ("fetch", "diff", "writer"):
            times = measure(function, repeats=repeats)
            timed_import(function, 1, warm)
            with_bytecode, without = timed_import(function, repeats, warm), timed_import(function, repeats, cold)
            worst = max(worst, statistics.median(times))
            imports.rows.append([function, *(f"{value:.0f}" for value in (
                statistics.median(times), min(times), statistics.median(with_bytecode), statistics.median(without)))])
    imports.notes += [
        "benchmarks/handler_import.py: functions/<name>/app.py imported with the layer on PYTHONPATH and the "
        "function's environment (settings, boto3 clients, Powertools), as at a Lambda cold start, on this machine "
        "(not Lambda's arm64). median/best: this checkout as it is (PYTHONDONTWRITEBYTECODE="
        f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r} here); the other two columns use a private bytecode "
        "cache (PYTHONPYCACHEPREFIX), filled first or left empty.",
    ]
    imports.goals.append((f"handler import < {GOAL_MS} ms", f"worst median {worst:.0f} ms", worst < GOAL_MS))
    tables = [imports, by_package()]
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


def by_package() -> Table:
    """Each handler's import once under `-X importtime`, its own time summed per top-level package."""
    env = {**os.environ, **ENVIRONMENT, "PYTHONPATH": str(ROOT / "layers" / "core")}
    shares: dict[str, Counter[str]] = {}
    for function in ("fetch", "diff", "writer"):
        app = str(ROOT / "functions" / function / "app.py")
        log = subprocess.run([sys.executable, "-X", "importtime", "-c", PROBE, app], env=env, capture_output=True,
                             text=True, check=True).stderr
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
                  ["package", "fetch", "diff", "writer"])
    for name in top:
        table.rows.append([name, *(f"{shares[f][name]:.0f}" for f in shares)])
    rest = [sum(counts.values()) - sum(counts[name] for name in top) for counts in shares.values()]
    table.rows.append(["everything else", *(f"{ms:.0f}" for ms in rest)])
    table.notes.append("One traced import per handler (tracing adds overhead: read the shares, not the sums).")
    return table
