"""Bulk and scheduled sends through the API (POST /api/v1/outbox/bulk) and the sender: one
mail per normalised address (the FAQ's "500 a day, but only 300 real mails"), the others
recorded as skipped with the reason, a retried request mailing no one twice, a scheduled
send held until its time, and the daily limit counting them."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from crm.services import outbox
from crm.store.base import utcnow
from tests.servers.smtp import SmtpSink
from tests.test_automatic_mail_smtp import configure, send_all
from tests.test_rules import import_csv, make_template, outbox_rows

CSV = "姓,会社名,メール\n山田,A 株式会社,yamada@a.example\n山田,A 株式会社,YAMADA@a.example \n佐藤,B 商事,sato@b.example\n無し,C 株式会社,\n鈴木,B 商事,suzuki@b.example\n"


def setup(client: TestClient, runtime, admin, member, port: int) -> tuple[dict, list[int]]:  # type: ignore[no-untyped-def]
    configure(runtime, admin.organisation_id, port)
    client.put("/api/v1/settings/unique-fields/email", json={"unique": False}, headers=admin.headers)
    template = make_template(client, admin, name="news", subject="{{lead.last_name}}様 新製品のご案内")
    assert import_csv(client, member, CSV)["created"] == 5
    ids = sorted(lead["id"] for lead in client.get("/api/v1/leads?limit=50", headers=admin.headers).json()["items"])
    return template, ids


def test_one_mail_per_address_the_rest_skipped_with_reasons(client: TestClient, runtime, admin, member, session, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
    template, ids = setup(client, runtime, admin, member, smtp_sink.port)
    with runtime.sessions.begin() as s:
        outbox.suppress(s, admin.organisation_id, "suzuki@b.example", "unsubscribed")
    assert client.post("/api/v1/outbox/bulk", json={"template_id": template["id"], "lead_ids": ids}, headers=member.headers).status_code == 403
    response = client.post("/api/v1/outbox/bulk", json={"template_id": template["id"], "lead_ids": ids, "batch_key": "news-1"}, headers=admin.headers)
    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["kind"], report["recipients"], report["batch_key"]) == ("bulk", 3, "news-1")
    assert report["counts"] == {"queued": 2, "skipped": 1, "no_address": 1, "duplicate_address": 1}
    rows = client.get(f"/api/v1/outbox/sources/bulk/{template['id']}", headers=admin.headers).json()
    assert sorted((r["status"], r["reason"]) for r in rows) == [("queued", None), ("queued", None), ("skipped", "duplicate_address"), ("skipped", "no_address"), ("skipped", "unsubscribed")]
    assert send_all(runtime) == 2
    assert sorted(r.rcpt_tos[0].lower() for r in smtp_sink.received) == ["sato@b.example", "yamada@a.example"]
    again = client.post("/api/v1/outbox/bulk", json={"template_id": template["id"], "lead_ids": ids, "batch_key": "news-1"}, headers=admin.headers).json()
    assert again["counts"].get("queued", 0) == 0 and again["counts"]["duplicate"] == 3  # the retried request mails no one twice
    assert send_all(runtime) == 0 and len(outbox_rows(session)) == 5
    with runtime.sessions() as s:
        assert outbox.quota_status(s, admin.organisation_id, utcnow()).used == 2


def test_a_view_scheduled_for_later(client: TestClient, runtime, admin, member, session, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
    template, _ids = setup(client, runtime, admin, member, smtp_sink.port)
    view = client.post("/api/v1/views", json={"name": "B 商事", "filters": {"op": "and", "conditions": [{"field": "company", "op": "contains", "value": "商事"}]}, "shared": True}, headers=admin.headers)
    assert view.status_code == 201, view.text
    at = utcnow() + timedelta(hours=2)
    report = client.post("/api/v1/outbox/bulk", json={"template_id": template["id"], "view_id": view.json()["id"], "send_at": at.isoformat()}, headers=admin.headers).json()
    assert report["kind"] == "scheduled" and report["recipients"] == 2 and report["counts"] == {"queued": 2}
    assert send_all(runtime, minutes_later=60) == 0 and smtp_sink.received == []
    assert send_all(runtime, minutes_later=121) == 2
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == ["sato@b.example", "suzuki@b.example"]


def test_bad_requests(client: TestClient, runtime, admin, member, smtp_sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
    template, ids = setup(client, runtime, admin, member, smtp_sink.port)
    cases = [
        ({"template_id": template["id"]}, 400),  # neither leads nor a view
        ({"template_id": template["id"], "lead_ids": ids, "view_id": 1}, 400),
        ({"template_id": template["id"], "lead_ids": ids, "send_at": (utcnow() + timedelta(days=91)).isoformat()}, 400),
        ({"template_id": template["id"], "lead_ids": ids, "send_at": "2026-12-03T10:00:00"}, 400),  # no time zone
        ({"template_id": 999_999, "lead_ids": ids}, 404),
        ({"template_id": template["id"], "view_id": 999_999}, 404),
        ({"template_id": template["id"], "lead_ids": ids, "batch_key": "no spaces"}, 422),
    ]
    for body, code in cases:
        response = client.post("/api/v1/outbox/bulk", json=body, headers=admin.headers)
        assert response.status_code == code and {"type", "detail"} <= set(response.json()), (body, response.text)
    # Another organisation's leads are not this one's to mail.
    assert client.post("/api/v1/outbox/bulk", json={"template_id": template["id"], "lead_ids": [ids[-1] + 1000]}, headers=admin.headers).json()["recipients"] == 0
