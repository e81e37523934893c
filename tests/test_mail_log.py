"""The mail log and the timeline through the API, against a real Dovecot: log this mail
(once per record), unlink, the timeline's pages, attachments read part by part, auto-log of
a thread over a dropped connection, the never-log rules, and conversion carrying the
timeline."""

from __future__ import annotations

from email.message import EmailMessage

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import connect_mailbox, make_org, make_user

PERSON = "hanako.sato@client.example"


def mail(*, sender: str = f"Hanako Sato <{PERSON}>", to: str = "rep@acme.example", subject: str = "Estimate", body: str = "Could you send the estimate?\n",
         message_id: str, in_reply_to: str | None = None, references: tuple[str, ...] = (), date: str = "Thu, 19 Nov 2026 16:02:00 +0900", extra: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Date"], msg["Message-ID"] = sender, to, subject, date, message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in (extra or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def lead(client: TestClient, user, email: str = PERSON, company: str = "Client KK") -> int:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/leads", json={"last_name": "Sato", "email": email, "company": company}, headers=user.headers)
    assert response.status_code in (200, 201), response.text
    return int(response.json()["lead"]["id"])


def log(client: TestClient, user, records, **message):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/messages/log", json={"message": message, "records": records}, headers=user.headers)


def timeline(client: TestClient, user, kind: str, record_id: int, **params):  # type: ignore[no-untyped-def]
    response = client.get(f"/api/v1/{kind}/{record_id}/timeline", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


class TestLogThisMail:
    def test_a_mail_to_two_records_is_stored_once_and_logged_once_each(self, client: TestClient, member, imap_user, dovecot, runtime) -> None:  # type: ignore[no-untyped-def]
        body = "Could you send the estimate?\n\nOn Wed, 18 Nov 2026, Rep <rep@acme.example> wrote:\n> Here is our offer.\n> Regards\n"
        uid = dovecot.append(imap_user.name, "INBOX", mail(message_id="<m1@client.example>", to="rep@acme.example, ken@other.example", body=body))
        connect_mailbox(client, member, imap_user)
        first, second = lead(client, member), lead(client, member, "ken@other.example", "Other")
        records = [{"type": "lead", "id": first}, {"type": "lead", "id": second}]
        response = log(client, member, records, folder="INBOX", uid=uid)
        assert response.status_code == 200, response.text
        logged = response.json()["logged"]
        assert [(x["id"], x["created"]) for x in logged] == [(first, True), (second, True)]
        again = log(client, member, records, message_id="<m1@client.example>").json()["logged"]
        assert [(x["entry_id"], x["created"]) for x in again] == [(x["entry_id"], False) for x in logged]

        from crm.store.timeline import LoggedMail, TimelineEntry

        with runtime.sessions() as s:
            assert s.scalar(select(func.count()).select_from(LoggedMail)) == 1
            assert s.scalar(select(func.count()).select_from(TimelineEntry).where(TimelineEntry.kind == "mail")) == 2
        page = timeline(client, member, "leads", first)
        assert [e["kind"] for e in page["entries"]] == ["mail"] and page["next"] is None
        entry = page["entries"][0]
        assert entry["summary"] == "Estimate" and entry["payload"]["from"] == PERSON
        detail = client.get(f"/api/v1/leads/{first}/mails/{entry['id']}", headers=member.headers).json()
        assert detail["message_id"] == "m1@client.example"
        assert detail["text"].strip() == "Could you send the estimate?"  # the quote folded away
        assert detail["to"] == ["rep@acme.example", "ken@other.example"]

    def test_unlink_takes_the_mail_off_one_record(self, client: TestClient, member, imap_user, dovecot, runtime) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", mail(message_id="<m2@client.example>"))
        connect_mailbox(client, member, imap_user)
        first, second = lead(client, member), lead(client, member, "ken@other.example", "Other")
        logged = log(client, member, [{"type": "lead", "id": first}, {"type": "lead", "id": second}], folder="INBOX", uid=uid).json()["logged"]
        assert client.delete(f"/api/v1/leads/{first}/mails/{logged[0]['entry_id']}", headers=member.headers).status_code == 204
        assert timeline(client, member, "leads", first)["entries"] == []
        assert len(timeline(client, member, "leads", second)["entries"]) == 1
        # an entry of another record is not this record's to unlink
        assert client.delete(f"/api/v1/leads/{first}/mails/{logged[1]['entry_id']}", headers=member.headers).status_code == 404

    def test_another_organisation_sees_nothing(self, client: TestClient, member, imap_user, dovecot, runtime) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", mail(message_id="<m3@client.example>"))
        connect_mailbox(client, member, imap_user)
        mine = lead(client, member)
        entry = log(client, member, [{"type": "lead", "id": mine}], folder="INBOX", uid=uid).json()["logged"][0]["entry_id"]
        other = make_user(runtime, make_org(runtime, "Rival", mail_domains=["rival.example"]), "spy@rival.example")
        connect_mailbox(client, other, imap_user)
        assert log(client, other, [{"type": "lead", "id": mine}], folder="INBOX", uid=uid).status_code == 404
        for path in (f"/api/v1/leads/{mine}/timeline", f"/api/v1/leads/{mine}/mails/{entry}", f"/api/v1/leads/{mine}/auto-log"):
            assert client.get(path, headers=other.headers).status_code == 404, path
        assert client.delete(f"/api/v1/leads/{mine}/mails/{entry}", headers=other.headers).status_code == 404
        assert len(timeline(client, member, "leads", mine)["entries"]) == 1


class TestTimelinePages:
    def test_newest_first_in_keyset_pages(self, client: TestClient, member, runtime) -> None:  # type: ignore[no-untyped-def]
        from datetime import UTC, datetime, timedelta

        from crm.services import timeline as service
        from crm.services.timeline import RecordRef

        mine = lead(client, member)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        with runtime.sessions.begin() as s:
            for i in range(25):
                # two entries share each instant: the id orders them
                service.add_entry(s, RecordRef("lead", mine, member.organisation_id), "automatic_mail", at=start + timedelta(hours=i // 2), summary=f"n{i}")
        seen, cursor = [], None
        while True:
            page = timeline(client, member, "leads", mine, limit=10, **({"before": cursor} if cursor else {}))
            seen += [e["summary"] for e in page["entries"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == [f"n{i}" for i in reversed(range(25))]
        assert client.get(f"/api/v1/leads/{mine}/timeline", params={"before": "x"}, headers=member.headers).status_code == 422

    def test_campaign_membership_feeds_the_timeline(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        mine = lead(client, member)
        campaign = client.post("/api/v1/campaigns", json={"name": "Autumn fair"}, headers=member.headers).json()["id"]
        assert client.post(f"/api/v1/campaigns/{campaign}/members", json={"lead_ids": [mine]}, headers=member.headers).status_code == 200
        entries = timeline(client, member, "leads", mine)["entries"]
        assert [(e["kind"], e["payload"]["campaign"], e["payload"]["change"]) for e in entries] == [("campaign", "Autumn fair", "added")]
