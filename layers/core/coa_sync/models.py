"""The domain: accounts on both sides, snapshots, actions, plans and run summaries.

Field names follow Pleo's camelCase on the wire and in every file we write; Python code
uses snake_case attributes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from itertools import islice
from operator import attrgetter, le
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SkipValidation,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import from_json

# Pleo's documented limits: externalId 1..255, name and code at most 255 characters.
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Name = Annotated[str, StringConstraints(max_length=255)]


def _empty_to_none(value: object) -> object:
    # Both systems write "no code" as "" or null; treat them as one so a sync converges.
    return None if value == "" else value


Code = Annotated[str | None, StringConstraints(max_length=255), BeforeValidator(_empty_to_none)]
TaxCode = Annotated[str | None, BeforeValidator(_empty_to_none)]
# Pleo's `metadata`: "a place for API users to store flexible data". Kept as any JSON object, never checked:
# coa-sync only carries it from the read to the PUT, so what another tool stored comes back unchanged.
Metadata = dict[str, Any] | None
# Pleo rejects blank names on create (NAME_EMPTY), so a blank name in the AS is bad input.
SourceName = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"\S")]


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
        extra="ignore",
        # Validators are built when a model is first used, not at import: a handler uses a few of these.
        defer_build=True,
    )


class AccountFields(Model):
    """What we keep in step between the two systems for one account."""

    name: Name
    code: Code = None
    tax_code_external_id: TaxCode = None


class SourceAccount(AccountFields):
    """An account as the accounting system (AS) has it."""

    name: SourceName
    external_id: ExternalId
    active: bool = True

    def fields(self) -> AccountFields:
        return AccountFields(name=self.name, code=self.code, tax_code_external_id=self.tax_code_external_id)


class PleoAccount(AccountFields):
    """An account as Pleo has it."""

    id: str
    external_id: str
    archived: bool = False
    # What API users (other tools too) stored on the account; never compared, resent as read by every PUT.
    metadata: Metadata = None

    def fields(self) -> AccountFields:
        return AccountFields(name=self.name, code=self.code, tax_code_external_id=self.tax_code_external_id)


class ItemError(Model):
    """One bad item: what it was, where it came from, and why it was set aside."""

    message: str
    external_id: str | None = None
    field: str | None = None
    location: str | None = None  # "accounts.csv:12", "pleo page 3", ...

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        who = f"externalId {self.external_id!r}: " if self.external_id is not None else ""
        what = f"{self.field}: " if self.field else ""
        return f"{where}{who}{what}{self.message}"


class SourceSnapshot(Model):
    """The AS's accounts as read (the diff syncs the active ones), plus the items that could not be read.

    Errors that name an externalId hold that account back from any action: a row we
    could not read must never make its Pleo twin look orphaned and get archived. An error that
    names none (a row that could not be read for sure) holds every archive (coa_sync.guard).
    Notes say what was read in a way the file did not spell out (whitespace trimmed, ...).
    """

    accounts: list[SourceAccount]
    errors: list[ItemError] = Field(default_factory=list)
    notes: list[ItemError] = Field(default_factory=list)

    def columns(self) -> SourceColumns:
        """The chart as stored for the diff."""
        accounts = sorted(self.accounts, key=_by_external_id)
        return SourceColumns(
            external_id=[a.external_id for a in accounts], name=[a.name for a in accounts],
            code=[a.code for a in accounts], tax_code_external_id=[a.tax_code_external_id for a in accounts],
            active=[a.active for a in accounts], errors=self.errors, notes=self.notes,
        )


class TargetSnapshot(Model):
    """Every Pleo account of the company, active and archived, and any it could not read."""

    accounts: list[PleoAccount]
    errors: list[ItemError] = Field(default_factory=list)

    def columns(self) -> TargetColumns:
        """The chart as stored for the diff."""
        accounts = sorted(self.accounts, key=_by_external_id)
        return TargetColumns(
            external_id=[a.external_id for a in accounts], name=[a.name for a in accounts],
            code=[a.code for a in accounts], tax_code_external_id=[a.tax_code_external_id for a in accounts],
            id=[a.id for a in accounts], archived=[a.archived for a in accounts], errors=self.errors,
            metadata={a.id: a.metadata for a in accounts if a.metadata is not None},
        )


_by_external_id = attrgetter("external_id")  # sorted() is stable: copies of one externalId keep their order

# One value per account. Values were validated where they were read (connectors, file source,
# Pleo client), so loading a stored chart checks its shape, not every value again.
Strings = Annotated[list[str], SkipValidation]
OptionalStrings = Annotated[list[str | None], SkipValidation]
Flags = Annotated[list[bool], SkipValidation]
_NOT_COLUMNS = frozenset({"errors", "notes", "metadata"})  # the fields of a Columns that are not one value per account


class Columns(Model):
    """A chart as stored in S3 and read by the diff: one list per field, rows sorted by externalId.

    A million accounts load as a few lists of plain values (a model per account took twenty times
    as long and six times the memory), and sorted rows let the diff pair both sides in one pass.
    """

    external_id: Strings
    name: Strings
    code: OptionalStrings
    tax_code_external_id: OptionalStrings
    errors: list[ItemError] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rows_line_up_in_order(self) -> Self:
        ids = self.external_id
        for name in type(self).model_fields:
            column = getattr(self, name)
            if name not in _NOT_COLUMNS and not (isinstance(column, list) and len(column) == len(ids)):
                raise ValueError(f"{name}: expected a list with one value per externalId")
        if not all(map(le, ids, islice(ids, 1, None))):
            raise ValueError("rows must be sorted by externalId")
        return self

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **options: Any) -> Self:
        # pydantic's JSON validation first builds the whole document as a tree (half as long again,
        # a quarter more memory); these are plain lists, so parse them straight into Python. The
        # string cache only pays off for repeated strings, and nearly every value here is unique.
        return cls.model_validate(from_json(json_data, cache_strings=False), **options)


class SourceColumns(Columns):
    """The AS's chart as the diff reads it (see SourceSnapshot)."""

    active: Flags
    notes: list[ItemError] = Field(default_factory=list)

    def snapshot(self) -> SourceSnapshot:
        """One validated account per row again, for tools that compare charts account by account."""
        rows = zip(self.external_id, self.name, self.code, self.tax_code_external_id, self.active, strict=True)
        return SourceSnapshot(errors=self.errors, notes=self.notes, accounts=[
            SourceAccount(external_id=e, name=n, code=c, tax_code_external_id=t, active=a) for e, n, c, t, a in rows])


class TargetColumns(Columns):
    """Pleo's chart as the diff reads it (see TargetSnapshot)."""

    id: Strings
    archived: Flags
    # By Pleo account id, for the accounts that have any: most have none, so it is kept apart from the columns.
    metadata: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ActionKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNARCHIVE = "unarchive"
    ARCHIVE = "archive"


class Action(Model):
    """One change to make in Pleo.

    `desired` is the whole account as Pleo should have it afterwards (PUT is a full update);
    `before` is what Pleo had, for updates, unarchives and archives, and `metadata` what Pleo's
    account held there when the run read it, for the PUT to send back unchanged.
    """

    kind: ActionKind
    external_id: ExternalId
    desired: AccountFields
    account_id: str | None = None
    before: AccountFields | None = None
    changes: list[str] = Field(default_factory=list)
    metadata: Metadata = None


class PlanCounts(Model):
    create: int = 0
    update: int = 0
    unarchive: int = 0
    archive: int = 0
    noop: int = 0


class Plan(Model):
    actions: list[Action]
    noop: int
    errors: list[ItemError] = Field(default_factory=list)
    notes: list[ItemError] = Field(default_factory=list)  # the source's notes (SourceSnapshot)
    # Archives the guard held back from this run, and why (coa_sync.guard); they are not queued.
    held: list[Action] = Field(default_factory=list)
    held_reason: str | None = None
    # Actions the tenant's target cannot take (coa_sync.targets), and why, by kind: reported, never queued.
    unsupported: list[Action] = Field(default_factory=list)
    unsupported_reasons: dict[ActionKind, str] = Field(default_factory=dict)

    def counts(self) -> PlanCounts:
        tally = {kind.value: 0 for kind in ActionKind}
        for action in self.actions:
            tally[action.kind.value] += 1
        return PlanCounts(**tally, noop=self.noop)


TenantId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class FileSource(Model):
    """A chart of accounts file (CSV or JSON), on S3 or, for the local runner, on disk."""

    kind: Literal["file"] = "file"
    uri: str = Field(min_length=1)  # s3://bucket/key, or a local path for the local runner


class ApiSource(Model):
    """What every accounting-system API source has: where it is and the secret to reach it with."""

    base_url: str = Field(min_length=1, pattern=r"^https?://")
    # Secrets Manager name of the connector's credentials; the value is never stored here.
    secret_name: str = Field(min_length=1)
    # The API key's budget, when the vendor raised it for this tenant; unset: the vendor's stated figures
    # (docs/connectors.md lists them per system).
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=60000)
    rate_limit_burst: int | None = Field(default=None, ge=1, le=10000)


class ThredfiSource(ApiSource):
    kind: Literal["thredfi"]
    base_url: str = Field(default="https://backend.thredfi.com", min_length=1, pattern=r"^https?://")
    business_id: str = Field(pattern=r"^[0-9a-f-]+$")
    # Which field of Thredfi's reads is Pleo's externalId: the account's uuid (default), or its code
    # (unique within a business).
    external_id_from: Literal["id", "code"] = "id"

    @field_validator("external_id_from", mode="before")
    @classmethod
    def _readable(cls, value: object) -> object:
        if value == "external_id":
            raise ValueError("no read of Thredfi's returns an external_id (only its create request takes one), so "
                             "no account could be matched by it: use 'id' (the default) or 'code'")
        return value


class DualEntrySource(ApiSource):
    kind: Literal["dualentry"]
    base_url: str = Field(default="https://api.dualentry.com", min_length=1, pattern=r"^https?://")


class StackOneSource(ApiSource):
    kind: Literal["stackone"]
    base_url: str = Field(default="https://api.stackone.com", min_length=1, pattern=r"^https?://")
    account_id: str = Field(min_length=1)  # the x-account-id header: one linked accounting system
    company_id: str = Field(min_length=1)  # StackOne's accounting company id


def _kind_or(default: str) -> Callable[[object], str]:
    """A discriminator reading `kind` from a dict or a model, `default` where it has none."""
    def kind(value: object) -> str:
        if isinstance(value, dict):
            return str(value.get("kind", default))
        return str(getattr(value, "kind", default))
    return kind


# Where a tenant's chart of accounts comes from, told apart by `kind`.
SourceConfig = Annotated[
    Annotated[FileSource, Tag("file")]
    | Annotated[ThredfiSource, Tag("thredfi")]
    | Annotated[DualEntrySource, Tag("dualentry")]
    | Annotated[StackOneSource, Tag("stackone")],
    # Tenant items written before there was more than one kind carry {"uri": ...} only: a file.
    Discriminator(_kind_or("file")),
]
SOURCE_KINDS = ("file", "thredfi", "dualentry", "stackone")


class PleoTarget(Model):
    """Pleo as the destination (the default): the tenant's `companyId`, with its `pleoSecretName`."""

    kind: Literal["pleo"] = "pleo"


# Where a tenant's actions go, told apart by `kind`: Pleo, or an accounting system (its settings as a source's).
TargetConfig = Annotated[
    Annotated[PleoTarget, Tag("pleo")]
    | Annotated[ThredfiSource, Tag("thredfi")]
    | Annotated[DualEntrySource, Tag("dualentry")]
    | Annotated[StackOneSource, Tag("stackone")],
    Discriminator(_kind_or("pleo"), custom_error_type="target_kind",
                  custom_error_message="a target is pleo, thredfi, dualentry or stackone (a file is read, never "
                                       "written)"),
]
TARGET_KINDS = ("pleo", "thredfi", "dualentry", "stackone")


class ArchiveGuard(Model):
    """A tenant's own mass-archive limit: hold archives past max(min_archives, percent% of active)."""

    min_archives: int = Field(default=10, ge=0)
    percent: float = Field(default=10.0, ge=0, le=100)


class Tenant(Model):
    """One customer: where its chart comes from (an AS connection) and where it goes (Pleo by default)."""

    tenant_id: TenantId
    # The Pleo company, and the Secrets Manager name of {"apiKey": ...} or {"accessToken": ...} (the value is
    # never stored here): required when the target is Pleo.
    company_id: str | None = Field(default=None, min_length=1)
    pleo_secret_name: str | None = Field(default=None, min_length=1)
    source: SourceConfig
    target: TargetConfig = Field(default_factory=PleoTarget)
    enabled: bool = True
    # Secrets Manager name of {"secret": ...} signing this tenant's webhook calls; none: no webhook.
    webhook_secret_name: str | None = None
    # None: the deployment's ARCHIVE_GUARD_* defaults.
    archive_guard: ArchiveGuard | None = None

    @model_validator(mode="after")
    def _pleo_needs_its_company(self) -> Self:
        if self.target.kind == "pleo" and not (self.company_id and self.pleo_secret_name):
            raise ValueError("a tenant whose target is Pleo needs companyId and pleoSecretName")
        return self

    @property
    def destination(self) -> str:
        """Where the tenant's actions go: its Pleo company, or the target system and what in it. An action is
        applied only to the destination its run planned for (coa_sync.pipeline.fence)."""
        target = self.target
        if isinstance(target, PleoTarget):
            assert self.company_id is not None  # checked above
            return self.company_id
        if isinstance(target, ThredfiSource):
            where = target.business_id
        elif isinstance(target, StackOneSource):
            where = f"{target.account_id}/{target.company_id}"
        else:  # DualEntry: one organisation per API key
            where = target.secret_name
        return f"{target.kind}:{target.base_url.rstrip('/')}:{where}"


def new_run_id(now: datetime | None = None) -> str:
    """Time-ordered to the millisecond, unique, and safe in S3 keys and DynamoDB sort keys.

    The suffix starts with the millisecond (three hex digits): a run that starts within the same second
    as another (a retry started right after its run failed) still sorts after it, as "latest" means.
    """
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{now.microsecond // 1000:03x}{secrets.token_hex(3)[:5]}"


Trigger = Literal["schedule", "webhook", "cli", "manual", "connect"]  # connect: a tenant's first run on connecting


class RunRequest(Model):
    """What starts one tenant's run (schedule fan-out, webhook, CLI)."""

    tenant_id: TenantId
    trigger: Trigger = "manual"
    run_id: str | None = None
    dry_run: bool = False


class Manifest(Model):
    """Written last by fetch: its arrival in S3 is what starts the diff."""

    tenant_id: TenantId
    run_id: str
    company_id: str
    trigger: Trigger
    dry_run: bool
    created_at: datetime
    source_key: str
    target_key: str
    source_accounts: int
    target_accounts: int
    # The kind of the tenant's target when the run started: what its actions can be (coa_sync.targets).
    target_kind: str = "pleo"
    # The tenant's own mass-archive limit when the run started (None: the deployment's default).
    archive_guard: ArchiveGuard | None = None


class ActionMessage(Model):
    """One SQS message: one action of one tenant's run, fenced by it (see coa_sync.pipeline.fence).

    `company_id` is the destination the run planned for (Tenant.destination: the Pleo company, or
    the target system's account) and `seq` the action's place in the run
    (its index in the plan; approved archives follow on): the writer applies the action only while
    its run is the tenant's live run and the tenant still has that company, and counts it once
    per seq however often it is delivered. A message without them (queued before actions were
    fenced) cannot be fenced: it is settled as superseded, never applied.
    """

    tenant_id: TenantId
    run_id: str
    action: Action
    company_id: str | None = None
    seq: int | None = Field(default=None, ge=0)

    @property
    def fenceable(self) -> bool:
        return self.company_id is not None and self.seq is not None


class DeadLetter(Model):
    """What the DLQ holds for an item that cannot be applied: the message and why."""

    reasons: list[str]
    message: ActionMessage | None = None
    body: str | None = None  # the raw body, when it could not be read as a message
    failed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class RunLock:
    """A tenant's run lock as stored: its run is the tenant's live run until another run takes it over."""

    run_id: str
    expires_at: int  # unix seconds; past it the lock is stale and another run may take it
    taken_at: int  # when it was taken or last renewed

    def stale(self, now: float) -> bool:
        return self.expires_at < int(now)

    def due_for_renewal(self, now: float, ttl_seconds: int) -> bool:
        """Past half its TTL: renewing now keeps it well ahead of any invocation of its run."""
        return self.expires_at - now < ttl_seconds / 2


RunStatus = Literal["fetching", "applying", "needs_approval", "completed", "failed"]


class RunRecord(Model):
    """One run in the ledger: what started it, where it is, what it planned and did."""

    tenant_id: TenantId
    run_id: str
    trigger: Trigger
    dry_run: bool = False
    # The destination the run reads and writes (Tenant.destination: the Pleo company, or the target system's
    # account; None: a run recorded before runs carried it).
    company_id: str | None = None
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    planned: PlanCounts = Field(default_factory=PlanCounts)
    applied: PlanCounts = Field(default_factory=PlanCounts)
    failed: int = 0
    # Actions of this run settled without being applied because a newer run (or another company)
    # took over: never applied, never dead-lettered.
    superseded: int = 0
    held: int = 0
    # Actions the target cannot take, never queued (the plan lists them, with the reasons).
    unsupported: int = 0
    # Actions the diff has put on the queue so far (a diff cut off resumes from here).
    queued: int = 0
    # When the run last moved (started, planned, queued, an action settled): the sweep's orphan clock.
    progress_at: datetime | None = None
    error: str | None = None
    # When held archives were released, and by whom ("cli", "webhook").
    approved_at: datetime | None = None
    approved_by: str | None = None
    # When its report was written and its end announced (whoever finds a closed run unreported does it).
    reported_at: datetime | None = None

    @property
    def planned_actions(self) -> int:
        return self.planned.create + self.planned.update + self.planned.unarchive + self.planned.archive

    @property
    def settled(self) -> int:
        """Planned actions that reached an end: applied, dead-lettered or superseded."""
        applied = self.applied.create + self.applied.update + self.applied.unarchive + self.applied.archive
        return applied + self.failed + self.superseded

    @property
    def unsettled(self) -> int:
        """Planned actions not settled yet: still queued or being applied (or lost, if the run ended)."""
        return max(self.planned_actions - self.settled, 0)
