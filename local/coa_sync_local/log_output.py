"""How the functions' Powertools logs show on a local command's stderr.

On Lambda every log line is JSON for CloudWatch (Lambda ARNs, request ids, metric blobs). A
local command prints its own progress lines instead, and the functions' warnings (Pleo slow to
answer, archives held back, an item sent to the DLQ) as one human line each; `--verbose` shows
every line the functions log (INFO too), and `--log-format json` shows them as Lambda writes them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from coa_sync.observability import logger

# Attributes every LogRecord has: what is left are the `extra` fields a call added.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class HumanFormatter(LambdaPowertoolsFormatter):
    """`[coa-sync] message (key=value, ...)`: the message and the fields the call added, without the keys
    Powertools appends to every line (function, request id, cold start...)."""

    def format(self, record: logging.LogRecord) -> str:
        extra = {key: value for key, value in vars(record).items() if key not in _STANDARD}
        details = f" ({', '.join(f'{key}={value}' for key, value in extra.items())})" if extra else ""
        level = "" if record.levelno < logging.ERROR else f"{record.levelname.lower()}: "
        return f"[coa-sync] {level}{record.getMessage()}{details}"


def add_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--verbose", action="store_true",
                         help="show every line the functions log (INFO too), not only their warnings")
    command.add_argument("--log-format", choices=("human", "json"), default="human",
                         help="the functions' log lines as one human line each (default) or as Lambda's JSON")


@contextlib.contextmanager
def configured(args: argparse.Namespace) -> Iterator[None]:
    """The functions' logger as this command wants it, and as it was afterwards (it is one per process)."""
    handler = logger.registered_handler
    level, formatter, stream = logger.log_level, handler.formatter, handler.stream
    logger.setLevel(logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    handler.setStream(sys.stderr)
    if getattr(args, "log_format", "human") == "human":
        handler.setFormatter(HumanFormatter())
    try:
        yield
    finally:
        logger.setLevel(level)
        handler.setFormatter(formatter)
        handler.setStream(stream)


def functions_print(args: argparse.Namespace) -> bool:
    """Whether what the functions print (Powertools' metric blobs) is shown: only with --verbose."""
    return bool(getattr(args, "verbose", False))
