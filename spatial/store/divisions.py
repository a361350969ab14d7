"""Administrative divisions (subdistricts 街道, communities 社区): checks, writes with history, single edits.

Geometries come in and go out as EPSG:4326 (lon, lat), as WKB or shapely; every check measures in the
deployment's metric CRS (``metric_srid``, EPSG:4547 by default) with a tolerance of ``tolerance_m`` metres
(:data:`TOLERANCE_M`), which absorbs the slivers of boundaries drawn in different tools:

* a division must lie inside its parent (a community inside its subdistrict; a subdistrict inside its district
  when the district has a boundary): land more than ``tolerance_m`` beyond the parent's boundary is an error;
* siblings (same parent) must not overlap by more than ``tolerance_m`` (error);
* land of a subdistrict no community covers is reported in m² (warning; ``uncovered_m2``);
* a redrawn community that leaves out grids or buildings of its own lists them (warning: redraw those grids next);
* areas under :data:`MIN_AREA_M2` are floating-point dust and never reported.

A rule is broken when land beyond the tolerance band breaks it; the area reported is then the whole area
concerned (land outside the parent, overlap, uncovered land), measured without the band.

Checks see the divisions *as they would be*: the candidates replace the stored rows of the same code, and
stored parents, children and siblings of the candidates take part. History rows (``division_versions``) are
written by the divisions trigger (migration 0013) with the actor and reason of
:func:`spatial.store.engine.acting_as`; an unchanged division makes no version. Every division written leaves
one audit row (action create / update / rename / redraw, object_type ``division``). Nothing is committed here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely import Geometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.errors import Conflict, InvalidInput, NotFound, StaleEdit
from spatial.geometry.codes import division_code_problem, division_level
from spatial.store import audit
from spatial.store.engine import acting_as

TOLERANCE_M = 1.0
"""Metres a division may stray beyond its parent, or into a sibling, before it is an error."""
MIN_AREA_M2 = 1.0
"""Areas below this (m²) are not reported."""
NAME_MAX_LENGTH = 100
LEVELS = ("district", "subdistrict", "community")
LEVEL_RANK = {level: i for i, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class Candidate:
    """A division as it would be written. ``wkb``: its (Multi)Polygon in EPSG:4326, or None (a district
    without boundary). ``name_en`` None keeps the stored English name."""

    code: str
    level: str
    name: str
    parent_code: str | None
    wkb: bytes | None
    name_en: str | None = None


@dataclass(frozen=True)
class Finding:
    code: str          # the candidate it concerns
    severity: str      # 'error' (nothing is written) or 'warning'
    message: str


@dataclass
class Checked:
    findings: list[Finding] = field(default_factory=list)
    uncovered_m2: dict[str, float] = field(default_factory=dict)
    """Per subdistrict checked: land (m²) no community covers."""
    left_out: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per redrawn community: ``grids`` (codes with land outside the new boundary), ``buildings`` (count) and
    ``building_codes`` (the first 20) mostly outside it."""

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


def parent_of(code: str) -> str | None:
    """The code of the division holding ``code`` (None for a district)."""
    level = division_level(code)
    return {"district": None, "subdistrict": code[:6] + "000000", "community": code[:9] + "000"}[level]


# -- reading ---------------------------------------------------------------------------------------------
def stored(session: Session, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The stored divisions among ``codes``: level, name, name_en, parent_code, version, boundary (shapely,
    lon/lat, or None)."""
    rows = session.execute(text("""
        SELECT code, level, name, name_en, parent_code, version, ST_AsBinary(boundary) AS wkb
        FROM divisions WHERE code = ANY(CAST(:codes AS text[]))"""), {"codes": list(codes)}).mappings()
    return {r["code"]: {**{k: v for k, v in r.items() if k != "wkb"},
                        "boundary": shapely.from_wkb(bytes(r["wkb"])) if r["wkb"] is not None else None}
            for r in rows}


def division_row(session: Session, code: str) -> dict[str, Any]:
    """One stored division (as :func:`stored`, with ``updated_at``); NotFound otherwise."""
    found = stored(session, [code])
    if code not in found:
        raise NotFound(f"no division with code {code}")
    updated = session.execute(text("SELECT updated_at FROM divisions WHERE code = :c"), {"c": code}).scalar_one()
    return {**found[code], "updated_at": updated}


def versions(session: Session, code: str, metric_srid: int = 4547) -> list[dict[str, Any]]:
    """Every version of a division, oldest first: name, parent, author, reason, validity and area (m²)."""
    rows = session.execute(text("""
        SELECT code, version, level, name, name_en, parent_code, valid_from, valid_to, author, reason,
               round(ST_Area(ST_Transform(boundary, :srid))::numeric, 1) AS area_m2
        FROM division_versions WHERE code = :code ORDER BY version"""), {"code": code, "srid": metric_srid})
    found = [{**r, "area_m2": float(r["area_m2"]) if r["area_m2"] is not None else None} for r in rows.mappings()]
    if not found:
        raise NotFound(f"no division with code {code} in the history")
    return found


def import_basis(session: Session, codes: Sequence[str]) -> str:
    """An ETag of the stored state an import of ``codes`` is checked against: the versions of those divisions,
    of their parents and of their children. A dry run answers it; the import sends it back (If-Match)."""
    rows = session.execute(text("""
        SELECT code || ':' || version FROM divisions
        WHERE code = ANY(CAST(:codes AS text[])) OR parent_code = ANY(CAST(:codes AS text[]))
           OR code IN (SELECT parent_code FROM divisions WHERE code = ANY(CAST(:codes AS text[])))
        ORDER BY code"""), {"codes": list(codes)}).scalars().all()
    digest = hashlib.sha256((";".join(sorted(codes)) + "|" + ";".join(rows)).encode()).hexdigest()[:16]
    return f'"d{digest}"'


def require_import_basis(session: Session, codes: Sequence[str], basis: str) -> None:
    """StaleEdit unless ``basis`` (from :func:`import_basis` at the dry run) is still current; the divisions
    concerned stay locked until the transaction ends."""
    session.execute(text("SELECT code FROM divisions WHERE code = ANY(CAST(:codes AS text[])) "
                         "OR parent_code = ANY(CAST(:codes AS text[])) ORDER BY code FOR UPDATE"),
                    {"codes": list(codes)})
    current = import_basis(session, codes)
    if basis.strip().removeprefix("W/") != current:
        raise StaleEdit(f"the divisions of this file changed after the dry run (made on {basis}, now {current}): "
                        "run the dry run again and review", current=current)


# -- checking ----------------------------------------------------------------------------------------------
_EFFECTIVE = """
WITH c AS (
    SELECT code, level, parent_code, ST_Transform(ST_Multi(ST_GeomFromWKB(wkb, 4326)), :srid) AS geom, true AS cand
    FROM unnest(CAST(:codes AS text[]), CAST(:levels AS text[]), CAST(:parents AS text[]), CAST(:wkbs AS bytea[]))
         AS v (code, level, parent_code, wkb)
    WHERE wkb IS NOT NULL),
s AS (
    SELECT d.code, d.level, d.parent_code, ST_Transform(d.boundary, :srid) AS geom, false AS cand
    FROM divisions d
    WHERE d.boundary IS NOT NULL AND d.code <> ALL(CAST(:codes AS text[]))
      AND (d.code IN (SELECT parent_code FROM c) OR d.parent_code IN (SELECT code FROM c)
           OR d.parent_code IN (SELECT parent_code FROM c))),
eff AS (SELECT * FROM c UNION ALL SELECT * FROM s)
"""

_OUTSIDE_PARENT = _EFFECTIVE + """
SELECT ch.code, ch.level, ch.cand, p.code AS parent, p.level AS parent_level,
       ST_Area(ST_Difference(ch.geom, p.geom)) AS area
FROM eff ch JOIN eff p ON p.code = ch.parent_code CROSS JOIN LATERAL (SELECT ST_Buffer(p.geom, :tol) AS grown) g
WHERE (ch.cand OR p.cand) AND NOT ST_Within(ch.geom, grown) AND ST_Area(ST_Difference(ch.geom, grown)) > :min
ORDER BY 1"""

_SIBLING_OVERLAPS = _EFFECTIVE + """
SELECT a.code, a.cand, b.code AS other, b.cand AS other_cand, b.level AS other_level,
       ST_Area(ST_Intersection(a.geom, b.geom)) AS area
FROM eff a JOIN eff b ON a.parent_code = b.parent_code AND a.code < b.code AND a.geom && b.geom
WHERE (a.cand OR b.cand) AND ST_Area(ST_Intersection(ST_Buffer(a.geom, -:tol), b.geom)) > :min
ORDER BY 1, 3"""

_UNCOVERED = _EFFECTIVE + """
SELECT p.code, CASE WHEN ST_Area(ST_Difference(p.geom, ST_Buffer(covered, :tol))) > :min
                    THEN ST_Area(ST_Difference(p.geom, covered)) ELSE 0 END AS area
FROM eff p CROSS JOIN LATERAL (
    SELECT coalesce(ST_Union(ch.geom), ST_GeomFromText('POLYGON EMPTY', :srid)) AS covered
    FROM eff ch WHERE ch.parent_code = p.code) u
WHERE p.level = 'subdistrict' AND (p.cand OR EXISTS (SELECT FROM eff ch WHERE ch.parent_code = p.code AND ch.cand))
ORDER BY 1"""

_LEFT_OUT_GRIDS = _EFFECTIVE + """
SELECT c.code, g.code AS grid, ST_Area(ST_Difference(ST_Transform(g.boundary, :srid), c.geom)) AS area
FROM c JOIN grids g ON g.community_code = c.code AND g.retired_at IS NULL
WHERE c.level = 'community'
  AND ST_Area(ST_Difference(ST_Transform(g.boundary, :srid), ST_Buffer(c.geom, :tol))) > :min
ORDER BY 1, 2"""

_LEFT_OUT_BUILDINGS = _EFFECTIVE + """
SELECT c.code, count(*) AS buildings,
       (array_agg(coalesce(b.code, '#' || b.id) ORDER BY coalesce(b.code, '#' || b.id)))[1:20] AS codes
FROM c JOIN buildings b ON b.community_code = c.code
                         OR b.grid_id IN (SELECT id FROM grids WHERE community_code = c.code)
CROSS JOIN LATERAL (SELECT ST_Transform(b.footprint, :srid) AS foot) f
WHERE c.level = 'community' AND ST_Area(ST_Difference(foot, ST_Buffer(c.geom, :tol))) > 0.5 * ST_Area(foot)
GROUP BY c.code ORDER BY 1"""


def check_divisions(session: Session, candidates: Sequence[Candidate], *, metric_srid: int = 4547,
                    tolerance_m: float = TOLERANCE_M) -> Checked:
    """The spatial rules of the module docstring, as findings on the candidates (codes must be unique).
    A rule broken by a stored division because of a candidate (a stored community left outside a redrawn
    subdistrict) is reported on the candidate."""
    checked = Checked()
    with_geometry = [c for c in candidates if c.wkb is not None]
    if not with_geometry:
        return checked
    params = {"codes": [c.code for c in with_geometry], "levels": [c.level for c in with_geometry],
              "parents": [c.parent_code for c in with_geometry], "wkbs": [c.wkb for c in with_geometry],
              "srid": metric_srid, "tol": tolerance_m, "min": MIN_AREA_M2}
    beyond = f"more than {tolerance_m:g} m beyond its boundary"
    for r in session.execute(text(_OUTSIDE_PARENT), params).mappings():
        if r["cand"]:
            checked.findings.append(Finding(r["code"], "error", f"{r['area']:,.0f} m² lie outside its "
                                            f"{r['parent_level']} {r['parent']} ({beyond})"))
        else:
            checked.findings.append(Finding(r["parent"], "error", f"stored {r['level']} {r['code']} would have "
                                            f"{r['area']:,.0f} m² outside this boundary ({beyond}): redraw it too"))
    for r in session.execute(text(_SIBLING_OVERLAPS), params).mappings():
        mine, other, stored_other = ((r["code"], r["other"], not r["other_cand"]) if r["cand"]
                                     else (r["other"], r["code"], True))
        where = "stored" if stored_other else "imported"
        checked.findings.append(Finding(mine, "error", f"overlaps {where} {r['other_level']} {other} by "
                                        f"{r['area']:,.0f} m² (more than {tolerance_m:g} m deep)"))
    for code, area in session.execute(text(_UNCOVERED), params).all():
        checked.uncovered_m2[code] = float(area)
        if area > MIN_AREA_M2 and code in params["codes"]:
            checked.findings.append(Finding(code, "warning", f"{area:,.0f} m² of the subdistrict lie in no "
                                            "community"))
    for code, grid, area in session.execute(text(_LEFT_OUT_GRIDS), params).all():
        checked.left_out.setdefault(code, {"grids": [], "buildings": 0, "building_codes": []})["grids"].append(grid)
    for code, count, codes in session.execute(text(_LEFT_OUT_BUILDINGS), params).all():
        entry = checked.left_out.setdefault(code, {"grids": [], "buildings": 0, "building_codes": []})
        entry["buildings"], entry["building_codes"] = int(count), list(codes)
    for code, entry in checked.left_out.items():
        parts = []
        if entry["grids"]:
            parts.append(f"grid(s) {', '.join(entry['grids'])} reach outside it")
        if entry["buildings"]:
            parts.append(f"{entry['buildings']} building(s) lie mostly outside it")
        checked.findings.append(Finding(code, "warning", "the new boundary leaves out land of its own: "
                                        + "; ".join(parts) + " (redraw or move them next)"))
    return checked


# -- writing -----------------------------------------------------------------------------------------------
@dataclass
class Written:
    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    """Map tiles of what changed are invalidated by the database itself (migration 0011)."""


def write_divisions(session: Session, rows: Sequence[Candidate], *, actor: str, reason: str,
                    action: str | None = None) -> Written:
    """Insert or update divisions by code, parents first (districts, subdistricts, communities); the history
    and the audit (``action``, default create/update) record ``actor`` and ``reason``."""
    written = Written()
    with acting_as(session, actor, reason):
        for row in sorted(rows, key=lambda r: (LEVEL_RANK[r.level], r.code)):
            old = session.execute(text("SELECT true FROM divisions WHERE code = :code FOR UPDATE"),
                                  {"code": row.code}).one_or_none()
            new = session.execute(text("""
                INSERT INTO divisions (code, level, name, name_en, parent_code, boundary)
                VALUES (:code, :level, :name, :name_en, :parent_code, ST_Multi(ST_GeomFromWKB(:wkb, 4326)))
                ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name,
                    name_en = coalesce(EXCLUDED.name_en, divisions.name_en), boundary = EXCLUDED.boundary
                RETURNING version"""),
                {"code": row.code, "level": row.level, "name": row.name, "name_en": row.name_en,
                 "parent_code": row.parent_code, "wkb": row.wkb}).one()
            (written.inserted if old is None else written.updated).append(row.code)
            audit.record(session, None, action or ("create" if old is None else "update"), actor=actor,
                         object_type="division", object_id=row.code, purpose=reason, result=f"version {new[0]}")
    return written


def same_as_stored(candidate: Candidate, row: dict[str, Any] | None) -> bool:
    """Whether writing ``candidate`` would change nothing of the stored ``row`` (boundaries equal as shapes,
    or vertex by vertex within 1e-8° ≈ 1 mm)."""
    if row is None or (candidate.name, candidate.parent_code) != (row["name"], row["parent_code"]):
        return False
    if candidate.name_en is not None and candidate.name_en != row["name_en"]:
        return False
    old, new = row["boundary"], shapely.from_wkb(candidate.wkb) if candidate.wkb is not None else None
    if old is None or new is None:
        return old is None and new is None
    old, new = (shapely.normalize(shapely.multipolygons(shapely.get_parts(g))) for g in (old, new))
    return bool(shapely.equals(old, new) or shapely.equals_exact(old, new, 1e-8))


# -- single edits (admin API) ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DivisionEdit:
    """Who edits and why; ``expected_version``: the version the caller edited (None only for a creation)."""

    actor: str
    reason: str
    expected_version: int | None = None
    metric_srid: int = 4547
    tolerance_m: float = TOLERANCE_M


@dataclass
class EditResult:
    division: dict[str, Any]
    checked: Checked


def clean_name(name: str, what: str = "a division") -> str:
    """The name stripped; InvalidInput when blank, longer than :data:`NAME_MAX_LENGTH` or holding control
    characters."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise InvalidInput(f"{what} needs a name (e.g. 沙头街道, 沙嘴社区)")
    if len(cleaned) > NAME_MAX_LENGTH:
        raise InvalidInput(f"the name has {len(cleaned)} characters; at most {NAME_MAX_LENGTH}")
    if any(ord(ch) < 32 for ch in cleaned):
        raise InvalidInput("the name holds a control character (line break, tab…); remove it")
    return cleaned


def _locked(session: Session, code: str, edit: DivisionEdit) -> dict[str, Any]:
    row = session.execute(text("SELECT version FROM divisions WHERE code = :c FOR UPDATE"), {"c": code}).scalar()
    if row is None:
        raise NotFound(f"no division with code {code}")
    if edit.expected_version is not None and row != edit.expected_version:
        raise StaleEdit(f"division {code} is at version {row}, not {edit.expected_version}: someone changed it "
                        "meanwhile; reload it and edit again", current=row)
    return division_row(session, code)


def _save(session: Session, candidate: Candidate, edit: DivisionEdit, action: str) -> EditResult:
    if not edit.reason or not edit.reason.strip():
        raise InvalidInput("say why: every change to a division is recorded with a reason")
    checked = check_divisions(session, [candidate], metric_srid=edit.metric_srid, tolerance_m=edit.tolerance_m)
    if checked.errors:
        raise Conflict("the division was not saved: " + "; ".join(f.message for f in checked.errors),
                       findings=[{"feature": f.code, "severity": f.severity, "message": f.message}
                                 for f in checked.findings])
    write_divisions(session, [candidate], actor=edit.actor, reason=edit.reason, action=action)
    return EditResult(division_row(session, candidate.code), checked)


def create_division(session: Session, code: str, name: str, boundary: Geometry | None, edit: DivisionEdit, *,
                    level: str | None = None, name_en: str | None = None) -> EditResult:
    """A new division from a lon/lat boundary (None only for a district). Its level follows from the code
    (``level``, if given, must agree); its parent must be stored. Conflict when the code is taken or a check
    fails."""
    problem = division_code_problem(code, level)
    if problem:
        raise InvalidInput(problem)
    level = division_level(code)
    parent = parent_of(code)
    if boundary is None and level != "district":
        raise InvalidInput(f"a {level} needs a boundary (GeoJSON Polygon or MultiPolygon)")
    found = stored(session, [c for c in (code, parent) if c])
    if code in found:
        raise Conflict(f"division {code} exists already ({found[code]['name']}): rename or redraw it instead")
    if parent is not None and parent not in found:
        raise InvalidInput(f"the parent {parent} of {code} is not stored: create the "
                           f"{'district' if level == 'subdistrict' else 'subdistrict'} {parent} first")
    candidate = Candidate(code, level, clean_name(name), parent,
                          shapely.to_wkb(boundary) if boundary is not None else None, name_en)
    return _save(session, candidate, edit, "create")


def rename_division(session: Session, code: str, name: str, edit: DivisionEdit, *,
                    name_en: str | None = None) -> EditResult:
    row = _locked(session, code, edit)
    candidate = Candidate(code, row["level"], clean_name(name), row["parent_code"], None, name_en)
    if not edit.reason or not edit.reason.strip():
        raise InvalidInput("say why: every change to a division is recorded with a reason")
    write_divisions(session, [_keep_boundary(candidate, row)], actor=edit.actor, reason=edit.reason,
                    action="rename")
    return EditResult(division_row(session, code), Checked())


def _keep_boundary(candidate: Candidate, row: dict[str, Any]) -> Candidate:
    wkb = shapely.to_wkb(row["boundary"]) if row["boundary"] is not None else None
    return Candidate(candidate.code, candidate.level, candidate.name, candidate.parent_code, wkb, candidate.name_en)


def redraw_division(session: Session, code: str, boundary: Geometry, edit: DivisionEdit) -> EditResult:
    """A division's new lon/lat boundary, checked as an import is; the result lists the grids and buildings
    it leaves out (warnings)."""
    row = _locked(session, code, edit)
    candidate = Candidate(code, row["level"], row["name"], row["parent_code"], shapely.to_wkb(boundary))
    return _save(session, candidate, edit, "redraw")
