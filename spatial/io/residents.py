"""Importing a population ledger (实有人口台账): one spreadsheet row per person, as community offices keep them.

:func:`import_residents` reads ``.xlsx``/``.xlsm``/``.xls``/``.ods`` (python-calamine, first sheet unless the
mapping names one) or ``.csv`` (UTF-8, with or without BOM, else GB18030), checks every row, places it in a
building and merges the ledger into ``persons`` and ``households`` (:mod:`spatial.store.persons`).

Columns are found by header (:data:`HEADERS`: the usual Chinese headers, or the field names themselves); a
mapping file (TOML) can name other headers and more value labels::

    sheet = "人口台账"          # optional
    header_row = 1             # optional, 1-based
    crs = "GCJ-02"             # of 经度/纬度 (default EPSG:4326; any CRS spatial.geometry.crs accepts)
    max_distance_m = 30        # placing by position: nearest footprint within this (default 30 m)
    [columns]                  # field = header in the file
    id_number = "公民身份号码"
    [relations]                # label = value, added to RELATION_LABELS
    "儿媳" = "other"

Checks (each rejected row is reported with its spreadsheet line, the column's header and the reason; an ID
number never appears in a message unmasked): name present; ID number 18 characters with a valid GB 11643 check
character (a number cell is refused: a spreadsheet keeps 15 significant digits); a foreign resident (境外) may
give another document number (5–20 letters and digits); phone a Chinese mobile ``1[3-9]`` + 9 digits or a
landline (``0`` + area code + 7–8 digits, extension allowed), ``+86`` accepted; relation, kind and tags from
their vocabularies (:mod:`spatial.vocab`, Chinese or English labels); dates as dates or ``YYYY-MM-DD``-like
text, isolation and move-out not before their starts; room present; floor an integer from -5 to 200; a
building by 19-digit code, else by name, else by position; and across the ledger: a person in two households,
a person listed twice, a second head of one household.

When any row is rejected nothing is written, unless ``skip_errors``: then the accepted rows are, and persons of
rejected rows are not marked moved out. Importing the same file twice changes nothing; a newer ledger moves
people, closes those gone (``area``: see :func:`spatial.store.persons.merge`) and keeps history.
ID and phone numbers are sealed and hashed in Python (:mod:`spatial.personal_keys`) before anything is sent to the
database. Writes inside the caller's transaction (a SAVEPOINT), never commits.

Checking, sealing and hashing a row costs about 40 µs of Python; past :data:`PARALLEL_FROM` rows a ledger's rows
are checked in chunks by worker processes (``spawn``ed, so safe inside the threaded web server; as many as the
machine's cores, at most :data:`MAX_WORKERS`) while this process reads the file and COPYs the results in line
order. The workers get the key file's secrets through their start-up pipe (never the disk, never the database).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import time
import tomllib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from spatial import privacy
from spatial.access import Scope
from spatial.errors import InvalidInput
from spatial.geometry.codes import id_check_char
from spatial.geometry.crs import WGS84, transform_xy
from spatial.io import sheets
from spatial.io.safe_files import COMMAND_LINE, ReadLimits
from spatial.io.sheets import RowError, SheetReport
from spatial.personal_keys import PersonalKeys
from spatial.store import audit
from spatial.store import persons as store
from spatial.vocab import PERSON_RELATIONS, PERSON_TAGS, RESIDENCE_KINDS

FIELDS = ("name", "gender", "id_number", "phone", "relation", "kind", "building_code", "building_name", "unit",
          "floor", "room", "tags", "isolation_from", "isolation_to", "moved_in", "moved_out", "lon", "lat")
HEADERS: dict[str, tuple[str, ...]] = {
    "name": ("姓名",),
    "gender": ("性别",),
    "id_number": ("身份证号", "身份证号码", "公民身份号码", "证件号码", "身份证"),
    "phone": ("联系电话", "手机号", "手机号码", "电话", "联系方式"),
    "relation": ("与户主关系", "关系"),
    "kind": ("人员类型", "人口类型", "人员类别"),
    "building_code": ("楼栋编码", "房屋编码", "楼栋代码", "建筑物编码"),
    "building_name": ("楼栋", "楼栋名称", "楼栋名"),
    "unit": ("单元",),
    "floor": ("楼层",),
    "room": ("房号", "房间号", "门牌号"),
    "tags": ("标签", "特殊人群", "人员标签"),
    "isolation_from": ("隔离开始日期", "隔离开始"),
    "isolation_to": ("隔离结束日期", "隔离结束"),
    "moved_in": ("迁入日期", "入住日期"),
    "moved_out": ("迁出日期", "搬离日期"),
    "lon": ("经度",),
    "lat": ("纬度",),
}
RELATION_LABELS = {"本人": "head", "户主本人": "head", "妻": "spouse", "妻子": "spouse", "夫": "spouse", "丈夫": "spouse",
                   "子": "child", "女": "child", "儿子": "child", "女儿": "child", "长子": "child", "长女": "child",
                   "次子": "child", "次女": "child", "父亲": "parent", "母亲": "parent", "父": "parent", "母": "parent",
                   "孙子": "other", "孙女": "other", "儿媳": "other", "女婿": "other", "兄弟姐妹": "other",
                   "祖父母": "other", "租户": "other", "同住人": "other"}
KIND_LABELS = {"户籍": "registered", "常住": "registered", "流动": "floating", "暂住": "floating", "境外": "foreign",
               "外籍": "foreign"}
TAG_LABELS = {"独居": "elderly_alone", "残疾": "disabled", "隔离": "home_isolation", "低保": "low_income",
              "慢病": "chronic_illness", "孕妇": "pregnant", "留守儿童": "minor_unaccompanied", "重点": "key_person"}
GENDER_LABELS = {"男": "male", "女": "female", "m": "male", "f": "female", "male": "male", "female": "female"}
TAG_SPLIT = re.compile(r"[,，;；、/|\s]+")
MOBILE = re.compile(r"1[3-9]\d{9}")
LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}(?:-\d{1,6})?")
ID_NUMBER = re.compile(r"\d{17}[\dX]")
DOCUMENT = re.compile(r"[A-Z0-9]{5,20}")
PARALLEL_FROM = 50_000
"""Rows read before the checking moves to worker processes (below it, starting them costs more than it saves)."""
MAX_WORKERS = 4
CHUNK = 5_000
"""Rows per chunk sent to a worker."""
DATE_TEXT = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?|(\d{4})(\d{2})(\d{2})")
SUFFIXES = sheets.SUFFIXES
MAX_REJECTED = sheets.MAX_REJECTED
DEFAULT_MAX_DISTANCE_M = 30.0
ROW_CHECKS = 1
"""The version of :func:`_row`'s checks and of what it stages, part of every row's fingerprint: raise it whenever
a row would be accepted, refused or staged differently, so the next import checks every row again."""
FINGERPRINT_FIELD = "ledger_row"  # the field name fingerprints are keyed under


@dataclass
class Mapping:
    """Where each field is in the file and the extra value labels (module docstring)."""

    columns: dict[str, str] = field(default_factory=dict)
    relations: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    sheet: str | None = None
    header_row: int = 1
    crs: str | None = None
    max_distance_m: float | None = None

    @classmethod
    def load(cls, path: str | Path | None) -> Mapping:
        if path is None:
            return cls()
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInput(f"cannot read the mapping file {Path(path).name}: {exc}") from None
        unknown = set(data.get("columns", {})) - set(FIELDS)
        if unknown:
            raise InvalidInput(f"mapping [columns] names unknown fields {', '.join(sorted(unknown))}; "
                               f"fields are {', '.join(FIELDS)}")
        for section, vocabulary in (("relations", PERSON_RELATIONS), ("kinds", RESIDENCE_KINDS), ("tags", PERSON_TAGS)):
            bad = {v for v in data.get(section, {}).values() if v not in vocabulary}
            if bad:
                raise InvalidInput(f"mapping [{section}] maps to unknown values {', '.join(sorted(bad))}")
        return cls(dict(data.get("columns", {})), dict(data.get("relations", {})), dict(data.get("kinds", {})),
                   dict(data.get("tags", {})), data.get("sheet"), int(data.get("header_row", 1)), data.get("crs"),
                   data.get("max_distance_m"))


@dataclass
class ResidentsReport(SheetReport):
    """:class:`spatial.io.sheets.SheetReport` of a ledger, with ``counts`` what the merge did
    (:class:`spatial.store.persons.MergeCounts`)."""

    counts: store.MergeCounts | None = None

    def summary(self) -> str:
        t = self.tally("persons")
        lines = [f"{self.file} → {t.read} rows read, {self.issue_count} rejected, in {self.elapsed_s:.1f} s"
                 + (" (dry run: nothing written)" if self.dry_run else "")]
        if self.counts is not None:
            c = self.counts
            verb = "would be" if self.dry_run or not self.written else ""
            lines.append(f"  persons: {c.inserted} new, {c.updated} updated, {c.moved} moved, {c.moved_out} moved out, "
                         f"{c.history} history rows, {c.unchanged} unchanged {verb}".rstrip())
            lines.append(f"  households: {c.households_created} created, {c.households_updated} updated")
        if self.issue_count and not self.written and not self.dry_run:
            lines.append("  nothing written: fix the rows below or import with --skip-errors")
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.extend(f"  {e}" for e in self.rejected)
        if self.issue_count > len(self.rejected):
            lines.append(f"  … and {self.issue_count - len(self.rejected)} more")
        return "\n".join(lines)


# -- reading ------------------------------------------------------------------------------------------------------


def _rows(path: Path, name: str, mapping: Mapping, limits: ReadLimits) -> Iterator[list[Any]]:
    """The rows of the file (header included), streamed (:func:`spatial.io.sheets.read_rows`)."""
    return sheets.read_rows(path, name, limits, sheet=mapping.sheet)


def _columns(header: list[Any], mapping: Mapping, name: str) -> dict[str, int]:
    """Field → column index; InvalidInput if a mapped header is missing or a required field has no column."""
    found = sheets.find_columns(header, FIELDS, HEADERS, mapping.columns, name)
    cells = sheets.header_cells(header)
    missing = [f for f in ("name", "id_number", "room") if f not in found]
    if missing:
        raise InvalidInput(f"{name} lacks the column(s) {', '.join(HEADERS[f][0] for f in missing)} "
                           f"(headers found: {', '.join(c for c in cells if c) or 'none'}); name others in a mapping")
    if not ({"building_code", "building_name"} & set(found) or {"lon", "lat"} <= set(found)):
        raise InvalidInput(f"{name} has no column placing a row in a building: 楼栋编码, 楼栋 or 经度 + 纬度")
    return found


# -- cell values --------------------------------------------------------------------------------------------------


_Bad = sheets.Bad
_text = sheets.cell_text


def _vocab(value: str | None, f: str, vocabulary, extra: dict[str, str], default: str | None,
           known: dict[tuple[str, str], str]) -> str | None:
    """The vocabulary value of a label (``known`` remembers the labels of this import already seen)."""
    if value is None:
        return default
    code = known.get((f, value))
    if code is None:
        code = _lookup(value, f, vocabulary, extra)
        if len(known) < 10_000:
            known[(f, value)] = code
    return code


def _lookup(value: str, f: str, vocabulary, extra: dict[str, str]) -> str:
    key = value.lower()
    for code, (zh, en) in vocabulary.items():
        if key in (code, en.lower()) or value == zh or value == zh.removesuffix("人口").removesuffix("人员"):
            return code
    if value in extra:
        return extra[value]
    raise _Bad(f, f"unknown {f} {value!r}; expected one of {'/'.join(zh for zh, _ in vocabulary.values())}")


def _date(value: Any, f: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    match = DATE_TEXT.fullmatch(str(value).strip())
    if match:
        y, m, d = (int(g) for g in (match.groups()[:3] if match.group(1) else match.groups()[3:]))
        try:
            return date(y, m, d)
        except ValueError:
            pass
    raise _Bad(f, f"not a date: {str(value)[:30]!r} (use YYYY-MM-DD)")


def _id_number(value: Any, kind: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise _Bad("id_number", "the ID number is stored as a number (a spreadsheet keeps 15 digits: the last ones "
                                "are lost); format the column as text")
    number = (_text(value) or "").replace(" ", "").upper()
    if not number:
        raise _Bad("id_number", "no ID number")
    if kind == "foreign" and DOCUMENT.fullmatch(number) and not ID_NUMBER.fullmatch(number):
        return number
    if not ID_NUMBER.fullmatch(number):
        raise _Bad("id_number", f"an ID number has 17 digits and a check digit or X ({len(number)} characters given)")
    if id_check_char(number[:17]) != number[17]:
        raise _Bad("id_number", f"bad check digit in {privacy.mask_id_number(number)} (GB 11643)")
    return number


def _phone(value: Any) -> str | None:
    raw = _text(value)
    if raw is None or MOBILE.fullmatch(raw):
        return raw
    phone = re.sub(r"[\s()（）]", "", raw)
    phone = re.sub(r"^(\+?86|0086)-?(?=1)", "", phone)
    if MOBILE.fullmatch(phone):
        return phone
    if LANDLINE.fullmatch(phone):
        return phone.replace("-", "") if phone.count("-") <= 1 else phone
    raise _Bad("phone", f"not a mobile (1[3-9] + 9 digits) or landline (0 + area code + number) phone number: "
                        f"{privacy.mask_phone(phone)}")


def gender_from_id(number: str) -> str | None:
    """'male' / 'female' from the 17th character of an 18-character ID number (odd: male); None for another
    document."""
    if len(number) != 18 or not number[:17].isdigit():
        return None
    return "male" if int(number[16]) % 2 else "female"


def id_number_value(value: Any, kind: str = "registered") -> str:
    """The normalised ID number (upper-case X) of one value typed in (not a spreadsheet's): the ledger's checks
    (18 characters, GB 11643 check character; a foreign resident's document of 5–20 letters and digits), or
    InvalidInput naming the field ``id_number`` (the number masked in the message)."""
    try:
        return _id_number(str(value) if value is not None else None, kind)
    except _Bad as bad:
        raise InvalidInput(bad.reason, code="ledger.bad_value", field=bad.field, reason=bad.reason) from None


def phone_value(value: Any) -> str | None:
    """The normalised phone number (mobile or landline, ``+86`` dropped) of one value typed in, None for none, or
    InvalidInput naming the field ``phone``."""
    try:
        return _phone(value)
    except _Bad as bad:
        raise InvalidInput(bad.reason, code="ledger.bad_value", field=bad.field, reason=bad.reason) from None


@dataclass
class _Context:
    keys: PersonalKeys
    mapping: Mapping
    columns: dict[str, int]
    headers: list[str]
    signature: str = ""
    known: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # every field's cell index; a field the file lacks reads the None appended after the last column
        self.width = max(self.columns.values(), default=-1) + 1
        self.index = {f: self.columns.get(f, self.width) for f in FIELDS}
        self.kinds = {**KIND_LABELS, **self.mapping.kinds}
        self.relations = {**RELATION_LABELS, **self.mapping.relations}
        self.tags = {**TAG_LABELS, **self.mapping.tags}
        self.fingerprint_key = self.keys.digest(FINGERPRINT_FIELD, "the key of ledger rows' fingerprints")


def signature(mapping: Mapping, headers: list[str], crs: str | None, max_distance_m: float) -> str:
    """What besides its cells decides how a row is read: :data:`ROW_CHECKS`, the mapping, the file's header, the
    CRS and distance of placing by position, the value labels (a digest, 32 hex characters)."""
    return hashlib.sha256(repr((ROW_CHECKS, mapping, headers, crs, max_distance_m, KIND_LABELS, RELATION_LABELS,
                                TAG_LABELS, GENDER_LABELS, PERSON_RELATIONS, RESIDENCE_KINDS, PERSON_TAGS)
                               ).encode()).hexdigest()[:32]


def row_fingerprint(cells: list[Any], ctx: _Context) -> bytes:
    """The keyed fingerprint of a spreadsheet row (16 bytes; stored as ``persons.ledger_row``): BLAKE2b keyed with
    a key derived from the personal-data key, of the import's :func:`signature` and the exact cells it reads (their
    ``repr``: types and every character count). Equal fingerprints mean :func:`_row` gives the same result for
    the same buildings."""
    return hashlib.blake2b((ctx.signature + repr(cells[:ctx.width])).encode(), key=ctx.fingerprint_key,
                           digest_size=16).digest()


def match_key(fingerprint: bytes, building_code: str) -> bytes:
    """What :func:`spatial.store.persons.unchanged_rows` lists for a person: the first 16 bytes of
    SHA-256(fingerprint ‖ UTF-8 building code)."""
    return hashlib.sha256(fingerprint + building_code.encode()).digest()[:16]


_SAME_ROW = (None,) * (len(store.STAGE_FIELDS) - 2)


def _unchanged(chunk: list[tuple[int, list[Any]]], ctx: _Context,
               known: np.ndarray) -> tuple[list[tuple], list[tuple[int, list[Any]]]]:
    """Split a chunk of (line, cells): the staged form (line and fingerprint alone) of the rows whose fingerprint
    and building code match a current person of ``known`` (sorted match keys, dtype S16), and the other rows (to
    be checked). Rows without a building code (placed by name or position) are always checked."""
    at = ctx.columns.get("building_code")
    if at is None or not len(known):
        return [], chunk
    fingerprints, keys = [], []
    for _, cells in chunk:
        code = _text(cells[at]) if at < len(cells) and type(cells[at]) is str else None
        fingerprint = row_fingerprint(cells, ctx) if code else None
        fingerprints.append(fingerprint)
        keys.append(match_key(fingerprint, code) if code else b"")
    wanted = np.array(keys, dtype="S16")
    at_key = np.minimum(np.searchsorted(known, wanted), len(known) - 1)
    hit = (known[at_key] == wanted) & (wanted != b"")
    same = [(line, *_SAME_ROW, fingerprints[i]) for i, (line, _) in enumerate(chunk) if hit[i]]
    return same, [item for i, item in enumerate(chunk) if not hit[i]]


def _row(cells: list[Any], line: int, ctx: _Context) -> tuple:
    """One staged row (:data:`spatial.store.persons.STAGE_FIELDS`; lon/lat still in the source CRS); _Bad."""
    fingerprint = row_fingerprint(cells, ctx)
    cells = [*cells[:ctx.width], *([None] * (ctx.width + 1 - min(len(cells), ctx.width)))]
    index = ctx.index
    get = lambda f: cells[index[f]]  # noqa: E731
    name = _text(get("name"))
    if not name:
        raise _Bad("name", "no name")
    if len(name) > 100:
        raise _Bad("name", "a name of more than 100 characters")
    kind = _vocab(_text(get("kind")), "kind", RESIDENCE_KINDS, ctx.kinds, "registered", ctx.known)
    number = _id_number(get("id_number"), kind)
    phone = _phone(get("phone"))
    relation = _vocab(_text(get("relation")), "relation", PERSON_RELATIONS, ctx.relations, "other", ctx.known)
    gender_text = _text(get("gender"))
    if gender_text is not None:
        gender = GENDER_LABELS.get(gender_text.lower())
        if gender is None:
            raise _Bad("gender", f"unknown gender {gender_text!r} (男/女)")
    else:
        gender = gender_from_id(number)
    tags = []
    for label in TAG_SPLIT.split(_text(get("tags")) or ""):
        if label:
            tag = _vocab(label, "tags", PERSON_TAGS, ctx.tags, None, ctx.known)
            if tag not in tags:
                tags.append(tag)
    isolation_from, isolation_to = _date(get("isolation_from"), "isolation_from"), _date(get("isolation_to"),
                                                                                           "isolation_to")
    if isolation_from and isolation_to and isolation_to < isolation_from:
        raise _Bad("isolation_to", "the isolation ends before it starts")
    if (isolation_from or isolation_to) and "home_isolation" not in tags:
        tags.append("home_isolation")
    moved_in, moved_out = _date(get("moved_in"), "moved_in"), _date(get("moved_out"), "moved_out")
    if moved_in and moved_out and moved_out < moved_in:
        raise _Bad("moved_out", "moved out before moving in")
    room = _text(get("room"))
    if not room:
        raise _Bad("room", "no room number")
    floor_text = _text(get("floor"))
    floor = None
    if floor_text is not None:
        match = re.fullmatch(r"(-?\d{1,3})\s*[层楼F]?", floor_text, flags=re.IGNORECASE)
        floor = int(match.group(1)) if match else None
        if floor is None or not -5 <= floor <= 200:
            raise _Bad("floor", f"a floor is an integer from -5 to 200, got {floor_text[:20]!r}")
    code_value = get("building_code")
    if isinstance(code_value, float):
        raise _Bad("building_code", "the building code is stored as a number (digits lost): format it as text")
    code = _text(code_value)
    if code is not None and not re.fullmatch(r"\d{19}", code):
        raise _Bad("building_code", f"a building code has 19 digits, got {code[:30]!r}")
    building_name = _text(get("building_name")) if code is None else None
    lon = lat = None
    if code is None and building_name is None:
        lon, lat = get("lon"), get("lat")
        try:
            lon, lat = float(lon), float(lat)
        except (TypeError, ValueError):
            raise _Bad("building_code" if "building_code" in ctx.columns else "lon",
                       "no building: give its code (楼栋编码), its name (楼栋) or the position (经度, 纬度)") from None
    k = ctx.keys
    return (line, code, building_name, lon, lat, _text(get("unit")) or "1", floor, room, name, gender, relation, kind,
            k.seal(store.ID_FIELD, number), k.digest(store.ID_FIELD, number), privacy.mask_id_number(number),
            None if phone is None else k.seal(store.PHONE_FIELD, phone),
            None if phone is None else k.digest(store.PHONE_FIELD, phone),
            privacy.mask_phone(phone), "{" + ",".join(sorted(tags)) + "}", isolation_from, isolation_to, moved_in,
            moved_out, fingerprint)


def _error(ctx: _Context, line: int, f: str, reason: str) -> RowError:
    """A rejected row, its column named by the file's header for field ``f`` (the field's name if it has none)."""
    return sheets.error_at(ctx.columns, ctx.headers, line, f, reason)


def _to_wgs84(rows: list[tuple], crs: str | None) -> list[tuple]:
    """Rows with their lon/lat (indexes 3, 4) converted from ``crs`` to EPSG:4326, in one vectorised call."""
    placed = [i for i, r in enumerate(rows) if r[3] is not None]
    if not placed or crs is None:
        return rows
    x, y = transform_xy(np.array([rows[i][3] for i in placed]), np.array([rows[i][4] for i in placed]), crs, WGS84)
    for j, i in enumerate(placed):
        rows[i] = (*rows[i][:3], float(x[j]), float(y[j]), *rows[i][5:])
    return rows


# -- the import ---------------------------------------------------------------------------------------------------


def import_residents(session: Session, path: str | Path, keys: PersonalKeys, *,
                     mapping: Mapping | str | Path | None = None,
                     crs: str | None = None, skip_errors: bool = False, dry_run: bool = False,
                     area: str = "buildings", as_of: date | None = None, scope: Scope = Scope(everything=True),
                     max_distance_m: float | None = None, name: str | None = None, actor: str = "cli",
                     limits: ReadLimits = COMMAND_LINE, batch: int = CHUNK,
                     workers: int | None = None) -> ResidentsReport:
    """Import the ledger at ``path`` (module docstring). ``crs`` of the 经度/纬度 columns (default: the
    mapping's, else EPSG:4326); ``area`` 'buildings' or 'communities' (who is marked moved out when absent);
    ``as_of`` the date of moves and move-outs the ledger does not date (default today); ``scope`` limits the
    buildings rows may be placed in (others are unknown); ``name`` the file's name in messages (an upload's);
    ``actor`` is audited with the counts; ``limits``: at most ``max_features`` rows (PayloadTooLarge beyond, nothing
    written) and ``max_unpacked_bytes`` unpacked from a workbook (uploads; the command line has no caps). Returns
    the report; raises InvalidInput for an unreadable file. ``batch``: rows per chunk checked at once; ``workers``:
    processes checking rows past :data:`PARALLEL_FROM` (default: the machine's cores, at most :data:`MAX_WORKERS`;
    1 checks everything here)."""
    started = time.perf_counter()
    workers = min(MAX_WORKERS, os.cpu_count() or 1) if workers is None else workers
    path = Path(path)
    name = name or path.name
    if area not in ("buildings", "communities"):
        raise InvalidInput("area must be 'buildings' or 'communities'")
    mapping = mapping if isinstance(mapping, Mapping) else Mapping.load(mapping)
    crs = crs or mapping.crs
    max_m = float(max_distance_m or mapping.max_distance_m or DEFAULT_MAX_DISTANCE_M)
    if not 0 < max_m <= 500:
        raise InvalidInput("max_distance_m must be in (0, 500] metres")
    if len(keys.secrets) > 1:
        raise InvalidInput("a key rotation is unfinished (the personal-data key file holds several keys): run "
                           "'gridgov keys rotate' again before importing")
    report = ResidentsReport(name, ("persons",), f"ledger:{name}", dry_run=dry_run)
    tally = report.tally("persons")
    rows = _rows(path, name, mapping, limits)
    for _ in range(mapping.header_row - 1):
        next(rows, None)
    header = next(rows, None)
    if header is None:
        raise InvalidInput(f"{name} is empty")
    headers = [str(h).strip() if h is not None else "" for h in header]
    ctx = _Context(keys, mapping, _columns(header, mapping, name), headers, signature(mapping, headers, crs, max_m))
    kept: list[bytes] = []
    store.lock(session)
    known = np.sort(np.frombuffer(store.unchanged_rows(session, scope), dtype="S16")) \
        if "building_code" in ctx.columns else np.empty(0, dtype="S16")  # only rows placed by code are matched

    def chunks() -> Iterator[list[tuple[int, list[Any]]]]:
        chunk: list[tuple[int, list[Any]]] = []
        for line, cells in sheets.data_rows(rows, mapping.header_row + 1, tally, limits, name):
            chunk.append((line, cells))
            if len(chunk) >= batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def to_check() -> Iterator[list[tuple[int, list[Any]]]]:
        nonlocal same_rows
        for chunk in chunks():
            same, rest = _unchanged(chunk, ctx, known)
            unchanged.extend(same)
            same_rows += len(same)
            yield rest  # even empty: its result hands the unchanged rows on, in step with the file

    unchanged: list[tuple] = []
    same_rows = 0

    def staged() -> Iterator[tuple]:
        with _Checker(ctx, workers) as checker:
            for good, bad in checker.run(to_check()):
                yield from unchanged
                unchanged.clear()
                for line, f, reason, kept_hash in bad:
                    report.reject(_error(ctx, line, f, reason))
                    if kept_hash is not None:
                        kept.append(kept_hash)
                yield from _to_wgs84(good, crs)
        yield from unchanged

    with store.bulk_settings(session), session.begin_nested() as savepoint:
        store.stage(session, staged(), kept)
        store.place(session, scope, max_m, unchanged=same_rows)
        found = store.findings(session, max_m, unchanged=same_rows)
        for line, f, reason in found:
            report.reject(_error(ctx, line, f, reason))
        report.rejected.sort(key=lambda e: e.line)
        tally.skipped["rejected"] = report.issue_count
        if report.issue_count and not skip_errors:
            savepoint.rollback()
        else:
            if found:
                store.drop_lines(session, sorted({line for line, _, _ in found}))
            report.counts = store.merge(session, report.origin, as_of=as_of or date.today(), area=area)
            tally.inserted = report.counts.inserted
            tally.already_present = report.counts.unchanged
            if dry_run:
                savepoint.rollback()
            else:
                report.written = True
                if report.counts.changed:
                    c = report.counts
                    audit.record(session, None, "import_residents", object_type="ledger", object_id=name[:200],
                                 actor=actor, fields=["name", "id_number", "phone", "relation", "tags"],
                                 result=f"{c.inserted} new, {c.updated} updated, {c.moved} moved, {c.moved_out} "
                                        f"moved out, {report.issue_count} rejected")
    report.elapsed_s = time.perf_counter() - started
    return report


def _kept_hash(cells: list[Any], ctx: _Context) -> bytes | None:
    """The ID hash of a rejected row whose ID number is valid (that person is not marked moved out), else None."""
    index = ctx.columns["id_number"]
    try:
        number = _id_number(cells[index] if index < len(cells) else None, "foreign")
    except _Bad:
        return None
    return ctx.keys.digest(store.ID_FIELD, number)


def _check(chunk: list[tuple[int, list[Any]]], ctx: _Context) -> tuple[list[tuple], list[tuple]]:
    """The staged rows of a chunk of (line, cells), and its rejected rows as (line, field, reason, kept hash)."""
    good, bad = [], []
    for line, cells in chunk:
        try:
            good.append(_row(cells, line, ctx))
        except _Bad as reason:
            bad.append((line, reason.field, reason.reason, _kept_hash(cells, ctx)))
    return good, bad


_WORKER: _Context | None = None
"""A worker process's context (:func:`_start_worker`)."""


def _start_worker(secrets: list[tuple[int, bytes]], mapping: Mapping, columns: dict[str, int],
                  headers: list[str], signature: str) -> None:
    global _WORKER
    _WORKER = _Context(PersonalKeys(secrets), mapping, columns, headers, signature)


def _check_in_worker(chunk: list[tuple[int, list[Any]]]) -> tuple[list[tuple], list[tuple]]:
    assert _WORKER is not None, "a worker process starts with _start_worker"
    return _check(chunk, _WORKER)


class _Checker:
    """Checks chunks of rows and gives back their results in order: in this process, and past
    :data:`PARALLEL_FROM` rows in ``workers`` spawned processes (at most two chunks per worker in flight, so memory
    stays bounded whatever the file's size). Leaving the ``with`` block stops the workers (an error included)."""

    def __init__(self, ctx: _Context, workers: int) -> None:
        self.ctx, self.workers = ctx, workers
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Checker:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def run(self, chunks: Iterator[list[tuple[int, list[Any]]]]) -> Iterator[tuple[list[tuple], list[tuple]]]:
        pending: deque[Future] = deque()
        seen = 0
        for chunk in chunks:
            seen += len(chunk)
            if self.pool is None and self.workers > 1 and seen > PARALLEL_FROM:
                ctx = self.ctx
                self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_start_worker,
                                                initargs=(ctx.keys.secrets, ctx.mapping, ctx.columns, ctx.headers,
                                                          ctx.signature))
            if self.pool is None:
                yield _check(chunk, self.ctx)
                continue
            pending.append(self.pool.submit(_check_in_worker, chunk))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
