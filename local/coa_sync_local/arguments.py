"""The command line's parser and option types: every bad option is a UsageError naming it (exit 2).

argparse's own errors (a missing or unknown option, a value its type refuses) become UsageErrors
too, so `cli.main` tells them like any other failure (one JSON object under --json).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

from coa_sync_local.errors import UsageError

_OPTION = re.compile(r"^argument ([^\s:/]+)|arguments are required: ([^\s,]+)|unrecognized arguments: (\S+)")
_TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # models.TenantId


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are raised as UsageError (its subcommands' parsers too)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        found = _OPTION.search(message)
        option = next((group for group in found.groups() if group), None) if found else None
        raise UsageError(message, code="usage", option=option)


def text(value: str) -> str:
    """A value that must say something: an unset shell variable ("$KEY") arrives as ''."""
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?)" if not value else "is blank")
    return value


def tenant_id(value: str) -> str:
    if not _TENANT_ID.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a tenant id: use letters, digits, '.', '_' and '-', "
                                         "starting with a letter or digit, at most 64 characters")
    return value


def http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or value.rstrip("/") in ("http:/", "https:/"):
        raise argparse.ArgumentTypeError(f"must be an http(s) URL, not {value!r}")
    return value


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return number
