"""Whom the draft is about, over the API: a colleague's forward of a prospect's mail gives
the prospect's draft (never the colleague's name with the prospect's company), says why in
the user's language, offers the colleague as an alternative, and looks duplicates up by the
prospect's address; a reply keeps its sender and offers the quoted person."""

from __future__ import annotations

from fastapi.testclient import TestClient

FORWARD = (
    b"From: Ken Sato <ken@acme.example>\r\n"
    b"To: rep@acme.example\r\n"
    b"Subject: Fwd: Quote request\r\n"
    b"Message-ID: <fwd-1@acme.example>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"FYI\r\n\r\n"
    b"---------- Forwarded message ---------\r\n"
    b"From: Anna Kowalski <anna.kowalski@vistula-data.com>\r\n"
    b"Date: Mon, 3 May 2021 at 10:00\r\n"
    b"Subject: Quote request\r\n"
    b"To: Ken Sato <ken@acme.example>\r\n\r\n"
    b"Hello Ken,\r\n\r\nplease send us a quote for 40 seats.\r\n\r\n"
    b"Best regards,\r\nAnna Kowalski\r\nHead of Procurement\r\nVistula Data Sp. z o.o.\r\n+48 22 123 45 67\r\n"
)

REPLY = (
    b"From: Bob Miller <bob@northwind.example>\r\n"
    b"To: rep@acme.example\r\n"
    b"Subject: Re: Pricing\r\n"
    b"Message-ID: <re-1@northwind.example>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Thanks, that works for us.\r\n\r\nBob\r\n\r\n"
    b"-----Original Message-----\r\n"
    b"From: Carla Diaz <carla@fabrikam.example>\r\n"
    b"Sent: Monday, May 3, 2021 10:00 AM\r\n"
    b"To: Bob Miller\r\n"
    b"Subject: Pricing\r\n\r\n"
    b"Bob, the figures are attached.\r\n\r\nCarla Diaz\r\nVP Sales\r\nFabrikam Inc.\r\n+1 415 555 0188\r\n"
)


def post(client: TestClient, member, raw: bytes, lang: str = "en"):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/messages/draft/raw?lang={lang}", content=raw, headers={**member.headers, "Content-Type": "message/rfc822"})


class TestForward:
    def test_a_colleagues_forward_is_the_forwarded_persons_draft(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        body = post(client, member, FORWARD).json()
        assert body["person"]["role"] == "forwarded"
        assert body["person"]["email"] == "anna.kowalski@vistula-data.com"
        values = body["values"]
        assert (values["first_name"], values["last_name"], values["email"]) == ("Anna", "Kowalski", "anna.kowalski@vistula-data.com")
        assert (values["company"], values["phone"]) == ("Vistula Data Sp. z o.o.", "+48221234567")
        codes = [e["code"] for e in body["person"]["evidence"]]
        assert codes == ["sender_in_own_domain", "forwarded_message", "short_note", "forwarded_from_outside"]
        assert all(e["message"] and e["message"] != e["code"] for e in body["person"]["evidence"])

    def test_the_colleague_is_the_alternative_with_only_their_own_fields(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        body = post(client, member, FORWARD).json()
        (alt,) = body["alternatives"]
        assert alt["person"]["role"] == "sender" and alt["person"]["email"] == "ken@acme.example"
        assert alt["values"]["email"] == "ken@acme.example" and alt["values"]["first_name"] == "Ken"
        assert alt["values"]["company"] is None and alt["values"]["phone"] is None  # never Anna's

    def test_evidence_in_japanese(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        body = post(client, member, FORWARD, lang="ja").json()
        assert "転送" in body["person"]["evidence"][1]["message"]

    def test_duplicates_are_looked_up_for_the_forwarded_person(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        saved = client.post("/api/v1/leads", json={"email": "anna.kowalski@vistula-data.com", "last_name": "Kowalski"}, headers=member.headers)
        assert saved.status_code == 201, saved.text
        body = post(client, member, FORWARD).json()
        assert [r["id"] for r in body["existing"]] == [saved.json()["lead"]["id"]]
        assert body["alternatives"][0]["existing"] == []


class TestReply:
    def test_a_reply_is_the_senders_draft_and_offers_the_quoted_person(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        body = post(client, member, REPLY).json()
        assert body["person"]["role"] == "sender" and [e["code"] for e in body["person"]["evidence"]] == ["from_header"]
        values = body["values"]
        assert (values["first_name"], values["email"]) == ("Bob", "bob@northwind.example")
        assert values["company"] is None and values["title"] is None and values["phone"] is None  # Carla's, not Bob's
        (alt,) = body["alternatives"]
        assert alt["person"]["role"] == "quoted" and alt["person"]["name"] == "Carla Diaz"
        assert (alt["values"]["company"], alt["values"]["title"], alt["values"]["phone"]) == ("Fabrikam Inc.", "VP Sales", "+14155550188")

    def test_existing_fields_of_the_response_are_unchanged(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        body = post(client, member, REPLY).json()
        assert {"message", "lead", "values", "warnings", "existing", "captured", "bytes_fetched"} <= set(body)
        assert body["lead"]["email"]["source"] == "header"
