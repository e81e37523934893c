"""`mailwidget`: the command line. Each module of this package adds its subcommands through
`register(subparsers)`; a subcommand's handler returns the exit code.

Start-up is the cost of a command line: `COMMANDS` names every command with its module and
one-line help, so `--help` imports no module of the project and a command imports only its
own module (`inspect` needs no FastAPI, SQLAlchemy or IMAP library).

Errors a user can cause (a missing file, a bad option, a refused login) print one line on
stderr and exit 2: never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from crm.domain.errors import DomainError

# command → (module of this package that registers it, help shown by `mailwidget --help`).
# tests/test_cli.py checks the helps against what each module registers.
COMMANDS: dict[str, tuple[str, str]] = {
    "import-leads": ("crm", "import leads from a CSV file (UTF-8 or Shift_JIS)"),
    "import-jobs": ("crm", "run the queued import jobs (uploads to /api/v1/imports/leads) until none is left"),
    "campaign-create": ("crm", "create a campaign (default statuses 送信済み / 反応あり / 未反応)"),
    "campaign-add": ("crm", "add leads to a campaign with one status"),
    "campaign-show": ("crm", "a campaign's statuses with member counts"),
    "convert-lead": ("crm", "convert a lead into an account and a contact (and a deal)"),
    "conversion-settings": ("crm", "show, or (admin) set, what makes an account the same company in conversion"),
    "form-duplicates": ("crm", "show, or (admin) set, what a web form submission does to an existing lead with its address"),
    "view-leads": ("crm", "the leads of a saved view, as JSON lines"),
    "template-create": ("rules", "create a mail template (merge fields such as {{lead.last_name}})"),
    "rule-create": ("rules", "create a workflow rule: mail a template to new leads of some sources"),
    "rules": ("rules", "list the workflow rules as JSON lines"),
    "rule-update": ("rules", "change a workflow rule"),
    "rule-pause": ("rules", "pause a workflow rule"),
    "rule-resume": ("rules", "resume a paused workflow rule"),
    "rule-delete": ("rules", "delete a workflow rule"),
    "rule-dry-run": ("rules", "whom a rule would mail among the latest leads of its sources (nothing is queued)"),
    "bulk-send": ("rules", "queue a template for leads or a saved view's, now or at --at (one mail per address, within the daily limit)"),
    "inspect": ("inspect", "print the lead draft of .eml files as JSON"),
    "serve": ("serve", "migrate the database and serve the API"),
    "rescue": ("spam", "move authenticated mail of whitelisted senders out of Junk (and apply calendar updates), once"),
    "worker": ("spam", "run the rescue scan of every mailbox on a schedule"),
    "outbox-send": ("outbox", "send the due mails of the outbox once (rules, form replies, bulk), within the daily limits"),
    "org-create": ("users", "create an organisation with its admin; prints the admin's token"),
    "user-add": ("users", "add a user to an organisation; prints the user's token"),
    "token-create": ("users", "issue a new API token for a user"),
    "token-revoke": ("users", "revoke every token of a user, or only the one with --id"),
    "user-password": ("users", "set a user's password for the backend's sign-in page (read from stdin, or asked for)"),
    "tokens": ("users", "list a user's tokens (id, scope, name, state)"),
    "users": ("users", "list organisations and users"),
}


class UsageError(Exception):
    """A mistake on the command line or in its input: one line, exit 2."""


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser with the full options of the command named in `argv` (its module imported)
    and a placeholder, name and help only, for every other command."""
    parser = argparse.ArgumentParser(prog="mailwidget", description="CRM mail-widget backend")
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)  # the top level has no option but -h
    module = COMMANDS[chosen][0] if chosen in COMMANDS else None
    for name, (owner, help_) in COMMANDS.items():
        if owner != module:
            sub.add_parser(name, help=help_)
        elif name == chosen:  # the module adds all of its commands, this one with its options
            importlib.import_module(f"{__name__}.{owner}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, DomainError) as exc:
        detail = exc.detail if isinstance(exc, DomainError) else str(exc)
        print(f"mailwidget {args.command}: {detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if not _database_unavailable(exc):
            raise
        # locked, restarting, unreachable: nothing was changed
        reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"mailwidget {args.command}: the database is unavailable ({reason}); nothing was changed", file=sys.stderr)
        return 2


def _database_unavailable(exc: Exception) -> bool:
    # SQLAlchemy is looked up, not imported: a command that never loaded it cannot have raised it.
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return sa_exc is not None and isinstance(exc, sa_exc.OperationalError)
