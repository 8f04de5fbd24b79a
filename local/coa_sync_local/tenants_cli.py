"""Operating a deployment's tenants without raw DynamoDB JSON: `coa-sync tenants ...` and `coa-sync status`.

    coa-sync tenants add TENANT --stack NAME --company-id ID (--source s3://BUCKET/sources/... |
                     --source-config FILE.json) [--pleo-api-key-from SOURCE | --pleo-token-from SOURCE |
                     --connect-by-oauth]
                     [--target-config FILE.json [--target-credentials-from SOURCE]]   (instead of Pleo)
                     [--webhook-secret-from SOURCE] [--source-credentials-from SOURCE] ...
    coa-sync tenants list | show TENANT | disable TENANT | enable TENANT | remove TENANT   [--stack NAME]
    coa-sync tenants connect-link TENANT --stack NAME [--expires-in HOURS]   (Pleo by OAuth 2.0)
    coa-sync status [--stack NAME]

A tenant is validated as the functions read it (coa_sync.models.Tenant) before anything is written.
Its secrets (the Pleo API key or access token, the webhook secret, an accounting system's credentials)
come from SOURCE: `prompt` (the terminal, not echoed), `-` (stdin) or a file, never from the command
line; they go to the stack's Secrets Manager under its SecretsPrefix (<prefix><tenant>/pleo, /webhook,
/<source kind>), and no command prints them. `list`, `show` and `status` also read the local state;
the commands that change a tenant need --stack (locally, `coa-sync sync` registers the tenant it runs).

A new subcommand of the group is one `command(group, ...)` call in add_commands.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from coa_sync.models import ApiSource, Tenant
from coa_sync.tokens import RECONNECT_HINT
from pydantic import ValidationError

from coa_sync_local import pleo_options, source_options
from coa_sync_local.control import Deployment, connect_link
from coa_sync_local.control_cli import command, emit, open_deployment
from coa_sync_local.errors import EXIT_OK, UsageError
from coa_sync_local.render import table

SECRET_RECOVERY_DAYS = 7  # a removed tenant's secrets can be restored (or the tenant added again) for a week
STATUS_RUNS = 20  # the runs `status` reads per tenant to find its latest live one
# Where each Tenant field comes from on the command line, for messages.
OPTIONS = {"tenant_id": "TENANT", "company_id": "--company-id", "source": "--source/--source-config",
           "target": "--target-config",
           "archive_guard": "--archive-guard-min/--archive-guard-percent"}
SOURCE_HELP = "prompt (the terminal, not echoed), - (stdin) or a file"


def add_commands(commands: Any) -> None:
    tenants = commands.add_parser("tenants", help="add, list, show, disable, enable or remove a deployment's tenants; "
                                                  "connect one to Pleo by OAuth")
    group = tenants.add_subparsers(required=True, metavar="ACTION")
    add = command(group, "add", "register a tenant: its item in the tenants table and its secrets", _add)
    add.add_argument("tenant_id", metavar="TENANT", help="letters, digits, _ . - (at most 64)")
    add.add_argument("--company-id", metavar="ID", help="the tenant's Pleo companyId (required unless "
                                                        "--target-config names another system)")
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", metavar="URI", help="its chart of accounts file: s3://BUCKET/sources/...")
    where.add_argument("--source-config", type=Path, metavar="FILE.json",
                       help='an accounting-system source: {"source": {"kind", ...}, "sourceCredentials": {...}}')
    pleo = add.add_mutually_exclusive_group()
    pleo.add_argument("--pleo-api-key-from", metavar="SOURCE", help=f"the Pleo API key: {SOURCE_HELP} "
                                                                    f"(default: ${pleo_options.API_KEY_ENV}, "
                                                                    "else prompt)")
    pleo.add_argument("--pleo-token-from", metavar="SOURCE", help=f"a Pleo OAuth access token instead: {SOURCE_HELP}")
    pleo.add_argument("--connect-by-oauth", action="store_true",
                      help="write no Pleo secret now: the tenant connects by OAuth (tenants connect-link), which "
                           "writes it")
    add.add_argument("--webhook-secret-from", metavar="SOURCE",
                     help=f"the secret signing its webhook calls (16+ characters): {SOURCE_HELP}; none: no webhook")
    add.add_argument("--source-credentials-from", metavar="SOURCE",
                     help=f"the accounting system's credentials as a JSON object: {SOURCE_HELP} "
                          "(default: sourceCredentials in --source-config)")
    add.add_argument("--target-config", type=Path, metavar="FILE.json",
                     help='another system as the target, instead of Pleo: {"target": {"kind", ...}, '
                          '"targetCredentials": {...}}')
    add.add_argument("--target-credentials-from", metavar="SOURCE",
                     help=f"the target system's credentials as a JSON object: {SOURCE_HELP} "
                          "(default: targetCredentials in --target-config)")
    add.add_argument("--archive-guard-min", type=int, metavar="MIN", help="its own mass-archive limit (default: "
                                                                          "the stack's)")
    add.add_argument("--archive-guard-percent", type=float, metavar="PERCENT")
    add.add_argument("--disabled", action="store_true", help="add it paused (scheduled runs skip it)")
    add.add_argument("--replace", action="store_true", help="overwrite a tenant of that id and its secrets")
    command(group, "list", "list the tenants: company, source, enabled, connection", _list)
    for name, description, handler in (
            ("show", "show a tenant's settings and the names of its secrets", _show),
            ("disable", "pause a tenant: scheduled runs skip it and its webhook answers 404", _disable),
            ("enable", "resume a paused tenant", _enable),
            ("remove", f"remove a tenant and its secrets (recoverable for {SECRET_RECOVERY_DAYS} days); its "
                       "runs stay until they expire", _remove)):
        command(group, name, description, handler).add_argument("tenant_id", metavar="TENANT")
    link = command(group, "connect-link", "print a signed, expiring link that connects a deployed tenant to Pleo "
                                          "by OAuth 2.0 (send it to the customer)", _connect_link)
    link.add_argument("tenant_id", metavar="TENANT")
    link.add_argument("--expires-in", type=float, default=24.0, metavar="HOURS", help="default 24")
    command(commands, "status", "per tenant: its last run, what needs approval, the DLQ, whether it needs "
                                "reconnecting", _status)


# -- add -------------------------------------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    if [args.pleo_api_key_from, args.pleo_token_from, args.webhook_secret_from,
            args.source_credentials_from, args.target_credentials_from].count("-") > 1:
        raise UsageError("only one secret can come from stdin (-): give the others as files or prompts")
    with open_deployment(args) as deployment:
        secrets, prefix = _stack_only(deployment, "tenants add")
        source, source_credentials = _source(args, deployment, prefix)
        target, target_credentials = _target(args, prefix)
        to_pleo = target is None
        names = {"pleo": f"{prefix}{args.tenant_id}/pleo"} if to_pleo else {}
        if args.webhook_secret_from:
            names["webhook"] = f"{prefix}{args.tenant_id}/webhook"
        tenant = _tenant(tenant_id=args.tenant_id, company_id=args.company_id, pleo_secret_name=names.get("pleo"),
                         source=source, enabled=not args.disabled, webhook_secret_name=names.get("webhook"),
                         archive_guard=_guard(args), **({} if to_pleo else {"target": target}))
        if not args.replace and deployment.tenants.item(tenant.tenant_id):
            raise UsageError(f"tenant {tenant.tenant_id!r} already exists in the {deployment.name}: see coa-sync "
                               f"tenants show {tenant.tenant_id}; --replace overwrites it")
        values = {} if args.connect_by_oauth or not to_pleo else {names["pleo"]: _pleo_credentials(args)}
        if "webhook" in names:
            values[names["webhook"]] = {"secret": _webhook_secret(args.webhook_secret_from)}
        if isinstance(source, ApiSource):
            values[source.secret_name] = _credentials(args.source_credentials_from, source_credentials,
                                                      tenant.source.kind, "source")
        if isinstance(target, ApiSource):
            values[target.secret_name] = _credentials(args.target_credentials_from, target_credentials, target.kind,
                                                      "target")
        written = {name: _write_secret(secrets, name, value, tenant.tenant_id) for name, value in values.items()}
        if not deployment.tenants.put(tenant, replace=args.replace):
            raise UsageError(f"tenant {tenant.tenant_id!r} was added by someone else meanwhile: look again")
    lines = [f"Tenant {tenant.tenant_id} {'replaced in' if args.replace else 'added to'} the {deployment.name}"
             f"{'' if tenant.enabled else ' (disabled)'}: {_where(tenant)}, {_describe(tenant)}."]
    lines += [f"  secret {name}: {how}" for name, how in written.items()]
    if args.connect_by_oauth:
        lines.append(f"Connect it to Pleo: coa-sync tenants connect-link {tenant.tenant_id} --stack {args.stack}")
    emit(args, {"tenant": tenant.model_dump(mode="json"), "secrets": written}, "\n".join(lines))
    return EXIT_OK


def _stack_only(deployment: Deployment, what: str) -> tuple[Any, str]:
    if deployment.secrets is None:
        raise UsageError(f"{what} is for a deployed stack: give --stack NAME (locally, coa-sync sync registers "
                           "the tenant it runs)")
    if deployment.secrets_prefix is None:
        raise UsageError(f"the {deployment.name} has no SecretsPrefix output: redeploy it with this version's "
                           "template")
    return deployment.secrets, deployment.secrets_prefix


def _source(args: argparse.Namespace, deployment: Deployment, prefix: str) -> tuple[Any, dict[str, Any]]:
    """The tenant's source config, and the credentials its config file carries (if any)."""
    try:
        settings, credentials = source_options.read_config(args.source_config) if args.source_config else (
            {"kind": "file", "uri": args.source}, {})
        kind = settings.setdefault("kind", "file")
        if kind != "file":
            settings.setdefault("secretName", f"{prefix}{args.tenant_id}/{kind}")
        source = source_options.validated(settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if isinstance(source, ApiSource):
        if not source.secret_name.startswith(prefix):
            raise UsageError(f"secretName {source.secret_name!r} is outside the stack's SecretsPrefix {prefix!r}: "
                               "its functions could not read it")
        if source.secret_name.endswith(("/pleo", "/webhook")):  # the writer's and the webhook's (template.yaml)
            raise UsageError(f"secretName {source.secret_name!r} ends like a Pleo or webhook secret: name the "
                               f"accounting system's credentials otherwise, e.g. {prefix}{args.tenant_id}/{kind}")
    elif not source.uri.startswith(f"s3://{deployment.files.bucket}/sources/"):
        raise UsageError(f"--source must be s3://{deployment.files.bucket}/sources/... (the functions read "
                           f"sources only there), not {source.uri!r}")
    return source, credentials


def _target(args: argparse.Namespace, prefix: str) -> tuple[Any, dict[str, Any]]:
    """Another system as the tenant's target, and the credentials its config file carries; (None, {}) for Pleo."""
    if not args.target_config:
        return None, {}
    try:
        settings, credentials = source_options.read_config(args.target_config, "target")
        kind = settings.get("kind", "pleo")
        if kind != "pleo":
            settings.setdefault("secretName", f"{prefix}{args.tenant_id}/target-{kind}")
        target = source_options.validated(settings, "target")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(target, ApiSource):
        return None, {}
    if not (target.secret_name.startswith(prefix) and "/target-" in target.secret_name):
        raise UsageError(f"secretName {target.secret_name!r}: a target's credentials are named "
                         f"{prefix}{args.tenant_id}/target-{kind} (the writer reads only those and Pleo's)")
    return target, credentials


def _where(tenant: Tenant) -> str:
    return f"company {tenant.company_id}" if tenant.target.kind == "pleo" else f"target {tenant.destination}"


def _tenant(**fields: Any) -> Tenant:
    try:
        return Tenant(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{OPTIONS.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"not a valid tenant: {problems}") from None


def _guard(args: argparse.Namespace) -> dict[str, Any] | None:
    given = {"min_archives": args.archive_guard_min, "percent": args.archive_guard_percent}
    return {name: value for name, value in given.items() if value is not None} or None


def _pleo_credentials(args: argparse.Namespace) -> dict[str, str]:
    if args.pleo_token_from:
        return {"accessToken": _read_secret(args.pleo_token_from, "Pleo access token")}
    if not args.pleo_api_key_from and os.environ.get(pleo_options.API_KEY_ENV):  # as sync reads it
        return {"apiKey": os.environ[pleo_options.API_KEY_ENV]}
    return {"apiKey": _read_secret(args.pleo_api_key_from or "prompt", "Pleo API key")}


def _webhook_secret(source: str) -> str:
    secret = _read_secret(source, "webhook secret")
    if len(secret) < 16:
        raise UsageError(f"the webhook secret must be at least 16 characters, not {len(secret)}")
    return secret


def _credentials(given: str | None, from_config: dict[str, Any], kind: str, role: str) -> dict[str, Any]:
    if not given:
        if not from_config:
            raise UsageError(f"{kind} needs credentials: --{role}-credentials-from SOURCE (a JSON object) or "
                               f"{role}Credentials in --{role}-config")
        return from_config
    text = _read_secret(given, f"{kind} credentials (a JSON object)")
    try:
        credentials = json.loads(text)
    except ValueError:
        credentials = None
    if not isinstance(credentials, dict) or not credentials:
        raise UsageError(f'the {kind} credentials must be a JSON object, e.g. {{"apiKey": "..."}}')
    return credentials


def _read_secret(source: str, what: str) -> str:
    """A secret from `prompt` (the terminal), `-` (stdin, up to its end) or a file; never echoed or printed."""
    if source == "prompt":
        if not sys.stdin.isatty():
            raise UsageError(f"no terminal to ask for the {what} on: give it as a file or - (stdin)")
        value = getpass.getpass(f"{what}: ")
    elif source == "-":
        value = sys.stdin.read()
    else:
        try:
            value = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the {what} from {source}: {getattr(exc, 'strerror', None) or exc}") \
                from None
    value = value.strip()
    if not value:
        raise UsageError(f"the {what} is empty")
    return value


def _write_secret(secrets: Any, name: str, value: dict[str, Any], tenant_id: str) -> str:
    """Create or update one secret; what was done ("created", "updated", "restored and updated")."""
    text = json.dumps(value)
    try:
        try:
            secrets.create_secret(Name=name, SecretString=text, Description=f"coa-sync tenant {tenant_id}")
            return "created"
        # The name is taken: by a secret (updated), or by one scheduled for deletion, a removed tenant's
        # (AWS refuses to create it with InvalidRequestException; restored first, then updated).
        except (secrets.exceptions.ResourceExistsException, secrets.exceptions.InvalidRequestException):
            deleted = "DeletedDate" in secrets.describe_secret(SecretId=name)
            if deleted:
                secrets.restore_secret(SecretId=name)
            secrets.put_secret_value(SecretId=name, SecretString=text)
            return "restored and updated" if deleted else "updated"
    except ClientError as exc:
        raise UsageError(f"Secrets Manager refused {name}: {_aws_error(exc)}") from None


# -- list, show, disable, enable, remove ------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    with open_deployment(args) as deployment:
        tenants = deployment.tenants.all()
        reauth = deployment.needs_reauth({tenant.tenant_id for tenant in tenants})
    rows = [("tenant", "company", "source", "enabled", "webhook", "Pleo connection")]
    rows += [(t.tenant_id, t.destination, _describe(t), "yes" if t.enabled else "no",
              "yes" if t.webhook_secret_name else "no", _connection(t.tenant_id in reauth)) for t in tenants]
    emit(args, {"tenants": [{**t.model_dump(mode="json"), "needsReauth": reauth.get(t.tenant_id)} for t in tenants]},
         table(rows, widest=60) if tenants else f"No tenants in the {deployment.name}.")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    with open_deployment(args) as deployment:
        tenant = _existing(deployment, args.tenant_id)
        reauth = deployment.needs_reauth({tenant.tenant_id}).get(tenant.tenant_id)
        secrets = [{"name": name, "for": role, "exists": _secret_exists(deployment, name)}
                   for role, name in _secret_names(tenant).items()]
    guard = tenant.archive_guard
    lines = [f"Tenant {tenant.tenant_id} in the {deployment.name}",
             f"  company     {tenant.company_id}" if tenant.target.kind == "pleo" else
             f"  target      {tenant.destination}",
             f"  source      {_describe(tenant)}",
             f"  enabled     {'yes' if tenant.enabled else 'no (scheduled runs skip it)'}",
             f"  guard       {f'max({guard.min_archives}, {guard.percent:g}%)' if guard else 'the stack default'}",
             f"  connection  {_connection(reauth is not None)}"]
    lines += [f"  secret      {s['name']} ({s['for']}; "
              f"{ {True: 'present', False: 'MISSING', None: 'not kept locally'}[s['exists']]})" for s in secrets]
    emit(args, {"tenant": tenant.model_dump(mode="json"), "needsReauth": reauth,
                "secrets": secrets}, "\n".join(lines))
    return EXIT_OK


def _disable(args: argparse.Namespace) -> int:
    return _set_enabled(args, False)


def _enable(args: argparse.Namespace) -> int:
    return _set_enabled(args, True)


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    with open_deployment(args) as deployment:
        _stack_only(deployment, f"tenants {'enable' if enabled else 'disable'}")
        if not deployment.tenants.set_enabled(args.tenant_id, enabled):
            raise LookupError(f"no tenant {args.tenant_id!r} in the {deployment.name}")
    emit(args, {"tenantId": args.tenant_id, "enabled": enabled},
         f"Tenant {args.tenant_id} enabled: the schedule syncs it again." if enabled else
         f"Tenant {args.tenant_id} disabled: scheduled runs skip it and its webhook answers 404 until "
         f"coa-sync tenants enable {args.tenant_id}.")
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    with open_deployment(args) as deployment:
        secrets, prefix = _stack_only(deployment, "tenants remove")
        tenant = _existing(deployment, args.tenant_id)
        if running := deployment.ledger.lock_holder(tenant.tenant_id):
            raise UsageError(f"tenant {tenant.tenant_id!r} has run {running} in progress: remove it once the run "
                               "has ended")
        names = list(_secret_names(tenant).values())
        own = [name for name in names if name.startswith(f"{prefix}{tenant.tenant_id}/")]
        deployment.tenants.delete(tenant.tenant_id)
        for name in own:
            try:
                secrets.delete_secret(SecretId=name, RecoveryWindowInDays=SECRET_RECOVERY_DAYS)
            except secrets.exceptions.ResourceNotFoundException:
                pass
            except ClientError as exc:
                raise UsageError(f"tenant {tenant.tenant_id} removed, but Secrets Manager refused to delete "
                                   f"{name}: {_aws_error(exc)}") from None
    kept = [name for name in names if name not in own]
    lines = [f"Tenant {tenant.tenant_id} removed from the {deployment.name}. Its runs stay in coa-sync runs until "
             "they expire."]
    lines += [f"  secret {name}: deleted (restorable for {SECRET_RECOVERY_DAYS} days)" for name in own]
    lines += [f"  secret {name}: kept (not under {prefix}{tenant.tenant_id}/)" for name in kept]
    emit(args, {"tenantId": tenant.tenant_id, "secretsDeleted": own, "secretsKept": kept}, "\n".join(lines))
    return EXIT_OK


def _connect_link(args: argparse.Namespace) -> int:
    if not args.stack:
        raise UsageError("connect-link makes a link for a deployed stack: give --stack NAME "
                           "(locally, connect with coa-sync connect)")
    if not 0 < args.expires_in <= 24 * 30:
        raise UsageError("--expires-in takes hours, more than 0 and at most 720 (30 days)")
    expires = int(time.time() + args.expires_in * 3600)
    link = connect_link(args.stack, args.profile, args.region, args.tenant_id, expires)
    at = datetime.fromtimestamp(expires, UTC).isoformat()
    emit(args, {"tenantId": args.tenant_id, "link": link, "expiresAt": at},
         f"Connect link for tenant {args.tenant_id} (valid until {at}):\n{link}")
    return EXIT_OK


def _existing(deployment: Deployment, tenant_id: str) -> Tenant:
    tenant = deployment.tenants.get(tenant_id)
    if tenant is None:
        raise LookupError(f"no tenant {tenant_id!r} in the {deployment.name}")
    return tenant


def _secret_names(tenant: Tenant) -> dict[str, str]:
    names = {"pleo": tenant.pleo_secret_name} if tenant.pleo_secret_name else {}
    if isinstance(tenant.target, ApiSource):
        names["target"] = tenant.target.secret_name
    if tenant.webhook_secret_name:
        names["webhook"] = tenant.webhook_secret_name
    if isinstance(tenant.source, ApiSource):
        names["source"] = tenant.source.secret_name
    return names


def _secret_exists(deployment: Deployment, name: str) -> bool | None:
    """Whether the secret is there (its value is never read); None locally, where no secret is kept."""
    if deployment.secrets is None:
        return None
    try:
        deployment.secrets.describe_secret(SecretId=name)
    except deployment.secrets.exceptions.ResourceNotFoundException:
        return False
    return True


# -- status ----------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    with open_deployment(args) as deployment:
        letters: dict[str, int] = {}
        for letter in deployment.letters():
            tenant_id = letter.message.tenant_id if letter.message else "(unreadable)"
            letters[tenant_id] = letters.get(tenant_id, 0) + 1
        report = [_tenant_status(deployment, tenant, letters.get(tenant.tenant_id, 0))
                  for tenant in deployment.tenants.all()]
    unreadable = letters.get("(unreadable)", 0)
    emit(args, {"tenants": report, "unreadableDeadLetters": unreadable}, _status_text(report, unreadable, args))
    return EXIT_OK


def _tenant_status(deployment: Deployment, tenant: Tenant, dead_letters: int) -> dict[str, Any]:
    records = deployment.ledger.runs(tenant.tenant_id, STATUS_RUNS)
    live = next((record for record in records if not record.dry_run), None)
    waiting = live if live and live.status == "needs_approval" and live.held else None
    return {
        "tenantId": tenant.tenant_id,
        "enabled": tenant.enabled,
        "lastRun": records[0].model_dump(mode="json") if records else None,
        "runningRunId": deployment.ledger.lock_holder(tenant.tenant_id),
        "needsApproval": {"runId": waiting.run_id, "held": waiting.held} if waiting else None,
        "deadLetters": dead_letters,
        "needsReauth": deployment.needs_reauth({tenant.tenant_id}).get(tenant.tenant_id),
    }


def _status_text(report: list[dict[str, Any]], unreadable: int, args: argparse.Namespace) -> str:
    if not report:
        return "No tenants."
    rows = [("tenant", "enabled", "last run", "status", "needs approval", "DLQ", "Pleo connection")]
    todo = []
    where = f" --stack {args.stack}" if args.stack else ""
    for status in report:
        last, waiting, tenant_id = status["lastRun"], status["needsApproval"], status["tenantId"]
        state = (f"running {status['runningRunId']}" if status["runningRunId"] else
                 f"{last['status']}{' (dry run)' if last['dryRun'] else ''}" if last else "-")
        rows.append((tenant_id, "yes" if status["enabled"] else "no", last["runId"] if last else "never", state,
                     f"{waiting['held']} archive(s) in {waiting['runId']}" if waiting else "-",
                     str(status["deadLetters"]), _connection(status["needsReauth"] is not None)))
        if waiting:
            todo.append(f"  {tenant_id}: review with coa-sync show {waiting['runId']}{where}, release with "
                        f"coa-sync approve {waiting['runId']}{where}")
        if status["deadLetters"]:
            todo.append(f"  {tenant_id}: {status['deadLetters']} failed item(s): coa-sync dlq list{where}")
        if reauth := status["needsReauth"]:
            todo.append(f"  {tenant_id}: Pleo no longer accepts its authorisation ({reauth.get('reason') or '-'}): "
                        f"no calls until it reconnects: {RECONNECT_HINT.replace('TENANT', tenant_id)}")
    if unreadable:
        todo.append(f"  {unreadable} unreadable message(s) in the dead-letter queue: coa-sync dlq list{where}")
    return table(rows, widest=60) + ("\nTo do:\n" + "\n".join(todo) if todo else "\nNothing needs attention.")


def _connection(needs_reauth: bool) -> str:
    return "needs reconnecting (needs_reauth)" if needs_reauth else "ok"


def _describe(tenant: Tenant) -> str:
    source = tenant.source
    return f"{source.kind} {source.base_url}" if isinstance(source, ApiSource) else f"file {source.uri}"


def _aws_error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
