"""The Lambda layer installs exactly layers/core/requirements.txt: a lock of requirements.in, without the AWS SDK.

The lock is made by `make layer-lock` (uv, for arm64 and Python 3.12); these checks catch a
requirements.in or pyproject.toml edited without it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "core"
# What pyproject.toml's dependencies have for the local runner and CLI only (Lambda's runtime has boto3).
LOCAL_ONLY = {"boto3", "moto", "openapi-core"}  # openapi-core: the Pleo emulator checks requests with it


def requirements(path: Path) -> dict[str, Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {canonicalize_name(r.name): r for r in map(Requirement, filter(None, lines))}


def pins() -> dict[str, tuple[str, list[str]]]:
    """The lock's packages: name -> (version, hashes)."""
    locked: dict[str, tuple[str, list[str]]] = {}
    for entry in re.split(r"\n(?=\S)", (LAYER / "requirements.txt").read_text()):
        if match := re.match(r"([A-Za-z0-9._-]+)==(\S+)", entry):
            locked[canonicalize_name(match[1])] = (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))
    return locked


def test_the_layer_wants_what_pyproject_says_lambda_runs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {canonicalize_name(r.name): r for r in map(Requirement, project)}
    layer = requirements(LAYER / "requirements.in")
    assert set(wanted) - set(layer) == LOCAL_ONLY
    assert {name: str(r) for name, r in layer.items()} == {name: str(wanted[name]) for name in layer}


def test_the_lock_pins_every_wanted_package_with_its_extras_and_hashes():
    locked = pins()
    for name, requirement in requirements(LAYER / "requirements.in").items():
        assert name in locked, f"{name} is not in requirements.txt: run make layer-lock"
        assert requirement.specifier.contains(locked[name][0]), (name, locked[name][0], str(requirement))
    assert "aws-xray-sdk" in locked  # aws-lambda-powertools[tracer]
    assert all(hashes for _, hashes in locked.values()), "every pin needs its hashes (pip --require-hashes)"


def test_the_lock_leaves_the_aws_sdk_to_the_lambda_runtime():
    provided = set(requirements(LAYER / "runtime-provided.txt"))
    assert provided == {"boto3", "botocore"}
    assert not (provided | {"s3transfer"}) & set(pins())
