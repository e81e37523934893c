"""Plain keyword factories for tests (one committed transaction each)."""

from __future__ import annotations

from dataclasses import dataclass

from crm.services import organisations
from widget_api.deps import Runtime


@dataclass(frozen=True)
class OrgRef:
    id: int
    name: str


@dataclass(frozen=True)
class UserRef:
    id: int
    organisation_id: int
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_org(runtime: Runtime, name: str = "Acme", *, time_zone: str = "Asia/Tokyo", mail_domains: list[str] | None = None) -> OrgRef:
    with runtime.sessions.begin() as s:
        org = organisations.create_organisation(s, name, time_zone=time_zone, mail_domains=mail_domains or ["acme.example"])
        return OrgRef(org.id, org.name)


def make_user(runtime: Runtime, org: OrgRef, email: str, *, role: str = "member", language: str = "en") -> UserRef:
    with runtime.sessions.begin() as s:
        user = organisations.create_user(s, org.id, email, role=role, language=language)
        token = organisations.issue_token(s, user.id)
        return UserRef(user.id, org.id, user.email, token)


def connect_mailbox(client, user: UserRef, imap_user, **extra):  # type: ignore[no-untyped-def]
    """POST the test user's Dovecot account to /api/v1/mailboxes; returns the response."""
    body = {"host": imap_user.host, "port": imap_user.port, "security": "plain", "username": imap_user.name, "password": imap_user.password}
    body.update(extra)
    return client.post("/api/v1/mailboxes", json=body, headers=user.headers)
