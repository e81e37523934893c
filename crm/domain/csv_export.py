"""Every CSV the product writes goes through `csv_text`, so that a cell holding user or
admin text never opens in a spreadsheet as a formula (CSV injection: `=HYPERLINK(…)`,
`@SUM(…)`, `+cmd|…`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

# What makes Excel, LibreOffice and Google Sheets read a cell as a formula, in ASCII and
# in the full-width forms a Japanese IME types.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def safe_cell(value: object) -> object:
    """Text that a spreadsheet would evaluate gets a leading apostrophe (shown, not run);
    numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return out.getvalue()
