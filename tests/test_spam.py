"""Spec part B: "not spam", whitelisting and the rescue of later mail, on real Dovecot
servers with and without MOVE / UIDPLUS / SPECIAL-USE, and through a proxy that drops the
connection at each step."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from crm.domain.drafts import MessageRef, ReadContext
from crm.domain.errors import Conflict
from crm.store.whitelist import SpamAudit, WhitelistEntry
from mail_adapter.auth_results import verdict
from mail_adapter.junk import JunkFolder, find_junk_folder
from mail_adapter.mailbox import Mailbox, MailboxSettings
from tests.factories import connect_mailbox, make_user

AUTH = Path(__file__).resolve().parent / "data" / "corpora" / "auth"
MX = "mx.acme.example"


def mail(sender: str = "Customer <buyer@customer.co.jp>", mid: str = "<m1@customer.co.jp>", auth: str | None = "pass", extra: str = "") -> bytes:
    header = ""
    if auth == "pass":
        header = f"Authentication-Results: {MX}; spf=pass smtp.mailfrom=bounce.customer.co.jp; dkim=pass header.d=customer.co.jp; dmarc=pass header.from=customer.co.jp\r\n"
    elif auth == "fail":
        header = f"Authentication-Results: {MX}; spf=fail smtp.mailfrom=evil.example; dkim=none; dmarc=fail (p=reject) header.from=customer.co.jp\r\n"
    return (header + extra + f"From: {sender}\r\nTo: rep@acme.example\r\nSubject: order\r\nMessage-ID: {mid}\r\n\r\nPlease ship 10 units.\r\n").encode()


def box(server, user) -> Mailbox:  # type: ignore[no-untyped-def]
    return Mailbox(MailboxSettings("127.0.0.1", user.port if server is None else server.port, "plain", user.name, user.password, timeout=5, allow_private=True))


def folder_mids(server, user, folder: str) -> list[str]:  # type: ignore[no-untyped-def]
    with server.imap(user.name) as c:
        c.select_folder(folder, readonly=True)
        data = c.fetch(c.search(["NOT", "DELETED"]), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        return sorted(v[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1].strip() for v in data.values())


def flags_of(server, user, folder: str, uid: int) -> set[bytes]:  # type: ignore[no-untyped-def]
    with server.imap(user.name) as c:
        c.select_folder(folder, readonly=True)
        return set(c.get_flags([uid])[uid])


class TestFolders:
    def test_B01_junk_by_special_use_or_by_name(self, dovecot, dovecot_nospecialuse) -> None:  # type: ignore[no-untyped-def]
        for server, expected in ((dovecot, "Junk"), (dovecot_nospecialuse, "迷惑メール")):
            user = server.add_user()
            assert box(server, user).run(find_junk_folder) == expected


class TestMove:
    def test_B02_with_move_one_uid_move(self, dovecot) -> None:  # type: ignore[no-untyped-def]
        user = dovecot.add_user()
        uid = dovecot.append(user.name, "Junk", mail(), flags=(b"$Junk",))
        outcome = JunkFolder(box(dovecot, user)).not_spam(MessageRef("Junk", uid))
        assert outcome.method == "move" and not outcome.original_remains
        assert folder_mids(dovecot, user, "INBOX") == ["<m1@customer.co.jp>"] and folder_mids(dovecot, user, "Junk") == []

    def test_B03_without_move_copy_store_uid_expunge_keeps_other_deleted_mail(self, dovecot_nomove) -> None:  # type: ignore[no-untyped-def]
        server = dovecot_nomove
        user = server.add_user()
        other = server.append(user.name, "Junk", mail(mid="<other@x.example>"), flags=(b"\\Deleted",))
        uid = server.append(user.name, "Junk", mail())
        outcome = JunkFolder(box(server, user)).not_spam(MessageRef("Junk", uid))
        assert outcome.method == "copy_expunge" and not outcome.original_remains
        with server.imap(user.name) as c:
            c.select_folder("Junk", readonly=True)
            assert c.search(["ALL"]) == [other]  # the user's own \Deleted message is still there
        assert folder_mids(server, user, "INBOX") == ["<m1@customer.co.jp>"]

    def test_B04_without_uidplus_no_expunge_and_the_original_stays_flagged(self, dovecot_nouidplus) -> None:  # type: ignore[no-untyped-def]
        server = dovecot_nouidplus
        user = server.add_user()
        other = server.append(user.name, "Junk", mail(mid="<other@x.example>"), flags=(b"\\Deleted",))
        uid = server.append(user.name, "Junk", mail())
        outcome = JunkFolder(box(server, user)).not_spam(MessageRef("Junk", uid))
        assert outcome.method == "copy_only" and outcome.original_remains
        with server.imap(user.name) as c:
            c.select_folder("Junk", readonly=True)
            assert sorted(c.search(["ALL"])) == [other, uid]
            assert b"\\Deleted" in c.get_flags([uid])[uid]

    def test_B05_the_new_inbox_uid_is_known(self, dovecot) -> None:  # type: ignore[no-untyped-def]
        user = dovecot.add_user()
        dovecot.append(user.name, "INBOX", mail(mid="<first@x.example>"))
        uid = dovecot.append(user.name, "Junk", mail())
        outcome = JunkFolder(box(dovecot, user)).not_spam(MessageRef("Junk", uid))
        with dovecot.imap(user.name) as c:
            c.select_folder("INBOX", readonly=True)
            assert c.search(["HEADER", "Message-ID", "<m1@customer.co.jp>"]) == [outcome.uid]

    def test_B06_flags_not_junk_set_junk_cleared(self, dovecot) -> None:  # type: ignore[no-untyped-def]
        user = dovecot.add_user()
        uid = dovecot.append(user.name, "Junk", mail(), flags=(b"$Junk", b"Junk"))
        outcome = JunkFolder(box(dovecot, user)).not_spam(MessageRef("Junk", uid))
        flags = flags_of(dovecot, user, "INBOX", outcome.uid)
        assert b"$NotJunk" in flags and b"$Junk" not in flags and b"Junk" not in flags and b"NonJunk" in flags

    def test_B07_idempotent(self, dovecot) -> None:  # type: ignore[no-untyped-def]
        user = dovecot.add_user()
        uid = dovecot.append(user.name, "Junk", mail())
        junk = JunkFolder(box(dovecot, user))
        first = junk.not_spam(MessageRef("Junk", uid, message_id="<m1@customer.co.jp>"))
        again = junk.not_spam(MessageRef("Junk", uid, message_id="<m1@customer.co.jp>"))
        assert again.method == "none" and again.uid == first.uid
        assert folder_mids(dovecot, user, "INBOX") == ["<m1@customer.co.jp>"]


STEPS = [
    (rb"UID MOVE", "before"), (rb"UID MOVE", "after_forward"), (rb"UID MOVE", "after_reply"),
    (rb"UID COPY", "before"), (rb"UID COPY", "after_forward"), (rb"UID COPY", "after_reply"),
    (rb"UID STORE", "after_reply"), (rb"UID EXPUNGE", "after_forward"), (rb"UID EXPUNGE", "after_reply"),
    (rb"SELECT", "after_reply"), (rb"UID SEARCH", "after_forward"),
]


class TestDrops:
    @pytest.mark.parametrize(("command", "when"), STEPS, ids=[f"{c.decode()}-{w}" for c, w in STEPS])
    def test_a_drop_at_any_step_loses_and_doubles_nothing(self, request, dovecot, dovecot_nomove, fault_proxy, command: bytes, when: str) -> None:  # type: ignore[no-untyped-def]
        server = dovecot if b"MOVE" in command else dovecot_nomove
        user = server.add_user()
        server.append(user.name, "Junk", mail(mid="<bystander@x.example>"))
        uid = server.append(user.name, "Junk", mail())
        proxy = fault_proxy(server)
        proxy.cut_on(command, when=when, times=1)
        junk = JunkFolder(Mailbox(MailboxSettings("127.0.0.1", proxy.port, "plain", user.name, user.password, timeout=5, allow_private=True)))
        outcome = junk.not_spam(MessageRef("Junk", uid))
        assert proxy.cuts == 1
        assert folder_mids(server, user, "INBOX") == ["<m1@customer.co.jp>"]
        assert folder_mids(server, user, "Junk") == ["<bystander@x.example>"]
        assert outcome.uid is not None


LEGIT = mail(sender="Real Customer <buyer@customer.co.jp>", mid="<m1@customer.co.jp>")
SPOOF = mail(sender="Attacker <evil@attacker.example>", mid="<m1@customer.co.jp>").replace(b"Please ship 10 units.", b"Click here.")
COLLISION_STEPS = [(rb"UID SEARCH", "after_forward"), (rb"UID FETCH", "after_reply"), (rb"SELECT", "after_reply"), (rb"UID SEARCH", "after_reply")]


def junk_state(server, user):  # type: ignore[no-untyped-def]
    """(Message-IDs and sizes in the inbox, the Junk messages with their flags)."""
    with server.imap(user.name) as c:
        c.select_folder("INBOX", readonly=True)
        inbox = sorted((v[b"RFC822.SIZE"], v[b"BODY[TEXT]"]) for v in c.fetch(c.search(["ALL"]), ["RFC822.SIZE", "BODY.PEEK[TEXT]"]).values())
        c.select_folder("Junk", readonly=True)
        junk = sorted((v[b"BODY[TEXT]"], tuple(sorted(set(v[b"FLAGS"]) - {b"\\Recent"}))) for v in c.fetch(c.search(["ALL"]), ["FLAGS", "BODY.PEEK[TEXT]"]).values())
    return inbox, junk


class TestCollision:
    """A Junk message whose Message-ID equals an inbox message's (a spoofer chooses it) is
    never taken for its copy: reported, nothing moved, deleted or flagged."""

    @pytest.mark.parametrize("fixture", ["dovecot", "dovecot_nomove", "dovecot_nouidplus"])
    def test_the_junk_message_stays_and_the_inbox_is_untouched(self, request, fixture: str) -> None:  # type: ignore[no-untyped-def]
        server = request.getfixturevalue(fixture)
        user = server.add_user()
        server.append(user.name, "INBOX", LEGIT)
        uid = server.append(user.name, "Junk", SPOOF, flags=(b"$Junk",))
        before = junk_state(server, user)
        with pytest.raises(Conflict) as caught:
            JunkFolder(box(server, user)).not_spam(MessageRef("Junk", uid))
        assert caught.value.code == "message_id_collision"
        assert junk_state(server, user) == before

    @pytest.mark.parametrize("fixture", ["dovecot", "dovecot_nomove", "dovecot_nouidplus"])
    @pytest.mark.parametrize(("command", "when"), COLLISION_STEPS, ids=[f"{c.decode()}-{w}" for c, w in COLLISION_STEPS])
    def test_a_drop_midway_still_reports_and_changes_nothing(self, request, fault_proxy, fixture: str, command: bytes, when: str) -> None:  # type: ignore[no-untyped-def]
        server = request.getfixturevalue(fixture)
        user = server.add_user()
        server.append(user.name, "INBOX", LEGIT)
        uid = server.append(user.name, "Junk", SPOOF)
        before = junk_state(server, user)
        proxy = fault_proxy(server)
        proxy.cut_on(command, when=when, times=1)
        with pytest.raises(Conflict):
            JunkFolder(Mailbox(MailboxSettings("127.0.0.1", proxy.port, "plain", user.name, user.password, timeout=5, allow_private=True))).not_spam(MessageRef("Junk", uid))
        assert proxy.cuts == 1
        assert junk_state(server, user) == before

    @pytest.mark.parametrize("fixture", ["dovecot_nomove", "dovecot_nouidplus"])
    def test_a_copy_made_before_a_drop_is_recognised_among_a_collision(self, request, fault_proxy, fixture: str) -> None:  # type: ignore[no-untyped-def]
        """The COPY reached the server, the answer did not: the next attempt finds the true
        copy by its fingerprint even though the spoof shares its Message-ID."""
        server = request.getfixturevalue(fixture)
        user = server.add_user()
        uid = server.append(user.name, "Junk", LEGIT)
        proxy = fault_proxy(server)
        proxy.cut_on(rb"UID COPY", when="after_forward", times=1)
        outcome = JunkFolder(Mailbox(MailboxSettings("127.0.0.1", proxy.port, "plain", user.name, user.password, timeout=5, allow_private=True))).not_spam(MessageRef("Junk", uid))
        assert proxy.cuts == 1 and outcome.uid is not None and outcome.sender == "buyer@customer.co.jp"
        assert folder_mids(server, user, "INBOX") == ["<m1@customer.co.jp>"] and folder_mids(server, user, "Junk") == []

    def test_api_answers_409_and_whitelists_nobody(self, client, member, dovecot, imap_user, runtime) -> None:  # type: ignore[no-untyped-def]
        dovecot.append(imap_user.name, "INBOX", LEGIT)
        uid = dovecot.append(imap_user.name, "Junk", SPOOF)
        connect_mailbox(client, member, imap_user)
        response = client.post("/api/v1/spam/not-spam", json={"folder": "Junk", "uid": uid}, headers=member.headers)
        assert response.status_code == 409, response.text
        assert response.json()["type"] == "message_id_collision" and response.json()["detail"]
        with runtime.sessions() as s:
            assert s.scalars(select(WhitelistEntry)).all() == []
            assert [a.action for a in s.scalars(select(SpamAudit))] == []
        assert folder_mids(dovecot, imap_user, "Junk") == ["<m1@customer.co.jp>"]

    def test_rescue_keeps_a_colliding_message_and_moves_the_rest(self, dovecot) -> None:  # type: ignore[no-untyped-def]
        from crm.domain.junk import ScanState

        user = dovecot.add_user()
        dovecot.append(user.name, "INBOX", mail(mid="<taken@customer.co.jp>", extra="X-Original: yes\r\n"))
        dovecot.append(user.name, "Junk", mail(mid="<taken@customer.co.jp>"))
        dovecot.append(user.name, "Junk", mail(mid="<fine@customer.co.jp>"))
        outcome = JunkFolder(box(dovecot, user)).rescue(["@customer.co.jp"], ScanState(), ReadContext(trusted_authserv_ids=frozenset({MX})))
        assert [m.message_id for m in outcome.moved] == ["<fine@customer.co.jp>"]
        assert outcome.kept == (("buyer@customer.co.jp", "message_id_collision"),)
        assert folder_mids(dovecot, user, "Junk") == ["<taken@customer.co.jp>"]


class TestAuthentication:
    def test_B09_aligned_dmarc_dkim_or_spf(self) -> None:
        assert verdict([f"{MX}; dmarc=pass header.from=customer.co.jp"], "customer.co.jp").authenticated
        assert verdict([f"{MX}; dkim=pass header.d=mail.customer.co.jp"], "customer.co.jp").authenticated
        assert verdict([f"{MX}; spf=pass smtp.mailfrom=bounce@customer.co.jp"], "customer.co.jp").authenticated
        assert not verdict([f"{MX}; spf=pass smtp.mailfrom=bounce@esp.example"], "customer.co.jp").authenticated
        assert not verdict([f"{MX}; spf=softfail smtp.mailfrom=customer.co.jp"], "customer.co.jp").authenticated

    def test_B10_untrusted_authserv_ids_are_ignored(self) -> None:
        forged = "evil.example; dmarc=pass header.from=customer.co.jp"
        real = f"{MX}; dmarc=fail header.from=customer.co.jp"
        assert not verdict([forged, real], "customer.co.jp", frozenset({MX})).authenticated
        assert not verdict([real, forged], "customer.co.jp").authenticated  # default: topmost only

    def test_B12_foreign_lists_header_does_not_authenticate_example_com(self) -> None:
        from mail_adapter.parsing import parse_message

        for name in ("test_message.eml", "test_bad_message.eml", "test_message_baddomain.eml"):
            msg = parse_message((AUTH / name).read_bytes())
            domain = msg.from_[0].email.rsplit("@", 1)[1]
            assert not verdict(msg.header_all("authentication-results"), domain).authenticated, name
            assert not verdict(msg.header_all("authentication-results"), domain, frozenset({MX})).trusted_header


class TestApi:
    def test_B08_B16_not_spam_whitelists_the_single_sender_and_audits(self, client, member, dovecot, imap_user, runtime) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "Junk", mail(sender="Buyer <Buyer@Customer.CO.JP>"))
        two = dovecot.append(imap_user.name, "Junk", mail(sender="a@x.example, b@y.example", mid="<two@x.example>"))
        connect_mailbox(client, member, imap_user)
        response = client.post("/api/v1/spam/not-spam", json={"folder": "Junk", "uid": uid}, headers=member.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["folder"] == "INBOX" and body["uid"] and body["whitelisted"]["value"] == "buyer@customer.co.jp"
        assert body["whitelisted"]["require_auth"] is True and body["whitelisted"]["source_message_id"] == "<m1@customer.co.jp>"
        several = client.post("/api/v1/spam/not-spam", json={"folder": "Junk", "uid": two}, headers=member.headers).json()
        assert several["whitelisted"] is None
        with runtime.sessions() as s:
            actions = [(a.action, a.user_id, a.address, a.message_id) for a in s.scalars(select(SpamAudit).order_by(SpamAudit.id))]
        assert ("whitelist_add", member.id, "buyer@customer.co.jp", "<m1@customer.co.jp>") in actions
        assert ("not_spam", member.id, "buyer@customer.co.jp", "<m1@customer.co.jp>") in actions

    def test_whitelist_is_idempotent_per_user_and_org(self, client, member, admin, runtime, org) -> None:  # type: ignore[no-untyped-def]
        first = client.post("/api/v1/spam/whitelist", json={"value": "Buyer@Customer.co.jp"}, headers=member.headers)
        again = client.post("/api/v1/spam/whitelist", json={"value": "buyer@customer.co.jp"}, headers=member.headers)
        assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
        assert client.post("/api/v1/spam/whitelist", json={"value": "@customer.co.jp", "org_wide": True}, headers=member.headers).status_code == 403
        org_entry = client.post("/api/v1/spam/whitelist", json={"value": "@Customer.co.jp", "org_wide": True}, headers=admin.headers).json()
        assert org_entry["scope"] == "org" and org_entry["value"] == "@customer.co.jp"
        assert {e["value"] for e in client.get("/api/v1/spam/whitelist", headers=member.headers).json()} == {"buyer@customer.co.jp", "@customer.co.jp"}
        assert client.post("/api/v1/spam/whitelist", json={"value": "not an address"}, headers=member.headers).status_code == 400
        # another organisation sees none of it and cannot remove it
        other = make_user(runtime, __import__("tests.factories", fromlist=["make_org"]).make_org(runtime, "Other"), "x@other.example")
        assert client.get("/api/v1/spam/whitelist", headers=other.headers).json() == []
        assert client.delete(f"/api/v1/spam/whitelist/{first.json()['id']}", headers=other.headers).status_code == 404

    def test_B11_B13_B15_rescue_moves_only_authenticated_mail_and_explains(self, client, member, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        connect_mailbox(client, member, imap_user, trusted_authserv_ids=[MX])
        client.post("/api/v1/spam/whitelist", json={"value": "buyer@customer.co.jp"}, headers=member.headers)
        dovecot.append(imap_user.name, "Junk", mail(mid="<good@customer.co.jp>"))
        forged = dovecot.append(imap_user.name, "Junk", mail(mid="<forged@customer.co.jp>", auth="fail", extra="X-Spam-Status: Yes, score=7.2 required=5.0 tests=FORGED_SENDER,DMARC_REJECT\r\n"))
        dovecot.append(imap_user.name, "Junk", mail(sender="stranger@else.example", mid="<stranger@else.example>"))
        result = client.post("/api/v1/spam/rescue", headers=member.headers).json()
        assert [m["message_id"] for m in result["moved"]] == ["<good@customer.co.jp>"]
        assert result["kept"] == [{"sender": "buyer@customer.co.jp", "reason": "not_authenticated"}]
        assert folder_mids(dovecot, imap_user, "INBOX") == ["<good@customer.co.jp>"]
        why = client.get("/api/v1/spam/diagnosis", params={"folder": "Junk", "uid": forged, "lang": "en"}, headers=member.headers).json()
        assert why["whitelisted"] and not why["authenticated"]
        assert why["authentication"]["dmarc"]["result"] == "fail" and why["spam"]["score"] == 7.2 and "DMARC_REJECT" in why["spam"]["rules"]
        assert any("possibly forged" in line for line in why["explanation"])
        ja = client.get("/api/v1/spam/diagnosis", params={"folder": "Junk", "uid": forged, "lang": "ja"}, headers=member.headers).json()
        assert any("なりすまし" in line for line in ja["explanation"])
        # a second scan with nothing new does no search at all; then removal stops the override
        entry = client.get("/api/v1/spam/whitelist", headers=member.headers).json()[0]
        assert client.delete(f"/api/v1/spam/whitelist/{entry['id']}", headers=member.headers).status_code == 204
        dovecot.append(imap_user.name, "Junk", mail(mid="<later@customer.co.jp>"))
        again = client.post("/api/v1/spam/rescue", headers=member.headers).json()
        assert again["moved"] == [] and folder_mids(dovecot, imap_user, "INBOX") == ["<good@customer.co.jp>"]

    def test_B14_nothing_else_is_sent_without_a_learning_hook(self, dovecot, fault_proxy) -> None:  # type: ignore[no-untyped-def]
        user = dovecot.add_user()
        uid = dovecot.append(user.name, "Junk", mail())
        proxy = fault_proxy(dovecot)
        proxy.cut_on(rb"APPEND|SETMETADATA|XLEARN", when="before", times=None)  # anything a hook would send
        JunkFolder(Mailbox(MailboxSettings("127.0.0.1", proxy.port, "plain", user.name, user.password, timeout=5, allow_private=True))).not_spam(MessageRef("Junk", uid))
        assert proxy.cuts == 0

    def test_rescue_scan_incremental_state(self, dovecot) -> None:  # type: ignore[no-untyped-def]
        from crm.domain.junk import ScanState

        user = dovecot.add_user()
        junk = JunkFolder(box(dovecot, user))
        ctx = ReadContext(trusted_authserv_ids=frozenset({MX}))
        dovecot.append(user.name, "Junk", mail(mid="<a@customer.co.jp>"))
        first = junk.rescue(["@customer.co.jp"], ScanState(), ctx)
        assert len(first.moved) == 1 and first.state.last_uid >= 1
        idle = junk.rescue(["@customer.co.jp"], first.state, ctx)
        assert idle.moved == () and not idle.searched and idle.round_trips == 1  # STATUS only (the move left INBOX selected)
        dovecot.append(user.name, "Junk", mail(mid="<b@customer.co.jp>", auth="fail"))
        later = junk.rescue(["@customer.co.jp"], idle.state, ctx)
        assert later.moved == () and len(later.kept) == 1 and later.state.last_uid == idle.state.last_uid + 1
        # Junk stays selected now: the next idle scan is NOOP + a search of the new range, no EXAMINE
        again = junk.rescue(["@customer.co.jp"], later.state, ctx)
        assert not again.searched and again.round_trips == 2 and again.state.last_uid == later.state.last_uid
