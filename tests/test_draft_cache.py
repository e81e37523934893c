"""The cache of drafts already read (mail_adapter.opened_cache): a reopened message skips
its FETCH of structure and parts, its MIME parsing and its extraction, and only that; a
recreated folder (new UIDVALIDITY), another mailbox or another read context misses; the
token, the scoping and the lookups stay per request; the bound holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import mail_adapter.mailbox as mailbox_module
from crm.domain.drafts import LeadDraft, MessageRef, ReadContext
from crm.domain.errors import MessageNotFound
from crm.domain.ports import OpenedMessage
from mail_adapter.mailbox import Mailbox, MailboxSettings
from mail_adapter.opened_cache import ENTRY_OVERHEAD, OpenedCache, size_of
from tests.factories import connect_mailbox, make_org, make_user
from tests.mails import business_mail

CTX = ReadContext()


def opened(subject: str = "s", header_bytes: int = 0) -> OpenedMessage:
    return OpenedMessage(MessageRef("INBOX", 1, 1), None, subject, None, LeadDraft(), headers=(("x-pad", "p" * header_bytes),))


class Spy:
    """The data items of every FETCH the mailbox sends, and how many messages it parsed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, box: Mailbox) -> None:
        self.fetches: list[list[bytes]] = []
        self.parsed = 0
        parse = mailbox_module.parse_fetched

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.parsed += 1
            return parse(*args, **kwargs)

        monkeypatch.setattr(mailbox_module, "parse_fetched", counted)
        box.check()  # connected: its client can be watched
        client = box._client
        fetch = client.fetch

        def watched(messages: Any, items: Any, *args: Any, **kwargs: Any) -> Any:
            self.fetches.append([bytes(i) for i in items])
            return fetch(messages, items, *args, **kwargs)

        client.fetch = watched

    def take(self) -> tuple[list[list[bytes]], int]:
        out = (self.fetches, self.parsed)
        self.fetches, self.parsed = [], 0
        return out


@pytest.fixture()
def box(imap_user) -> Iterator[Mailbox]:  # type: ignore[no-untyped-def]
    mailbox = Mailbox(MailboxSettings("127.0.0.1", imap_user.port, "plain", imap_user.name, imap_user.password, timeout=5, allow_private=True))
    yield mailbox
    mailbox.close()


class TestBound:
    def test_entries_beyond_the_count_drop_the_least_recently_used(self) -> None:
        cache = OpenedCache(max_entries=3)
        for key in "abc":
            cache.put(key, opened(key))
        assert cache.get("a") is not None  # used: now the most recent
        cache.put("d", opened("d"))
        assert len(cache) == 3 and cache.get("b") is None
        assert [k for k in "acd" if cache.get(k) is not None] == ["a", "c", "d"]

    def test_bytes_beyond_the_bound_drop_entries_and_the_count_stays_exact(self) -> None:
        one = size_of(opened(header_bytes=10_000))
        assert one > ENTRY_OVERHEAD + 10_000
        cache = OpenedCache(max_entries=1000, max_bytes=int(one * 2.5))
        for i in range(10):
            cache.put(i, opened(header_bytes=10_000))
            assert cache.bytes_held <= cache.max_bytes
        assert len(cache) == 2 and cache.bytes_held == 2 * one
        assert cache.get(9) is not None and cache.get(7) is None
        cache.put(9, opened(header_bytes=10_000))  # replaced, not counted twice
        assert cache.bytes_held == 2 * one

    def test_an_entry_larger_than_the_bound_is_not_kept_and_zero_turns_it_off(self) -> None:
        cache = OpenedCache(max_bytes=ENTRY_OVERHEAD + 100)
        cache.put("small", opened())
        cache.put("big", opened(header_bytes=1000))
        assert cache.get("big") is None and cache.get("small") is not None
        off = OpenedCache(max_bytes=0)
        off.put("x", opened())
        assert not off.enabled and off.get("x") is None and len(off) == 0


    def test_the_bound_holds_under_threads(self) -> None:
        import threading

        one = size_of(opened(header_bytes=1000))
        cache = OpenedCache(max_entries=50, max_bytes=20 * one)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(500):
                    cache.put((n, i % 40), opened(header_bytes=1000))
                    cache.get((n, (i * 7) % 40))
                    assert cache.bytes_held <= cache.max_bytes
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(cache) == 20 and cache.bytes_held == 20 * one  # the count matches what is held


class TestMailbox:
    def test_a_reopened_message_is_served_without_fetching_or_parsing_it_again(self, monkeypatch, box, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<c1@example.co.jp>"))
        spy, cache = Spy(monkeypatch, box), OpenedCache()
        first = box.open_message(MessageRef("INBOX", uid), CTX, cache, 1)
        fetches, parsed = spy.take()
        assert parsed == 1 and b"BODYSTRUCTURE" in fetches[0] and first.bytes_fetched > 200
        again = box.open_message(MessageRef("INBOX", uid), CTX, cache, 1)
        fetches, parsed = spy.take()
        # The selection kept from the first call is checked by the message's first byte.
        assert parsed == 0 and fetches == [[b"BODY.PEEK[]<0.1>"]]
        assert again.draft == first.draft and again.ref == first.ref and again.message_id == "<c1@example.co.jp>"
        assert again.bytes_fetched == 0 and cache.hits == 1
        by_mid = box.open_message(MessageRef("INBOX", message_id="<c1@example.co.jp>"), CTX, cache, 1)
        fetches, parsed = spy.take()
        assert by_mid.ref.uid == uid and parsed == 0 and fetches == []  # the SEARCH just found it

    def test_another_scope_or_read_context_misses(self, monkeypatch, box, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", business_mail())
        spy, cache = Spy(monkeypatch, box), OpenedCache()
        box.open_message(MessageRef("INBOX", uid), CTX, cache, 1)
        box.open_message(MessageRef("INBOX", uid), CTX, cache, 2)  # another CRM mailbox
        box.open_message(MessageRef("INBOX", uid), ReadContext(own_domains=frozenset({"example.co.jp"})), cache, 1)
        assert spy.take()[1] == 3 and cache.hits == 0 and len(cache) == 3

    def test_a_recreated_folder_misses_and_its_new_message_is_read(self, monkeypatch, box, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        with dovecot.imap(imap_user.name) as imap:
            imap.create_folder("Cases")
        uid = dovecot.append(imap_user.name, "Cases", business_mail(message_id="<old@example.co.jp>"))
        spy, cache = Spy(monkeypatch, box), OpenedCache()
        old = box.open_message(MessageRef("Cases", uid), CTX, cache, 1)
        with dovecot.imap(imap_user.name) as imap:  # behind the pooled connection's back
            imap.delete_folder("Cases")
            imap.create_folder("Cases")
        new_uid = dovecot.append(imap_user.name, "Cases", business_mail(message_id="<new@example.co.jp>"))
        assert new_uid == uid  # the same UID, another message: only UIDVALIDITY tells them apart
        new = box.open_message(MessageRef("Cases", uid), CTX, cache, 1)
        assert new.message_id == "<new@example.co.jp>" and new.ref.uidvalidity != old.ref.uidvalidity
        assert spy.take()[1] == 2  # read anew
        # The client's stale UIDVALIDITY is refused, cached or not.
        with pytest.raises(MessageNotFound) as refused:
            box.open_message(MessageRef("Cases", uid, old.ref.uidvalidity), CTX, cache, 1)
        assert refused.value.code == "uidvalidity_changed"

    def test_an_expunged_message_is_not_served_from_the_cache(self, box, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", business_mail())
        cache = OpenedCache()
        box.open_message(MessageRef("INBOX", uid), CTX, cache, 1)
        with dovecot.imap(imap_user.name) as imap:
            imap.select_folder("INBOX")
            imap.delete_messages([uid])
            imap.expunge()
        with pytest.raises(MessageNotFound):
            box.open_message(MessageRef("INBOX", uid), CTX, cache, 1)
        assert len(cache) == 0 and cache.bytes_held == 0  # the stale entry dropped


class Searches:
    """The criteria of every SEARCH the mailbox sends."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[list[str]] = []
        search = mailbox_module.search

        def watched(client: Any, criteria: Any) -> Any:
            self.sent.append([str(c) for c in criteria])
            return search(client, criteria)

        monkeypatch.setattr(mailbox_module, "search", watched)

    def take(self) -> list[list[str]]:
        out, self.sent = self.sent, []
        return out


def fill(dovecot, user, folder: str, mids: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    """Messages with these Message-IDs appended to `folder` in one command; their UIDs."""
    with dovecot.imap(user.name) as imap:
        imap.multiappend(folder, [business_mail(message_id=m, subject=m) for m in mids])
        imap.select_folder(folder, readonly=True)
        return sorted(imap.search(["ALL"]))[-len(mids) :]


class TestByMessageId:
    """The Thunderbird widget names a message by its Message-ID: finding it is a SEARCH that
    reads every header of the folder, so the newest messages are searched first, and where a
    Message-ID was found is remembered (and confirmed) for its next open."""

    def test_the_newest_are_searched_first_and_the_others_only_when_none_matches(self, monkeypatch, box, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        monkeypatch.setattr(mailbox_module, "NEWEST_FIRST", 2)
        # The oldest and the newest message share a Message-ID: the newest copy is the one.
        uids = fill(dovecot, imap_user, "INBOX", ["<twin@x.example>"] + [f"<m{i}@x.example>" for i in range(38)] + ["<twin@x.example>"])
        searches = Searches(monkeypatch)
        assert box.open_message(MessageRef("INBOX", message_id="<m37@x.example>"), CTX).ref.uid == uids[38]
        assert [s[0] for s in searches.take()] == ["39:*"]  # 40 messages: the newest 2 only
        assert box.open_message(MessageRef("INBOX", message_id="<m30@x.example>"), CTX).ref.uid == uids[31]
        assert [s[0] for s in searches.take()] == ["39:*", "23:38"]  # then the 16 before them
        assert box.open_message(MessageRef("INBOX", message_id="<m0@x.example>"), CTX).ref.uid == uids[1]
        assert [s[0] for s in searches.take()] == ["39:*", "23:38", "1:22"]  # each message searched once
        assert box.open_message(MessageRef("INBOX", message_id="<twin@x.example>"), CTX).ref.uid == uids[-1]
        assert len(searches.take()) == 1
        # Mail arrived after the folder was selected: the set "9:*" reaches it.
        late = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<late@x.example>"))
        assert box.open_message(MessageRef("INBOX", message_id="<late@x.example>"), CTX).ref.uid == late
        with pytest.raises(MessageNotFound):
            box.open_message(MessageRef("INBOX", message_id="<nowhere@x.example>"), CTX)

    def test_a_message_id_opened_before_is_served_with_no_search(self, monkeypatch, box, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        uids = fill(dovecot, imap_user, "INBOX", ["<a@x.example>", "<b@x.example>"])
        spy, searches, cache = Spy(monkeypatch, box), Searches(monkeypatch), OpenedCache()
        ref = MessageRef("INBOX", message_id="<a@x.example>")
        first = box.open_message(ref, CTX, cache, 1)
        assert len(searches.take()) == 1 and spy.take()[1] == 1
        assert box.peek(ref, CTX, cache, 1) is not None  # the route's early lookups can use it
        again = box.open_message(ref, CTX, cache, 1)
        assert searches.take() == [] and spy.take() == ([[b"BODY.PEEK[]<0.1>"]], 0)
        assert again.ref.uid == first.ref.uid == uids[0] and again.draft == first.draft
        # Another scope, another folder named or another special use: looked for anew.
        for other in (MessageRef("Sent", message_id="<a@x.example>"), MessageRef("INBOX", message_id="<a@x.example>", special_use="junk")):
            assert box.peek(other, CTX, cache, 1) is None
        box.open_message(ref, CTX, cache, 2)
        assert len(searches.take()) == 1
        # A cache turned off remembers nothing.
        off = OpenedCache(max_bytes=0)
        box.open_message(ref, CTX, off, 1)
        box.open_message(ref, CTX, off, 1)
        assert len(searches.take()) == 2

    def test_a_message_moved_away_is_found_where_it_went(self, monkeypatch, box, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        with dovecot.imap(imap_user.name) as imap:
            imap.create_folder("Archive")
        (uid,) = fill(dovecot, imap_user, "INBOX", ["<moved@x.example>"])
        cache, ref = OpenedCache(), MessageRef("INBOX", message_id="<moved@x.example>")
        assert box.open_message(ref, CTX, cache, 1).ref.folder == "INBOX"
        with dovecot.imap(imap_user.name) as imap:  # behind the pooled connection's back
            imap.select_folder("INBOX")
            imap.copy([uid], "Archive")
            imap.delete_messages([uid])
            imap.expunge()
        searches = Searches(monkeypatch)
        moved = box.open_message(ref, CTX, cache, 1)
        assert moved.ref.folder == "Archive" and moved.message_id == "<moved@x.example>" and searches.take()
        assert box.open_message(ref, CTX, cache, 1).ref.folder == "Archive" and searches.take() == []  # remembered there now
        with dovecot.imap(imap_user.name) as imap:
            imap.select_folder("Archive")
            imap.delete_messages(imap.search(["ALL"]))
            imap.expunge()
        with pytest.raises(MessageNotFound):
            box.open_message(ref, CTX, cache, 1)
        assert cache.location(box._location_key(1, ref)) is None and len(cache) == 0

    def test_a_recreated_folder_never_serves_another_message_under_a_remembered_uid(self, monkeypatch, box, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
        with dovecot.imap(imap_user.name) as imap:
            imap.create_folder("Cases")
        (uid,) = fill(dovecot, imap_user, "Cases", ["<first@x.example>"])
        cache, ref = OpenedCache(), MessageRef("Cases", message_id="<first@x.example>")
        box.open_message(ref, CTX, cache, 1)
        with dovecot.imap(imap_user.name) as imap:
            imap.delete_folder("Cases")
            imap.create_folder("Cases")
        assert fill(dovecot, imap_user, "Cases", ["<second@x.example>"]) == [uid]  # the same UID, another message
        fill(dovecot, imap_user, "INBOX", ["<first@x.example>"])  # the first one now lives in the inbox
        found = box.open_message(ref, CTX, cache, 1)
        assert found.message_id == "<first@x.example>" and found.ref.folder == "INBOX" and found.subject == "<first@x.example>"


def draft(client: TestClient, user, **params):  # type: ignore[no-untyped-def]
    return client.get("/api/v1/messages/draft", params=params, headers=user.headers)


class TestApi:
    def test_reopened_the_lookups_are_fresh_and_a_revoked_token_is_refused(self, monkeypatch, client, runtime, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        from crm.services import organisations

        parsed: list[int] = []
        parse = mailbox_module.parse_fetched
        monkeypatch.setattr(mailbox_module, "parse_fetched", lambda *a, **k: parsed.append(1) or parse(*a, **k))
        uid = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<api1@example.co.jp>"))
        connect_mailbox(client, member, imap_user)
        first = draft(client, member, folder="INBOX", uid=uid)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["captured"] is None and len(parsed) == 1
        saved = client.post("/api/v1/leads", json={**body["values"], "message": body["message"]}, headers=member.headers)
        assert saved.status_code == 201, saved.text
        again = draft(client, member, folder="INBOX", uid=uid).json()
        assert len(parsed) == 1 and runtime.drafts.hits == 1  # from the cache ...
        assert again["captured"]["id"] == saved.json()["lead"]["id"]  # ... the capture state is not
        assert again["values"] == body["values"] and again["bytes_fetched"] == 0
        with runtime.sessions.begin() as s:
            organisations.revoke_tokens(s, member.id)
        refused = draft(client, member, folder="INBOX", uid=uid)
        assert refused.status_code == 401 and refused.json()["type"] == "invalid_token"

    def test_another_organisations_user_never_gets_the_cached_draft(self, client, runtime, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        uid = dovecot.append(imap_user.name, "INBOX", business_mail())
        mailbox_id = connect_mailbox(client, member, imap_user).json()["id"]
        assert draft(client, member, folder="INBOX", uid=uid, mailbox_id=mailbox_id).status_code == 200
        other = make_user(runtime, make_org(runtime, "Other KK", mail_domains=["other.example"]), "someone@other.example")
        refused = draft(client, other, folder="INBOX", uid=uid, mailbox_id=mailbox_id)
        assert refused.status_code == 404 and set(refused.json()) >= {"type", "detail"}
        # Even with the same IMAP account connected, theirs is another mailbox: read anew.
        connect_mailbox(client, other, imap_user)
        assert draft(client, other, folder="INBOX", uid=uid).status_code == 200
        assert runtime.drafts.hits == 0 and len(runtime.drafts) == 2

    def test_a_reopen_takes_one_session_and_a_wrong_guess_is_looked_up_again(self, monkeypatch, client, runtime, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        import widget_api.routes.messages as messages

        built: list[str | None] = []
        draft_out = messages.draft_out
        monkeypatch.setattr(messages, "draft_out", lambda request, session, principal, opened, key: built.append(opened.message_id) or draft_out(request, session, principal, opened, key))
        with dovecot.imap(imap_user.name) as imap:
            imap.create_folder("Cases")
        uid = dovecot.append(imap_user.name, "Cases", business_mail(message_id="<old@example.co.jp>"))
        connect_mailbox(client, member, imap_user)
        assert draft(client, member, folder="Cases", uid=uid).json()["message"]["message_id"] == "<old@example.co.jp>"
        assert draft(client, member, folder="Cases", uid=uid).json()["message"]["message_id"] == "<old@example.co.jp>"
        assert built == ["<old@example.co.jp>"] * 2  # the reopen's lookups ran once, in its one session
        built.clear()
        with dovecot.imap(imap_user.name) as imap:  # the folder recreated: the same UID, another message
            imap.delete_folder("Cases")
            imap.create_folder("Cases")
        assert dovecot.append(imap_user.name, "Cases", business_mail(message_id="<new@example.co.jp>")) == uid
        answer = draft(client, member, folder="Cases", uid=uid).json()
        assert answer["message"]["message_id"] == "<new@example.co.jp>"
        assert built == ["<old@example.co.jp>", "<new@example.co.jp>"]  # the guess, then the message the server has

    def test_the_widget_reopening_by_message_id_takes_one_session_and_no_search(self, monkeypatch, client, runtime, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        import widget_api.routes.messages as messages

        built: list[str | None] = []
        draft_out = messages.draft_out
        monkeypatch.setattr(messages, "draft_out", lambda request, session, principal, opened, key: built.append(opened.message_id) or draft_out(request, session, principal, opened, key))
        fill(dovecot, imap_user, "INBOX", ["<tb@x.example>"])
        connect_mailbox(client, member, imap_user)
        searches = Searches(monkeypatch)
        asked = {"folder": "INBOX", "message_id": "<tb@x.example>"}  # what the Thunderbird widget sends
        first = draft(client, member, **asked).json()
        again = draft(client, member, **asked).json()
        assert again["bytes_fetched"] == 0 and first["bytes_fetched"] > 0
        assert {**again, "bytes_fetched": 0} == {**first, "bytes_fetched": 0} and first["message"]["message_id"] == "<tb@x.example>"
        assert len(searches.take()) == 1 and runtime.drafts.hits == 1 and built == ["<tb@x.example>"] * 2
