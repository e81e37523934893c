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


def import_csv(client, user: UserRef, data: bytes, form: dict[str, object] | None = None, *, timeout: float = 120.0) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Upload a CSV to /api/v1/imports/leads (202) and poll the job until it ended; the job
    as the API shows it, with the error CSV's text under "errors_text"."""
    import time

    response = client.post("/api/v1/imports/leads", files={"file": ("leads.csv", data, "text/csv")}, data=form or {}, headers=user.headers)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/v1/imports/{job['id']}"
    deadline = time.monotonic() + timeout
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = client.get(f"/api/v1/imports/{job['id']}", headers=user.headers).json()
    errors = client.get(job["errors_csv"], headers=user.headers)
    assert errors.status_code == 200 and errors.headers["content-type"].startswith("text/csv")
    return {**job, "errors_text": errors.text}
