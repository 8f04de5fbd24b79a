"""The Pleo credentials options of the commands that reach Pleo (sync, plan; approve and dlq redrive locally).

Which to prefer: `--pleo-oauth FILE.json` for a partner integration (what Pleo requires of partners;
the command refreshes the tokens and writes the rotated ones back to FILE). For a customer's own API
key, `COA_SYNC_PLEO_API_KEY` or `--pleo-api-key-file`: `--pleo-api-key KEY` and `--pleo-token TOKEN`
put the secret on the command line, where the process list and the shell's history show it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from coa_sync_local import arguments
from coa_sync_local.oauth_file import FileTokenStore

API_KEY_ENV = "COA_SYNC_PLEO_API_KEY"
HELP = ("one of; prefer --pleo-oauth (partner integrations: OAuth is what Pleo asks of partners), then "
        f"${API_KEY_ENV} or --pleo-api-key-file (a customer's own API key); --pleo-api-key and --pleo-token "
        "show the secret in the process list and the shell's history")


def add_arguments(group: Any) -> None:
    """Add the options to `group` (an argument group or parser)."""
    exclusive = group.add_mutually_exclusive_group()
    exclusive.add_argument("--pleo-oauth", type=Path, metavar="FILE.json",
                           help='OAuth connection {"tokenUrl", "clientId", "clientSecret", "refreshToken"} '
                                "(as `coa-sync connect` writes it); rotated tokens are written back to it")
    exclusive.add_argument("--pleo-api-key-file", type=Path, metavar="FILE",
                           help="a file holding the Pleo API key (HTTP basic user, empty password)")
    exclusive.add_argument("--pleo-api-key", type=arguments.text, metavar="KEY",
                           help=f"Pleo API key (prefer ${API_KEY_ENV})")
    exclusive.add_argument("--pleo-token", type=arguments.text, metavar="TOKEN",
                           help="a Pleo OAuth 2.0 access token, used as it is")


def given(args: argparse.Namespace) -> bool:
    return bool(args.pleo_oauth or args.pleo_api_key_file or args.pleo_api_key or args.pleo_token
                or os.environ.get(API_KEY_ENV))


def credentials(args: argparse.Namespace) -> tuple[dict[str, str], FileTokenStore | None]:
    """(what the tenant's secret holds, the OAuth file's token store if any); ValueError naming what is wrong."""
    if args.pleo_oauth:
        store = FileTokenStore(args.pleo_oauth.resolve())
        return store.read().document(), store
    if args.pleo_api_key_file:
        try:
            key = args.pleo_api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read --pleo-api-key-file {args.pleo_api_key_file}: {exc.strerror}") from None
        if not key:
            raise ValueError(f"--pleo-api-key-file {args.pleo_api_key_file} is empty")
        return {"apiKey": key}, None
    if args.pleo_api_key:
        return {"apiKey": args.pleo_api_key}, None
    if args.pleo_token:
        return {"accessToken": args.pleo_token}, None
    if os.environ.get(API_KEY_ENV):
        return {"apiKey": os.environ[API_KEY_ENV]}, None
    raise ValueError(f"give Pleo credentials: --pleo-oauth FILE.json, ${API_KEY_ENV}, --pleo-api-key-file FILE, "
                     "--pleo-api-key or --pleo-token")
