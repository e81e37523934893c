"""Signing in on the backend's pages and pairing the widget with a user.

Pairing is OAuth 2.0's authorization-code grant with PKCE (RFC 6749 §4.1, RFC 7636), as a
native app does it (RFC 8252): the widget opens the backend's consent page with a
`code_challenge`; the signed-in user approves; the backend redirects to the widget's
redirect URI with a code that lives two minutes, works once, and is exchanged only together
with the `code_verifier` whose SHA-256 is the challenge. Whoever sees the redirect URL alone
(a log, a proxy) holds nothing usable. The token it yields has the "widget" scope.

Passwords are hashed with scrypt (hashlib, memory-hard); a wrong password and an unknown
user take the same time and give the same answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from crm.domain.errors import InvalidInput, PermissionDenied
from crm.domain.principal import Principal
from crm.domain.rules import normalise_email
from crm.services import organisations
from crm.store.auth import AuthCode, UserPassword, WebSession
from crm.store.base import utcnow
from crm.store.models import ApiToken, User

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB, ~50 ms: OWASP's minimum for scrypt
MIN_PASSWORD = 10
SESSION_LIFETIME = timedelta(hours=12)
CODE_LIFETIME = timedelta(minutes=2)
VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 §4.1
CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")  # base64url(SHA-256), unpadded


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -------------------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def _check(password: str, stored: str) -> bool:
    _name, n, r, p, salt, digest = stored.split("$")
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(got.hex(), digest)


# Compared against when the user does not exist, so that case costs the same scrypt.
_DUMMY = hash_password(secrets.token_urlsafe(16))


def set_password(session: Session, user_id: int, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters", code="weak_password")
    row = session.get(UserPassword, user_id) or UserPassword(user_id=user_id)
    row.password_hash, row.updated_at = hash_password(password), utcnow()
    session.add(row)
    session.flush()


def check_password(session: Session, email: str, password: str, organisation_id: int | None = None) -> User:
    """The user these credentials belong to; PermissionDenied("bad_credentials") otherwise.
    An address in several organisations needs `organisation_id`."""
    query = select(User, UserPassword).join(UserPassword, UserPassword.user_id == User.id).where(User.email == (normalise_email(email) or ""))
    if organisation_id is not None:
        query = query.where(User.organisation_id == organisation_id)
    rows = session.execute(query).all()
    stored = rows[0][1].password_hash if len(rows) == 1 else _DUMMY
    if not _check(password, stored) or len(rows) != 1:
        raise PermissionDenied("wrong email or password", code="bad_credentials")
    user: User = rows[0][0]
    if not user.widget_enabled:
        raise PermissionDenied("the widget is disabled for this user", code="widget_disabled")
    return user


# -------------------------------------------------------------------------- web sessions


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    csrf_token: str


def start_session(session: Session, user: User) -> str:
    """A new browser session; returns the cookie value (stored only as its hash). Expired
    sessions and codes go on the way: nothing needs a cleaning job."""
    now = utcnow()
    session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    session.execute(delete(AuthCode).where(AuthCode.expires_at <= now - timedelta(days=1)))
    token = secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=_sha256(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32), expires_at=utcnow() + SESSION_LIFETIME))
    session.flush()
    return token


def session_user(session: Session, cookie: str | None) -> SignedIn | None:
    if not cookie:
        return None
    row = session.scalar(select(WebSession).where(WebSession.token_hash == _sha256(cookie), WebSession.expires_at > utcnow()))
    if row is None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.widget_enabled:
        return None
    principal = Principal(user.id, user.organisation_id, user.email, user.role, user.language, user.organisation.time_zone, "widget")
    return SignedIn(principal, row.csrf_token)


def end_session(session: Session, cookie: str | None) -> None:
    if cookie:
        for row in session.scalars(select(WebSession).where(WebSession.token_hash == _sha256(cookie))):
            session.delete(row)
        session.flush()


# -------------------------------------------------------------------------- pairing


def check_redirect_uri(redirect_uri: str, allowed: tuple[str, ...]) -> str:
    """Only the widget's own redirect URIs (an exact base, and paths below it)."""
    if not any(redirect_uri == base or (base.endswith("/") and redirect_uri.startswith(base)) for base in allowed):
        raise InvalidInput("this redirect_uri is not the widget's", code="bad_redirect_uri")
    return redirect_uri


def issue_code(session: Session, principal: Principal, *, code_challenge: str, method: str, redirect_uri: str, client_name: str) -> str:
    if method != "S256":
        raise InvalidInput("code_challenge_method must be S256", code="bad_challenge")
    if not CHALLENGE.fullmatch(code_challenge):
        raise InvalidInput("code_challenge must be the unpadded base64url SHA-256 of the verifier", code="bad_challenge")
    code = secrets.token_urlsafe(32)
    session.add(
        AuthCode(
            code_hash=_sha256(code), user_id=principal.user_id, code_challenge=code_challenge, redirect_uri=redirect_uri,
            client_name=client_name.strip()[:100], expires_at=utcnow() + CODE_LIFETIME,
        )
    )
    session.flush()
    return code


def exchange_code(session: Session, *, code: str, code_verifier: str, redirect_uri: str) -> tuple[str, ApiToken] | None:
    """The widget's token for a valid code and its verifier: (clear token, row); None when
    refused, for any reason (nothing to learn from which check failed).

    A refusal writes too, and the caller commits it: the code is spent by any attempt, and a
    code presented a second time revokes the token the first exchange gave (RFC 6749
    §4.1.2): one of the two presenters stole it."""
    row = session.scalar(select(AuthCode).where(AuthCode.code_hash == _sha256(code)))
    if row is None:
        return None
    if row.used_at is not None:
        if row.token_id is not None:
            session.execute(update(ApiToken).where(ApiToken.id == row.token_id, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
        return None
    # Claimed atomically: of two racing exchanges only one updates the row.
    claimed = session.execute(update(AuthCode).where(AuthCode.id == row.id, AuthCode.used_at.is_(None)).values(used_at=utcnow())).rowcount  # type: ignore[attr-defined]
    if claimed != 1 or row.expires_at <= utcnow() or row.redirect_uri != redirect_uri or not VERIFIER.fullmatch(code_verifier):
        return None
    challenge = base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    user = session.get(User, row.user_id)
    if not hmac.compare_digest(challenge, row.code_challenge) or user is None or not user.widget_enabled:
        return None
    token, token_row = organisations.issue_token_row(session, user.id, f"widget: {row.client_name or 'Thunderbird'}", scope="widget")
    row.token_id = token_row.id
    session.flush()
    return token, token_row
