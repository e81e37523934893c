"""The lead draft of a message: who the lead is (the sender, a forwarded original, or the
person of a web form), then their fields from the headers and their signature.

`extract_lead(msg, ctx)` is pure and never raises on odd input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from crm.domain.drafts import FORM as SUBMITTER
from crm.domain.drafts import FORWARDED, QUOTED, SENDER, DraftField, DraftPerson, LeadDraft, ReadContext
from crm.domain.rules import email_domain, is_free_mail, normalise_email
from mail_adapter import contact_lines as cl
from mail_adapter.automated import automated_reasons, is_noreply
from mail_adapter.names import clean_display, family_first, from_local_part, has_cjk, looks_like_name_line, same_person, signs_as, split_name
from mail_adapter.parsing import ParsedMessage
from mail_adapter.signature import signature_lines
from mail_adapter.webforms import form_fields, is_form
from mail_adapter.zones import FORWARDED as FORWARDED_ZONE
from mail_adapter.zones import OWN, Segment, own_of, segments

HEADER, SIGNATURE, FORM, DOMAIN, BODY = "header", "signature", "form", "domain", "body"
_CCTLD_REGION = {"jp": "JP", "uk": "GB", "de": "DE", "fr": "FR", "us": "US", "ca": "CA", "au": "AU", "nl": "NL", "es": "ES", "it": "IT", "ch": "CH", "at": "AT", "sg": "SG", "kr": "KR", "cn": "CN", "tw": "TW", "hk": "HK", "in": "IN", "se": "SE", "be": "BE", "ie": "IE", "nz": "NZ"}
_CONTACT_START = re.compile(r"(?i)tel\b|tel[:：.]|phone|fax|mobile|携帯|電話|https?://|www\.|\+?\d")
_GREETING_COMPANY = re.compile(r"((?:株式会社|有限会社|合同会社)\S{1,30}?|\S{1,30}?(?:株式会社|有限会社|合同会社|書店|商店|本舗|屋|堂))\s?の\s?\S{1,10}(です|と申します|でございます)")


class _Draft:
    """Collects fields, keeping the first value found unless a later one is more confident."""

    def __init__(self) -> None:
        self.fields: dict[str, DraftField] = {}

    def put(self, name: str, value: str | None, source: str, confidence: float, line: str | None = None) -> None:
        if not value:
            return
        value = value.strip()[:255]
        old = self.fields.get(name)
        if old is None or confidence > old.confidence:
            self.fields[name] = DraftField(value, source, round(confidence, 2), line[:300] if line else None)


def _region(email: str | None, ctx: ReadContext) -> str:
    if email:
        tld = email.rsplit(".", 1)[-1].lower()
        if tld in _CCTLD_REGION:
            return _CCTLD_REGION[tld]
    return ctx.default_region


def _read_form(draft: _Draft, fields: dict[str, str], region: str) -> None:
    for name in ("company", "title", "website", "country", "city", "state"):
        draft.put(name, fields.get(name), FORM, 0.9, fields.get(name))
    if "company" in fields:
        draft.put("company", cl.expand_abbreviations(fields["company"]), FORM, 0.91, fields["company"])
    if "name" in fields:
        first, last = split_name(fields["name"])
        draft.put("first_name", first, FORM, 0.9, fields["name"])
        draft.put("last_name", last, FORM, 0.9, fields["name"])
    draft.put("first_name", fields.get("first_name"), FORM, 0.91)
    draft.put("last_name", fields.get("last_name"), FORM, 0.91)
    email = normalise_email(fields.get("email", ""))
    draft.put("email", email, FORM, 0.95, fields.get("email"))
    for kind in ("phone", "mobile"):
        if kind in fields:
            for phone in cl.phones_in(fields[kind], region):
                target = "mobile" if phone.kind == "mobile" or kind == "mobile" else "phone"
                draft.put(target, phone.e164, FORM, 0.9, fields[kind])
                break
    if "zip_code" in fields or "address" in fields:
        address = cl.address_in([f"〒{fields.get('zip_code', '')} {fields.get('address', '')}".strip()])
        if address:
            _put_address(draft, address, FORM, 0.85)


def _put_address(draft: _Draft, address: cl.Address, source: str, confidence: float) -> None:
    for name in ("street", "city", "state", "zip_code", "country"):
        draft.put(name, getattr(address, name), source, confidence, address.line)


def _read_signature(draft: _Draft, lines: list[str], name: str | None, region: str, own_domains: frozenset[str], domain: str | None = None) -> None:
    confidence = 0.85
    lines = _signature_parts(lines)
    address = cl.address_in(lines)
    region = cl.region_of(address) or region
    for i, line in enumerate(lines):
        phones = cl.phones_in(line, region)
        for phone in phones:
            if phone.kind == "fax":
                continue
            draft.put(phone.kind, phone.e164, SIGNATURE, confidence if phone.labelled else 0.6, line)
        website = cl.website_in(line)
        if website and (domain is None or site_of(_host(website)) != site_of(domain)) and not _SITE_LINE.match(line):
            website = None  # another site named in a sentence ("go to http://www.sjmercury.com")
        draft.put("website", website, SIGNATURE, 0.8, line)
        company = cl.company_in(line)
        if company and not any(d.split(".")[0] in company.lower() for d in own_domains if d):
            draft.put("company", company, SIGNATURE, 0.85, line)
        # An all-lower-case signature ("founder, kim design studio") is read as if capitalised.
        probe = line.title() if line.islower() else line
        title = cl.title_in(probe)
        if not company:
            # "VP of Sales, Northwind Traders", "Raj Mehta, CEO @ TinyRocket": the company is
            # the part that is neither the title nor the person; a whole line that names the
            # company, or spells the domain, is surer than a part.
            # Japanese lines separate company, department, title and name by spaces alone.
            if has_cjk(probe):
                parts = re.split(r"[\s　|｜,、]+", probe)
            else:
                parts = re.split(r"\s*[|｜]\s*|,\s+|\s+(?:@|at)\s+", probe) if title else [probe]
            for part in parts:
                found = None if cl.title_in(part) or (name and same_person(part, name, exact=True)) else cl.company_by_name(part, domain)
                if found:
                    draft.put("company", found[0], SIGNATURE, (0.7 if found[1] else 0.6) - (0.05 if len(parts) > 1 else 0), line)
        if title and ", " in title:  # "Partner, Northstar Ventures": the tail is the company, not a department
            head, _, tail = title.partition(", ")
            if cl.company_by_name(tail, domain) or cl.company_in(tail):
                title = head
        if title and not phones and not website and len(line) < 80:
            whole = line.strip() == title
            if whole and i + 1 < len(lines) and _title_continues(lines[i + 1], domain):
                title = _joined_title(title, lines[i + 1].strip())  # "Director" / "Global Supply Operations"
            draft.put("title", title, SIGNATURE, 0.85 if whole else 0.8, line)
        elif title and (phones or website):
            # A signature flattened into one line ("株式会社○○営業部部長山田太郎TEL…"): the title
            # is read from what comes before the contact details only.
            head = _CONTACT_START.split(probe, maxsplit=1)[0]
            flat_title = cl.title_in(head) if head.strip() and head != probe else None
            draft.put("title", flat_title, SIGNATURE, 0.7, line)
        country = cl.country_in(line)
        draft.put("country", country, SIGNATURE, 0.8, line)
    if address:
        _put_address(draft, address, SIGNATURE, 0.8)
    if "company" not in draft.fields:
        _company_by_place(draft, lines, name, domain)
    if not name:
        for line in lines[:6]:
            candidate = re.split(r"\s*[|｜,、]\s*", line)[0]
            if looks_like_name_line(candidate) and not cl.company_in(candidate) and not cl.title_in(candidate) and not cl.company_by_name(candidate, domain):
                first, last = split_name(candidate)
                draft.put("first_name", first, SIGNATURE, 0.75, line)
                draft.put("last_name", last, SIGNATURE, 0.75, line)
                break


# A signature line that gives a site: the address alone, or after a label.
_SITE_LINE = re.compile(r"^\s*(?:(?:web(?:site| site| page)?|www|url|home ?page|world-wide web page|homepage|site|🌐)\s*[:：]?\s*)?(?:https?://|www\.)\S+\s*$", re.I)


def _host(url: str) -> str:
    return re.sub(r"^https?://", "", url, flags=re.I).split("/")[0].lower()


# What the second line of a two-line title names: a function, an area or a region.
_TITLE_AREA = re.compile(
    r"\b(Operations|Sales|Marketing|Supply|Procurement|Purchasing|Research|Engineering|Development|Finance|Accounting|Relations|Affairs|"
    r"Strategy|Strategies|Technology|Products?|Human Resources|Legal|Business|Logistics|Manufacturing|Quality|Compliance|Risk|Trading|"
    r"Origination|Analytics|Planning|Design|Communications|Policy|Regulatory|Services|Support|Administration|Management|Programs?|"
    r"Partnerships|Alliances|Innovation|Infrastructure|Security|IT|HR|Customer|Client|Public|Government|Investor|Corporate|Global|"
    r"Regional|International|Americas|North America|EMEA|APAC|Asia Pacific|Europe)\b"
)


def _title_continues(line: str, domain: str | None) -> bool:
    """Whether a signature line carries on the title above it rather than naming the
    company: a short line of a function or area, no legal form, no contact details."""
    text = line.strip()
    words = text.split()
    return (
        1 <= len(words) <= 6
        and bool(_TITLE_AREA.search(text) or text.lower().startswith(("of ", "for ", "& ", "and ")))
        and not any(ch.isdigit() for ch in text)
        and "@" not in text
        and not cl.company_in(text)
        and not (domain and (found := cl.company_by_name(text, domain)) and found[1])
        and not cl.title_in(text)
        and not cl.department_in(text)  # "IT Infrastructure Department" is a line of its own
    )


def _joined_title(first: str, second: str) -> str:
    if second.lower().startswith(("of ", "for ", "& ", "and ")) or first.lower().endswith((" of", " for", " and", "&")):
        return f"{first} {second}"
    return f"{first}, {second}"


_CELL_BREAK = re.compile(r"\s+[|｜·•—]\s+|\s{3,}|\t+")


def _signature_parts(lines: list[str]) -> list[str]:
    """Signature lines as units to read: "Leo Park · Principal · Park & Co. Design" (or |, •,
    —) and two-column layouts ("Department of Economics      Phone: 650-723-3944") split
    into parts; a name wrapped after "&" ("Preston Gates Ellis &" / "Rouvelas Meeds LLP")
    joined again."""
    joined: list[str] = []
    for line in lines:
        if joined and joined[-1].rstrip().endswith(("&", " and")) and line.strip():
            joined[-1] = f"{joined[-1].rstrip()} {line.strip()}"
        else:
            joined.append(line)
    return [part for line in joined for part in _CELL_BREAK.split(line.strip()) if part.strip()]


_COMPANY_WORD = re.compile(r"^(?:[A-Z][\w'.-]*|&|\+|and|of|the|for|de|du)$")
_COMPANY_LINE = re.compile(r"^[A-Z][\w'.-]*(?:\s+(?:[A-Z][\w'.-]*|&|\+|and|of|the|for|de|du)){0,4}$")


def _company_by_place(draft: _Draft, lines: list[str], name: str | None, domain: str | None) -> None:
    """A company written without a legal form where signatures put it: the line right under
    the name or the title line ("Daniel M. Wall" / "Latham & Watkins"). Offered below the
    prefill threshold: the place is a sign, not proof."""
    for i, line in enumerate(lines[:-1]):
        below = lines[i + 1].strip()
        if not _COMPANY_LINE.match(below):
            continue  # most lines under a name or title are no company line: test that first
        is_name = signs_as(line, name) if name else (i == 0 and looks_like_name_line(line))
        if not (is_name or cl.title_in(line) == line.strip()):
            continue
        words = below.split()
        if (
            1 <= len(words) <= 5
            and all(_COMPANY_WORD.match(w) for w in words)
            and not any(ch.isdigit() for ch in below)
            and not cl.title_in(below)
            and not cl.department_in(below)
            and not cl.country_in(below)
            and not (name and same_person(below, name))
            and not re.search(r"\b(Department|Dept|Division|Office|Group|Team|Street|Avenue|Suite|Floor|Building|E-?mail|Phone|Fax|Tel|Mobile|Cell|Web|Address|Contact)\b", below, re.I)
            and not (len(words) <= 3 and looks_like_name_line(below) and not re.search(r"[&+]", below))
        ):
            draft.put("company", below, SIGNATURE, 0.55, below)
            return


def _signature_name_override(draft: _Draft, lines: list[str], display: str) -> None:
    """A Japanese signature writes the name with its space ("山田 太郎"); that split wins over
    the guessed split of an unspaced display name, and over a romaji display name ("Tanaka
    Yuki", "Ichiro Yamamoto"): the name a Japanese rep types is the one in kanji."""
    if not has_cjk(display):
        candidates = {name: line for line in lines[:8] for name in _cjk_names(line)}
        if len(candidates) == 1:  # two kanji names: an assistant, a colleague — do not guess
            (found, line), = candidates.items()
            first, last = split_name(found)
            draft.put("first_name", first, SIGNATURE, 0.95, line)
            draft.put("last_name", last, SIGNATURE, 0.95, line)
        return
    if " " in display.strip():
        return
    for line in lines[:8]:
        for part in _cjk_names(line):
            if same_person(part, display):
                first, last = split_name(part)
                draft.put("first_name", first, SIGNATURE, 0.97, line)
                draft.put("last_name", last, SIGNATURE, 0.97, line)
                return


def _cjk_names(line: str) -> list[str]:
    """The spaced kanji names among the parts of a signature line: "山本 一郎 / Ichiro
    Yamamoto" and "代表取締役社長　木村 誠" give 山本 一郎 and 木村 誠; titles, departments,
    companies do not count."""
    out: list[str] = []
    if not has_cjk(line):
        return out
    for part in re.split(r"[\s　]{2,}|[|｜/／]", line):
        title = cl.title_in(part)
        if title and part.strip().startswith(title):  # a title written before the name
            part = part.strip()[len(title) :]
        name = clean_display(part.strip().replace("　", " "))  # "木下 葵（株式会社あおい企画）" is 木下 葵
        if " " in name and has_cjk(name) and looks_like_name_line(name) and not (cl.title_in(name) or cl.department_in(name) or cl.company_in(name)):
            out.append(name)
    return out


_FORWARD_SUBJECT = re.compile(r"^\s*(?:(?:re|aw|sv)\s*:\s*)*(?:fw|fwd|fwd?\.|tr|wg|rv|転送|転送\s*:)\s*[:：]?", re.I)
_SHORT_NOTE_WORDS = 12  # "FYI", "Please handle", "Per my voicemail." — not a message of one's own
MAX_ALTERNATIVES = 3


@dataclass(frozen=True)
class _Person:
    """Someone a draft can be about: their header name and address, their own text (the
    zone under their header), and the texts of their earlier messages quoted further down."""

    role: str
    display: str
    email: str
    text: str
    line: str | None
    evidence: tuple[str, ...]
    earlier: tuple[str, ...] = ()


def own_domain(email: str | None, ctx: ReadContext) -> bool:
    """Whether an address is the reader's organisation's (a subdomain counts: ect.enron.com)."""
    if not email:
        return False
    domain = email_domain(email)
    return any(domain == d or domain.endswith("." + d) for d in ctx.own_domains if d)


def _words(text: str, sender: _Person) -> int:
    """Words of a forwarder's note, not counting their name signed under it."""
    names = {w.lower() for w in re.split(r"[\s,]+", sender.display) if w} | {sender.email.split("@")[0].lower()}
    return sum(1 for w in re.findall(r"[^\W\d_]+", text) if w.lower() not in names)


def _same(other_email: str | None, other_name: str, email: str, display: str) -> bool:
    """Whether a quoted header names the same person: the same address, or — for a header
    with a name only (Outlook's "Brassfield, Morris", a Notes name) — the same full name."""
    if other_email:
        return normalise_email(other_email) == email
    a, b = split_name(other_name) if other_name else (None, None), split_name(display) if display else (None, None)
    return bool(a[0] and a[1] and a == b)


def _people(msg: ParsedMessage, segs: list[Segment], sender_email: str) -> list[_Person]:
    """The other people of the message with an address, in order: the senders of attached
    originals, then of each quoted or forwarded zone; one entry per address, their later
    zones kept as `earlier` texts."""
    found: dict[str, _Person] = {}
    for inner in msg.forwarded:
        if inner.from_ and inner.from_[0].email and inner.from_[0].email != sender_email:
            a = inner.from_[0]
            found.setdefault(a.email, _Person(FORWARDED, a.name, a.email, own_of(segments(inner.text)), f"From: {a.name} <{a.email}>" if a.name else f"From: {a.email}", ("forwarded_message",)))
    for seg in segs:
        if seg.kind == OWN or seg.person is None or not seg.person.email:
            continue
        email = normalise_email(seg.person.email) or ""
        if not email:
            continue
        if email in found:
            old = found[email]
            found[email] = _Person(old.role, old.display or seg.person.name, email, old.text, old.line, old.evidence, (*old.earlier, seg.body))
            continue
        role = FORWARDED if seg.kind == FORWARDED_ZONE else QUOTED
        found[email] = _Person(role, seg.person.name, email, seg.body, seg.person.line, ("forwarded_message",) if role == FORWARDED else ("quoted_reply",))
    return [p for e, p in found.items() if e != sender_email]


def extract_lead(msg: ParsedMessage, ctx: ReadContext) -> LeadDraft:
    """The draft of the person the message is about, with the other people of the message
    as alternatives. Every field of a draft comes from one person: their header and the
    zone of the body under it (or their own earlier messages quoted below)."""
    forward_hint = bool(_FORWARD_SUBJECT.match(msg.subject or ""))
    segs = segments(msg.text, forward_hint=forward_hint)
    own = own_of(segs)
    display, email = (msg.from_[0].name, msg.from_[0].email) if msg.from_ else ("", "")

    form = form_fields(own)
    if is_form(form) and (is_noreply(email) or automated_reasons(msg) or normalise_email(form.get("email", "")) != email):
        collected = _Draft()
        _read_form(collected, form, _region(normalise_email(form.get("email", "")), ctx))
        email_field = collected.fields.get("email")
        submitter = DraftPerson(SUBMITTER, form.get("name") or None, email_field.value if email_field else None, ("form_submitter",), None)
        return LeadDraft(fields=collected.fields, warnings=(), person=submitter)

    sender_line = (f"From: {display} <{email}>" if display else f"From: {email}") if email else None
    earlier = tuple(s.body for s in segs if s.kind != OWN and s.person and _same(s.person.email, s.person.name, email, display))
    sender = _Person(SENDER, display, email, own, sender_line, ("from_header",), earlier)
    others = _people(msg, segs, email)
    chosen, alternatives = sender, others
    forwarded = msg.forwarded or forward_hint or any(s.kind == FORWARDED_ZONE for s in segs)
    if email and own_domain(email, ctx) and forwarded and _words(own, sender) <= _SHORT_NOTE_WORDS:
        # A colleague's forward of someone else's mail with no message of their own: the
        # lead a rep wants is the forwarded person, never the colleague.
        original = next((p for p in others if p.role == FORWARDED and not own_domain(p.email, ctx)), None)
        if original is not None:
            evidence = ("sender_in_own_domain", "forwarded_message", "short_note", "forwarded_from_outside")
            chosen = _Person(FORWARDED, original.display, original.email, original.text, original.line, evidence, original.earlier)
            alternatives = [sender, *[p for p in others if p is not original]]
    # The other people a rep may want instead: the sender, or anyone outside the organisation.
    offered = [p for p in alternatives if p.email and p.email != ctx.user_email and (p.role == SENDER or not own_domain(p.email, ctx))]
    lead = _read_person(chosen, msg, ctx)
    return replace(lead, alternatives=tuple(_read_person(p, msg, ctx) for p in offered[:MAX_ALTERNATIVES]))


def _read_person(person: _Person, msg: ParsedMessage, ctx: ReadContext) -> LeadDraft:
    draft = _Draft()
    warnings: list[str] = []
    display, email = _person_name(person.display, person.email), person.email
    region = _region(email, ctx)
    if person.role == SENDER:
        if automated_reasons(msg):
            warnings.append("automated_sender")
        if not email:
            warnings.append("no_sender")
    if email:
        draft.put("email", email, HEADER, 1.0, person.line)
    first, last = split_name(display) if display else (None, None)
    first, last = family_first(first, last, email) if email else (first, last)
    if not first and not last and email:
        first, last = from_local_part(email)
        draft.put("first_name", first, HEADER, 0.6, email)
        draft.put("last_name", last, HEADER, 0.6, email)
    else:
        draft.put("first_name", first, HEADER, 0.9, display)
        draft.put("last_name", last, HEADER, 0.9, display)

    domain = email_domain(email) if email and not is_free_mail(email) else None
    header_name = display or " ".join(p for p in from_local_part(email) if p) if email else display
    lines, _how = signature_lines(person.text, header_name, whole_body=False)
    if _someone_elses(lines, header_name, email):
        lines = []
    _read_signature(draft, lines, display or None, region, ctx.own_domains, domain)
    if display:
        _signature_name_override(draft, lines, display)
    _fuller_signed_name(draft, lines)
    if "first_name" not in draft.fields:
        first, family, line = _signed_name(person.text)
        draft.put("first_name", first, SIGNATURE, 0.5, line)
        if "last_name" not in draft.fields:
            draft.put("last_name", family, SIGNATURE, 0.5, line)
    for text in person.earlier:
        if all(f in draft.fields for f in ("phone", "company", "title")):
            break
        # Their own earlier message quoted below: its signature fills what this one lacks.
        earlier = _Draft()
        earlier_lines, _ = signature_lines(text, header_name, whole_body=False)
        _read_signature(earlier, earlier_lines, display or None, region, ctx.own_domains, domain)
        for name, value in earlier.fields.items():
            if name not in draft.fields and name not in ("first_name", "last_name"):
                draft.fields[name] = DraftField(value.value, value.source, round(value.confidence - 0.1, 2), value.line)
    company_note = re.search(r"[(（]([^()（）]{2,60})[)）]", display or "")
    if company_note and "company" not in draft.fields:  # "Mark Davis (Pinnacle Roofing)"
        found = cl.company_in(company_note.group(1)) or (cl.company_by_name(company_note.group(1), domain) or (None,))[0]
        draft.put("company", found, HEADER, 0.7, display)
    if "company" not in draft.fields:
        m = _GREETING_COMPANY.search(cl.expand_abbreviations(person.text[:600]))
        if m:
            draft.put("company", m.group(1), BODY, 0.75, m.group(0))
    if email and not is_free_mail(email) and not own_domain(email, ctx) and _site_is_theirs(email, draft):
        draft.put("website", f"https://{site_of(email_domain(email))}", DOMAIN, 0.5, email)
    who = DraftPerson(person.role, clean_display(display) or None, email or None, person.evidence, person.line)
    return LeadDraft(fields=draft.fields, warnings=tuple(warnings), person=who)


def _person_name(display: str, email: str) -> str:
    """The header's display name when it names a person: not the address's local part
    again ("JBennett" <jbennett@…>, "vkaminski"), not initials ("MBD")."""
    text = clean_display(display) if display else ""
    if not text:
        return ""
    squashed = re.sub(r"[^a-z]", "", text.lower())
    local = re.sub(r"[^a-z]", "", email.split("@")[0].lower()) if email else ""
    if " " not in text.strip() and "," not in text and (squashed == local or (text.isupper() and len(text) <= 4)):
        return ""
    return display


_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _someone_elses(lines: list[str], name: str, email: str) -> bool:
    """A block of someone else's details pasted as the text ("JOSEPH KOOTHRAPPALLY / (713)
    853-6819 / jkoothr@…"): it names another address and opens with another person's name."""
    if not lines or not email:
        return False
    local = email.split("@")[0].lower()
    others = [a for ln in lines if "@" in ln for a in _ADDRESS.findall(ln) if a.split("@")[0].lower() != local]
    first = lines[0]
    return bool(others) and looks_like_name_line(first.title() if first.isupper() else first) and not (name and same_person(first, name))


def _fuller_signed_name(draft: _Draft, lines: list[str]) -> None:
    """ "Daniel M. Wall" signed under "Wall, Dan": the signature's fuller form of the same
    first name wins over the header's short one (never a different person's name)."""
    first, last = draft.fields.get("first_name"), draft.fields.get("last_name")
    if not first or not last or first.source != HEADER:
        return
    family = last.value.lower()
    for line in lines[:4]:
        if family not in line.lower():
            continue
        candidate = re.split(r"\s*[|｜,]\s*", line)[0]
        if not looks_like_name_line(candidate):
            continue
        given, family_name = split_name(candidate)
        if given and family_name and family_name.lower() == family and given.lower() != first.value.lower() and len(given) > len(first.value) and given[0].lower() == first.value[0].lower():
            draft.put("first_name", given, SIGNATURE, 0.92, line)
            return


_LONE_NAME = re.compile(r"^\s*([A-Z][a-z]{1,14})\s*$")


def _signed_name(text: str) -> tuple[str | None, str | None, str]:
    """(first, last, line) of a name alone on the last line of the writer's text ("Jeanne
    Bennett", "Rob"), when neither the header nor the signature gave a name."""
    last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
    m = _LONE_NAME.match(last)
    if m:
        return (m.group(1), None, last) if m.group(1).lower() not in _NOT_NAMES else (None, None, last)
    if 2 <= len(last.split()) <= 3 and looks_like_name_line(last) and not cl.company_by_name(last, None) and not cl.title_in(last):
        first, family = split_name(last)
        return first, family, last
    return None, None, last


_NOT_NAMES = frozenset("thanks thank cheers regards best yes no ok okay fyi sorry hi hello dear all team".split())


def _site_is_theirs(email: str, draft: _Draft) -> bool:
    """Whether the mail domain is the person's organisation's site: not a mailbox service
    ("…mail…" in its name: onlinemailbox.net), and not contradicted by the company their
    signature names ("Edson + Modisette" writing from ns.net)."""
    label = site_of(email_domain(email)).split(".")[0]
    if "mail" in label:
        return False
    company = draft.fields.get("company")
    if company is None or company.source != SIGNATURE or has_cjk(company.value):
        return True  # a kanji name says nothing about a romanised domain
    squashed = re.sub(r"[^a-z0-9]", "", company.value.lower().replace("&", "and"))
    initials = "".join(w[0] for w in re.findall(r"[A-Za-z]+", company.value)).lower()
    parts = [p for p in label.split("-") if len(p) >= 3]
    return len(label) < 3 or any(p[:5] in squashed for p in parts) or label in initials or initials.startswith(label)


# Second-level labels under which a country's registrations sit (example.co.jp, x.com.au).
_SECOND_LEVEL = frozenset("co com ac ne or go gov edu net org lg ad ed gr mil nom ltd plc sch".split())


def site_of(domain: str) -> str:
    """The organisation's site for a mail domain: mail hosts under it dropped
    (ms1.lga2.nytimes.com → nytimes.com, zia.stanford.edu → stanford.edu), a country's
    second level kept (example.co.jp)."""
    labels = domain.lower().split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])
