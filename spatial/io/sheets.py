"""Reading spreadsheets that offices keep (ledgers of residents, lists of places): the pieces every sheet import shares.

* :func:`read_rows` streams the rows of an ``.xlsx``/``.xlsm``/``.xls``/``.ods`` (python-calamine, the first sheet
  unless one is named) or ``.csv`` (UTF-8 with or without BOM, else GB18030), the file vetted first
  (:func:`spatial.io.safe_files.vet_ledger`: no links, data connections or macros; at most ``max_unpacked_bytes``
  unpacked);
* :func:`find_columns` finds each field's column by its usual Chinese headers, its own name, or a header a mapping
  names (headers compared after NFKC normalisation, so full-width letters match);
* :class:`RowError` is a rejected row as the reports list it: the spreadsheet line (1-based, header counted), the
  column's header and letter, and why; :class:`Bad` is what a cell check raises;
* :func:`cell_text` and :func:`letter` normalise a cell and name a column.
"""

from __future__ import annotations

import csv
import unicodedata
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatial.errors import InvalidInput, PayloadTooLarge
from spatial.io.report import ImportReport
from spatial.io.safe_files import ReadLimits, vet_ledger

SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".csv")
MAX_REJECTED = 100_000


@dataclass(frozen=True)
class RowError:
    """A rejected row: ``line`` in the spreadsheet (1-based, the header's line counted), the ``column``'s header
    (or its field name when the file has no such column) and its letter, and why."""

    line: int
    column: str
    reason: str
    letter: str | None = None

    def __str__(self) -> str:
        where = f"{self.column} ({self.letter})" if self.letter else self.column
        return f"line {self.line}, column {where}: {self.reason}"


@dataclass
class SheetReport(ImportReport):
    """:class:`ImportReport` of a spreadsheet: ``rejected`` lists every rejected row (at most :data:`MAX_REJECTED`;
    ``issue_count`` is exact); ``written`` whether anything was (False on errors without ``skip_errors``, and for a
    dry run)."""

    rejected: list[RowError] = field(default_factory=list)
    written: bool = False
    dry_run: bool = False

    def reject(self, error: RowError) -> None:
        if len(self.rejected) < MAX_REJECTED:
            self.rejected.append(error)
        self.add_issue(f"line {error.line}", f"column {error.column}: {error.reason}")

    @property
    def ok(self) -> bool:
        return self.issue_count == 0


class Bad(Exception):
    """A cell that fails its check: the ``field`` and the ``reason`` (never an unmasked personal value)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason


def read_rows(path: Path, name: str, limits: ReadLimits, *, sheet: str | None = None,
              what: str = "a ledger") -> Iterator[list[Any]]:
    """The rows of the file (header included) as lists of cell values, streamed (module docstring). InvalidInput
    for another suffix, an unreadable file or a missing sheet; ``what`` names the file's kind in messages."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInput(f"{name}: {what} must be {', '.join(SUFFIXES)}")
    _, encoding = vet_ledger(path, max_unpacked_bytes=limits.max_unpacked_bytes, name=name)
    if suffix == ".csv":
        with open(path, encoding=encoding, newline="") as f:
            yield from csv.reader(f)
        return
    if suffix == ".ods" and not zipfile.is_zipfile(path):
        raise InvalidInput(f"{name} is not a {suffix[1:]} spreadsheet (its content is no zip archive)")
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
        found = book.get_sheet_by_name(sheet) if sheet else book.get_sheet_by_index(0)
    except Exception as exc:  # calamine raises its own exception types for unreadable files and missing sheets
        raise InvalidInput(f"cannot read {name}: {str(exc)[:200]}") from None
    yield from found.iter_rows()


def data_rows(rows: Iterator[list[Any]], first_line: int, tally: Any, limits: ReadLimits,
              name: str) -> Iterator[tuple[int, list[Any]]]:
    """(spreadsheet line, cells) of every non-empty row of ``rows`` (the first numbered ``first_line``), counted in
    ``tally.read``; PayloadTooLarge past ``limits.max_features`` rows (nothing written: the caller has not written
    yet)."""
    for line, cells in enumerate(rows, first_line):
        if not any(c not in (None, "") for c in cells):
            continue
        tally.read += 1
        if limits.max_features is not None and tally.read > limits.max_features:
            raise PayloadTooLarge(f"{name} has more than {limits.max_features:,} rows; at most "
                                  f"{limits.max_features:,} are accepted here (split the file)",
                                  max_features=limits.max_features)
        yield line, cells


def letter(index: int) -> str:
    """Spreadsheet column letter of a 0-based index: 0 → A, 26 → AA."""
    out = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        out = chr(65 + rest) + out
    return out


def cell_text(value: Any) -> str | None:
    """A cell as stripped NFKC text (a whole float without its ``.0``), None when empty."""
    if value is None:
        return None
    if type(value) is str and value.isascii():  # the common case, without the NFKC pass
        return value.strip() or None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    out = unicodedata.normalize("NFKC", str(value)).strip()
    return out or None


def header_cells(header: list[Any]) -> list[str]:
    """The header row as normalised text ('' for an empty cell)."""
    return [unicodedata.normalize("NFKC", str(h)).strip() if h is not None else "" for h in header]


def find_columns(header: list[Any], fields: tuple[str, ...], headers: Mapping[str, tuple[str, ...]],
                 mapped: Mapping[str, str], name: str) -> dict[str, int]:
    """Field → column index, by the header a mapping names for it (``mapped``), else by its usual ``headers``
    or the field's own name; InvalidInput if a mapped header is missing. Required fields are the caller's."""
    cells = header_cells(header)
    found: dict[str, int] = {}
    for f in fields:
        wanted = mapped.get(f)
        candidates = (wanted,) if wanted else (*headers.get(f, ()), f)
        index = next((cells.index(c) for c in candidates if c in cells), None)
        if wanted and index is None:
            raise InvalidInput(f"{name} has no column {wanted!r} (mapped to {f}); its headers are {', '.join(cells)}")
        if index is not None:
            found[f] = index
    return found


def error_at(columns: Mapping[str, int], headers: list[str], line: int, f: str, reason: str) -> RowError:
    """A rejected row, its column named by the file's header for field ``f`` (the field's name if it has none)."""
    if f in columns:
        index = columns[f]
        return RowError(line, headers[index] or f, reason, letter(index))
    return RowError(line, f, reason)
