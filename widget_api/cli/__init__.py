"""`mailwidget`: the command line. Each module of this package adds its subcommands through
`register(subparsers)`; a subcommand's handler returns the exit code.

Errors a user can cause (a missing file, a bad option, a refused login) print one line on
stderr and exit 2: never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from sqlalchemy.exc import OperationalError

from crm.domain.errors import DomainError


class UsageError(Exception):
    """A mistake on the command line or in its input: one line, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailwidget", description="CRM mail-widget backend")
    sub = parser.add_subparsers(dest="command", required=True)
    package = sys.modules[__name__]
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, DomainError) as exc:
        detail = exc.detail if isinstance(exc, DomainError) else str(exc)
        print(f"mailwidget {args.command}: {detail}", file=sys.stderr)
        return 2
    except OperationalError as exc:  # locked, restarting, unreachable: nothing was changed
        reason = (str(exc.orig or exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"mailwidget {args.command}: the database is unavailable ({reason}); nothing was changed", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
