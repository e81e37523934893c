"""The IMAP mailbox behind one small class (`Mailbox`), and a bounded pool of them.

One authenticated connection per mailbox, reused across requests and serialised by a lock
(an IMAP connection has one selected folder at a time). A dropped connection is
reconnected once and the read retried; a second failure is reported as MailboxUnavailable.

Reading a message costs two round trips whatever its size: BODYSTRUCTURE + header, then
only the text and calendar parts (BODY.PEEK, so \\Seen is never set; attachments never).
A message already read (the caller's OpenedCache) costs one FETCH of its first byte.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import imaplib
import ipaddress
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from imapclient import IMAPClient, imap4, imap_utf7, tls
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imapclient import SocketTimeout
from imapclient.response_parser import parse_message_list

from crm.domain.drafts import MessageRef, ReadContext
from crm.domain.errors import InvalidInput, MessageNotFound
from crm.domain.ports import OpenedMessage
from mail_adapter.addresses import checked_addresses, connect
from mail_adapter.errors import CONNECTION_ERRORS, translate
from mail_adapter.opened_cache import Location, OpenedCache
from mail_adapter.parsing import BodyPart, parse_fetched
from mail_adapter.reading import read_parsed
from mail_adapter.structure import MAX_TEXT_BYTES, is_calendar_part, wanted_parts

T = TypeVar("T")
SECURITIES = ("ssl", "starttls", "plain")
AUTHS = ("password", "xoauth2")
# RFC 6154 special uses by the names mail clients give them (Thunderbird's folder.specialUse).
SPECIAL_USE_FLAGS = {"junk": b"\\Junk", "sent": b"\\Sent", "drafts": b"\\Drafts", "trash": b"\\Trash", "archives": b"\\Archive", "all": b"\\All"}
UNSELECTABLE = (b"\\Noselect", b"\\NonExistent")
# How much of part 1 the draft's first FETCH asks for beside the structure: a plain-text
# body whole (they run to a few kilobytes), and little enough that fetching it for nothing
# (part 1 an attachment, or a multipart whose parts are fetched one by one) costs no more
# than a round trip would.
FIRST_PART_BYTES = 32 * 1024
# Told (command, seconds waited for its tagged answer) once per IMAP command: the one seam
# through which the application counts round trips (widget_api.metrics) without this layer
# knowing of it.
RoundTripObserver = Callable[[str, float], None]
# What a cached draft is checked with before it is served: the message's first byte. A
# folder deleted and recreated while this connection had it selected is noticed only by a
# command on the message (Dovecot answers a NOOP with an untagged NO and keeps the old
# UIDVALIDITY; a FETCH ends the session, and the retry selects the new folder). A message
# expunged by another session is still listed to this one until it is told: its UID and
# size come from the index, its content is NIL ([EXPUNGEISSUED], RFC 5530), hence a byte of
# content, not the UID alone.
CHECK_ITEM = b"BODY.PEEK[]<0.1>"
# A Message-ID is looked for among a folder's newest messages first, then among the rest:
# the mail a user opens is mostly recent, and the server reads the header of every message
# a SEARCH covers (Dovecot: 17 ms for 5,000 messages, 0.5 ms for the newest 128).
NEWEST_FIRST = 128


class SearchText(str):
    """A value inside a SEARCH key (a Message-ID, an address), as opposed to the keys and
    sequence sets around it, which are atoms."""


def search(client: IMAPClient, criteria: Sequence[str | int]) -> list[int]:
    """UID SEARCH with `criteria`: every search the adapter sends is built here.

    Values (SearchText) are always sent as quoted strings: imapclient leaves `(`, `%` or
    `{5}` bare, which turns a Message-ID into broken syntax or into a literal the server
    waits for. A value that is not ASCII goes as a literal under CHARSET UTF-8 (RFC 3501
    §6.4.4); a server that refuses that charset makes it an InvalidInput, not a 5xx.
    Criteria are flat: OR is prefix notation (RFC 3501 search-key), no groups needed.
    """
    args = [_search_arg(item) for item in criteria]
    utf8 = any(not a.isascii() for a in args)
    if utf8:
        args = [b"CHARSET", b"UTF-8", *args]
    try:
        # imapclient's public search() re-quotes what it is given; its raw command sends
        # our quoted strings as they are and 8-bit values as literals.
        data = client._raw_command_untagged(b"SEARCH", args)
    except IMAPClientError as exc:
        if isinstance(exc, CONNECTION_ERRORS) or not utf8:
            raise
        raise InvalidInput("the mail server cannot search for text that is not ASCII", code="search_charset") from None
    return [int(uid) for uid in parse_message_list(data)]


def search_newest_first(client: IMAPClient, criteria: Sequence[str | int], exists: int) -> list[int]:
    """UID SEARCH `criteria` in slices of the selected folder by sequence number, newest
    first and each 8× the one before (the NEWEST_FIRST newest, then the 8× as many before
    them, ...), until one matches: a recent message costs a search of the newest few, an old
    one about the whole folder's, once (the slices do not overlap). `exists` is the folder's
    message count when it was selected: whatever arrived or was expunged since, the slices
    cover every message ("n:*" reaches the newest; a number past the end means the last
    one), so nothing is missed. The newest match is in the first slice that has one, so
    `max()` of the result is that of a whole-folder search."""
    high, low, size = "*", exists - NEWEST_FIRST + 1, NEWEST_FIRST
    while low > 1:
        found = search(client, [f"{low}:{high}", *criteria])
        if found:
            return found
        size *= 8
        high, low = str(low - 1), low - size
    return search(client, criteria if high == "*" else [f"1:{high}", *criteria])


def _search_arg(item: str | int) -> bytes:
    if isinstance(item, int):
        return str(item).encode()
    if not isinstance(item, SearchText):
        return item.encode("ascii")  # a key or a sequence set: ours, always ASCII
    data = item.encode("utf-8", "replace")  # a lone surrogate cannot match anything anyway
    if any(ch in data for ch in b"\r\n\0"):
        raise InvalidInput("a search value must be a single line", code="invalid_search")
    if not data.isascii():
        return data  # sent as a literal
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class MailboxSettings:
    """How to reach one mailbox. `secret` is the password or OAuth2 access token; it is
    excluded from repr so it never reaches a log line or a traceback."""

    host: str
    port: int
    security: str
    username: str
    secret: str = field(repr=False)
    auth: str = "password"
    ca_file: str | None = None
    timeout: float = 20.0
    # Covers the TCP connect and the server's greeting (imapclient reads it under the
    # connect timeout): a host that accepts and never speaks fails fast.
    connect_timeout: float = 5.0
    # Loopback, private and reserved addresses are refused at every connect unless allowed
    # (the admin's MAILWIDGET_ALLOW_PRIVATE_HOSTS; the tests' Dovecot on 127.0.0.1).
    allow_private: bool = False

    def __post_init__(self) -> None:
        if self.security not in SECURITIES:
            raise InvalidInput(f"security must be one of {', '.join(SECURITIES)}")
        if self.auth not in AUTHS:
            raise InvalidInput(f"auth must be one of {', '.join(AUTHS)}")
        if self.security == "plain" and not is_loopback(self.host):
            # A password in clear text over a network is never acceptable.
            raise InvalidInput("plain IMAP (no TLS) is allowed only to a loopback address", code="plain_not_loopback")
        if not 0 < self.port < 65536:
            raise InvalidInput("port must be between 1 and 65535")

    def key(self) -> tuple[str, int, str, str, str, str]:
        digest = hashlib.sha256(self.secret.encode()).hexdigest()
        return (self.host.lower(), self.port, self.security, self.username, self.auth, digest)


class PinnedIMAPClient(IMAPClient):  # type: ignore[misc]
    """An IMAPClient that connects to addresses already checked, while `host` stays the name:
    TLS sends it as SNI and verifies the certificate against it (also after STARTTLS)."""

    def __init__(self, addresses: list[str], host: str, **kwargs: Any) -> None:
        self.addresses = addresses
        super().__init__(host, **kwargs)

    def _create_IMAP4(self) -> imaplib.IMAP4:  # noqa: N802 - imapclient's name
        connect_timeout = getattr(self._timeout, "connect", None)
        addresses = self.addresses
        if self.ssl:
            context = self.ssl_context

            class PinnedTLS(tls.IMAP4_TLS):  # type: ignore[misc]
                def _create_socket(self, timeout: float | None = None) -> socket.socket:
                    sock = connect(addresses, self.port, timeout if timeout is not None else self._timeout)
                    wrapped: socket.socket = tls.wrap_socket(sock, context, self.host)
                    return wrapped

            return PinnedTLS(self.host, self.port, self.ssl_context, connect_timeout)

        class Pinned(imap4.IMAP4WithTimeout):  # type: ignore[misc]
            def _create_socket(self, timeout: float | None = None) -> socket.socket:
                return connect(addresses, self.port, timeout if timeout is not None else self._timeout)

        return Pinned(self.host, self.port, connect_timeout)


class Mailbox:
    """One mailbox: connects lazily, keeps the connection, retries once on a drop."""

    def __init__(self, settings: MailboxSettings, on_round_trip: RoundTripObserver | None = None) -> None:
        self.settings = settings
        self.on_round_trip = on_round_trip
        self._client: IMAPClient | None = None
        self._selected: tuple[str, bool, int] | None = None  # folder, readonly, uidvalidity
        self._listing: list[tuple[tuple[bytes, ...], str, str]] | None = None  # LIST, kept per connection
        self._lock = threading.RLock()
        self._validities: dict[str, int] = {}  # folder → UIDVALIDITY its last SELECT on this connection said
        self._exists = 0  # the selected folder's message count at its SELECT
        # Part of every cache key: the same CRM mailbox edited to another server or user
        # never finds the first one's messages.
        self._identity = settings.key()
        self.connects = 0  # how many logins this mailbox made (the pool test reads it)

    # -- connection -------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_file)

    def _connect(self) -> IMAPClient:
        s = self.settings
        timeout = SocketTimeout(connect=min(s.connect_timeout, s.timeout), read=s.timeout)
        # Resolved once and every address checked here, at each connect: the client connects
        # to those addresses, never to the name resolved anew (DNS rebinding).
        addresses = checked_addresses(s.host, s.port, allow_private=s.allow_private)
        client = PinnedIMAPClient(addresses, s.host, port=s.port, ssl=s.security == "ssl", ssl_context=self._ssl_context() if s.security == "ssl" else None, timeout=timeout)
        if self.on_round_trip is not None:
            _observe_round_trips(client, self.on_round_trip)
        try:
            if s.security == "starttls":
                client.starttls(self._ssl_context())
            if s.auth == "xoauth2":
                client.oauth2_login(s.username, s.secret)
            else:
                client.login(s.username, s.secret)
        except BaseException:
            _quietly_close(client)
            raise
        self.connects += 1
        return client

    def _drop(self) -> None:
        if self._client is not None:
            _quietly_close(self._client)
        self._client = None
        self._selected = None
        self._listing = None
        self._validities = {}

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):  # closing a dead connection may fail; nothing to do
                    self._client.logout()
            self._drop()

    def run(self, op: Callable[[IMAPClient], T], *, retry: bool = True) -> T:
        """Run `op` on the live connection. On a dropped connection, reconnect and run it once
        more when `retry` (reads are safe to repeat; writes decide for themselves)."""
        with self._lock:
            for attempt in (0, 1):
                connecting = self._client is None
                try:
                    if self._client is None:
                        self._client = self._connect()
                    connecting = False
                    return op(self._client)
                except LoginError as exc:
                    self._drop()
                    raise translate(exc, self.settings.host) from None
                except CONNECTION_ERRORS as exc:
                    self._drop()
                    # A connection may have been dropped by the server: one more try on a
                    # new one. A connect that just failed would fail again (and double the
                    # wait on a host that never answers).
                    if attempt or not retry or connecting:
                        raise translate(exc, self.settings.host) from None
                except IMAPClientError as exc:
                    raise translate(exc, self.settings.host) from None
            raise AssertionError("unreachable")

    def select(self, client: IMAPClient, folder: str, *, readonly: bool = True) -> int:
        """Select `folder` (EXAMINE when readonly) unless it already is; returns UIDVALIDITY."""
        if self._selected and self._selected[0] == folder and (readonly or not self._selected[1]):
            return self._selected[2]
        return int(self.select_anew(client, folder, readonly=readonly).get(b"UIDVALIDITY", 0))  # type: ignore[call-overload,no-any-return]

    def select_anew(self, client: IMAPClient, folder: str, *, readonly: bool) -> dict[bytes, object]:
        """SELECT (or EXAMINE) `folder` whatever is selected; returns the server's answer.
        A folder that does not exist is MessageNotFound."""
        self._selected = None  # a SELECT that fails leaves no folder selected (RFC 3501 §6.3.1)
        try:
            info: dict[bytes, object] = client.select_folder(folder, readonly=readonly)
        except IMAPClientError as exc:
            if isinstance(exc, CONNECTION_ERRORS):
                raise
            raise MessageNotFound(f"folder {folder!r} does not exist", code="folder_not_found") from None
        self._selected = (folder, readonly, int(info.get(b"UIDVALIDITY", 0)))  # type: ignore[call-overload]
        self._validities[folder] = self._selected[2]
        self._exists = int(info.get(b"EXISTS", 0))  # type: ignore[call-overload]
        return info

    @property
    def selection(self) -> tuple[str, bool, int] | None:
        """(folder, readonly, UIDVALIDITY) of what the connection has selected, if anything."""
        return self._selected

    def forget_selection(self) -> None:
        """Called by writers that changed the selected folder behind this class's back."""
        self._selected = None

    # -- MailboxPort --------------------------------------------------------------------

    def check(self) -> list[str]:
        return self.run(lambda c: [name for _flags, _delim, name in c.list_folders()])

    def open_message(self, ref: MessageRef, ctx: ReadContext, cache: OpenedCache | None = None, scope: Hashable = None) -> OpenedMessage:
        """With `cache`: a message already read under the same `scope` (the caller's mailbox
        id), folder, UIDVALIDITY, UID and read context is served from it after a one-byte
        FETCH (CHECK_ITEM), instead of the structure and parts FETCH and their parsing; a
        Message-ID found before is looked for where it was found (no SEARCH)."""
        return self.run(lambda c: self._open(c, ref, ctx, cache, scope))

    def peek(self, ref: MessageRef, ctx: ReadContext, cache: OpenedCache, scope: Hashable = None) -> OpenedMessage | None:
        """What `open_message` would serve from `cache`, if it is there, found without any
        command and without waiting for the connection: a ref by folder + UID or by a
        Message-ID found before, the folder's name and its UIDVALIDITY known from this
        connection's LIST and SELECTs. Only a guess until `open_message` checked it
        (callers compare the two: `same_content`)."""
        if not cache.enabled:
            return None
        if ref.uid is None:
            where = cache.location(self._location_key(scope, ref)) if ref.message_id else None
            if where is None or self._validities.get(where[0]) != where[1]:
                return None
            folder, uidvalidity, uid = where
        else:
            known = _known_name(ref.folder or "INBOX", self._listing)
            validity = self._validities.get(known) if known is not None else None
            if known is None or not validity or ref.uidvalidity not in (None, validity):
                return None
            folder, uidvalidity, uid = known, validity, ref.uid
        found = cache.get(self._cache_key(scope, folder, uidvalidity, uid, ctx), count=False)
        return None if found is None else _served_from_cache(found, ref)

    def _cache_key(self, scope: Hashable, folder: str, uidvalidity: int, uid: int, ctx: ReadContext) -> Hashable:
        return (scope, self._identity, folder, uidvalidity, uid, ctx)

    def _location_key(self, scope: Hashable, ref: MessageRef) -> Hashable:
        """Everything `_locate` goes by: where it looks first depends on the folder and the
        special use the client named."""
        return (scope, self._identity, _bracketed(ref.message_id or ""), ref.folder or "", ref.special_use or "")

    def resolve(self, c: IMAPClient, ref: MessageRef) -> tuple[str, int, int]:
        """(folder, UIDVALIDITY, UID) of the message `ref` names, its folder selected: by
        folder + UID (UIDVALIDITY checked) or by Message-ID."""
        if ref.uid is not None:
            folder = self.server_name(c, ref.folder or "INBOX")
            uidvalidity = self.select(c, folder)
            if ref.uidvalidity is not None and ref.uidvalidity != uidvalidity:
                raise MessageNotFound("the folder was recreated (UIDVALIDITY changed); open the message again", code="uidvalidity_changed")
            return folder, uidvalidity, ref.uid
        if ref.message_id:
            return self._locate(c, ref.message_id, ref.folder, ref.special_use)
        raise InvalidInput("give a uid or a message_id")

    def _open(self, c: IMAPClient, ref: MessageRef, ctx: ReadContext, cache: OpenedCache | None = None, scope: Hashable = None) -> OpenedMessage:
        remembering = cache is not None and cache.enabled and ref.uid is None and bool(ref.message_id)
        if remembering:
            assert cache is not None
            key = self._location_key(scope, ref)
            where = self._still_valid(c, cache.location(key))
            if where is not None:
                try:
                    return self._open_at(c, ref, ctx, cache, scope, where, confirm=True)
                except MessageNotFound:
                    pass  # moved or deleted since it was found there: looked for anew below
            cache.forget_location(key)
        where = self.resolve(c, ref)
        # A UID the client named is confirmed before a cached draft is served; one just found
        # by SEARCH is there.
        opened = self._open_at(c, ref, ctx, cache, scope, where, confirm=ref.uid is not None)
        if remembering and where[1]:  # a server without UIDVALIDITY (0) gets no cache
            assert cache is not None
            cache.remember_location(self._location_key(scope, ref), where)
        return opened

    def _still_valid(self, c: IMAPClient, where: Location | None) -> Location | None:
        """A remembered location, its folder selected, if the folder still has the
        UIDVALIDITY it had then (a recreated folder's UIDs name other messages)."""
        if where is None:
            return None
        try:
            return where if self.select(c, where[0]) == where[1] else None
        except MessageNotFound:
            return None  # the folder is gone

    def _open_at(self, c: IMAPClient, ref: MessageRef, ctx: ReadContext, cache: OpenedCache | None, scope: Hashable, where: Location, *, confirm: bool) -> OpenedMessage:
        folder, uidvalidity, uid = where
        key = None
        if cache is not None and cache.enabled and uidvalidity:  # a server without UIDVALIDITY (0) gets no cache
            key = self._cache_key(scope, folder, uidvalidity, uid, ctx)
            found = cache.get(key)
            # Checked with the smallest FETCH that reads the message (CHECK_ITEM), also after
            # a SELECT: the folder's UIDVALIDITY says nothing of an expunged message.
            if found is not None and (not confirm or _still_there(c, uid)):
                return _served_from_cache(found, ref)
            if found is not None:
                cache.discard(key)  # gone or moved on: read anew below (or MessageNotFound)
        opened = self._fetch_and_read(c, ref, ctx, folder, uidvalidity, uid)
        if key is not None and cache is not None:
            cache.put(key, opened)
        return opened

    def _fetch_and_read(self, c: IMAPClient, ref: MessageRef, ctx: ReadContext, folder: str, uidvalidity: int, uid: int) -> OpenedMessage:
        # Part 1 asked for with the structure, bounded: it is the body of a single-part mail
        # and the text of most multipart ones (a text with attachments, the plain half of an
        # alternative), so they need no second round trip; when it is not a wanted part, at
        # most FIRST_PART_BYTES were fetched for nothing.
        head = [b"BODYSTRUCTURE", b"BODY.PEEK[HEADER]", body_item("1", FIRST_PART_BYTES)]
        first = c.fetch([uid], head)
        if uid not in first:
            c.noop()  # mail that arrived since the folder was selected is not visible before this
            first = c.fetch([uid], head)
        if uid not in first:
            raise MessageNotFound(f"no message with UID {uid} in {folder}")
        header = first[uid].get(b"BODY[HEADER]") or b""
        early = by_section(first[uid]).get("1")
        have = whole_first_part(first[uid], FIRST_PART_BYTES)
        parts, nested = wanted_parts(first[uid].get(b"BODYSTRUCTURE"))
        items = [body_item(p.section, None if is_calendar_part(p) else MAX_TEXT_BYTES) for p in parts if p.section not in have]
        items += [body_item(f"{n.section}.HEADER", None) for n in nested]
        second = {**have, **(by_section(c.fetch([uid], items)[uid]) if items else {})}
        bodies = [
            BodyPart(p.content_type, second.get(p.section, b""), p.charset, p.encoding, p.filename, p.method, p.section, p.nested)
            for p in parts
        ]
        nested_headers = {n.section: second.get(f"{n.section}.HEADER", b"") for n in nested}
        fetched = len(header) + sum(len(v) for k, v in second.items() if k not in have) + len(early or b"")
        parsed = parse_fetched(header, bodies, nested_headers)
        real_ref = MessageRef(folder=folder, uid=uid, uidvalidity=uidvalidity, message_id=parsed.message_id or ref.message_id)
        return read_parsed(parsed, real_ref, ctx, fetched)

    def messages_with_calendars(self, folder: str, since_uid: int, uidvalidity: int | None) -> tuple[int, int, list[int]]:
        """UIDs above `since_uid` whose structure carries a calendar part (two round trips,
        bodies untouched). Returns (uidvalidity, highest UID seen, UIDs); a changed
        UIDVALIDITY starts the scan over."""

        def op(c: IMAPClient) -> tuple[int, int, list[int]]:
            validity = int(self.select_anew(c, folder, readonly=True).get(b"UIDVALIDITY", 0))  # type: ignore[call-overload]
            since = since_uid if uidvalidity == validity else 0
            uids = [u for u in search(c, ["UID", f"{since + 1}:*"]) if u > since]
            if not uids:
                return validity, since, []
            found = []
            for uid, data in c.fetch(uids[:500], [b"BODYSTRUCTURE"]).items():
                parts, _nested = wanted_parts(data.get(b"BODYSTRUCTURE"))
                if any(is_calendar_part(p) for p in parts):
                    found.append(int(uid))
            return validity, max(uids[:500]), sorted(found)

        return self.run(op)

    # -- folders ------------------------------------------------------------------------

    def folders(self, c: IMAPClient, *, fresh: bool = False) -> list[tuple[tuple[bytes, ...], str, str]]:
        """(flags, delimiter, name) of every folder, names decoded from modified UTF-7; listed
        once per connection (again when `fresh`, after a folder was not found)."""
        if self._listing is None or fresh:
            self._listing = [(tuple(flags), (delim or b"/").decode(), str(name)) for flags, delim, name in c.list_folders()]
        return self._listing

    def server_name(self, c: IMAPClient, name: str) -> str:
        """The server's own name for a folder a client names by its display path: "INBOX"
        whatever its case, "/Customers/Acme" → "Customers.Acme" under a "." delimiter, a
        modified-UTF-7 "&mGdbog-" → "顧客". A name that matches nothing is returned as given."""
        name = name.strip()
        if name.upper() == "INBOX" or not name:
            return "INBOX"
        for fresh in (False, True):
            found = _known_name(name, self.folders(c, fresh=fresh))
            if found is not None:
                return found
        return name

    def _candidates(self, c: IMAPClient, hint: str, special_use: str | None) -> list[str]:
        """Folders to look in for a message, most likely first: the one with the client's
        special use, the one the hint names, the inbox, then every other selectable folder."""
        listing = self.folders(c)
        first = []
        flag = SPECIAL_USE_FLAGS.get((special_use or "").lower())
        if flag:
            first += [n for f, _d, n in listing if flag in f]
        elif (special_use or "").lower() == "inbox":
            first.append("INBOX")
        if hint:
            first.append(self.server_name(c, hint))
        first.append("INBOX")
        rest = [n for f, _d, n in listing if not any(u in f for u in UNSELECTABLE)]
        return list(dict.fromkeys(first + rest))

    def _locate(self, c: IMAPClient, message_id: str, hint: str, special_use: str | None) -> tuple[str, int, int]:
        """(folder, UIDVALIDITY, UID) of the message with this Message-ID: the Message-ID
        survives moves and restarts where a client's folder path or UID may not."""
        for folder in self._candidates(c, hint, special_use):
            reused = self._selected is not None and self._selected[0] == folder
            try:
                uidvalidity = self.select(c, folder)
            except MessageNotFound:
                continue  # listed but gone meanwhile
            uids = self.message_ids_in_selected(c, message_id)
            if not uids and reused:
                c.noop()  # a reused selection: let the server announce new mail, once
                uids = self.message_ids_in_selected(c, message_id)
            if uids:
                return folder, uidvalidity, max(uids)
        raise MessageNotFound(f"no message with Message-ID {_bracketed(message_id)} in any folder")

    def message_ids_in_selected(self, c: IMAPClient, message_id: str) -> list[int]:
        """UIDs with this Message-ID in the selected folder, the newest among them first
        looked for (search_newest_first): enough to pick the newest copy."""
        return search_newest_first(c, ["HEADER", "Message-ID", SearchText(_bracketed(message_id))], self._exists)

    def find_by_message_id(self, c: IMAPClient, message_id: str) -> int:
        """The UID of the message with this Message-ID in the selected folder (the newest if
        the server holds copies)."""
        uids = self.message_ids_in_selected(c, message_id)
        if not uids:
            raise MessageNotFound(f"no message with Message-ID {_bracketed(message_id)}")
        return max(uids)


def _still_there(c: IMAPClient, uid: int) -> bool:
    return bool(c.fetch([uid], [CHECK_ITEM]).get(uid, {}).get(b"BODY[]<0>"))


def _known_name(name: str, listing: list[tuple[tuple[bytes, ...], str, str]] | None) -> str | None:
    """The server's name for a client's folder name in `listing` (Mailbox.server_name); None
    when it names none of them, or there is no listing."""
    name = name.strip()
    if name.upper() == "INBOX" or not name:
        return "INBOX"
    if listing is None:
        return None
    names = {n for _f, _d, n in listing}
    if name in names:
        return name
    for candidate in _spellings(name, {d for _f, d, _n in listing} or {"/"}):
        if candidate in names:
            return candidate
    return None


def same_content(a: OpenedMessage, b: OpenedMessage) -> bool:
    """True when both were served from one cache entry for the same ref: a draft built
    from one is the draft of the other."""
    return a.draft is b.draft and a.ref == b.ref and a.message_id == b.message_id


def _served_from_cache(opened: OpenedMessage, ref: MessageRef) -> OpenedMessage:
    """A cached message as this request asked for it: nothing fetched from the server."""
    real = MessageRef(folder=opened.ref.folder, uid=opened.ref.uid, uidvalidity=opened.ref.uidvalidity, message_id=opened.message_id or ref.message_id)
    return dataclasses.replace(opened, ref=real, bytes_fetched=0)


def _bracketed(message_id: str) -> str:
    mid = message_id.strip()
    return mid if mid.startswith("<") else f"<{mid}>"


def _spellings(name: str, delimiters: set[str]) -> list[str]:
    """Ways a client's display path may spell a server folder name."""
    out = []
    decoded = name
    if "&" in name:
        try:
            decoded = imap_utf7.decode(name.encode("ascii"))
        except (UnicodeError, ValueError):
            decoded = name
    for base in dict.fromkeys((name, decoded)):
        parts = [p for p in base.strip("/").split("/") if p]
        for delim in delimiters:
            out.append(delim.join(parts))
    return out


def body_item(section: str, limit: int | None) -> bytes:
    suffix = f"<0.{limit}>" if limit else ""
    return f"BODY.PEEK[{section}]{suffix}".encode()


def whole_first_part(data: dict[bytes, Any], window: int) -> dict[str, bytes]:
    """{"1": its bytes} when a FETCH's `body_item("1", window)` brought all of part 1 (less
    than the window came back), else {}: the part then needs no FETCH of its own."""
    early = by_section(data).get("1")
    return {"1": early} if early is not None and len(early) < window else {}


def by_section(data: dict[bytes, Any]) -> dict[str, bytes]:
    """Fetch results keyed by section: b'BODY[1.2]<0>' → '1.2'."""
    out: dict[str, bytes] = {}
    for key, value in data.items():
        name = key.decode("ascii", "replace")
        if name.startswith("BODY[") and isinstance(value, bytes):
            out[name[5:].split("]", 1)[0]] = value
    return out


def _observe_round_trips(client: IMAPClient, observer: RoundTripObserver) -> None:
    """Every command, imapclient's own or imaplib's, ends in imaplib's `_command_complete`
    (wait for the tagged answer): timing it there counts each round trip exactly once."""
    imap = client._imap
    complete = imap._command_complete

    def timed(name: str, tag: bytes) -> Any:
        start = time.perf_counter()
        try:
            return complete(name, tag)
        finally:
            observer(str(name).upper(), time.perf_counter() - start)

    imap._command_complete = timed


def _quietly_close(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):  # the socket may already be gone
        client.shutdown()


class MailboxPool:
    """At most `size` open mailboxes, least recently used closed first. Never a connection
    per request: the same settings get the same Mailbox (and its connection)."""

    def __init__(self, size: int = 64, on_round_trip: RoundTripObserver | None = None) -> None:
        self.size = size
        self.on_round_trip = on_round_trip
        self._boxes: OrderedDict[tuple[str, int, str, str, str, str], Mailbox] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, settings: MailboxSettings) -> Mailbox:
        key = settings.key()
        evicted: list[Mailbox] = []
        with self._lock:
            box = self._boxes.get(key)
            if box is None:
                box = self._boxes[key] = Mailbox(settings, self.on_round_trip)
            self._boxes.move_to_end(key)
            while len(self._boxes) > self.size:
                evicted.append(self._boxes.popitem(last=False)[1])
        for old in evicted:
            old.close()
        return box

    def __len__(self) -> int:
        return len(self._boxes)

    def existing(self, settings: MailboxSettings) -> Mailbox | None:
        """The pooled mailbox of these settings if there is one: never creates one, never
        closes one (a caller holding a database session must not wait for a LOGOUT)."""
        with self._lock:
            return self._boxes.get(settings.key())

    def close_all(self) -> None:
        with self._lock:
            boxes = list(self._boxes.values())
            self._boxes.clear()
        for box in boxes:
            box.close()
