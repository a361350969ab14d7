"""Importing administrative divisions (subdistricts 街道, communities 社区) drawn elsewhere, with a report.

A new subdistrict sets itself up from one file: its own polygon and its communities' (a GeoPackage, GeoJSON,
Shapefile or a .zip of one). The layer's declared CRS (CGCS2000, Gauss-Krüger, UTM…) is converted to
EPSG:4326 as for every import (:mod:`spatial.io.reproject`); coordinates from Chinese web maps, which no file
format can declare, are named by ``crs`` ("GCJ-02", "BD-09": the file then declares lon/lat or nothing) and
converted back to WGS 84 (:mod:`spatial.geometry.crs`, only inside mainland China).

Fields are matched case-insensitively, the first present of each list (or as ``fields`` maps them, e.g.
``{"code": "XZQDM", "name": "XZQMC"}``):

=========  ================================================================================================
code       代码, 编码, 区划代码, 行政区划代码, code, adcode, division_code, xzqdm — 12 digits (required)
name       名称, 名字, 区划名称, name, name_zh, name:zh, xzqmc — 1–100 characters (required)
level      级别, 层级, 类型, level, type — district/区/县, subdistrict/街道/镇/乡, community/社区/村/居委会;
           absent: from the code (a subdistrict's ends in 000, a community's last 3 digits are its number)
name_en    name_en, name:en, 英文名称, 英文名, english_name (optional; absent keeps the stored one)
=========  ================================================================================================

Each feature is checked, each problem a finding naming the feature and its code: the code's structure (12
digits; the level it gives agrees with the level field; a community's parent subdistrict, its first 9 digits +
000, is in the file or stored), a name, no code twice, a valid polygon (an invalid one that ``make_valid``
repairs is written repaired and reported as a warning), and the spatial rules of :mod:`spatial.store.divisions`
(inside the parent within a tolerance in metres, no overlap between siblings, land of a subdistrict in no
community, grids and buildings a redrawn community leaves out). A missing district row (the parent of a
subdistrict) is created without a boundary, named ``district_name`` or after its code, and the report says so.

With any error nothing is written; ``dry_run`` only checks. A division the file gives exactly as stored is
``unchanged`` and not written again (no new version), so importing the same file twice changes nothing.
Writes happen in the caller's transaction, as ``actor`` with ``reason`` in the history and the audit; the database
invalidates the map tiles of the areas touched when it commits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput
from spatial.geometry.codes import division_code_problem, division_level
from spatial.geometry.crs import parse_crs, to_wgs84
from spatial.io.files import choose_layer, read_layer
from spatial.io.grid_files import _refuse_huge
from spatial.io.grid_files import field_text as _text
from spatial.io.report import Findings, ImportReport, Progress
from spatial.io.safe_files import ReadLimits, shown, vetted
from spatial.io.validate import SERVICE_EXTENT, clean_polygons
from spatial.store import divisions as store

FIELD_CANDIDATES: dict[str, tuple[str, ...]] = {
    "code": ("代码", "编码", "区划代码", "行政区划代码", "code", "adcode", "division_code", "div_code", "xzqdm"),
    "name": ("名称", "名字", "区划名称", "name", "name_zh", "name:zh", "xzqmc"),
    "level": ("级别", "层级", "类型", "level", "type", "division_level"),
    "name_en": ("name_en", "name:en", "英文名称", "英文名", "english_name"),
}
LEVEL_NAMES: dict[str, str] = {
    **dict.fromkeys(("district", "county", "区", "县", "区县", "市辖区"), "district"),
    **dict.fromkeys(("subdistrict", "street", "town", "township", "街道", "街道办", "街道办事处", "镇", "乡", "乡镇"),
                    "subdistrict"),
    **dict.fromkeys(("community", "village", "社区", "村", "居委会", "村委会", "居民委员会", "社区居委会"), "community"),
}


@dataclass
class DivisionReport(Findings):
    """What an import of divisions found and did. ``findings`` are (feature, severity, message); ``written``
    is False when an error (or ``dry_run``) kept everything out; ``unchanged`` counts divisions the file gives
    exactly as stored; ``inserted`` and ``updated`` are what the import does, or would do (dry run, errors)."""

    file: str
    layer: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    written: bool = False
    dry_run: bool = False
    findings: list[tuple[str, str, str]] = field(default_factory=list)
    uncovered_m2: dict[str, float] = field(default_factory=dict)
    left_out: dict[str, dict[str, Any]] = field(default_factory=dict)
    divisions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tolerance_m: float = store.TOLERANCE_M
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "layer": self.layer, "kind": "divisions", "read": self.read,
                "inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged,
                "written": self.written, "dry_run": self.dry_run, "errors": len(self.errors),
                "warnings": len(self.warnings), "tolerance_m": self.tolerance_m,
                "findings": self.findings_json(),
                "uncovered_m2": {k: round(v, 1) for k, v in self.uncovered_m2.items()}, "left_out": self.left_out,
                "divisions": self.divisions, "notes": self.notes}

    def summary(self) -> str:
        verb = "checked (dry run)" if self.dry_run else ("written" if self.written else "NOT written")
        done = ("inserted", "updated") if self.written else ("to insert", "to update")
        lines = [f"{self.file} [{self.layer}] → divisions: {self.read} read, {self.inserted} {done[0]}, "
                 f"{self.updated} {done[1]}, {self.unchanged} unchanged; {verb}; {len(self.errors)} error(s), "
                 f"{len(self.warnings)} warning(s) (tolerance {self.tolerance_m:g} m)"]
        if self.read and self.unchanged == self.read and not self.errors:
            lines.append("  unchanged: every division of the file is stored exactly so; nothing to write")
        lines += self.finding_lines()
        lines += [f"  subdistrict {code}: {area:,.0f} m² in no community" for code, area in self.uncovered_m2.items()
                  if area > store.MIN_AREA_M2]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def import_division_file(session: Session, path: str | Path, *, layer: str | None = None,
                         fields: dict[str, str] | None = None, crs: str | None = None,
                         district_name: str | None = None, actor: str = "import", reason: str | None = None,
                         dry_run: bool = False, metric_srid: int = 4547, tolerance_m: float = store.TOLERANCE_M,
                         progress: Progress | None = None, limits: ReadLimits = ReadLimits(),
                         name: str | None = None) -> DivisionReport:
    """Check (and unless ``dry_run`` or an error, write) the divisions of a file; see the module. The file is
    vetted first (:mod:`spatial.io.safe_files`, within ``limits``); ``name`` is how messages call it."""
    started = time.perf_counter()
    shift = _map_crs(crs)
    with vetted(Path(path), limits, name=name) as source:
        layer = choose_layer(source, layer, "divisions")
        scratch = ImportReport(source.name, (layer,), "divisions")
        data = read_layer(source, layer, scratch)
    _refuse_huge(data)
    report = DivisionReport(source.name, layer, read=len(data.geoms), dry_run=dry_run, notes=list(scratch.notes),
                            tolerance_m=tolerance_m)
    if shift is not None:
        data.geoms = to_wgs84(data.geoms, shift)
        report.notes.append(f"coordinates taken as {shift.name} ({shift.label_en}) and converted to WGS 84")
    columns = _columns(data, fields or {})
    codes = [_text(data, columns["code"], i) for i in range(len(data.geoms))]
    labels = [data.source(np.array(codes, dtype=object)).labels(i) for i in range(len(data.geoms))]
    geoms = _clean_geometries(data, labels, report)
    candidates = _candidates(session, data, columns, codes, labels, geoms, report, district_name)
    if progress:
        progress(len(data.geoms) // 2, len(data.geoms))
    report.divisions = sorted(c.code for c in candidates.values())
    label_of = {c.code: labels[i] if i >= 0 else c.code for i, c in candidates.items()}
    checked = store.check_divisions(session, list(candidates.values()), metric_srid=metric_srid,
                                    tolerance_m=tolerance_m)
    report.findings += [(label_of.get(f.code, f.code), f.severity, f.message) for f in checked.findings]
    report.uncovered_m2, report.left_out = checked.uncovered_m2, checked.left_out
    before = store.stored(session, report.divisions)
    changed = [c for c in candidates.values() if not store.same_as_stored(c, before.get(c.code))]
    report.unchanged = len(candidates) - len(changed)
    report.inserted = sum(c.code not in before for c in changed)  # predicted; the write's counts replace them
    report.updated = len(changed) - report.inserted
    if not report.errors and not dry_run and changed:
        written = store.write_divisions(session, changed, actor=actor, reason=reason or f"import {source.name}")
        report.inserted, report.updated = len(written.inserted), len(written.updated)
        report.written = True
    elif not report.errors and not dry_run:
        report.written = True  # nothing to change: the stored divisions are the file's
    if progress:
        progress(len(data.geoms), len(data.geoms))
    report.elapsed_s = time.perf_counter() - started
    return report


def _map_crs(crs: str | None):
    """The CoordSys to undo after reading (GCJ-02 / BD-09), or None. A file declares its other CRSs itself."""
    if crs is None or crs == "":
        return None
    system = parse_crs(crs)
    if system.epsg is None:
        return system
    if system.epsg in (4326, 4490):
        return None
    raise InvalidInput(f"crs {system.name} is for coordinates no file can declare: name only GCJ-02 or BD-09 here; "
                       "a file in another CRS declares it itself (its .prj, GeoPackage or GeoJSON crs)")


def _columns(data, fields: dict[str, str]) -> dict[str, str | None]:
    """Source field name (lower case) per role: from ``fields``, else the first candidate the layer has."""
    unknown = sorted(set(fields) - set(FIELD_CANDIDATES))
    if unknown:
        raise InvalidInput(f"unknown field role(s) {', '.join(map(shown, unknown))}: map only "
                           f"{', '.join(FIELD_CANDIDATES)} (e.g. code=XZQDM)")
    found: dict[str, str | None] = {}
    for role, candidates in FIELD_CANDIDATES.items():
        given = fields.get(role)
        if given is not None and given.lower() not in data.fields:
            raise InvalidInput(f"{data.file}, layer {data.name!r} has no field {shown(given)!r} (for {role}); "
                               f"its fields are: {', '.join(data.fields) or '(none)'}", field=given)
        found[role] = given.lower() if given is not None else next((c for c in candidates if c in data.fields), None)
    for role in ("code", "name"):
        if found[role] is None:
            raise InvalidInput(f"{data.file}, layer {data.name!r}: no {role} field found (looked for "
                               f"{', '.join(FIELD_CANDIDATES[role])}); name it, e.g. {role}=<field>; its fields "
                               f"are: {', '.join(data.fields) or '(none)'}", missing=role)
    return found


def _clean_geometries(data, labels: list[str], report: DivisionReport) -> np.ndarray:
    """Polygons in EPSG:4326 (repaired where ``make_valid`` can), None where unusable; findings for both."""
    scratch = ImportReport(data.file, (data.name,), "divisions")
    source = data.source()
    geoms, keep = clean_polygons(data.geoms, type(source)(source.file, source.layer, lambda i: str(i)), scratch,
                                 kind="divisions", on_invalid="repair", extent=SERVICE_EXTENT)
    for index, reason in scratch.issues:
        i = int(index)
        if reason.startswith("repaired: "):
            report.findings.append((labels[i], "warning", f"invalid polygon ({reason.removeprefix('repaired: ')}) "
                                    "was repaired; check the repaired boundary before relying on it"))
        else:
            report.findings.append((labels[i], "error", reason.removeprefix("skipped: ")))
    geoms = geoms.copy()
    geoms[~keep] = None
    return geoms


def _level(data, column: str | None, code: str, i: int) -> tuple[str | None, str | None]:
    """(level, problem): the level field's value mapped to a level, or the level of the code."""
    value = _text(data, column, i) if column else None
    if value is None:
        return division_level(code), None
    level = LEVEL_NAMES.get(value.lower())
    if level is None:
        return None, (f"level {shown(value)!r} is not one of district/区/县, subdistrict/街道/镇/乡, "
                      "community/社区/村/居委会 (or leave the field empty: the code tells)")
    return level, None


def _candidates(session: Session, data, columns, codes, labels, geoms, report: DivisionReport,
                district_name: str | None) -> dict[int, store.Candidate]:
    """Candidates by feature index, for the features whose code, level, name and geometry pass; a finding per
    problem. Parents missing from the file and the store: a community's is an error, a district is added."""
    out: dict[int, store.Candidate] = {}
    seen: dict[str, str] = {}
    for i, code in enumerate(codes):
        problem = division_code_problem(code or "") if code else f"no code (field {columns['code']!r} is empty)"
        level = None
        if not problem:
            level, problem = _level(data, columns["level"], code, i)
            problem = problem or division_code_problem(code, level)
        name = _text(data, columns["name"], i)
        if not problem:
            try:
                name = store.clean_name(name or "", f"{level} {code}")
            except InvalidInput as exc:
                problem = exc.message
        if not problem and code in seen:
            problem = f"code {code} appears twice (also {seen[code]})"
        if problem:
            report.findings.append((labels[i], "error", problem))
            continue
        seen[code] = labels[i]
        if geoms[i] is None:
            continue  # its geometry's finding is reported already
        name_en = _text(data, columns["name_en"], i) if columns["name_en"] else None
        out[i] = store.Candidate(code, level, name, store.parent_of(code),
                                 shapely.to_wkb(shapely.force_2d(geoms[i])), name_en)
    _parents(session, out, labels, report, district_name)
    return out


def _parents(session: Session, out: dict[int, store.Candidate], labels, report: DivisionReport,
             district_name: str | None) -> None:
    in_file = {c.code for c in out.values()}
    wanted = {c.parent_code for c in out.values() if c.parent_code and c.parent_code not in in_file}
    known = set(store.stored(session, sorted(wanted)))
    for i, c in list(out.items()):
        if c.parent_code in in_file or c.parent_code in known or c.parent_code is None:
            continue
        if c.level == "community":
            report.findings.append((labels[i], "error", f"its subdistrict {c.parent_code} (the code's first 9 "
                                    "digits + 000) is neither in the file nor stored: add it to the file"))
            del out[i]
        elif c.parent_code not in {d.code for d in out.values()}:
            name = district_name or f"{c.parent_code[:6]} 区县"
            out[-1 - len(out)] = store.Candidate(c.parent_code, "district", name, None, None)
            report.notes.append(f"district {c.parent_code} is not stored: it is created without a boundary, "
                                f"named {name!r} (district_name names it)")
