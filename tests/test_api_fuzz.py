"""Schemathesis against the app's own OpenAPI document: every operation, with inputs
generated from its schema, on a real Dovecot account and the test database (SQLite, and
PostgreSQL again under `make test`). No answer may be a server error or differ from what
the document says (status, content type, body schema, headers).

Bounded and deterministic: a fixed number of examples per operation, derandomised, no
example database; deadlines off (a mail server round trip is not a bug).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import content_type_conformance, response_headers_conformance, response_schema_conformance, status_code_conformance

from tests.factories import connect_mailbox, make_org, make_user
from tests.test_spam import mail
from widget_api.config import Settings
from widget_api.main import create_app

pytestmark = pytest.mark.db  # (the runtime fixture marks it too) run again on PostgreSQL by `make test`
EXAMPLES = 20  # generated per operation, besides the coverage phase's cases
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance, response_headers_conformance]
# Operations the fuzzer does not call, and why.
EXCLUDED = {
    ("POST", "/api/v1/mailboxes"): "connects to whatever host it is given: fuzzing it would send traffic off this machine (its bad input is tested in test_mailbox_api.py)",
    ("PUT", "/api/v1/calendar/settings"): "stores an SMTP server that /calendar/answer then connects to, the same way off this machine (tested in test_calendar.py)",
}


def _document() -> dict[str, object]:
    """What GET /openapi.json serves; the app is built on a throwaway database just for it."""
    data_dir = Path(tempfile.mkdtemp(prefix="openapi-"))
    app = create_app(Settings(database_url=f"sqlite:///{data_dir / 'doc.db'}", secret_keys=[Fernet.generate_key().decode()], data_dir=data_dir))
    with TestClient(app) as client:
        return client.get("/openapi.json").json()  # type: ignore[no-any-return]


schemathesis.serializer.alias("message/rfc822", "application/octet-stream")  # the raw upload's body
# The coverage phase adds each operation's boundary and invalid cases (ids at 2**63, wrong
# types, missing fields) as explicit examples; methods a path does not have are left to
# FastAPI's own 405.
CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"unexpected-methods": []}}})
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)
for (method, path) in EXCLUDED:
    schema = schema.exclude(method=method, path=path)

INVITE = (
    b"From: Organizer <o@customer.example>\r\nTo: admin@acme.example\r\nSubject: meeting\r\nMessage-ID: <invite@customer.example>\r\n"
    b"Content-Type: text/calendar; method=REQUEST; charset=utf-8\r\n\r\n"
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:fuzz-1\r\nDTSTAMP:20240301T000000Z\r\nDTSTART:20240316T110000Z\r\n"
    b"DTEND:20240316T120000Z\r\nORGANIZER:mailto:o@customer.example\r\nATTENDEE:mailto:admin@acme.example\r\nSUMMARY:demo\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.fixture()
def fuzz_app(runtime, client, dovecot):  # type: ignore[no-untyped-def]
    """The app with an organisation whose admin has a connected Dovecot account holding a
    lead mail, an invitation, a UTF-8 Message-ID and spam; one lead, campaign, custom field
    and view exist. Returns (app, admin's headers)."""
    org = make_org(runtime, "Fuzz 株式会社")
    admin = make_user(runtime, org, "admin@acme.example", role="admin")
    imap_user = dovecot.add_user()
    dovecot.append(imap_user.name, "INBOX", mail())
    dovecot.append(imap_user.name, "INBOX", INVITE)
    dovecot.append(imap_user.name, "INBOX", mail(mid="<日本語@例え.jp>"))
    dovecot.append(imap_user.name, "Junk", mail(mid="<junk@customer.co.jp>"))
    assert connect_mailbox(client, admin, imap_user).status_code == 201
    lead = client.post("/api/v1/leads", json={"last_name": "山田", "email": "yamada@customer.co.jp"}, headers=admin.headers).json()["lead"]
    campaign = client.post("/api/v1/campaigns", json={"name": "秋"}, headers=admin.headers).json()
    client.post(f"/api/v1/campaigns/{campaign['id']}/members", json={"lead_ids": [lead["id"]]}, headers=admin.headers)
    client.post("/api/v1/custom-fields", json={"key": "tier", "type": "picklist", "options": ["A", "B"]}, headers=admin.headers)
    client.post("/api/v1/views", json={"name": "A", "filters": {"field": "custom:tier", "op": "equals", "value": "A"}}, headers=admin.headers)
    return create_app(runtime.settings, runtime), admin.headers


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_no_input_breaks_the_api(case, fuzz_app) -> None:  # type: ignore[no-untyped-def]
    app, headers = fuzz_app
    generated = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    case.headers = {**generated, **headers}  # a valid token: the token checks have their own tests
    case.call_and_validate(app=app, checks=CHECKS)
