"""The outbox's API: SMTP settings (admins; password write-only), the quota, statuses per
lead and per rule, and the public one-click unsubscribe."""

from __future__ import annotations

import email

from fastapi.testclient import TestClient
from sqlalchemy import select

from crm.services import outbox
from crm.store.outbox import MailSuppression, OutboxMail
from tests.test_outbox import configure, mail
from widget_api.deps import Runtime

SETTINGS = {
    "host": "127.0.0.1", "port": 2525, "security": "none", "username": "mailer", "password": "s3cret-pw", "from_address": "info@acme.example",
    "from_name": "アクメ", "daily_limit": 2250, "time_zone": "America/New_York", "public_url": "https://crm.acme.example",
}


class TestSmtpSettings:
    def test_admin_sets_password_never_returned(self, client: TestClient, runtime: Runtime, admin) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/api/v1/outbox/smtp-settings", headers=admin.headers).json()["type"] == "smtp_not_configured"
        put = client.put("/api/v1/outbox/smtp-settings", json=SETTINGS, headers=admin.headers)
        assert put.status_code == 200, put.text
        assert "s3cret-pw" not in put.text and put.json()["has_password"] is True and "password" not in put.json()
        with runtime.sessions() as s:
            row = outbox.get_smtp_settings(s, admin.organisation_id)
            assert row is not None and row.secret_encrypted is not None and b"s3cret-pw" not in row.secret_encrypted
            assert runtime.secrets.decrypt(row.secret_encrypted) == "s3cret-pw"
        again = client.put("/api/v1/outbox/smtp-settings", json={**SETTINGS, "password": None, "daily_limit": 500}, headers=admin.headers)
        assert again.json()["has_password"] is True and again.json()["daily_limit"] == 500  # the password was kept

    def test_limit_above_the_add_on_refused(self, client: TestClient, admin) -> None:  # type: ignore[no-untyped-def]
        assert client.put("/api/v1/outbox/smtp-settings", json={**SETTINGS, "daily_limit": 2251}, headers=admin.headers).status_code == 422

    def test_no_tls_only_to_this_computer(self, client: TestClient, admin) -> None:  # type: ignore[no-untyped-def]
        refused = client.put("/api/v1/outbox/smtp-settings", json={**SETTINGS, "host": "smtp.example.com"}, headers=admin.headers)
        assert refused.status_code == 400 and refused.json()["type"] == "smtp_plain_not_loopback"
        assert client.put("/api/v1/outbox/smtp-settings", json={**SETTINGS, "host": "localhost"}, headers=admin.headers).status_code == 200

    def test_members_may_not(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        assert client.put("/api/v1/outbox/smtp-settings", json=SETTINGS, headers=member.headers).status_code == 403
        assert client.get("/api/v1/outbox/smtp-settings", headers=member.headers).status_code == 403


class TestQuotaAndStatuses:
    def test_quota_visible_to_members(self, client: TestClient, runtime: Runtime, member) -> None:  # type: ignore[no-untyped-def]
        body = client.get("/api/v1/outbox/quota", headers=member.headers).json()
        assert (body["used"], body["left"], body["limit"], body["counts_manual_mail"]) == (0, 500, 500, False)
        assert body["time_zone"] == "Asia/Tokyo" and body["resets_at"].endswith(("15:00:00Z", "15:00:00+00:00"))

    def test_statuses_per_lead_and_rule_in_the_users_language(self, client: TestClient, runtime: Runtime, member) -> None:  # type: ignore[no-untyped-def]
        from tests.factories import make_org

        configure(runtime, member.organisation_id, daily_limit=1)
        with runtime.sessions.begin() as s:
            from crm.store.models import Lead

            lead = Lead(organisation_id=member.organisation_id, email="taro@example.jp")
            s.add(lead)
            s.flush()
            outbox.enqueue(s, organisation_id=member.organisation_id, lead_id=lead.id, source_id=3, **mail())  # type: ignore[arg-type]
            lead_id = lead.id
            s.execute(OutboxMail.__table__.update().values(status="waiting_quota"))
        got = client.get(f"/api/v1/outbox/leads/{lead_id}?lang=ja", headers=member.headers).json()
        assert [(e["status"], e["status_label"]) for e in got] == [("waiting_quota", "翌日の送信枠を待っています")]
        got = client.get("/api/v1/outbox/sources/rule/3?lang=en", headers=member.headers).json()
        assert got[0]["status_label"] == "Waiting for tomorrow's quota"
        other = make_org(runtime, "Other")
        from tests.factories import make_user

        stranger = make_user(runtime, other, "x@other.example")
        assert client.get(f"/api/v1/outbox/leads/{lead_id}", headers=stranger.headers).json() == []
        assert client.get("/api/v1/outbox/sources/spam/3", headers=member.headers).status_code == 422


class TestUnsubscribe:
    def _queued(self, runtime: Runtime, org_id: int) -> OutboxMail:
        configure(runtime, org_id)
        with runtime.sessions.begin() as s:
            first = outbox.enqueue(s, organisation_id=org_id, **mail())  # type: ignore[arg-type]
            outbox.enqueue(s, organisation_id=org_id, **mail(kind="bulk"))  # type: ignore[arg-type]
            row = s.get(OutboxMail, first.outbox_id)
            assert row is not None
            return row

    def test_one_click_post_from_the_header(self, client: TestClient, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        row = self._queued(runtime, org.id)
        assert row.raw is not None
        url = email.message_from_bytes(row.raw)["List-Unsubscribe"].split(",")[0].strip("<> ")
        path = url.removeprefix("https://crm.acme.example")
        answer = client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 200 and "Taro@example.jp" in answer.text
        assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200  # idempotent
        with runtime.sessions() as s:
            assert s.scalars(select(MailSuppression.reason)).all() == ["unsubscribed"]
            assert {m.status for m in s.scalars(select(OutboxMail))} == {"skipped"}  # nothing queued for it is sent
            assert outbox.enqueue(s, organisation_id=org.id, **mail()).reason == "unsubscribed"  # type: ignore[arg-type]

    def test_get_only_asks(self, client: TestClient, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        row = self._queued(runtime, org.id)
        page = client.get(f"/u/{row.unsubscribe_token}", headers={"Accept-Language": "ja"})
        assert page.status_code == 200 and "配信を停止する" in page.text and 'value="One-Click"' in page.text
        assert "Unsubscribe" in client.get(f"/u/{row.unsubscribe_token}?lang=en").text
        with runtime.sessions() as s:
            assert s.scalars(select(MailSuppression)).all() == []

    def test_bad_token_and_body(self, client: TestClient, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        row = self._queued(runtime, org.id)
        assert client.post("/u/" + "x" * 32, data={"List-Unsubscribe": "One-Click"}).status_code == 404
        assert client.post(f"/u/{row.unsubscribe_token}", data={"List-Unsubscribe": "yes"}).status_code == 400
        assert client.post(f"/u/{row.unsubscribe_token}").status_code == 422
        assert client.get("/u/short").status_code == 422
        page = client.get("/u/" + "x" * 32, headers={"Accept-Language": "en"})
        assert page.status_code == 404 and "This unsubscribe link is not valid." in page.text
