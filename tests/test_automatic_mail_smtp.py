"""Rules and form auto-replies end to end through a real SMTP server on loopback (aiosmtpd):
what the server received for a CSV import with a rule, and for a web form's auto-reply."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy

from fastapi.testclient import TestClient

from crm.services import outbox
from crm.store.base import utcnow
from tests.servers.smtp import SmtpSink
from tests.test_rules import import_csv, make_rule, make_template
from tests.test_web_forms import make_form, post, token


def configure(runtime, org_id: int, port: int) -> None:  # type: ignore[no-untyped-def]
    with runtime.sessions.begin() as s:
        outbox.save_smtp_settings(s, org_id, runtime.secrets, host="127.0.0.1", port=port, security="none", from_address="info@acme.example", public_url="https://crm.acme.example")


def send_all(runtime, minutes_later: int = 0) -> int:  # type: ignore[no-untyped-def]
    from widget_api.outbox_sender import send_pass

    at = utcnow() + timedelta(minutes=minutes_later)
    return send_pass(runtime.sessions, runtime.secrets, allow_private=True, clock=lambda: at).sent


def test_a_rule_on_import_sends_one_mail_per_person_after_its_delay(client: TestClient, runtime, admin, member, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
    configure(runtime, admin.organisation_id, smtp_sink.port)
    client.put("/api/v1/settings/unique-fields/email", json={"unique": False}, headers=admin.headers)
    template = make_template(client, admin, charset="iso-2022-jp", html_body="<p>{{lead.company}} {{lead.last_name}}様</p>")
    make_rule(client, admin, template["id"], delay_minutes=30)
    csv = "姓,会社名,メール\n山田,<b>A</b> 株式会社,yamada@a.example\n山田,A 株式会社,YAMADA@a.example\n佐藤,B 株式会社,sato@b.example\n無し,C 株式会社,\n"
    assert import_csv(client, member, csv)["created"] == 4
    assert send_all(runtime) == 0 and smtp_sink.received == []  # the rule's delay holds them back
    assert send_all(runtime, minutes_later=31) == 2
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == ["sato@b.example", "yamada@a.example"]
    yamada = next(r for r in smtp_sink.received if r.rcpt_tos == ["yamada@a.example"])
    assert b"Subject: =?iso-2022-jp?b?" in yamada.data and b"\x1b$B" in yamada.data
    parsed = email.message_from_bytes(yamada.data, policy=policy.default)
    assert str(parsed["Subject"]) == "山田様 ご登録ありがとうございます"
    assert parsed["List-Unsubscribe"].startswith("<https://crm.acme.example/u/") and parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "&lt;b&gt;A&lt;/b&gt; 株式会社 山田様" in parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<b>A</b> 株式会社 山田様" in parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert send_all(runtime, minutes_later=60) == 0 and len(smtp_sink.received) == 2  # nothing twice


def test_a_form_auto_reply_arrives(client: TestClient, runtime, admin, session, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
    configure(runtime, admin.organisation_id, smtp_sink.port)
    reply = make_template(client, admin, name="reply", language="en", subject="Thank you, {{lead.last_name}}", text_body="We will write back soon, {{lead.last_name}}.", html_body=None)
    form = make_form(client, admin, template_id=reply["id"], language="en")
    assert post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "Smith", "email": "smith@example.com"}).status_code == 200
    assert send_all(runtime) == 1
    [got] = smtp_sink.received
    parsed = email.message_from_bytes(got.data, policy=policy.default)
    assert got.rcpt_tos == ["smith@example.com"] and str(parsed["Subject"]) == "Thank you, Smith"
    assert parsed.get_content_type() == "text/plain" and "We will write back soon, Smith." in parsed.get_content()


def test_a_sent_automatic_mail_is_on_the_leads_timeline_once(client: TestClient, runtime, admin, session, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
    configure(runtime, admin.organisation_id, smtp_sink.port)
    reply = make_template(client, admin, name="reply", language="en", subject="Thank you, {{lead.last_name}}", text_body="Soon, {{lead.last_name}}.", html_body=None)
    form = make_form(client, admin, template_id=reply["id"], language="en")
    assert post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "Jones", "email": "jones@example.com"}).status_code == 200
    [lead] = client.get("/api/v1/leads", headers=admin.headers).json()["items"]

    def automatic() -> list[dict]:  # type: ignore[type-arg]
        entries = client.get(f"/api/v1/leads/{lead['id']}/timeline", headers=admin.headers).json()["entries"]
        return [e for e in entries if e["kind"] == "automatic_mail"]

    assert automatic() == []  # queued is not sent
    assert send_all(runtime) == 1
    [entry] = automatic()
    assert entry["summary"] == "Thank you, Jones" and entry["payload"]["to"] == "jones@example.com" and entry["payload"]["kind"] == "form_reply"
    assert send_all(runtime, minutes_later=5) == 0 and len(automatic()) == 1


def test_the_received_unsubscribe_link_works_in_one_click(client: TestClient, runtime, admin, session, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
    """List-Unsubscribe holds the https link only (no mailto whose mail nobody reads); the
    link taken from the bytes received, posted as a mail provider does, stops the mail."""
    configure(runtime, admin.organisation_id, smtp_sink.port)
    form = make_form(client, admin, template_id=make_template(client, admin, name="reply")["id"])
    post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "Smith", "email": "smith@example.com"})
    assert send_all(runtime) == 1
    header = email.message_from_bytes(smtp_sink.received[0].data, policy=policy.default)["List-Unsubscribe"]
    assert "mailto:" not in header and header.startswith("<https://crm.acme.example/u/") and header.endswith(">")
    path = header[1:-1].removeprefix("https://crm.acme.example")
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with runtime.sessions.begin() as s:
        again = outbox.enqueue(s, organisation_id=admin.organisation_id, kind="rule", to_address="Smith@example.com", subject="x", text="x", html=None, charset="utf-8")
    assert (again.status, again.reason) == ("skipped", "unsubscribed")
