"""A per-process cache of messages already read into drafts (`OpenedMessage`), so that a
message the user opens again skips the IMAP FETCH, the MIME parsing and the extraction.

Why it is safe to keep them: a message's content under one UID never changes as long as
the folder's UIDVALIDITY is the same (RFC 3501 §2.3.1.1, RFC 9051 §2.3.1.1); a folder that
is recreated gets a new UIDVALIDITY, hence a new key. The key also holds the caller's
scope (the CRM mailbox id, checked for the principal before any lookup, and the
connection's identity) and the read context (the organisation's domains, region, trusted
authserv-ids, the reader's address): the extraction's result depends on it.

Beside the drafts, where a Message-ID was last found (folder, UIDVALIDITY, UID) for a
scope and the folder the client named: the Thunderbird widget names messages by
Message-ID, and finding one is a SEARCH that reads every header of a large folder. A
location is a hint: the mailbox confirms the UID is still there (and the folder's
UIDVALIDITY the same) before it serves anything, and looks again if not.

What it never holds: anything checked per request (the token, the organisation's scoping,
the captured lead, the duplicates), which the callers look up afresh every time.

Bounded by entries and by an estimate of the bytes held, least recently used dropped
first; one lock, held only for dictionary work (never across I/O). Per process: each
uvicorn worker has its own (a miss in another worker only costs a fetch).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from crm.domain.ports import OpenedMessage

# Where a message is: (folder, UIDVALIDITY, UID).
Location = tuple[str, int, int]
# What an entry costs beyond the strings and bytes counted: the draft's field objects,
# the dataclasses, the key (a rough, fixed share: the bound is on the order of magnitude).
ENTRY_OVERHEAD = 4096


def size_of(opened: OpenedMessage) -> int:
    """An estimate of the memory an entry holds, in bytes: its headers, calendars and
    subject, plus a fixed overhead for the draft (its values are short lines of the text)."""
    size = ENTRY_OVERHEAD + len(opened.subject) + sum(len(n) + len(v) for n, v in opened.headers)
    size += sum(len(c.data) for c in opened.calendars)
    for draft in (opened.draft, *opened.draft.alternatives):
        size += sum(len(f.value) + len(f.line or "") for f in draft.fields.values())
    return size


class OpenedCache:
    """LRU of OpenedMessage by key, at most `max_entries` entries and `max_bytes` bytes
    (by `size_of`). `max_bytes` 0 turns it off (nothing is stored)."""

    def __init__(self, max_entries: int = 2048, max_bytes: int = 64 * 2**20) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[OpenedMessage, int]] = OrderedDict()
        self._bytes = 0
        self._locations: OrderedDict[Hashable, Location] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 and self.max_entries > 0

    def get(self, key: Hashable, *, count: bool = True) -> OpenedMessage | None:
        """count: False for a look that is not a read yet (Mailbox.peek): hits and misses
        count what was served and what was read anew."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += count
                return None
            self._entries.move_to_end(key)
            self.hits += count
            return found[0]

    def put(self, key: Hashable, opened: OpenedMessage) -> None:
        if not self.enabled:
            return
        size = size_of(opened)
        if size > self.max_bytes:
            return  # never worth evicting everything else for
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (opened, size)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _key, (_opened, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def discard(self, key: Hashable) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]

    def location(self, key: Hashable) -> Location | None:
        with self._lock:
            found = self._locations.get(key)
            if found is not None:
                self._locations.move_to_end(key)
            return found

    def remember_location(self, key: Hashable, where: Location) -> None:
        """Bounded by the same count as the drafts (a location is a few dozen bytes)."""
        if not self.enabled:
            return
        with self._lock:
            self._locations[key] = where
            self._locations.move_to_end(key)
            while len(self._locations) > self.max_entries:
                self._locations.popitem(last=False)

    def forget_location(self, key: Hashable) -> None:
        with self._lock:
            self._locations.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._locations.clear()
            self._bytes = 0

    @property
    def bytes_held(self) -> int:
        with self._lock:  # never the moment inside put() between adding and evicting
            return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
