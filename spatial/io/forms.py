"""Writing a filled form (:class:`spatial.store.forms.FormResult`) as the spreadsheet a department asked for.

* XLSX (openpyxl): sheet 1 the rows under a header row of Chinese column names (frozen, widths to fit), with
  one further sheet ``汇总`` counting the rows of each group (grid, community or building) and in total. Text
  cells stay text: a value starting with ``=`` is never written as a formula.
* CSV: UTF-8 *with* a byte-order mark (Excel then opens Chinese headers right), comma-separated, header row
  first; a text value starting with ``=``, ``+``, ``-`` or ``@`` is prefixed with ``'`` so a spreadsheet does
  not run it (CSV injection).

Dates are written as ISO dates (YYYY-MM-DD); missing values as empty cells.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.utils import get_column_letter

from spatial.errors import InvalidInput
from spatial.store.forms import FormResult

FORMATS = {"xlsx": ".xlsx", "csv": ".csv"}
MEDIA_TYPES = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
               "csv": "text/csv; charset=utf-8"}
_RISKY = ("=", "+", "-", "@")


def _sheet_title(title: str) -> str:
    cleaned = "".join("_" if ch in "[]:*?/\\" else ch for ch in title)
    return cleaned[:31] or "表"


def write_xlsx(form: FormResult, path: Path) -> Path:
    """``form`` as an XLSX workbook at ``path``."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = _sheet_title(form.template.title)
    _fill(sheet, form.headers, form.rows)
    if form.groups:
        summary = book.create_sheet("汇总")
        summary.append([f"{form.group_label}编码", form.group_label, "行数"])
        for code, name, count in form.groups:
            summary.append([code, name, count])
        summary.append(["合计", None, len(form.rows)])
    book.save(path)
    return path


def _fill(sheet, headers: list[str], rows: list[list[Any]]) -> None:
    """A header row (frozen) and ``rows`` on ``sheet``: dates as ISO text, text never a formula, widths to fit."""
    sheet.append(headers)
    for row in rows:
        sheet.append([v.isoformat() if isinstance(v, date) else v for v in row])
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"
    sheet.freeze_panes = "A2"
    for i, header in enumerate(headers, start=1):
        longest = max([len(str(header)) * 2, *(len(str(r[i - 1] or "")) for r in rows[:500])])
        sheet.column_dimensions[get_column_letter(i)].width = min(40, longest + 2)


def write_table(path: Path, fmt: str, title: str, headers: list[str], rows: list[list[Any]],
                notes: list[list[Any]] = ()) -> Path:
    """A plain table (any report that is not a form: scorecards) at ``path`` as ``fmt`` ('xlsx' or 'csv'), written
    as forms are (module docstring); in an XLSX, ``notes`` (rows of text: definitions) on a second sheet ``口径``."""
    if fmt not in FORMATS:
        raise InvalidInput(f"a table is written as {' or '.join(FORMATS)} (.xlsx, .csv), not {fmt!r}")
    if fmt == "csv":
        with open(path, "w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(headers)
            writer.writerows([_csv_value(v) for v in row] for row in rows)
        return path
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = _sheet_title(title)
    _fill(sheet, headers, rows)
    if notes:
        extra = book.create_sheet("口径")
        for row in notes:
            extra.append(list(row))
        extra.column_dimensions["A"].width, extra.column_dimensions["B"].width = 24, 100
    book.save(path)
    return path


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_RISKY):
        return "'" + value
    return value


def write_csv(form: FormResult, path: Path) -> Path:
    """``form`` as a CSV file (UTF-8 with BOM) at ``path``."""
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(form.headers)
        writer.writerows([_csv_value(v) for v in row] for row in form.rows)
    return path


def write_form(form: FormResult, path: Path, fmt: str | None = None) -> Path:
    """``form`` at ``path`` as ``fmt`` ('xlsx' or 'csv'; default: from the file's extension)."""
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InvalidInput(f"a form is written as {' or '.join(FORMATS)} (.xlsx, .csv), not {fmt!r}")
    return (write_xlsx if fmt == "xlsx" else write_csv)(form, path)
