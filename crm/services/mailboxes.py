"""Mailbox accounts: stored with the secret encrypted; read back only to connect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, select
from sqlalchemy.orm import Session

from crm.domain.drafts import ReadContext
from crm.domain.errors import NotFound
from crm.domain.principal import Principal
from crm.domain.rules import email_domain, is_free_mail
from crm.services import organisations
from crm.services.secrets import SecretBox
from crm.store.models import MailboxAccount, Organisation, User


def get_account(session: Session, principal: Principal, mailbox_id: int | None = None) -> MailboxAccount:
    query = select(MailboxAccount).where(MailboxAccount.organisation_id == principal.organisation_id, MailboxAccount.user_id == principal.user_id)
    if mailbox_id is not None:
        query = query.where(MailboxAccount.id == mailbox_id)
    account = session.scalars(query.order_by(MailboxAccount.id).limit(1)).first()
    if account is None:
        raise NotFound("no mailbox is connected" if mailbox_id is None else f"no mailbox {mailbox_id}", code="no_mailbox" if mailbox_id is None else None)
    return account


# Built once (the draft lists the accounts on every message opened): see
# crm.services.organisations._PRINCIPAL_OF_TOKEN.
_ACCOUNTS_OF_USER = (
    select(MailboxAccount).where(MailboxAccount.organisation_id == bindparam("org"), MailboxAccount.user_id == bindparam("user")).order_by(MailboxAccount.id)
)


def list_accounts(session: Session, principal: Principal) -> list[MailboxAccount]:
    return list(session.scalars(_ACCOUNTS_OF_USER, {"org": principal.organisation_id, "user": principal.user_id}))


def save_account(
    session: Session,
    principal: Principal,
    box: SecretBox,
    *,
    host: str,
    port: int,
    security: str,
    username: str,
    secret: str,
    auth: str = "password",
    trusted_authserv_ids: list[str] | None = None,
) -> MailboxAccount:
    """Create the account, or update it when the user connects the same host + username again
    (a new password replaces the old one: reconnecting never makes a second account)."""
    account = session.scalar(
        select(MailboxAccount).where(MailboxAccount.user_id == principal.user_id, MailboxAccount.host == host.lower(), MailboxAccount.username == username)
    )
    if account is None:
        account = MailboxAccount(organisation_id=principal.organisation_id, user_id=principal.user_id, host=host.lower(), username=username)
        session.add(account)
    account.port = port
    account.security = security
    account.auth = auth
    account.secret_encrypted = box.encrypt(secret)
    account.trusted_authserv_ids = [a.lower() for a in trusted_authserv_ids or []]
    session.flush()
    return account


def delete_account(session: Session, principal: Principal, mailbox_id: int) -> None:
    session.delete(get_account(session, principal, mailbox_id))
    session.flush()


def read_context(session: Session, principal: Principal) -> ReadContext:
    """What the extractors need about the reader: their organisation's own domains (from the
    settings, or the users' addresses when none are set) and trusted authserv-ids."""
    return _context(session, principal, list_accounts(session, principal))


# The accounts with their organisation's reading settings in one round trip, plain columns
# (what connecting needs, not the ORM object): the draft asks for them on every message the
# user opens, and a statement's ORM loading costs more CPU than SQLite's answer.
_A = MailboxAccount
_ACCOUNTS_WITH_ORG = (
    select(_A.id, _A.host, _A.port, _A.security, _A.username, _A.auth, _A.secret_encrypted, _A.trusted_authserv_ids, Organisation.mail_domains, Organisation.default_region)
    .join(Organisation, Organisation.id == _A.organisation_id)
    .where(_A.organisation_id == bindparam("org"), _A.user_id == bindparam("user"))
    .order_by(_A.id)
)


def account_and_context(session: Session, principal: Principal, mailbox_id: int | None = None) -> tuple[Row[Any], ReadContext]:
    """The account to connect to (a row with MailboxAccount's connection columns: host,
    port, security, username, auth, secret_encrypted) and the read context, in one query
    instead of three (the accounts listed once for both, the organisation's settings joined
    to them)."""
    rows: Sequence[Any] = session.connection().execute(_ACCOUNTS_WITH_ORG, {"org": principal.organisation_id, "user": principal.user_id}).all()
    return pick_account(principal, rows, mailbox_id)


# The token's principal with the user's accounts (outer-joined: a user without one still has
# a row, the principal's) and the organisation's reading settings: the draft's token check
# and account lookup in one round trip instead of two, on every message the user opens. The
# accounts are scoped as in _ACCOUNTS_WITH_ORG: the token's user, in the user's organisation.
_PRINCIPAL_AND_ACCOUNTS = (
    organisations.principal_statement(
        _A.id, _A.host, _A.port, _A.security, _A.username, _A.auth, _A.secret_encrypted, _A.trusted_authserv_ids, Organisation.mail_domains, Organisation.default_region
    )
    .outerjoin(_A, and_(_A.organisation_id == User.organisation_id, _A.user_id == User.id))
    .order_by(_A.id)
)


def authenticate_with_accounts(db: Session | Connection, token: str) -> tuple[Principal, list[Row[Any]]]:
    """organisations.authenticate (the same checks and errors, looked up afresh) and the
    principal's account rows for `pick_account`, in one statement."""
    rows = organisations.read_token(db, _PRINCIPAL_AND_ACCOUNTS, token)
    principal = organisations.principal_of_row(rows[0] if rows else None)
    return principal, [row for row in rows if row.id is not None]


def pick_account(principal: Principal, rows: Sequence[Row[Any]], mailbox_id: int | None = None) -> tuple[Row[Any], ReadContext]:
    """The account (its id `mailbox_id`, else the first) and the read context from the
    principal's account rows (account_and_context, authenticate_with_accounts): NotFound
    when there is none."""
    account = next((a for a in rows if mailbox_id is None or a.id == mailbox_id), None)
    if account is None:
        raise NotFound("no mailbox is connected" if mailbox_id is None else f"no mailbox {mailbox_id}", code="no_mailbox" if mailbox_id is None else None)
    return account, _context_of(principal, [r.trusted_authserv_ids for r in rows], rows[0].mail_domains, rows[0].default_region)


def _context(session: Session, principal: Principal, accounts: list[MailboxAccount]) -> ReadContext:
    org = session.get(Organisation, principal.organisation_id)
    return _context_of(principal, [a.trusted_authserv_ids for a in accounts], org.mail_domains if org else None, org.default_region if org else None)


def _context_of(principal: Principal, authserv_ids: list[list[str] | None], mail_domains: list[str] | None, default_region: str | None) -> ReadContext:
    domains = set(mail_domains or [])
    if not domains and not is_free_mail(principal.email):
        domains.add(email_domain(principal.email))
    authserv: set[str] = set()
    for ids in authserv_ids:
        authserv.update(ids or [])
    return ReadContext(
        own_domains=frozenset(domains),
        default_region=default_region if default_region is not None else "JP",
        trusted_authserv_ids=frozenset(authserv),
        user_email=principal.email,
    )
