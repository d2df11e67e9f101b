"""User-facing errors: a clear one-line message instead of a traceback at the command line."""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path


class UserError(Exception):
    """Bad input from the user (unknown name, missing package, malformed data, offline hub access)."""


def read_json(path, what: str, remedy: str):
    """A saved JSON file, or one message naming it (`what` it is) and what to do when it is truncated or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"the {what} {path} cannot be read ({type(e).__name__}: {e}); it is truncated or not "
                        f"JSON: {remedy}") from None


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
