"""Organisations, users and tokens from the command line (for the admin of the server)."""

from __future__ import annotations

import argparse

from sqlalchemy import select

from crm.services import organisations
from crm.store.models import Organisation, User
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

    p = sub.add_parser("token-revoke", help="revoke every token of a user")
    p.add_argument("email")
    p.add_argument("--org", type=int, required=True)
    p.set_defaults(func=token_revoke)

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
        print(f"revoked {organisations.revoke_tokens(s, _user(s, args.org, args.email).id)} token(s)")
    return 0


def list_users(args: argparse.Namespace) -> int:
    with cli_runtime().sessions() as s:
        for org in s.scalars(select(Organisation).order_by(Organisation.id)):
            print(f"{org.id}\t{org.name}\t{org.time_zone}")
            for user in s.scalars(select(User).where(User.organisation_id == org.id).order_by(User.id)):
                print(f"\t{user.id}\t{user.email}\t{user.role}\t{user.language}")
    return 0
