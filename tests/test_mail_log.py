"""The mail log and the timeline through the API, against a real Dovecot: log this mail
(once per record), unlink, the timeline's pages, attachments read part by part, auto-log of
a thread over a dropped connection, the never-log rules, and conversion carrying the
timeline."""

from __future__ import annotations

import os
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


    def test_never_log_lists_apply_to_logging_by_hand(self, client: TestClient, org, member, admin, imap_user, dovecot, runtime) -> None:  # type: ignore[no-untyped-def]
        from crm.store.timeline import LoggedMail

        def stored() -> int:
            with runtime.sessions() as s:
                return int(s.scalar(select(func.count()).select_from(LoggedMail)) or 0)

        other = make_user(runtime, org, "rep2@acme.example", language="ja")
        for user in (member, admin, other):
            connect_mailbox(client, user, imap_user)
        mine, theirs = lead(client, member), lead(client, member, "kim@blocked.example", "Blocked")
        records = [{"type": "lead", "id": mine}]
        assert client.post("/api/v1/never-log", json={"value": "@blocked.example"}, headers=member.headers).status_code == 201
        assert client.post("/api/v1/never-log", json={"value": "news@client.example", "org_wide": True}, headers=admin.headers).status_code == 201
        assert client.post("/api/v1/never-log", json={"value": PERSON}, headers=other.headers).status_code == 201
        plain = dovecot.append(imap_user.name, "INBOX", mail(message_id="<h1@client.example>"))
        blocked = dovecot.append(imap_user.name, "INBOX", mail(sender="kim@blocked.example", message_id="<h2@blocked.example>", subject="From a blocked domain"))
        org_listed = dovecot.append(imap_user.name, "INBOX", mail(to="rep@acme.example, News <news@client.example>", message_id="<h3@client.example>"))

        # the rep's own list: refused, said so, nothing stored
        refused = log(client, member, [{"type": "lead", "id": theirs}], folder="INBOX", uid=blocked)
        assert refused.status_code == 409, refused.text
        body = refused.json()
        assert (body["type"], body["scope"], body["address"]) == ("never_log", "user", "kim@blocked.example")
        assert "your never-log list" in body["detail"] and "kim@blocked.example" in body["detail"]
        assert stored() == 0 and timeline(client, member, "leads", theirs)["entries"] == []
        # the organisation's list (a Cc is enough)
        refused = log(client, member, records, folder="INBOX", uid=org_listed)
        assert refused.status_code == 409 and refused.json()["scope"] == "org" and "organisation's never-log list" in refused.json()["detail"]
        assert stored() == 0

        # scopes kept apart: the other rep's list blocks neither this rep nor the admin, and
        # its refusal (in Japanese, the other rep's language) names their own list only
        assert log(client, member, records, folder="INBOX", uid=plain).status_code == 200
        assert log(client, admin, [{"type": "lead", "id": theirs}], folder="INBOX", uid=blocked).status_code == 200
        assert stored() == 2
        answer = log(client, other, records, folder="INBOX", uid=plain)
        assert answer.status_code == 409 and answer.json()["scope"] == "user" and "あなたの記録しないリスト" in answer.json()["detail"]
        answer = log(client, other, records, folder="INBOX", uid=blocked)
        assert answer.status_code == 200, answer.text  # the first rep's @blocked.example is not theirs

        # force: the rep's deliberate act logs it anyway, once
        forced = client.post("/api/v1/messages/log", json={"message": {"folder": "INBOX", "uid": org_listed}, "records": records, "force": True}, headers=member.headers)
        assert forced.status_code == 200 and [x["created"] for x in forced.json()["logged"]] == [True]
        assert stored() == 3
        assert sorted(e["summary"] for e in timeline(client, member, "leads", mine)["entries"]) == ["Estimate", "Estimate", "From a blocked domain"]


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


def big_mail(message_id: str, attachment: bytes, html_bytes: int) -> bytes:
    """Text, a large HTML alternative (never read: the plain part is the text) and one
    attachment."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = f"Hanako Sato <{PERSON}>", "rep@acme.example", "Drawings", message_id
    msg.set_content("The drawings are attached.\n")
    msg.add_alternative("<p>" + "x" * html_bytes + "</p>", subtype="html")
    msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="drawings.pdf")
    return msg.as_bytes()


class TestAttachments:
    def test_names_and_sizes_without_fetching_the_attachment(self, client: TestClient, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        raw = big_mail("<a1@client.example>", os.urandom(2 * 2**20), 1000)
        uid = dovecot.append(imap_user.name, "INBOX", raw)
        connect_mailbox(client, member, imap_user)
        mine = lead(client, member)
        response = log(client, member, [{"type": "lead", "id": mine}], folder="INBOX", uid=uid).json()
        assert response["bytes_fetched"] < 16 * 1024
        entry = response["logged"][0]["entry_id"]
        detail = client.get(f"/api/v1/leads/{mine}/mails/{entry}", headers=member.headers).json()
        [attachment] = detail["attachments"]
        assert attachment["name"] == "drawings.pdf" and not attachment["stored"] and attachment["size"] > 2 * 2**20
        # part 1 is the alternative here, not the text: the text came from its own FETCH
        assert detail["text"].strip() == "The drawings are attached."

    def test_a_text_longer_than_the_first_fetch_comes_whole(self, client: TestClient, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        text = "".join(f"Line {i} of a long enquiry about the estimate.\n" for i in range(400))  # ~19 KB: more than part 1's first 4 KB
        uid = dovecot.append(imap_user.name, "INBOX", mail(message_id="<long@client.example>", body=text))
        connect_mailbox(client, member, imap_user)
        mine = lead(client, member)
        entry = log(client, member, [{"type": "lead", "id": mine}], folder="INBOX", uid=uid).json()["logged"][0]["entry_id"]
        detail = client.get(f"/api/v1/leads/{mine}/mails/{entry}", headers=member.headers).json()
        assert detail["text"].strip() == text.strip()

    def test_a_20_mb_attachment_is_kept_part_by_part(self, client: TestClient, member, admin, imap_user, dovecot, runtime) -> None:  # type: ignore[no-untyped-def]
        from crm.store.timeline import MailAttachmentChunk

        data = os.urandom(20 * 2**20)
        raw = big_mail("<a2@client.example>", data, 4 * 2**20)
        uid = dovecot.append(imap_user.name, "INBOX", raw)
        assert client.put("/api/v1/settings/mail-log", json={"store_attachments": True}, headers=member.headers).status_code == 403
        assert client.put("/api/v1/settings/mail-log", json={"store_attachments": True}, headers=admin.headers).status_code == 200
        connect_mailbox(client, member, imap_user)
        mine = lead(client, member)
        response = log(client, member, [{"type": "lead", "id": mine}], folder="INBOX", uid=uid).json()
        encoded = len(raw) - 4 * 2**20  # about the base64 of the attachment, plus the text
        # The attachment's encoded bytes and the header and text: never the 4 MB HTML part,
        # so never the whole message.
        assert encoded * 0.9 < response["bytes_fetched"] < len(raw) - 3 * 2**20
        entry = response["logged"][0]["entry_id"]
        [attachment] = client.get(f"/api/v1/leads/{mine}/mails/{entry}", headers=member.headers).json()["attachments"]
        assert attachment["stored"] and attachment["size"] == len(data)
        with runtime.sessions() as s:
            chunks = s.scalar(select(func.count()).select_from(MailAttachmentChunk))
        assert chunks >= 20  # written as it was read, one chunk per partial fetch
        download = client.get(f"/api/v1/leads/{mine}/mails/{entry}/attachments/{attachment['id']}", headers=member.headers)
        assert download.status_code == 200 and download.content == data


def thread(n: int) -> list[tuple[str, bytes]]:
    """A five-mail thread with the rep: the client writes, the rep answers (in Sent), …"""
    ids = [f"<t{i}@{'client' if i % 2 == 0 else 'acme'}.example>" for i in range(n)]
    out = []
    for i, mid in enumerate(ids):
        refs = tuple(ids[:i])
        if i % 2 == 0:
            raw = mail(message_id=mid, subject="Re: Estimate" if i else "Estimate", references=refs, in_reply_to=refs[-1] if refs else None, date=f"Thu, 19 Nov 2026 1{i}:00:00 +0900")
            out.append(("INBOX", raw))
        else:
            raw = mail(sender="Rep <rep@acme.example>", to=f"Hanako Sato <{PERSON}>", message_id=mid, subject="Re: Estimate", references=refs, in_reply_to=refs[-1], date=f"Thu, 19 Nov 2026 1{i}:00:00 +0900")
            out.append(("Sent", raw))
    return out


def scan(client: TestClient, user):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/mail-log/scan", headers=user.headers)


class TestAutoLog:
    def test_a_thread_is_logged_once_each_over_scans_and_dropped_connections(self, client: TestClient, member, imap_user, dovecot, fault_proxy) -> None:  # type: ignore[no-untyped-def]
        proxy = fault_proxy(dovecot)
        connect_mailbox(client, member, imap_user, port=proxy.port)
        mine = lead(client, member)
        assert client.put(f"/api/v1/leads/{mine}/auto-log", json={"enabled": True}, headers=member.headers).json() == {"enabled": True, "address": PERSON}
        mails = thread(5)
        dovecot.append(imap_user.name, "INBOX", mail(sender="Someone <other@elsewhere.example>", message_id="<noise@elsewhere.example>"))
        for folder, raw in mails[:3]:
            dovecot.append(imap_user.name, folder, raw)
        first = scan(client, member)
        assert first.status_code == 200, first.text
        assert first.json()["logged"] == 3
        for folder, raw in mails[3:]:
            dovecot.append(imap_user.name, folder, raw)
        proxy.cut_on(rb"UID SEARCH", times=1)  # dropped once: the mailbox reconnects and goes on
        assert scan(client, member).json()["logged"] == 2
        assert proxy.cuts == 1
        proxy.cut_on(rb"UID FETCH", times=2)  # dropped twice: the scan fails, nothing is recorded
        dovecot.append(imap_user.name, "INBOX", mail(message_id="<t5@client.example>", subject="Re: Estimate", references=("<t0@client.example>",)))
        assert scan(client, member).status_code == 502
        proxy.reset()
        assert scan(client, member).json()["logged"] == 1
        assert scan(client, member).json()["logged"] == 0
        entries = timeline(client, member, "leads", mine)["entries"]
        assert sorted(e["payload"]["from"] for e in entries) == sorted([PERSON] * 4 + ["rep@acme.example"] * 2)
        assert {e["payload"]["thread_key"] for e in entries} == {"t0@client.example"}

    def test_a_reply_into_a_logged_thread_stays_with_it(self, client: TestClient, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        connect_mailbox(client, member, imap_user)
        mine = lead(client, member)
        client.put(f"/api/v1/leads/{mine}/auto-log", json={"enabled": True}, headers=member.headers)
        for folder, raw in thread(2):
            dovecot.append(imap_user.name, folder, raw)
        assert scan(client, member).json()["logged"] == 2
        # Her colleague answers the thread; someone else answers another thread.
        refs = ("<t0@client.example>", "<t1@acme.example>")
        dovecot.append(imap_user.name, "INBOX", mail(sender="Ken Ito <ken.ito@client.example>", message_id="<t2@client.example>", subject="Re: Estimate", in_reply_to=refs[-1], references=refs))
        dovecot.append(imap_user.name, "INBOX", mail(sender="ken.ito@client.example", message_id="<x@client.example>", subject="Re: other", in_reply_to="<elsewhere@acme.example>", references=("<elsewhere@acme.example>",)))
        assert scan(client, member).json()["logged"] == 1
        entries = timeline(client, member, "leads", mine)["entries"]
        assert [e["payload"]["from"] for e in entries] == ["ken.ito@client.example", "rep@acme.example", PERSON]
        assert {e["payload"]["thread_key"] for e in entries} == {"t0@client.example"}

    def test_the_second_scan_only_asks_for_new_mail(self, client: TestClient, member, imap_user, dovecot, fault_proxy) -> None:  # type: ignore[no-untyped-def]
        proxy = fault_proxy(dovecot)
        connect_mailbox(client, member, imap_user, port=proxy.port)
        mine = lead(client, member)
        client.put(f"/api/v1/leads/{mine}/auto-log", json={"enabled": True}, headers=member.headers)
        for i in range(30):
            dovecot.append(imap_user.name, "INBOX", mail(sender=f"x{i}@elsewhere.example", message_id=f"<n{i}@elsewhere.example>"))
        dovecot.append(imap_user.name, "INBOX", mail(message_id="<only@client.example>"))
        assert scan(client, member).json()["logged"] == 1
        del proxy.commands[:]
        assert scan(client, member).json()["logged"] == 0
        sent = b"\n".join(proxy.commands)
        assert b"FETCH" not in sent and b"SEARCH" not in sent  # UIDNEXT said nothing came

    def test_never_logged(self, client: TestClient, member, admin, imap_user, dovecot, runtime) -> None:  # type: ignore[no-untyped-def]
        connect_mailbox(client, member, imap_user)
        person, colleague, blocked = lead(client, member), lead(client, member, "jiro@acme.example", "Acme"), lead(client, member, "kim@blocked.example", "Blocked")
        for record in (person, colleague, blocked):
            assert client.put(f"/api/v1/leads/{record}/auto-log", json={"enabled": True}, headers=member.headers).status_code == 200
        assert client.post("/api/v1/never-log", json={"value": "@blocked.example"}, headers=member.headers).status_code == 201
        assert client.post("/api/v1/never-log", json={"value": "@elsewhere.example", "org_wide": True}, headers=member.headers).status_code == 403
        assert client.post("/api/v1/never-log", json={"value": "news@client.example", "org_wide": True}, headers=admin.headers).status_code == 201
        # the rep's own list is theirs: the admin sees only the organisation's entry
        assert [e["value"] for e in client.get("/api/v1/never-log", headers=admin.headers).json()] == ["news@client.example"]
        assert sorted(e["value"] for e in client.get("/api/v1/never-log", headers=member.headers).json()) == ["@blocked.example", "news@client.example"]
        dovecot.append(imap_user.name, "INBOX", mail(message_id="<ok@client.example>"))
        dovecot.append(imap_user.name, "INBOX", mail(message_id="<list@client.example>", extra={"List-Unsubscribe": "<mailto:u@client.example>"}))
        dovecot.append(imap_user.name, "INBOX", mail(sender="news@client.example", to=PERSON, message_id="<news@client.example>"))
        dovecot.append(imap_user.name, "INBOX", mail(sender="jiro@acme.example", message_id="<internal@acme.example>"))
        dovecot.append(imap_user.name, "INBOX", mail(sender="kim@blocked.example", message_id="<b@blocked.example>"))
        assert scan(client, member).json()["logged"] == 1
        assert [e["summary"] for e in timeline(client, member, "leads", person)["entries"]] == ["Estimate"]
        assert timeline(client, member, "leads", colleague)["entries"] == [] and timeline(client, member, "leads", blocked)["entries"] == []
        # internal mail is logged once the admin asks for it
        client.put("/api/v1/settings/mail-log", json={"log_internal": True}, headers=admin.headers)
        assert scan(client, member).json()["logged"] == 1
        assert len(timeline(client, member, "leads", colleague)["entries"]) == 1


class TestConversion:
    def test_the_timeline_moves_to_the_contact_and_account(self, client: TestClient, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", mail(message_id="<c1@client.example>"))
        connect_mailbox(client, member, imap_user)
        mine = lead(client, member)
        log(client, member, [{"type": "lead", "id": mine}], folder="INBOX", uid=uid)
        client.put(f"/api/v1/leads/{mine}/auto-log", json={"enabled": True}, headers=member.headers)
        converted = client.post(f"/api/v1/leads/{mine}/conversion", json={}, headers=member.headers)
        assert converted.status_code == 201, converted.text
        contact, account = converted.json()["contact_id"], converted.json()["account_id"]
        assert timeline(client, member, "leads", mine)["entries"] == []
        on_contact = timeline(client, member, "contacts", contact)["entries"]
        assert [e["kind"] for e in on_contact] == ["status", "mail"]
        assert [e["kind"] for e in timeline(client, member, "accounts", account)["entries"]] == ["status", "mail"]
        assert client.get(f"/api/v1/contacts/{contact}/auto-log", headers=member.headers).json()["enabled"] is True
        # the account's copy of the mail opens too, and logging the mail again onto the
        # account changes nothing
        again = log(client, member, [{"type": "account", "id": account}], message_id="<c1@client.example>").json()["logged"]
        assert again[0]["created"] is False

    def test_a_conversion_rolled_back_leaves_the_timeline_on_the_lead(self, client: TestClient, member, runtime) -> None:  # type: ignore[no-untyped-def]
        from crm.domain.principal import Principal
        from crm.services import conversion
        from crm.services import timeline as service
        from crm.services.timeline import RecordRef

        mine = lead(client, member)
        with runtime.sessions.begin() as s:
            service.add_entry(s, RecordRef("lead", mine, member.organisation_id), "automatic_mail", summary="follow-up")
        principal = Principal(member.id, member.organisation_id, member.email)
        with runtime.sessions() as s:
            conversion.convert(s, principal, mine)
            s.rollback()  # the request failed after converting: its transaction goes, history included
        assert [e["summary"] for e in timeline(client, member, "leads", mine)["entries"]] == ["follow-up"]


class TestMeetings:
    def test_an_accepted_meeting_is_on_the_attending_leads_timeline_once(self, client: TestClient, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        ics = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:meet-1\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:20261201T010000Z\r\n"
            f"DTEND:20261201T020000Z\r\nORGANIZER:mailto:{PERSON}\r\nATTENDEE:mailto:{PERSON}\r\nATTENDEE:mailto:rep@acme.example\r\nSUMMARY:Kick-off\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        raw = (f"From: {PERSON}\r\nTo: rep@acme.example\r\nSubject: Kick-off\r\nMessage-ID: <meet@client.example>\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\n" + ics).encode()
        uid = dovecot.append(imap_user.name, "INBOX", raw)
        connect_mailbox(client, member, imap_user)
        mine = lead(client, member)
        for _ in range(2):
            answered = client.post("/api/v1/calendar/answer", json={"uid": uid, "partstat": "ACCEPTED", "send_reply": False}, headers=member.headers)
            assert answered.status_code == 200, answered.text
        entries = timeline(client, member, "leads", mine)["entries"]
        assert [(e["kind"], e["summary"]) for e in entries] == [("meeting", "Kick-off")]


class TestAutoLogAttachments:
    def test_an_auto_logged_mail_keeps_its_attachment_when_the_admin_says_so(self, client: TestClient, member, admin, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        data = os.urandom(300_000)
        dovecot.append(imap_user.name, "INBOX", big_mail("<auto-a@client.example>", data, 100))
        client.put("/api/v1/settings/mail-log", json={"store_attachments": True}, headers=admin.headers)
        connect_mailbox(client, member, imap_user)
        mine = lead(client, member)
        client.put(f"/api/v1/leads/{mine}/auto-log", json={"enabled": True}, headers=member.headers)
        assert scan(client, member).json()["logged"] == 1
        [entry] = timeline(client, member, "leads", mine)["entries"]
        [attachment] = client.get(f"/api/v1/leads/{mine}/mails/{entry['id']}", headers=member.headers).json()["attachments"]
        assert attachment["stored"]
        assert client.get(f"/api/v1/leads/{mine}/mails/{entry['id']}/attachments/{attachment['id']}", headers=member.headers).content == data
