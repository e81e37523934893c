"""CSV import of leads: a header row mapped to lead fields, UTF-8 (with or without BOM) or
Shift_JIS (Excel in Japan), duplicates against the database and within the file skipped or
merged, every rejected row reported with its line and reason, all-or-nothing or row by row.

Rows stream through in batches (memory stays flat); the organisation's unique keys are read
once, so duplicate checks cost no query per row; each batch is one bulk insert (COPY on
PostgreSQL).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.domain.csv_export import csv_text
from crm.domain.drafts import LEAD_FIELDS
from crm.domain.errors import InvalidInput
from crm.domain.principal import Principal
from crm.domain.rules import normalise_email, normalise_unique_value
from crm.services import custom_fields
from crm.services.leads import clean_values, fill_empty_fields, unique_fields
from crm.store import bulk
from crm.store.base import utcnow
from crm.store.custom_fields import CustomField
from crm.store.models import Lead, LeadUniqueKey, lead_search_key

BATCH = 1000
# Header names people use, in both languages, for each lead field.
HEADER_ALIASES = {
    "first_name": ("first name", "firstname", "given name", "名"), "last_name": ("last name", "lastname", "surname", "姓"),
    "email": ("email", "e-mail", "mail", "メール", "メールアドレス"), "company": ("company", "company name", "会社名", "会社", "企業名"),
    "title": ("title", "job title", "役職"), "phone": ("phone", "tel", "電話", "電話番号"), "mobile": ("mobile", "cell", "携帯", "携帯電話"),
    "website": ("website", "url", "web", "ホームページ"), "street": ("street", "address", "住所", "番地"), "city": ("city", "市区町村"),
    "state": ("state", "prefecture", "都道府県"), "zip_code": ("zip", "zip code", "postal code", "郵便番号"), "country": ("country", "国"),
    "description": ("description", "notes", "memo", "備考", "説明"),
}


@dataclass
class ImportReport:
    created: int = 0
    merged: int = 0
    skipped: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    committed: bool = True

    def as_dict(self) -> dict[str, object]:
        return {"created": self.created, "merged": self.merged, "skipped": self.skipped, "rejected": len(self.rejected), "committed": self.committed}

    def errors_csv(self) -> str:
        return csv_text([("line", "reason"), *self.rejected])


def decode(data: bytes) -> str:
    """UTF-8 with or without BOM, else Shift_JIS as Excel writes it (CP932)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("cp932")
        except UnicodeDecodeError:
            raise InvalidInput("the file is neither UTF-8 nor Shift_JIS", code="bad_encoding") from None


def header_mapping(header: list[str], explicit: Mapping[str, str] | None = None) -> dict[int, str]:
    """Column index → lead field, from explicit `column=field` pairs, else the usual names."""
    aliases = {alias: name for name, names in HEADER_ALIASES.items() for alias in (*names, name)}
    mapping: dict[int, str] = {}
    for i, column in enumerate(header):
        key = column.strip().lstrip("\ufeff")
        target = (explicit or {}).get(key) or aliases.get(key.lower())
        if target:
            if target not in LEAD_FIELDS and not target.startswith("custom:"):
                raise InvalidInput(f"unknown lead field {target!r} in the mapping")
            mapping[i] = target
    if not mapping:
        raise InvalidInput("no column of the header maps to a lead field", code="no_mapping")
    return mapping


def rows(text: str, explicit: Mapping[str, str] | None = None) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(line number, lead values) per data row."""
    reader = csv.reader(io.StringIO(text))
    header = next(_parsed(reader), None)
    if header is None:
        raise InvalidInput("the file is empty", code="empty_file")
    mapping = header_mapping(header, explicit)
    for row in _parsed(reader):
        if not any(cell.strip() for cell in row):
            continue
        yield reader.line_num, {name: (row[i] if i < len(row) else None) for i, name in mapping.items()}


def _parsed(reader: Any) -> Iterator[list[str]]:
    """The reader's rows; a file the csv module cannot read (a field over its 131,072
    characters, a quote left open) is refused whole with its line: after such an error the
    reader may be inside a quoted field, so no later row could be trusted."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInput(f"line {reader.line_num}: not readable as CSV ({exc})", code="bad_csv") from None
        yield row


def _check_custom(custom: dict[str, str], defined: Mapping[str, CustomField]) -> str | None:
    unknown = set(custom) - set(defined)
    if unknown:
        return f"unknown custom field {sorted(unknown)[0]!r}"
    missing = [f.label for f in defined.values() if f.required and not custom.get(f.key)]
    if missing:
        return f"{missing[0]} is required"
    for key, value in custom.items():
        try:
            custom_fields.typed_value(defined[key], value)
        except InvalidInput as exc:
            return exc.detail
    return None


def _check(values: dict[str, str | None]) -> str | None:
    """Why a row of checked values cannot be a lead, or None."""
    if not any(values.get(f) for f in ("last_name", "first_name", "email", "company")):
        return "a lead needs at least a name, an email or a company"
    return None


def import_leads(
    session: Session,
    principal: Principal,
    rows_in: Iterable[tuple[int, Mapping[str, str | None]]],
    *,
    on_duplicate: str = "skip",
    all_or_nothing: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import rows. on_duplicate: "skip" or "merge" (fill the existing lead's empty fields).
    With all_or_nothing a single rejected row rolls everything back (the report says which)."""
    if on_duplicate not in ("skip", "merge"):
        raise InvalidInput("on_duplicate must be skip or merge")
    org = principal.organisation_id
    unique = sorted(unique_fields(session, org))
    known: dict[tuple[str, str], int] = {(f, v): lead for f, v, lead in session.execute(select(LeadUniqueKey.field, LeadUniqueKey.value_norm, LeadUniqueKey.lead_id).where(LeadUniqueKey.organisation_id == org))}
    report = ImportReport()
    outer = session.begin_nested()
    batch: list[tuple[dict[str, str | None], list[tuple[str, str]]]] = []
    pending: dict[tuple[str, str], dict[str, str | None]] = {}  # keys of rows not inserted yet
    done = 0

    def flush_batch() -> None:
        if not batch:
            return
        now = utcnow()
        leads = [
            dict(v, organisation_id=org, owner_id=principal.user_id, created_by_id=principal.user_id, source="csv_import", status="open", email_norm=normalise_email(v["email"]) if v.get("email") else None, created_at=now, updated_at=now)
            for v, _k in batch
        ]
        for row in leads:
            row["search_key"] = lead_search_key(row)  # a bulk insert passes no ORM listener
        ids = bulk.insert_rows(session, Lead.__table__, leads, returning_ids=True)
        keys = [{"organisation_id": org, "lead_id": lead_id, "field": f, "value_norm": v} for lead_id, (_vals, ks) in zip(ids, batch, strict=True) for f, v in ks]
        bulk.insert_rows(session, LeadUniqueKey.__table__, keys)
        for lead_id, (_vals, ks) in zip(ids, batch, strict=True):
            for k in ks:
                known[k] = lead_id
        for index, custom in custom_later:
            custom_fields.set_values(session, principal, ids[index], custom)
        custom_later.clear()
        report.created += len(batch)
        batch.clear()
        pending.clear()

    defined = custom_fields.fields(session, principal)
    custom_later: list[tuple[int, dict[str, str]]] = []  # (index in batch, custom values)

    for line, raw in rows_in:
        custom = {k[7:]: (v or "").strip() for k, v in raw.items() if k.startswith("custom:") and (v or "").strip()}
        try:  # the same check as every other way a lead is written
            values = clean_values({k: v for k, v in raw.items() if k in LEAD_FIELDS})
            reason = _check(values) or _check_custom(custom, defined)
        except InvalidInput as exc:
            values, reason = {}, exc.detail
        if reason:
            report.rejected.append((line, reason))
        else:
            keys = [(f, n) for f in unique if (n := normalise_unique_value(f, values.get(f)))]
            existing = next((known[k] for k in keys if k in known), None)
            waiting = next((pending[k] for k in keys if k in pending), None)
            if existing is None and waiting is None:
                if custom:
                    custom_later.append((len(batch), custom))
                batch.append((values, keys))
                pending.update((k, values) for k in keys)
            elif on_duplicate == "skip":
                report.skipped += 1
            elif waiting is not None:  # an earlier row of this file, not inserted yet
                waiting.update({f: v for f, v in values.items() if v and not waiting.get(f) and f not in unique})
                report.merged += 1
            else:
                fill_empty_fields(session, principal, session.get(Lead, existing), values)  # type: ignore[arg-type]
                report.merged += 1
        done += 1
        if len(batch) >= BATCH:
            flush_batch()
        if progress and done % 500 == 0:
            progress(done)
    flush_batch()
    if progress:
        progress(done)
    if all_or_nothing and report.rejected:
        outer.rollback()
        report.committed = False
        report.created = report.merged = 0
    else:
        outer.commit()
    session.flush()
    return report
