"""CSV import of leads: a header row mapped to lead fields, UTF-8 (with or without BOM) or
Shift_JIS (Excel in Japan), duplicates against the database and within the file skipped or
merged, every rejected row reported with its line and reason, all-or-nothing or row by row.

Rows stream from the file through in batches (memory stays flat whatever the file's size):
each batch looks up its own unique keys in one query and is one bulk insert (COPY on
PostgreSQL). `Importer.batch` is the unit the background job (crm.services.import_jobs)
commits at a time; it returns the ids of the leads it created.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.domain.csv_export import csv_text
from crm.domain.drafts import LEAD_FIELDS
from crm.domain.errors import InvalidInput
from crm.domain.principal import Principal
from crm.domain.rules import normalise_email, normalise_unique_value
from crm.services import custom_fields, rules
from crm.services.leads import clean_values, fill_empty_fields, unique_fields
from crm.store import bulk
from crm.store.base import utcnow
from crm.store.custom_fields import CustomField
from crm.store.models import Lead, LeadUniqueKey, lead_search_key

BATCH = 500  # rows per insert, and per commit of an import job
CHUNK = 1 << 20  # bytes read at a time when a file's encoding is checked
Row = tuple[int, Mapping[str, str | None]]  # (line number, lead values)
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
    lead_ids: list[int] = field(default_factory=list)  # the leads created, for the workflow rules
    rules: dict[int, dict[str, int]] = field(default_factory=dict)  # rule id -> what it queued or skipped

    def as_dict(self) -> dict[str, object]:
        return {"created": self.created, "merged": self.merged, "skipped": self.skipped, "rejected": len(self.rejected), "committed": self.committed, "rules": {str(k): v for k, v in self.rules.items()}}

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


def file_encoding(path: Path) -> str:
    """The encoding `decode` would choose for the file, read a chunk at a time (a file of any
    size is never held whole): "utf-8-sig", "utf-8" or "cp932"."""
    with path.open("rb") as f:
        if f.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
            return "utf-8-sig"
    for encoding in ("utf-8", "cp932"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding
    raise InvalidInput("the file is neither UTF-8 nor Shift_JIS", code="bad_encoding")


def open_text(path: Path, encoding: str) -> IO[str]:
    """The file as text for `rows` (newline="" as the csv module wants)."""
    return path.open(encoding=encoding, newline="")


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


def rows(text: str | IO[str], explicit: Mapping[str, str] | None = None) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(line number, lead values) per data row, from a string or a text stream."""
    reader = csv.reader(io.StringIO(text) if isinstance(text, str) else text)
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


def batches(rows_in: Iterable[Row], size: int = BATCH) -> Iterator[list[Row]]:
    it = iter(rows_in)
    while batch := list(islice(it, size)):
        yield batch


class Importer:
    """The rows of one import, a batch at a time, under the rules read once at the start:
    the organisation's unique fields and custom fields. Duplicates are looked up per batch
    in the database (never the whole organisation's keys in memory), so a batch sees every
    lead committed before it: rows of earlier batches, and of an earlier run of the same
    file that died halfway."""

    def __init__(self, session: Session, principal: Principal, on_duplicate: str = "skip") -> None:
        if on_duplicate not in ("skip", "merge"):
            raise InvalidInput("on_duplicate must be skip or merge")
        self.principal = principal
        self.on_duplicate = on_duplicate
        self.unique = sorted(unique_fields(session, principal.organisation_id))
        self.defined = custom_fields.fields(session, principal)

    def check(self, raw: Mapping[str, str | None]) -> tuple[dict[str, str | None], dict[str, str], str | None]:
        """(clean values, custom values, why the row cannot be a lead or None)."""
        custom = {k[7:]: (v or "").strip() for k, v in raw.items() if k.startswith("custom:") and (v or "").strip()}
        try:  # the same check as every other way a lead is written
            values = clean_values({k: v for k, v in raw.items() if k in LEAD_FIELDS})
            reason = _check(values) or _check_custom(custom, self.defined)
        except InvalidInput as exc:
            values, reason = {}, exc.detail
        return values, custom, reason

    def rejected(self, rows_in: Iterable[Row]) -> list[tuple[int, str]]:
        """The rows that would be rejected, without writing anything (all or nothing)."""
        return [(line, reason) for line, raw in rows_in if (reason := self.check(raw)[2])]

    def batch(self, session: Session, rows_in: Sequence[Row], report: ImportReport) -> list[int]:
        """Import one batch (flushed, not committed); counts go to `report`. Returns the ids of
        the leads created, in the order of their rows."""
        org, principal = self.principal.organisation_id, self.principal
        checked = []
        for line, raw in rows_in:
            values, custom, reason = self.check(raw)
            if reason:
                report.rejected.append((line, reason))
            else:
                checked.append((values, custom, [(f, n) for f in self.unique if (n := normalise_unique_value(f, values.get(f)))]))
        wanted = {k for _v, _c, keys in checked for k in keys}
        known: dict[tuple[str, str], int] = {}
        for name in sorted({f for f, _v in wanted}):  # per field: the unique index (organisation, field, value) answers it
            query = select(LeadUniqueKey.value_norm, LeadUniqueKey.lead_id).where(
                LeadUniqueKey.organisation_id == org, LeadUniqueKey.field == name, LeadUniqueKey.value_norm.in_(sorted(v for f, v in wanted if f == name))
            )
            known.update(((name, v), lead) for v, lead in session.execute(query))
        batch: list[tuple[dict[str, str | None], list[tuple[str, str]]]] = []
        pending: dict[tuple[str, str], dict[str, str | None]] = {}  # keys of rows not inserted yet
        custom_later: list[tuple[int, dict[str, str]]] = []  # (index in batch, custom values)
        for values, custom, keys in checked:
            existing = next((known[k] for k in keys if k in known), None)
            waiting = next((pending[k] for k in keys if k in pending), None)
            if existing is None and waiting is None:
                if custom:
                    custom_later.append((len(batch), custom))
                batch.append((values, keys))
                pending.update((k, values) for k in keys)
            elif self.on_duplicate == "skip":
                report.skipped += 1
            elif waiting is not None:  # an earlier row of this batch, not inserted yet
                waiting.update({f: v for f, v in values.items() if v and not waiting.get(f) and f not in self.unique})
                report.merged += 1
            else:
                fill_empty_fields(session, principal, session.get(Lead, existing), values)  # type: ignore[arg-type]
                report.merged += 1
        if not batch:
            session.flush()
            return []
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
        report.lead_ids.extend(ids)
        for index, custom in custom_later:
            custom_fields.set_values(session, principal, ids[index], custom)
        report.created += len(batch)
        session.flush()
        return ids


def import_leads(
    session: Session,
    principal: Principal,
    rows_in: Iterable[Row],
    *,
    on_duplicate: str = "skip",
    all_or_nothing: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import rows in one transaction (the caller's; the CLI). on_duplicate: "skip" or
    "merge" (fill the existing lead's empty fields). With all_or_nothing a single rejected
    row rolls everything back (the report says which)."""
    importer = Importer(session, principal, on_duplicate)
    report = ImportReport()
    outer = session.begin_nested()
    done = 0
    for batch in batches(rows_in):
        importer.batch(session, batch, report)
        done += len(batch)
        if progress:
            progress(done)
    if progress and not done:
        progress(0)
    if all_or_nothing and report.rejected:
        outer.rollback()
        report.committed = False
        report.created = report.merged = 0
        report.lead_ids.clear()
    else:
        outer.commit()
    session.flush()
    # The rules run on the batch of new leads as a whole (one query per rule), after their
    # custom values are in: conditions may be on them.
    report.rules = rules.on_leads_created(session, principal, report.lead_ids, "csv_import").per_rule
    return report
