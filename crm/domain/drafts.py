"""Drafts: what the product proposes before the user saves anything.

A draft is a frozen value built by a pure parser; it carries, for every field, where the
value came from so the widget can prefill confident fields and offer the others as
suggestions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# The standard lead fields, in the order the widget shows them.
LEAD_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "email",
    "company",
    "title",
    "phone",
    "mobile",
    "website",
    "street",
    "city",
    "state",
    "zip_code",
    "country",
    "description",
)

# Confidence at or above which the widget prefills a field instead of suggesting it.
CONFIDENT = 0.7


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a message lives on the IMAP server.

    `uid` is only meaningful together with `uidvalidity` (RFC 3501 §2.3.1.1); the
    Message-ID is the fallback identity that survives moves between folders.

    Without a uid, `folder` is only a hint (a mail client may know a folder by a display
    path, such as Thunderbird's "/Customers/Acme" for the server's "Customers.Acme"), and
    `special_use` is the folder's RFC 6154 use as the client knows it ("junk", "inbox", …):
    the adapter looks for the Message-ID in the folder they point to first, then in the
    others.
    """

    folder: str
    uid: int | None = None
    uidvalidity: int | None = None
    message_id: str | None = None
    special_use: str | None = None


@dataclass(frozen=True, slots=True)
class DraftField:
    """One proposed value.

    source: "header" (From/Reply-To), "signature", "body", "form" (a web-form
    notification), "domain" (derived from the sender's domain) or "user".
    line: the text line the value was read from, shown as evidence.
    """

    value: str
    source: str
    confidence: float = 1.0
    line: str | None = None


# Whom a draft is about.
SENDER, FORWARDED, QUOTED, FORM = "sender", "forwarded", "quoted", "form"
# Why (stable codes the API translates): the sender is the default; a colleague's short
# forward of someone outside the organisation makes the forwarded person the lead.
PERSON_EVIDENCE: tuple[str, ...] = (
    "from_header",  # the person of the message's From header
    "form_submitter",  # the person who filled in a web form the message reports
    "sender_in_own_domain",  # the sender's address is the reader's organisation's
    "forwarded_message",  # the message forwards another one (banner, Fw: subject, attachment)
    "short_note",  # the forwarder added no more than a short note
    "forwarded_from_outside",  # the forwarded original is from outside the organisation
    "quoted_reply",  # a message quoted under a reply
)


@dataclass(frozen=True, slots=True)
class DraftPerson:
    """The one person every field of a draft belongs to.

    role: SENDER, FORWARDED (the original sender of a forwarded message), QUOTED (the
      sender of a message quoted under a reply — offered as an alternative only) or FORM
      (the person who filled in a web form the message reports).
    evidence: codes from PERSON_EVIDENCE saying why the draft is about this person.
    line: the header line that names them (evidence the widget can show).
    """

    role: str
    name: str | None
    email: str | None
    evidence: tuple[str, ...] = ()
    line: str | None = None


@dataclass(frozen=True, slots=True)
class LeadDraft:
    """A proposed lead: a value per known field, plus warnings for the user.

    Warnings are stable codes ("automated_sender", "no_sender", ...) that the API
    translates into the user's language. `person` says whom every field belongs to (never
    two people in one draft); `alternatives` are drafts of the other people of the message
    (the sender under a forwarded person's draft, a forwarded or quoted person under the
    sender's) for the widget to switch to, each with its own fields and no alternatives.
    """

    fields: Mapping[str, DraftField] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()
    person: DraftPerson | None = None
    alternatives: tuple[LeadDraft, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.fields) - set(LEAD_FIELDS)
        if unknown:
            raise ValueError(f"unknown lead fields: {sorted(unknown)}")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    def value(self, name: str) -> str | None:
        f = self.fields.get(name)
        return f.value if f else None

    def values(self) -> dict[str, str | None]:
        """Every lead field, None where unknown (the shape `inspect` prints)."""
        return {name: self.value(name) for name in LEAD_FIELDS}


@dataclass(frozen=True, slots=True)
class ReadContext:
    """What the extractors need to know about the reader (never read from the environment).

    own_domains: the user's organisation's mail domains: a colleague's forward from one of
      them makes the forwarded original the lead; their company is never the lead's.
    default_region: ISO 3166 region for phone numbers that carry no country code.
    trusted_authserv_ids: authserv-ids whose Authentication-Results headers are believed
      (RFC 8601 §5); empty means "the topmost header only".
    user_email: the reader's own address (their ATTENDEE in invitations).
    """

    own_domains: frozenset[str] = frozenset()
    default_region: str = "JP"
    trusted_authserv_ids: frozenset[str] = frozenset()
    user_email: str | None = None
