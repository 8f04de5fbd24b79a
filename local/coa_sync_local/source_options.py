"""The CLI's accounting-system options: a tenant's source (and target) config and credentials from flags or
a file, and the demo's built-in accounting-system emulators.

    coa-sync sync --source-kind thredfi --source-url URL --source-setting businessId=UUID \\
                  --source-credential partnerUuid=UUID --source-credential apiKey=KEY ...
    coa-sync sync --source-config tenant.json ...   # {"source": {...}, "sourceCredentials": {...}}
    coa-sync sync --source-kind dualentry ... --target-kind thredfi --target-url URL ...   # a copy, not to Pleo
    coa-sync sync ... --target-config tenant.json   # {"target": {...}, "targetCredentials": {...}}

The target's options mirror the source's (--target-kind, --target-config, --target-url,
--target-setting, --target-credential); without them the target is Pleo. Flags override the file.
An API system's `secretName` defaults to coa-sync/{tenant}/{kind} (coa-sync/{tenant}/target-{kind}
for a target): the runner keeps the credentials in (moto's) Secrets Manager under it, as a
deployment would.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coa_sync.models import SOURCE_KINDS, TARGET_KINDS, SourceConfig, TargetConfig
from pydantic import TypeAdapter, ValidationError

if TYPE_CHECKING:
    from coa_sync_local.emulators._base import EmulatorBase

API_KINDS = tuple(kind for kind in SOURCE_KINDS if kind != "file")
_CONFIGS: dict[str, TypeAdapter[Any]] = {"source": TypeAdapter(SourceConfig), "target": TypeAdapter(TargetConfig)}
_SOURCE = _CONFIGS["source"]


def add_arguments(sync: argparse.ArgumentParser) -> None:
    group = sync.add_argument_group("accounting-system source (instead of --source FILE)")
    group.add_argument("--source-kind", choices=SOURCE_KINDS, default=None,
                       help="where the chart comes from (default: file, or the --source-config's kind)")
    group.add_argument("--source-config", type=Path, metavar="FILE.json",
                       help='tenant config: {"source": {"kind", "baseUrl", ...}, "sourceCredentials": {...}}')
    group.add_argument("--source-url", metavar="URL", help="the accounting system's API base URL")
    group.add_argument("--source-setting", action="append", default=[], metavar="KEY=VALUE",
                       help="a source setting, e.g. businessId=UUID, externalIdFrom=id|code (thredfi); accountId=ID "
                            "companyId=ID (stackone); rateLimitPerMinute=N rateLimitBurst=N (a raised API key limit)")
    group.add_argument("--source-credential", action="append", default=[], metavar="KEY=VALUE",
                       help="a credential: partnerUuid=, apiKey= (thredfi); apiKey= (dualentry, stackone)")
    group = sync.add_argument_group("target (default: Pleo, with --pleo-url and --company-id)")
    group.add_argument("--target-kind", choices=TARGET_KINDS, default=None,
                       help="where the chart goes: another accounting system (actions it cannot take are reported "
                            "as unsupported by the target; stackone takes none)")
    group.add_argument("--target-config", type=Path, metavar="FILE.json",
                       help='tenant config: {"target": {"kind", "baseUrl", ...}, "targetCredentials": {...}}')
    group.add_argument("--target-url", metavar="URL", help="the target system's API base URL")
    group.add_argument("--target-setting", action="append", default=[], metavar="KEY=VALUE",
                       help="a target setting, as --source-setting")
    group.add_argument("--target-credential", action="append", default=[], metavar="KEY=VALUE",
                       help="a target credential, as --source-credential")


def wants_api_source(args: argparse.Namespace) -> bool:
    return bool(args.source_config or (args.source_kind and args.source_kind != "file"))


def wants_api_target(args: argparse.Namespace) -> bool:
    return bool(args.target_config or (args.target_kind and args.target_kind != "pleo"))


def source_from_args(args: argparse.Namespace) -> tuple[SourceConfig, dict[str, Any]]:
    """The source config and credentials the flags (over the --source-config file) describe; ValueError if bad."""
    return _from_args(args, "source")


def target_from_args(args: argparse.Namespace) -> tuple[TargetConfig, dict[str, Any]]:
    """The target config and credentials the flags (over the --target-config file) describe; ValueError if bad."""
    return _from_args(args, "target")


def _from_args(args: argparse.Namespace, role: str) -> tuple[Any, dict[str, Any]]:
    path = getattr(args, f"{role}_config")
    settings, credentials = read_config(path, role) if path else ({}, {})
    if getattr(args, f"{role}_kind"):
        settings["kind"] = getattr(args, f"{role}_kind")
    if getattr(args, f"{role}_url"):
        settings["baseUrl"] = getattr(args, f"{role}_url")
    settings.update(key_values(getattr(args, f"{role}_setting"), f"--{role}-setting"))
    credentials.update(key_values(getattr(args, f"{role}_credential"), f"--{role}-credential"))
    kind = settings.get("kind")
    if kind not in API_KINDS:
        raise ValueError(f"the {role} kind must be one of {', '.join(API_KINDS)} here, not {kind!r}")
    settings.setdefault("secretName", f"coa-sync/{args.tenant}/{kind}" if role == "source"
                        else f"coa-sync/{args.tenant}/target-{kind}")
    config = validated(settings, role)
    if not credentials:
        raise ValueError(f"{kind} needs credentials: --{role}-credential KEY=VALUE or {role}Credentials in "
                         f"--{role}-config")
    return config, credentials


def read_config(path: Path, role: str = "source") -> tuple[dict[str, Any], dict[str, Any]]:
    """A tenant config file's settings and credentials for `role`: {"source": {...}, "sourceCredentials": {...}}
    (or "target" and "targetCredentials")."""
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
    secrets = f"{role}Credentials"
    if not isinstance(document, dict) or not isinstance(document.get(role, {}), dict) \
            or not isinstance(document.get(secrets) or {}, dict):
        raise ValueError(f"{path}: expected an object with a '{role}' object (and a '{secrets}' object)")
    return dict(document.get(role, {})), dict(document.get(secrets) or {})


def validated(settings: dict[str, Any], role: str = "source") -> Any:
    """Settings as the functions read them (coa_sync.models.SourceConfig or TargetConfig); ValueError naming
    each problem."""
    try:
        return _CONFIGS[role].validate_python(settings)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or role}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{settings.get('kind', 'file' if role == 'source' else 'pleo')} {role} settings: "
                         f"{problems}") from None


def key_values(values: list[str], flag: str) -> dict[str, str]:
    """Repeated KEY=VALUE flags as a dict; ValueError naming the flag if one is not."""
    found = {}
    for value in values:
        key, equals, setting = value.partition("=")
        if not equals or not key:
            raise ValueError(f"{flag} takes KEY=VALUE, not {value!r}")
        found[key] = setting
    return found


# -- the demo's accounting systems ---------------------------------------------------------


def demo_shape(kind: str, pairs: list[str]) -> dict[str, str]:
    """The emulator options `--source-shape` names (its SHAPES); ValueError naming what `kind` plays otherwise."""
    known = _emulator(kind).SHAPES
    options = key_values(pairs, "--source-shape")
    for option, value in options.items():
        if value not in known.get(option, ()):
            plays = ", ".join(f"{name}={'|'.join(values)}" for name, values in known.items())
            raise ValueError(f"--source-shape {option}={value}: the {kind} emulator plays {plays}")
    return options


@contextmanager
def demo_source(kind: str, accounts_csv: str, pleo_seed: list[dict[str, Any]], shape: list[str] = ()) -> Iterator[
        tuple[SourceConfig, dict[str, Any], list[dict[str, Any]]]]:
    """An emulator of `kind` holding the sample chart, playing `shape` (OPTION=VALUE each): (source config,
    credentials, Pleo's seed to match it)."""
    options = demo_shape(kind, list(shape))  # refuses an unknown kind, too
    rows = list(csv.DictReader(io.StringIO(accounts_csv)))
    active = [(row["externalId"], row["code"], row["name"], row["active"].strip().lower() == "true") for row in rows]
    key = "demo-source-key"
    with _emulator(kind)(**options) as emulator:
        if kind == "thredfi":
            partner, business = "a1b2c3d4-5678-90ab-cdef-1234567890ab", "3c90c3cc-0d44-4b50-8888-8dd25736052a"
            emulator.add_partner(partner, key)
            emulator.add_business(business, partner, accounts=[
                {"id": ext, "code": code, "name": name, "is_active": on} for ext, code, name, on in active])
            yield (_SOURCE.validate_python({"kind": "thredfi", "baseUrl": emulator.url, "businessId": business,
                                            "secretName": "coa-sync/demo/thredfi"}),
                   {"partnerUuid": partner, "apiKey": key}, pleo_seed)
        elif kind == "dualentry":
            # DualEntry ids are integers: the sample's account ids become their numbers, and Pleo's seed follows.
            emulator.add_organization(key, accounts=[
                {"id": int(code), "number": int(code), "name": name, "is_active": on} for _, code, name, on in active])
            seed = [{**a, "externalId": a["externalId"].removeprefix("ext-")} for a in pleo_seed]
            yield (_SOURCE.validate_python({"kind": "dualentry", "baseUrl": emulator.url,
                                            "secretName": "coa-sync/demo/dualentry"}), {"apiKey": key}, seed)
        else:
            emulator.add_linked_account("demo-linked-account", key, "demo-company", accounts=[
                {"id": ext, "code": code, "name": name, "active": on} for ext, code, name, on in active])
            yield (_SOURCE.validate_python({"kind": "stackone", "baseUrl": emulator.url, "accountId":
                                            "demo-linked-account", "companyId": "demo-company",
                                            "secretName": "coa-sync/demo/stackone"}), {"apiKey": key}, pleo_seed)

def _emulator(kind: str) -> type[EmulatorBase]:
    """The demo emulator class of `kind`, imported only when a demo asks for it."""
    if kind == "thredfi":
        from coa_sync_local.emulators.thredfi import ThredfiEmulator

        return ThredfiEmulator
    if kind == "dualentry":
        from coa_sync_local.emulators.dualentry import DualEntryEmulator

        return DualEntryEmulator
    if kind == "stackone":
        from coa_sync_local.emulators.stackone import StackOneEmulator

        return StackOneEmulator
    raise ValueError(f"no demo for source {kind!r}; choose one of {', '.join(API_KINDS)}")


__all__ = ["API_KINDS", "add_arguments", "demo_shape", "demo_source", "read_config", "source_from_args",
           "target_from_args", "validated", "wants_api_source", "wants_api_target"]
