"""Business rules that need no I/O: email normalisation, free-mail domains, dedupe keys."""

from __future__ import annotations

import functools
import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

# Consumer mail providers: their domain says nothing about the sender's company.
FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    """
    gmail.com googlemail.com yahoo.com yahoo.co.jp ymail.com rocketmail.com outlook.com
    outlook.jp hotmail.com hotmail.co.jp hotmail.co.uk live.com live.jp msn.com icloud.com
    me.com mac.com aol.com gmx.com gmx.de gmx.net web.de mail.com protonmail.com proton.me
    pm.me zoho.com zohomail.com yandex.com yandex.ru mail.ru qq.com 163.com 126.com
    naver.com daum.net hanmail.net docomo.ne.jp ezweb.ne.jp au.com softbank.ne.jp
    i.softbank.jp ymobile.ne.jp disney.ne.jp nifty.com nifty.ne.jp biglobe.ne.jp
    ocn.ne.jp so-net.ne.jp plala.or.jp excite.co.jp infoseek.jp livedoor.com
    goo.jp dion.ne.jp hi-ho.ne.jp rakuten.jp orange.fr free.fr laposte.net wanadoo.fr
    libero.it tiscali.it btinternet.com sky.com comcast.net verizon.net att.net
    sbcglobal.net cox.net earthlink.net fastmail.com fastmail.fm tutanota.com hey.com
    juno.com netzero.net rr.com charter.net bellsouth.net mindspring.com prodigy.net compuserve.com
    """.split()
)

_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+$")


@functools.lru_cache(maxsize=4096)  # an import asks twice per row: for its unique key and its column
def normalise_email(address: str) -> str | None:
    """The comparable form of an address: NFKC, trimmed, lower-cased, IDN domain as
    punycode. None when it is not an address at all.

    Lower-casing the local part is not what RFC 5321 promises, but no business mail
    system distinguishes case there, and a CRM that did would make duplicates.
    """
    value = unicodedata.normalize("NFKC", address).strip().strip("<>").strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    if value.count("@") != 1:
        return None
    local, domain = value.rsplit("@", 1)
    domain = domain.strip().rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return None
    result = f"{local.strip().lower()}@{domain}"
    return result if _EMAIL.match(result) else None


# A plain ASCII dot-atom local part: email-validator accepts it unchanged when it fits in 64
# characters. Anything else (quotes, non-ASCII, odd dots) takes the full validator.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> str:
    return validate_email(f"x@{domain}", check_deliverability=False).domain


def checked_email(value: str) -> str:
    """The address as email-validator normalises it (domain lower-cased, IDN as Unicode), or
    EmailNotValidError. Deliverability is not checked: no DNS lookups while a user waits.

    The full validation costs ~40 µs, most of it the domain's per-character IDNA checks; a
    CSV of 100,000 rows repeats a few thousand domains, so the domain's verdict is cached and
    a plain local part is checked by one pattern. The result is the validator's own."""
    local, _, domain = value.rpartition("@")
    # ASCII and well under 254 characters: no length rule of the validator can apply.
    if value.isascii() and len(value) <= 200 and 0 < len(local) <= 64 and _PLAIN_LOCAL.fullmatch(local):
        try:
            return f"{local}@{_checked_domain(domain)}"
        except EmailNotValidError:
            pass  # the full validator says why, about the whole address
    return validate_email(value, check_deliverability=False).normalized


def email_domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower()


def is_free_mail(address_or_domain: str) -> bool:
    labels = email_domain(address_or_domain).split(".")
    return any(".".join(labels[i:]) in FREE_MAIL_DOMAINS for i in range(len(labels)))  # the domain or a parent


def normalise_unique_value(field: str, value: str | None) -> str | None:
    """The key a unique lead field is compared by (so 'ACME Inc.' and 'acme inc' clash).

    Emails by normalise_email, phones by their digits, anything else by NFKC, case-folded,
    whitespace collapsed. None/blank values never clash with anything.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if field == "email":
        return normalise_email(value) or value.lower()
    if field in ("phone", "mobile"):
        digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", value))
        return digits or None
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", value)).casefold()
