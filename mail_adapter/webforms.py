"""Web-form notifications ("お問い合わせがありました" from a no-reply sender): the person who
filled in the form is the lead, read from its `label: value` lines."""

from __future__ import annotations

import re
import unicodedata

LABELS: dict[str, tuple[str, ...]] = {
    "company": ("会社名", "企業名", "貴社名", "御社名", "法人名", "団体名", "組織名", "company", "company name", "organization", "organisation"),
    "name": ("氏名", "お名前", "名前", "ご氏名", "ご担当者名", "担当者名", "ご担当者", "name", "full name", "your name", "contact name"),
    "last_name": ("姓", "last name", "surname", "family name"),
    "first_name": ("名", "first name", "given name"),
    "email": ("メールアドレス", "メール", "e-mail", "email", "e-mail address", "email address", "mail"),
    "phone": ("電話番号", "電話", "tel", "phone", "phone number", "telephone", "連絡先"),
    "mobile": ("携帯電話番号", "携帯番号", "携帯電話", "mobile", "mobile phone"),
    "title": ("役職", "役職名", "title", "job title", "position"),
    "department": ("部署", "部署名", "所属", "department"),
    "zip_code": ("郵便番号", "zip", "zip code", "postal code", "postcode"),
    "address": ("住所", "ご住所", "所在地", "address"),
    "website": ("url", "website", "web site", "ホームページ", "会社url", "webサイト"),
    "country": ("国", "country"),
    "city": ("city", "市区町村"),
    "state": ("state", "都道府県", "prefecture"),
    "message": ("お問い合わせ内容", "内容", "message", "comments", "ご質問", "ご用件"),
}
MAX_LINES = 300  # a notification's fields come first; a newsletter's thousands of lines are no form
_LOOKUP = {label: field for field, labels in LABELS.items() for label in labels}
_SEPARATOR = re.compile(r"[:：】\]]")
_LINE = re.compile(r"^\s*[■□●◆◇・*\-【\[]?\s*(?P<label>[^:：】\]]{1,20}?)\s*(?:[】\]]\s*[:：]?|[:：])\s*(?P<value>.*)$")
_LABEL_ONLY = re.compile(r"^\s*[■□●◆◇・*\-【\[]?\s*(?P<label>[^:：】\]]{1,20}?)\s*[】\]]?\s*$")


def _field(label: str) -> str | None:
    return _LOOKUP.get(" ".join(label.split()).lower().rstrip("*※ "))


def form_fields(text: str) -> dict[str, str]:
    """Field → value of every recognised `label: value` (or label line, value line) pair."""
    found: dict[str, str] = {}
    head = text.splitlines()[:MAX_LINES]
    # ASCII is its own NFKC form: only other text is normalised, line by line.
    lines = [ln.strip() for ln in head] if text.isascii() else [unicodedata.normalize("NFKC", ln).strip() for ln in head]
    for i, line in enumerate(lines):
        # Only a line with a separator, or a short line (a label above its value), can be a label.
        if len(line) > 20 and not _SEPARATOR.search(line, 0, 24):
            continue
        m = _LINE.match(line) or _LABEL_ONLY.match(line)
        if not m:
            continue
        field = _field(m.group("label"))
        if not field or field in found:
            continue
        if m.re is _LABEL_ONLY and m.group("label")[:1].islower():
            continue  # "company" alone on a line is a wrapped sentence, not a form label
        value = (m.groupdict().get("value") or "").strip()
        if not value and m.re is _LABEL_ONLY and i + 1 < len(lines) and lines[i + 1]:
            following = _LINE.match(lines[i + 1]) or _LABEL_ONLY.match(lines[i + 1])
            if not (following and _field(following.group("label"))):
                value = lines[i + 1]
        if value:
            found[field] = value
    return found


def is_form(fields: dict[str, str]) -> bool:
    """A notification carries several person fields, an email among them."""
    person = {"company", "name", "last_name", "first_name", "email", "phone"} & set(fields)
    return "email" in fields and len(person) >= 3
