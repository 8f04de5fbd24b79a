"""Set environment variables for a while: how the local runner and the template tests play Lambda's environment."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def environment(values: Mapping[str, str], unset: frozenset[str] = frozenset()) -> Iterator[None]:
    """Set `values` and remove other variables whose upper-cased name is in `unset`; everything is put back after.

    `unset` lets a caller start from the template's environment alone, not from whatever the shell exported.
    """
    names = set(values) | {name for name in os.environ if name.upper() in unset}
    saved = {name: os.environ.get(name) for name in names}
    for name in names - set(values):
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
