"""Importing the places departments inspect (三小场所, enterprises, schools, clinics) from a spreadsheet.

Read like the residents' ledger (:mod:`spatial.io.sheets`: ``.xlsx``/``.xls``/``.ods``/``.csv``, vetted; every
rejected row reported with its line, column and reason). Columns by header (:data:`HEADERS`, or the field names):

=================  ==========================================================================================
``name``           required (名称, 场所名称, 企业名称), at most 200 characters
``kind``           required (类型, 场所类型): 小商店 / 小餐饮 / 小旅馆 / 企业 / 学校 / 诊所, or shop, restaurant, hotel,
                   enterprise, school, clinic
``credit_code``    (统一社会信用代码): GB 32100, check character verified; required for an enterprise
``reopened``       (复工复产): 是/否 (已复工/未复工, true/false, 1/0); enterprises only; empty: unknown
``address``        (地址), at most 200 characters
``building_code``  (楼栋编码): 19 digits, else the place is placed by
``lon``, ``lat``   (经度, 纬度) in ``crs`` (default EPSG:4326; GCJ-02, BD-09 …): the building covering the point or
                   the nearest within ``max_distance_m``, else only the grid covering the point
=================  ==========================================================================================

Rejected also: a building code matching no building, a place in no grid, a place outside the caller's area, the
same place twice (same credit code, or same kind, name and address). With any rejection nothing is written unless
``skip_errors``; ``dry_run`` only checks. Writes in the caller's transaction (:func:`spatial.store.places.write_places`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.errors import InvalidInput
from spatial.geometry.codes import credit_code_problem
from spatial.geometry.crs import WGS84, transform_xy
from spatial.io import sheets
from spatial.io.safe_files import COMMAND_LINE, ReadLimits
from spatial.store import audit
from spatial.store import places as store
from spatial.vocab import PLACE_KINDS

FIELDS = ("name", "kind", "credit_code", "reopened", "address", "building_code", "lon", "lat")
HEADERS: dict[str, tuple[str, ...]] = {
    "name": ("名称", "场所名称", "企业名称", "单位名称"), "kind": ("类型", "场所类型", "类别"),
    "credit_code": ("统一社会信用代码", "信用代码"), "reopened": ("复工复产", "是否复工", "复工"),
    "address": ("地址", "经营地址"), "building_code": ("楼栋编码", "房屋编码"), "lon": ("经度",), "lat": ("纬度",),
}
YES = {"是", "已复工", "复工", "true", "yes", "y", "1"}
NO = {"否", "未复工", "停工", "false", "no", "n", "0"}
DEFAULT_MAX_DISTANCE_M = 30.0


@dataclass
class PlacesReport(sheets.SheetReport):
    """:class:`spatial.io.sheets.SheetReport` of a list of places, with what was inserted and updated."""

    inserted: int = 0
    updated: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "read": self.tally("places").read, "inserted": self.inserted,
                "updated": self.updated, "rejected": self.issue_count, "written": self.written,
                "dry_run": self.dry_run,
                "rows": [{"line": e.line, "column": e.column, "letter": e.letter, "reason": e.reason}
                         for e in self.rejected[:1000]]}


def _kind(value: str | None) -> str:
    if value is None:
        raise sheets.Bad("kind", "no kind (小商店/小餐饮/小旅馆/企业/学校/诊所)")
    for code, (zh, en) in PLACE_KINDS.items():
        if value.lower() in (code, en.lower()) or value == zh:
            return code
    raise sheets.Bad("kind", f"unknown kind {value[:30]!r}; expected one of {'/'.join(z for z, _ in PLACE_KINDS.values())}")


def _row(cells: list[Any], columns: dict[str, int]) -> dict[str, Any]:
    get = lambda f: cells[columns[f]] if f in columns and columns[f] < len(cells) else None  # noqa: E731
    name = sheets.cell_text(get("name"))
    if not name:
        raise sheets.Bad("name", "no name")
    if len(name) > 200:
        raise sheets.Bad("name", "a name of more than 200 characters")
    kind = _kind(sheets.cell_text(get("kind")))
    credit = (sheets.cell_text(get("credit_code")) or "").replace(" ", "").upper() or None
    if credit is not None and (problem := credit_code_problem(credit)):
        raise sheets.Bad("credit_code", problem)
    if kind == "enterprise" and credit is None:
        raise sheets.Bad("credit_code", "an enterprise needs its unified social credit code (统一社会信用代码)")
    reopened_text = sheets.cell_text(get("reopened"))
    reopened = None
    if reopened_text is not None:
        key = reopened_text.lower()
        if key not in YES | NO:
            raise sheets.Bad("reopened", f"复工复产 is 是 or 否, not {reopened_text[:20]!r}")
        if kind != "enterprise":
            raise sheets.Bad("reopened", "复工复产 is recorded for enterprises only")
        reopened = key in YES
    address = sheets.cell_text(get("address"))
    if address and len(address) > 200:
        raise sheets.Bad("address", "an address of more than 200 characters")
    code_value = get("building_code")
    if isinstance(code_value, float):
        raise sheets.Bad("building_code", "the building code is stored as a number (digits lost): format it as text")
    code = sheets.cell_text(code_value)
    if code is not None and not (len(code) == 19 and code.isdigit()):
        raise sheets.Bad("building_code", f"a building code has 19 digits, got {code[:30]!r}")
    lon = lat = None
    if get("lon") not in (None, "") or get("lat") not in (None, ""):
        try:
            lon, lat = float(get("lon")), float(get("lat"))
        except (TypeError, ValueError):
            raise sheets.Bad("lon", "经度/纬度 must both be numbers") from None
    if code is None and lon is None:
        raise sheets.Bad("building_code", "no building: give its code (楼栋编码) or the position (经度, 纬度)")
    return {"name": name, "kind": kind, "credit_code": credit, "reopened": reopened, "address": address,
            "building_code": code, "lon": lon, "lat": lat,
            "origin_ref": credit or f"{kind}:{name}:{address or ''}"}


def import_places(session: Session, path: str | Path, who: Principal, *, crs: str | None = None,
                  skip_errors: bool = False, dry_run: bool = False, max_distance_m: float = DEFAULT_MAX_DISTANCE_M,
                  sheet: str | None = None, name: str | None = None, limits: ReadLimits = COMMAND_LINE
                  ) -> PlacesReport:
    """Import the places of a spreadsheet (module docstring) for ``who`` (admin, or a planner: each place must lie
    in their area). InvalidInput for an unreadable file or one without the required columns; PayloadTooLarge past
    ``limits.max_features`` rows."""
    started = time.perf_counter()
    path = Path(path)
    name = name or path.name
    who.require_role("planner")
    if not 0 < max_distance_m <= 500:
        raise InvalidInput("max_distance_m must be in (0, 500] metres")
    report = PlacesReport(name, ("places",), f"places:{name}", dry_run=dry_run)
    tally = report.tally("places")
    rows = sheets.read_rows(path, name, limits, sheet=sheet, what="a list of places")
    header = next(rows, None)
    if header is None:
        raise InvalidInput(f"{name} is empty")
    columns = sheets.find_columns(header, FIELDS, HEADERS, {}, name)
    headers = [str(h).strip() if h is not None else "" for h in header]
    missing = [f for f in ("name", "kind") if f not in columns]
    if missing:
        raise InvalidInput(f"{name} lacks the column(s) {', '.join(HEADERS[f][0] for f in missing)}")
    good: list[tuple[int, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for line, cells in sheets.data_rows(rows, 2, tally, limits, name):
        try:
            row = _row(cells, columns)
        except sheets.Bad as bad:
            report.reject(sheets.error_at(columns, headers, line, bad.field, bad.reason))
            continue
        if row["origin_ref"] in seen:
            report.reject(sheets.error_at(columns, headers, line, "credit_code" if row["credit_code"] else "name",
                                          f"the same place as line {seen[row['origin_ref']]}"))
            continue
        seen[row["origin_ref"]] = line
        good.append((line, row))
    positioned = [r for _, r in good if r["lon"] is not None]
    if positioned and crs:
        x, y = transform_xy(np.array([r["lon"] for r in positioned]), np.array([r["lat"] for r in positioned]),
                            crs, WGS84)
        for r, lon, lat in zip(positioned, x, y, strict=True):
            r["lon"], r["lat"] = float(lon), float(lat)
    placed = store.place_rows(session, [line for line, _ in good], [r["building_code"] for _, r in good],
                              [r["lon"] for _, r in good], [r["lat"] for _, r in good], max_distance_m=max_distance_m)
    accepted = []
    for (line, row), where in zip(good, placed, strict=True):
        reason = ("no building has this code" if where.building_missing else
                  "lies in no grid" if where.grid_id is None else
                  "outside your area" if not _in_area(who, where) else None)
        if reason:
            report.reject(sheets.error_at(columns, headers, line,
                                          "building_code" if row["building_code"] else "lon", reason))
            continue
        accepted.append({**row, "building_id": where.building_id, "grid_id": where.grid_id,
                         "community_code": where.community_code, "lon": where.lon, "lat": where.lat})
    report.rejected.sort(key=lambda e: e.line)
    tally.skipped["rejected"] = report.issue_count
    if (report.issue_count and not skip_errors) or dry_run:
        report.elapsed_s = time.perf_counter() - started
        return report
    report.inserted, report.updated = store.write_places(session, report.origin, accepted)
    tally.inserted = report.inserted
    report.written = True
    audit.record(session, who, "import_places", object_type="places", object_id=name[:200],
                 result=f"{report.inserted} new, {report.updated} updated, {report.issue_count} rejected")
    report.elapsed_s = time.perf_counter() - started
    return report


def _in_area(who: Principal, where: store.Placed) -> bool:
    area = who.area
    if area.everything:
        return True
    if area.grid_ids:
        return where.grid_id in area.grid_ids
    return bool(area.prefix) and (where.community_code or "").startswith(area.prefix)
