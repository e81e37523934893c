"""Organisations, users and their API tokens.

Tokens are 256-bit random strings shown once; only their SHA-256 is stored, so a database
leak gives no usable token.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Row, Select, bindparam, select
from sqlalchemy.orm import Session

from crm.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from crm.domain.principal import Principal
from crm.domain.rules import normalise_email
from crm.store.base import utcnow
from crm.store.db import connection_of, once_more_if_disconnected
from crm.store.models import ApiToken, FieldSetting, Organisation, User

TOKEN_PREFIX = "mw_"
LANGUAGES = ("ja", "en")
ROLES = ("admin", "member")
SCOPES = ("full", "widget")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown IANA time zone: {name!r}") from None
    return name


def create_organisation(session: Session, name: str, *, time_zone: str = "Asia/Tokyo", mail_domains: list[str] | None = None) -> Organisation:
    if not name.strip():
        raise InvalidInput("an organisation needs a name")
    org = Organisation(name=name.strip(), time_zone=check_time_zone(time_zone), mail_domains=[d.lower() for d in mail_domains or []])
    session.add(org)
    session.flush()
    # "Do not allow duplicate values" on email, as the source CRM does by default.
    session.add(FieldSetting(organisation_id=org.id, field="email", unique=True))
    session.flush()
    return org


def create_user(session: Session, organisation_id: int, email: str, *, role: str = "member", language: str = "ja", name: str = "") -> User:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if language not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}")
    if session.get(Organisation, organisation_id) is None:
        raise NotFound(f"no organisation {organisation_id}")
    norm = normalise_email(email)
    if not norm:
        raise InvalidInput(f"not an email address: {email!r}")
    if session.scalar(select(User.id).where(User.organisation_id == organisation_id, User.email == norm)):
        raise Conflict(f"a user {norm} already exists", field="email")
    user = User(organisation_id=organisation_id, email=norm, role=role, language=language, name=name)
    session.add(user)
    session.flush()
    return user


def issue_token(session: Session, user_id: int, name: str = "", *, scope: str = "full") -> str:
    """A new token for the user; the clear value is returned once and never stored."""
    return issue_token_row(session, user_id, name, scope=scope)[0]


def issue_token_row(session: Session, user_id: int, name: str = "", *, scope: str = "full") -> tuple[str, ApiToken]:
    if scope not in SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user_id, token_hash=_hash(token), name=name[:100], scope=scope)
    session.add(row)
    session.flush()
    return token, row


def revoke_tokens(session: Session, user_id: int) -> int:
    tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))).all()
    for t in tokens:
        t.revoked_at = utcnow()
    session.flush()
    return len(tokens)


# Built once: constructing the statement and its cache key took a third of the lookup's CPU
# (py-spy: `ColumnOperators.__eq__`, `select`, `_generate_cache_key`); a statement object
# memoizes its cache key, so this one is only bound and run.
def principal_statement(*more: Any) -> Select[Any]:
    """The token's principal (token, user and organisation joined, plain columns) and `more`
    columns: the draft joins its mailbox accounts on (crm.services.mailboxes)."""
    return (
        select(
            ApiToken.id.label("token_id"), ApiToken.scope, User.id.label("user_id"), User.organisation_id, User.email, User.role, User.language,
            User.widget_enabled, Organisation.time_zone, *more,
        )  # fmt: skip
        .join(User, ApiToken.user_id == User.id)
        .join(Organisation, User.organisation_id == Organisation.id)
        .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
    )


_PRINCIPAL_OF_TOKEN = principal_statement()


def read_token(db: Session | Connection, statement: Select[Any], token: str) -> Sequence[Row[Any]]:
    """The rows of a `principal_statement` for the token: none when it is unknown or revoked.

    A database error here is the API's 503, never "invalid token" (a 401 signs the widget
    out). On the session's connection (its transaction): plain columns need none of the
    ORM's execution layer, which was half of this statement's CPU."""
    return once_more_if_disconnected(db, lambda: connection_of(db).execute(statement, {"token_hash": _hash(token)}).all())


def principal_of_row(row: Row[Any] | None) -> Principal:
    """The principal of a `principal_statement` row; PermissionDenied for no row (a bad token)
    or a user whose widget is turned off."""
    if row is None:
        raise PermissionDenied("invalid or revoked token", code="invalid_token")
    if not row.widget_enabled:
        raise PermissionDenied("the widget is disabled for this user", code="widget_disabled")
    return Principal(row.user_id, row.organisation_id, row.email, row.role, row.language, row.time_zone, row.scope, row.token_id)


def authenticate(session: Session, token: str) -> Principal:
    """The principal a bearer token stands for; PermissionDenied for anything else.

    One round trip (token, user and organisation joined, plain columns): it runs on every
    request, and three ORM loads of the same rows cost more than the request's own work. No
    cache: a revoked token fails on its very next request, whichever process answers it."""
    rows = read_token(session, _PRINCIPAL_OF_TOKEN, token)
    return principal_of_row(rows[0] if rows else None)


def list_tokens(session: Session, principal: Principal, *, whole_organisation: bool = False) -> list[ApiToken]:
    """The user's own tokens (an admin may ask for the organisation's), newest first."""
    query = select(ApiToken).join(User, ApiToken.user_id == User.id).where(User.organisation_id == principal.organisation_id)
    if whole_organisation:
        require_admin(principal)
    else:
        query = query.where(ApiToken.user_id == principal.user_id)
    return list(session.scalars(query.order_by(ApiToken.id.desc())))


def revoke_token(session: Session, principal: Principal, token_id: int) -> ApiToken:
    """Revoke one token: the user's own, or any of the organisation's for an admin."""
    row = session.get(ApiToken, token_id)
    if row is None or row.user.organisation_id != principal.organisation_id or (row.user_id != principal.user_id and not principal.is_admin):
        raise NotFound(f"no token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def bootstrap(session: Session, *, org_name: str, admin_email: str, time_zone: str = "Asia/Tokyo") -> str | None:
    """First run: an organisation, its admin and the admin's token (returned). None when
    an organisation already exists (nothing is created twice)."""
    if session.scalar(select(Organisation.id).limit(1)) is not None:
        return None
    org = create_organisation(session, org_name, time_zone=time_zone)
    admin = create_user(session, org.id, admin_email, role="admin")
    return issue_token(session, admin.id, "first run")


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDenied("only an administrator may do this", code="admin_only")
