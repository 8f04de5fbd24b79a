"""The three accounting-system emulators behind one small test-side shape, for tests that run alike on each.

Each `System` seeds an emulator with a chart of accounts (plus, if asked, one malformed
record with a known id) and says what a tenant's source config and secret for it are. Emulator
options (e.g. a documented page shape) pass through; the connectors use their documented rate
budgets, and each emulator gets a port of its own, so no two tests share a budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from coa_sync.models import DualEntrySource, SourceConfig, StackOneSource, ThredfiSource
from coa_sync_local.emulators.dualentry import DualEntryEmulator
from coa_sync_local.emulators.stackone import StackOneEmulator
from coa_sync_local.emulators.thredfi import ThredfiEmulator

PARTNER = "a1b2c3d4-5678-90ab-cdef-1234567890ab"
BUSINESS = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
SECRET_KEY = "s3cr3t-key-never-shown"
LINKED_ACCOUNT = "45355976281015164504"
STACKONE_COMPANY = "company_123"


@dataclass
class System:
    kind: str
    emulator: Any
    config: SourceConfig
    secret: dict[str, str]
    bad_id: str  # the externalId of the malformed record, if seeded
    list_endpoint: str
    page_size: int

    def with_secret(self, **changes: str) -> dict[str, str]:
        return {**self.secret, **changes}


def chart(count: int, *, inactive_every: int = 0) -> list[tuple[str, str, str, bool]]:
    """(key, code, name, active): key numbers the account; codes are 4-digit numbers."""
    return [(str(n), str(1000 + n), f"Account {n}", not (inactive_every and n % inactive_every == 0))
            for n in range(1, count + 1)]


@contextmanager
def thredfi(rows: list[tuple[str, str, str, bool]], *, malformed: bool = False,
            **emulator_options: Any) -> Iterator[System]:
    with ThredfiEmulator(**emulator_options) as emulator:
        emulator.add_partner(PARTNER, SECRET_KEY)
        raw = [{"id": "thr-bad", "code": "", "name": "No code", "is_active": True}] if malformed else []
        emulator.add_business(BUSINESS, PARTNER, raw_accounts=raw, accounts=[
            {"id": f"thr-{key}", "code": code, "name": name, "is_active": active} for key, code, name, active in rows])
        config = ThredfiSource(kind="thredfi", base_url=emulator.url, business_id=BUSINESS,
                               secret_name="coa-sync/acme/thredfi")
        yield System("thredfi", emulator, config, {"partnerUuid": PARTNER, "apiKey": SECRET_KEY}, "thr-bad",
                     "list", 100)


@contextmanager
def dualentry(rows: list[tuple[str, str, str, bool]], *, malformed: bool = False,
              **emulator_options: Any) -> Iterator[System]:
    with DualEntryEmulator(**emulator_options) as emulator:
        raw = [{"id": 99, "number": 42, "name": "Number too small", "is_active": True}] if malformed else []
        emulator.add_organization(SECRET_KEY, raw_accounts=raw, accounts=[
            {"id": 5000 + int(key), "number": int(code), "name": name, "is_active": active}
            for key, code, name, active in rows])
        config = DualEntrySource(kind="dualentry", base_url=emulator.url, secret_name="coa-sync/acme/dualentry")
        yield System("dualentry", emulator, config, {"apiKey": SECRET_KEY}, "99", "list", 100)


@contextmanager
def stackone(rows: list[tuple[str, str, str, bool]], *, malformed: bool = False,
             **emulator_options: Any) -> Iterator[System]:
    with StackOneEmulator(**emulator_options) as emulator:
        raw = [{"id": "so-bad", "code": "77", "name": "   ", "active": True}] if malformed else []
        emulator.add_linked_account(LINKED_ACCOUNT, SECRET_KEY, STACKONE_COMPANY, raw_accounts=raw, accounts=[
            {"id": f"so-{key}", "code": code, "name": name, "active": active} for key, code, name, active in rows])
        config = StackOneSource(kind="stackone", base_url=emulator.url, account_id=LINKED_ACCOUNT,
                                company_id=STACKONE_COMPANY, secret_name="coa-sync/acme/stackone")
        yield System("stackone", emulator, config, {"apiKey": SECRET_KEY}, "so-bad", "list", 100)


SYSTEMS = {"thredfi": thredfi, "dualentry": dualentry, "stackone": stackone}


def external_id(kind: str, key: str) -> str:
    """The externalId each connector gives the account seeded with `key`."""
    return {"thredfi": f"thr-{key}", "dualentry": str(5000 + int(key)), "stackone": f"so-{key}"}[kind]
