"""User-facing errors: a clear one-line message instead of a traceback at the command line."""
from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """Bad input from the user (unknown name, missing package, malformed data, offline hub access)."""


def unknown(kind: str, name: str, valid) -> UserError:
    return UserError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid))}")


def cli(main):
    """Wrap a CLI entry point so that UserError exits with status 2 and its message, no traceback."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    return wrapper
