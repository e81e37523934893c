"""Organisations, users and tokens from the command line (for the admin of the server)."""

from __future__ import annotations

import argparse
import getpass
import sys

from sqlalchemy import select

from crm.services import auth, organisations
from crm.store.base import utcnow
from crm.store.models import ApiToken, Organisation, User
from widget_api.cli import UsageError
from widget_api.cli._runtime import cli_runtime


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("org-create", help="create an organisation with its admin; prints the admin's token")
    p.add_argument("name")
    p.add_argument("--admin", required=True, help="the admin's email")
    p.add_argument("--time-zone", default="Asia/Tokyo")
    p.add_argument("--domain", action="append", default=[], help="the organisation's mail domain (repeatable)")
    p.set_defaults(func=org_create)

    p = sub.add_parser("user-add", help="add a user to an organisation; prints the user's token")
    p.add_argument("email")
    p.add_argument("--org", type=int, required=True, help="organisation id")
    p.add_argument("--role", choices=organisations.ROLES, default="member")
    p.add_argument("--language", choices=organisations.LANGUAGES, default="ja")
    p.set_defaults(func=user_add)

    p = sub.add_parser("token-create", help="issue a new API token for a user")
    p.add_argument("email")
    p.add_argument("--org", type=int, required=True)
    p.add_argument("--name", default="cli")
    p.set_defaults(func=token_create)

    p = sub.add_parser("token-revoke", help="revoke every token of a user, or only the one with --id")
    p.add_argument("email")
    p.add_argument("--org", type=int, required=True)
    p.add_argument("--id", type=int, help="the token's id (see `tokens`)")
    p.set_defaults(func=token_revoke)

    p = sub.add_parser("user-password", help="set a user's password for the backend's sign-in page (read from stdin, or asked for)")
    p.add_argument("email")
    p.add_argument("--org", type=int, required=True)
    p.set_defaults(func=user_password)

    p = sub.add_parser("tokens", help="list a user's tokens (id, scope, name, state)")
    p.add_argument("email")
    p.add_argument("--org", type=int, required=True)
    p.set_defaults(func=list_tokens)

    p = sub.add_parser("users", help="list organisations and users")
    p.set_defaults(func=list_users)


def org_create(args: argparse.Namespace) -> int:
    with cli_runtime().sessions.begin() as s:
        org = organisations.create_organisation(s, args.name, time_zone=args.time_zone, mail_domains=args.domain)
        admin = organisations.create_user(s, org.id, args.admin, role="admin")
        token = organisations.issue_token(s, admin.id, "cli")
        print(f"organisation {org.id} {org.name!r}, admin {admin.email}")
        print(f"token: {token}")
    return 0


def user_add(args: argparse.Namespace) -> int:
    with cli_runtime().sessions.begin() as s:
        user = organisations.create_user(s, args.org, args.email, role=args.role, language=args.language)
        print(f"user {user.id} {user.email} ({user.role})")
        print(f"token: {organisations.issue_token(s, user.id, 'cli')}")
    return 0


def _user(s, org: int, email: str) -> User:  # type: ignore[no-untyped-def]
    user = s.scalar(select(User).where(User.organisation_id == org, User.email == email.strip().lower()))
    if user is None:
        raise UsageError(f"no user {email} in organisation {org}")
    return user


def token_create(args: argparse.Namespace) -> int:
    with cli_runtime().sessions.begin() as s:
        print(f"token: {organisations.issue_token(s, _user(s, args.org, args.email).id, args.name)}")
    return 0


def token_revoke(args: argparse.Namespace) -> int:
    with cli_runtime().sessions.begin() as s:
        user = _user(s, args.org, args.email)
        if args.id is not None:
            row = s.get(ApiToken, args.id)
            if row is None or row.user_id != user.id:
                raise UsageError(f"{user.email} has no token {args.id}")
            row.revoked_at = row.revoked_at or utcnow()
            print("revoked 1 token(s)")
            return 0
        print(f"revoked {organisations.revoke_tokens(s, user.id)} token(s)")
    return 0


def user_password(args: argparse.Namespace) -> int:
    # Never an argument: a password on the command line lands in the shell's history and ps.
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    with cli_runtime().sessions.begin() as s:
        auth.set_password(s, _user(s, args.org, args.email).id, password)
    print("password set")
    return 0


def list_tokens(args: argparse.Namespace) -> int:
    with cli_runtime().sessions.begin() as s:
        user = _user(s, args.org, args.email)
        for row in s.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)):
            print(f"{row.id}\t{row.scope}\t{row.name}\t{'revoked' if row.revoked_at else 'active'}\t{row.created_at:%Y-%m-%d %H:%M}")
    return 0


def list_users(args: argparse.Namespace) -> int:
    with cli_runtime().sessions() as s:
        for org in s.scalars(select(Organisation).order_by(Organisation.id)):
            print(f"{org.id}\t{org.name}\t{org.time_zone}")
            for user in s.scalars(select(User).where(User.organisation_id == org.id).order_by(User.id)):
                print(f"\t{user.id}\t{user.email}\t{user.role}\t{user.language}")
    return 0
