"""One network (一张网, issue 16 §2): departments' own grids next to the comprehensive grids, and who handles a point.

* **Departments** (``departments``) are organisations named by their unified social credit code (统一社会信用代码,
  GB 32100, :func:`spatial.geometry.codes.credit_code_problem`). Each imports its grids as one named layer
  (``department_grids``, migration 0024); an import replaces the department's current layer (old rows kept with
  ``valid_to``). Candidates are checked here (:func:`check_department_grids`): land in no community (error), overlap
  with another grid of the same layer (error), buildings cut by a boundary (warning), several communities
  (warning: the findings a merge needs); the file side is :mod:`spatial.io.department_grids`.
* **Crosswalk** (:func:`crosswalk`): for every current department grid touching a subdistrict, the share of its
  land and of its buildings' floor plate (footprint m²) in each comprehensive grid. Areas in ``metric_srid`` (m²);
  land outside every grid is the ``None`` grid, so each department grid's land shares sum to 1 (to floating point);
  a building counts in the grid it is assigned to (``buildings.grid_id``: a building is never cut by a grid), so
  its piece inside the department grid goes there whole. Cut buildings: a footprint with more than
  ``tolerance_m2`` inside and outside the department grid. Multi-community grids: land in more than one community.
  The proposal (:func:`spatial.analysis.one_network.propose`) says which comprehensive grid takes each piece.
* **Who handles this point** (:func:`who_handles`): the comprehensive grid covering a point (EPSG:4326), its
  community and workers (names masked: surname + ``*``; users keep no phone), and every department grid in force
  there with the department, its office line (an organisation's number, shown whole) and the grid's contact person
  (name and mobile masked, :mod:`spatial.privacy`). Any logged-in role may ask: nothing in it is household data.
  Cases carry the department grids of their place (``cases.department_grid_ids``, filled by the database when a
  case is reported or moved): :func:`case_departments`.

Who may import or replace a layer: admin, or a planner whose area holds every community the layer touches.
Crosswalk and findings: admin, planner or inspector, for a subdistrict in their area.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial import privacy
from spatial.access import Principal
from spatial.analysis import one_network as plan
from spatial.errors import InvalidInput, NotFound
from spatial.geometry.codes import SUBDISTRICT_CODE_PATTERN, credit_code_problem, scope_prefix
from spatial.store import audit
from spatial.store.engine import acting_as
from spatial.store.grid_import import Finding
from spatial.store.risk_zones import common_division
from spatial.store.scope import prefix_bounds

IMPORT_ROLES = ("planner",)
READ_ROLES = ("planner", "inspector")
DEFAULT_TOLERANCE_M2 = 1.0

_CANDIDATES = """
    WITH c AS MATERIALIZED (
        SELECT i, g, ST_Transform(g, :srid) AS m
        FROM unnest(CAST(:wkbs AS bytea[])) WITH ORDINALITY AS v (wkb, i),
             ST_Multi(ST_SetSRID(ST_GeomFromWKB(wkb), 4326)) AS g)
"""


def credit_code(value: Any, what: str = "credit_code") -> str:
    """The normalised unified social credit code (stripped, upper case), or InvalidInput naming ``what``."""
    code = str(value or "").strip().upper()
    problem = credit_code_problem(code)
    if problem:
        raise InvalidInput(f"{what}: {problem}", code="one_network.credit_code", field=what, reason=problem)
    return code


# -- checking and writing a department's layer ----------------------------------------------------------------------


@dataclass
class LayerCheck:
    """What :func:`check_department_grids` found: findings per candidate (0-based index), each candidate's
    communities (code → m² inside) and scope code (None: in no community), and its area (m²)."""

    findings: list[Finding]
    communities: list[dict[str, float]]
    scope_codes: list[str | None]
    areas_m2: list[float]


def check_department_grids(session: Session, wkbs: Sequence[bytes], *, metric_srid: int = 4547,
                           tolerance_m2: float = DEFAULT_TOLERANCE_M2) -> LayerCheck:
    """Check a department's grids (WKB MultiPolygons in EPSG:4326) as one layer (module docstring)."""
    params = {"wkbs": list(wkbs), "srid": metric_srid, "tol": tolerance_m2}
    n = len(wkbs)
    communities: list[dict[str, float]] = [{} for _ in range(n)]
    for i, code, m2 in session.execute(text(_CANDIDATES + """
            SELECT c.i, d.code, ST_Area(ST_Intersection(c.m, ST_Transform(d.boundary, :srid)))
            FROM c JOIN divisions d ON d.level = 'community' AND d.boundary && c.g AND ST_Intersects(d.boundary, c.g)
            ORDER BY 1, 2"""), params):
        if m2 > tolerance_m2:
            communities[i - 1][code] = m2
    areas = [0.0] * n
    for i, m2 in session.execute(text(_CANDIDATES + "SELECT i, ST_Area(m) FROM c"), params):
        areas[i - 1] = m2
    findings: list[Finding] = []
    scopes: list[str | None] = []
    for i, touched in enumerate(communities):
        if not touched:
            findings.append(Finding(i, "error", "lies in no community"))
            scopes.append(None)
            continue
        scopes.append(common_division(sorted(touched)))
        outside = areas[i] - sum(touched.values())
        if outside > tolerance_m2:
            findings.append(Finding(i, "warning", f"{outside:,.0f} m² lie outside every community"))
        if len(touched) > 1:
            findings.append(Finding(i, "warning", f"spans {len(touched)} communities ({', '.join(sorted(touched))})"))
    for a, b, m2 in session.execute(text(_CANDIDATES + """
            SELECT a.i, b.i, ST_Area(ST_Intersection(a.m, b.m)) FROM c a JOIN c b ON a.i < b.i AND a.g && b.g
            WHERE ST_Intersects(a.g, b.g) AND ST_Area(ST_Intersection(a.m, b.m)) > :tol ORDER BY 1, 2"""), params):
        findings.append(Finding(a - 1, "error", f"overlaps feature {b - 1} of the same layer by {m2:,.0f} m²"))
    for i, cut in session.execute(text(_CANDIDATES + """
            SELECT c.i, count(*) FROM c JOIN buildings b ON b.footprint && c.g AND ST_Intersects(b.footprint, c.g)
            CROSS JOIN LATERAL (SELECT ST_Transform(b.footprint, :srid) AS f) t
            CROSS JOIN LATERAL (SELECT ST_Area(ST_Intersection(t.f, c.m)) AS inside) x
            WHERE x.inside > :tol AND ST_Area(t.f) - x.inside > :tol GROUP BY c.i ORDER BY 1"""), params):
        findings.append(Finding(i - 1, "warning", f"its boundary cuts {cut} building(s)"))
    findings.sort(key=lambda f: f.index)
    return LayerCheck(findings, communities, scopes, areas)


def may_import(who: Principal, scope_codes: Sequence[str]) -> None:
    """Forbidden unless ``who`` is admin, or a planner whose area holds every one of ``scope_codes``."""
    who.require_role(*IMPORT_ROLES)
    for code in sorted(set(scope_codes)):
        who.require_scope(code)


def current_scopes(session: Session, department: str) -> list[str]:
    """The scope codes of a department's current layer (who replaces it must hold them too)."""
    return list(session.execute(text("SELECT DISTINCT scope_code FROM department_grids WHERE department_code = :d "
                                     "AND valid_to IS NULL"), {"d": department}).scalars())


def layer_basis(session: Session, department: str) -> str:
    """The ETag of a department's current layer: its rows' count and newest id (``"dg<count>.<id>"``)."""
    count, newest = session.execute(text("SELECT count(*), coalesce(max(id), 0) FROM department_grids "
                                         "WHERE department_code = :d AND valid_to IS NULL"), {"d": department}).one()
    return f'"dg{count}.{newest}"'


def write_department_layer(session: Session, *, department: str, department_name: str, office_phone: str | None,
                           layer: str, rows: Sequence[dict], actor: str, reason: str) -> tuple[int, int]:
    """Make ``rows`` (code, name, contact_name, contact_phone, wkb, area_m2, scope_code) the department's current
    layer: the department row is created or renamed, the rows in force end now, the new ones start now. Returns
    (ended, inserted). Audited as ``import_department_grids``; writes in the caller's transaction."""
    with acting_as(session, actor, reason):
        session.execute(text("""
            INSERT INTO departments (credit_code, name, contact_phone) VALUES (:d, :name, :phone)
            ON CONFLICT (credit_code) DO UPDATE SET name = EXCLUDED.name,
                contact_phone = coalesce(EXCLUDED.contact_phone, departments.contact_phone)"""),
                        {"d": department, "name": department_name, "phone": office_phone})
        ended = session.execute(text("UPDATE department_grids SET valid_to = now() WHERE department_code = :d "
                                     "AND valid_to IS NULL"), {"d": department}).rowcount
        session.execute(text("""
            INSERT INTO department_grids (department_code, layer, code, name, contact_name, contact_phone, boundary,
                                          area_m2, scope_code, imported_by, reason)
            SELECT :d, :layer, code, name, nullif(contact_name, ''), nullif(contact_phone, ''),
                   ST_Multi(ST_SetSRID(ST_GeomFromWKB(wkb), 4326)), area_m2, scope_code, :actor, :reason
            FROM unnest(CAST(:codes AS text[]), CAST(:names AS text[]), CAST(:contacts AS text[]),
                        CAST(:phones AS text[]), CAST(:wkbs AS bytea[]), CAST(:areas AS float8[]),
                        CAST(:scopes AS text[])) AS v (code, name, contact_name, contact_phone, wkb, area_m2,
                                                       scope_code)"""),
                        {"d": department, "layer": layer, "actor": actor, "reason": reason[:1000],
                         "codes": [r["code"] for r in rows], "names": [r["name"] for r in rows],
                         "contacts": [r.get("contact_name") or "" for r in rows],
                         "phones": [r.get("contact_phone") or "" for r in rows], "wkbs": [r["wkb"] for r in rows],
                         "areas": [r["area_m2"] for r in rows], "scopes": [r["scope_code"] for r in rows]})
    audit.record(session, None, "import_department_grids", object_type="department_grids", object_id=department,
                 actor=actor, purpose=reason, result=f"layer {layer}: {ended} ended, {len(rows)} in force")
    return ended, len(rows)


@dataclass(frozen=True)
class LayerSummary:
    department: str
    department_name: str
    office_phone: str | None
    layer: str
    grids: int
    area_m2: float
    since: Any


def layers(session: Session, who: Principal) -> list[LayerSummary]:
    """The departments' current layers with a grid in the caller's area (a grid worker: their grids'
    communities), by department name."""
    visible, params = _visible_sql(who, "d")
    rows = session.execute(text(f"""
        SELECT p.credit_code, p.name, p.contact_phone, d.layer, count(*) AS grids, sum(d.area_m2) AS area_m2,
               min(d.valid_from) AS since
        FROM department_grids d JOIN departments p ON p.credit_code = d.department_code
        WHERE d.valid_to IS NULL AND {visible}
        GROUP BY p.credit_code, p.name, p.contact_phone, d.layer ORDER BY p.name, d.layer"""), params).all()
    return [LayerSummary(r.credit_code, r.name, r.contact_phone, r.layer, r.grids, float(r.area_m2), r.since)
            for r in rows]


def _visible_sql(who: Principal, alias: str) -> tuple[str, dict[str, Any]]:
    """A department grid is seen by whoever's area overlaps its scope code (its subtree or a division above)."""
    area = who.area
    if area.everything:
        return "TRUE", {}
    if area.grid_ids:
        return (f"EXISTS (SELECT 1 FROM grids g WHERE g.id = ANY(CAST(:dg_grids AS integer[])) AND "
                f"g.boundary && {alias}.boundary AND ST_Intersects(g.boundary, {alias}.boundary))",
                {"dg_grids": sorted(area.grid_ids)})
    if area.prefix:
        prefix = (f"(CASE WHEN substr({alias}.scope_code, 7) = '000000' THEN substr({alias}.scope_code, 1, 6) "
                  f"WHEN substr({alias}.scope_code, 10) = '000' THEN substr({alias}.scope_code, 1, 9) "
                  f"ELSE {alias}.scope_code END)")
        return (f"({alias}.scope_code LIKE :dg_prefix || '%' OR :dg_code LIKE {prefix} || '%')",
                {"dg_prefix": area.prefix, "dg_code": who.scope_code})
    return "FALSE", {}


# -- the crosswalk ------------------------------------------------------------------------------------------------


@dataclass
class Crosswalk:
    """The crosswalk of a subdistrict (module docstring): ``grids`` the department grids (id → their fields),
    ``pieces`` per department grid, ``cut`` buildings and ``multi_community`` grids; ``proposal`` per piece."""

    subdistrict: str
    grids: dict[int, dict[str, Any]] = field(default_factory=dict)
    pieces: list[plan.Piece] = field(default_factory=list)
    cut: list[dict[str, Any]] = field(default_factory=list)
    multi_community: list[dict[str, Any]] = field(default_factory=list)
    proposal: list[plan.Assignment] = field(default_factory=list)


_CROSSWALK = """
WITH sub AS (SELECT ST_Union(boundary) AS g FROM divisions
             WHERE level = 'community' AND code >= :prefix_from AND code < :prefix_to),
dg AS MATERIALIZED (
    SELECT d.id, d.department_code, d.layer, d.code, d.name, d.boundary, ST_Transform(d.boundary, :srid) AS m
    FROM department_grids d, sub
    WHERE d.valid_to IS NULL AND d.boundary && sub.g AND ST_Intersects(d.boundary, sub.g))
"""


def crosswalk(session: Session, who: Principal, subdistrict: str, *, metric_srid: int = 4547,
              tolerance_m2: float = DEFAULT_TOLERANCE_M2, min_share: float = plan.DEFAULT_MIN_SHARE) -> Crosswalk:
    """The crosswalk of every current department grid touching ``subdistrict`` (module docstring), its findings and
    proposal. Forbidden outside the caller's area or role; NotFound for an unknown subdistrict."""
    if not re.fullmatch(SUBDISTRICT_CODE_PATTERN, subdistrict or ""):
        raise InvalidInput(f"{subdistrict!r} is not a subdistrict code (9 digits + 000)",
                           code="one_network.subdistrict", subdistrict=subdistrict)
    who.require_role(*READ_ROLES)
    who.require_scope(subdistrict)
    if not session.scalar(text("SELECT EXISTS (SELECT 1 FROM divisions WHERE code = :c AND level = 'subdistrict')"),
                          {"c": subdistrict}):
        raise NotFound(f"no subdistrict {subdistrict}", code="one_network.no_subdistrict", subdistrict=subdistrict)
    params = {**prefix_bounds(scope_prefix(subdistrict)), "srid": metric_srid, "tol": tolerance_m2}
    result = Crosswalk(subdistrict)
    for r in session.execute(text(_CROSSWALK + """
            SELECT dg.id, dg.department_code, p.name AS department_name, dg.layer, dg.code, dg.name, ST_Area(dg.m) AS m2
            FROM dg JOIN departments p ON p.credit_code = dg.department_code ORDER BY p.name, dg.code"""), params):
        result.grids[r.id] = {"id": r.id, "department": r.department_code, "department_name": r.department_name,
                              "layer": r.layer, "code": r.code, "name": r.name, "area_m2": r.m2}
    if not result.grids:
        return result
    land = session.execute(text(_CROSSWALK + """
            SELECT dg.id, g.id AS grid_id, g.code, g.community_code,
                   ST_Area(ST_Intersection(dg.m, ST_Transform(g.boundary, :srid))) AS m2
            FROM dg JOIN grids g ON g.retired_at IS NULL AND g.boundary && dg.boundary
                                 AND ST_Intersects(g.boundary, dg.boundary)"""), params).all()
    buildings = session.execute(text(_CROSSWALK + """
            SELECT dg.id, b.id AS building_id, b.code AS building_code, b.grid_id, g.code AS grid_code,
                   g.community_code, ST_Area(t.f) AS total,
                   CASE WHEN ST_CoveredBy(b.footprint, dg.boundary) THEN ST_Area(t.f)
                        ELSE ST_Area(ST_Intersection(t.f, dg.m)) END AS inside
            FROM dg JOIN buildings b ON b.footprint && dg.boundary AND ST_Intersects(b.footprint, dg.boundary)
            LEFT JOIN grids g ON g.id = b.grid_id
            CROSS JOIN LATERAL (SELECT ST_Transform(b.footprint, :srid) AS f) t"""), params).all()
    grid_of: dict[int, tuple[str, str]] = {}
    land_m2: dict[int, dict[int | None, float]] = defaultdict(lambda: defaultdict(float))
    for r in land:
        grid_of[r.grid_id] = (r.code, r.community_code)
        land_m2[r.id][r.grid_id] += r.m2
    floor_m2: dict[int, dict[int | None, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[int, dict[int | None, int]] = defaultdict(lambda: defaultdict(int))
    for r in buildings:
        if r.grid_id is not None:
            grid_of.setdefault(r.grid_id, (r.grid_code, r.community_code))
        if r.inside <= 0:
            continue
        floor_m2[r.id][r.grid_id] += r.inside
        counts[r.id][r.grid_id] += r.inside * 2 > r.total  # counted where most of it lies
        if r.inside > tolerance_m2 and r.total - r.inside > tolerance_m2:
            result.cut.append({"department_grid": r.id, "building_id": r.building_id, "building_code": r.building_code,
                               "grid_code": r.grid_code, "inside_share": r.inside / r.total})
    for dg_id, info in result.grids.items():
        total, lands, floors = info["area_m2"], land_m2[dg_id], floor_m2[dg_id]
        lands[None] += max(total - sum(lands.values()), 0.0)  # land in no grid: the shares sum to 1
        floor_total = sum(floors.values())
        for g in sorted({*lands, *floors}, key=lambda g: (g is None, g or 0)):
            lm2, fm2 = lands.get(g, 0.0), floors.get(g, 0.0)
            if lm2 <= tolerance_m2 and fm2 <= 0:
                continue
            code, community = grid_of.get(g, (None, None)) if g is not None else (None, None)
            result.pieces.append(plan.Piece(dg_id, g, code, community, lm2, lm2 / total if total else 0.0, fm2,
                                            fm2 / floor_total if floor_total else None, counts[dg_id].get(g, 0)))
    by_grid: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for p in result.pieces:
        if p.community_code:
            by_grid[p.department_grid][p.community_code] += p.land_share
    result.multi_community = [
        {"department_grid": dg_id, "communities": {c: s for c, s in sorted(shares.items())}}
        for dg_id, shares in sorted(by_grid.items()) if sum(1 for s in shares.values() if s >= min_share) > 1]
    result.proposal = plan.propose(result.pieces, {i: g["department"] for i, g in result.grids.items()})
    return result


# -- who handles this point ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handler:
    """Who handles a point: the comprehensive grid (None outside every grid) with its community and workers, and
    every department grid in force there (department, office line, masked contact)."""

    lon: float
    lat: float
    grid: dict[str, Any] | None
    workers: list[dict[str, Any]]
    departments: list[dict[str, Any]]


_DEPARTMENTS = """
    SELECT d.id, d.department_code, p.name AS department_name, p.contact_phone AS office_phone, d.layer, d.code,
           d.name, d.contact_name, d.contact_phone
    FROM department_grids d JOIN departments p ON p.credit_code = d.department_code
"""


def _department(r: Any) -> dict[str, Any]:
    return {"id": r.id, "department": r.department_code, "department_name": r.department_name,
            "office_phone": r.office_phone, "layer": r.layer, "code": r.code, "name": r.name,
            "contact_name": privacy.mask_name(r.contact_name), "contact_phone": privacy.mask_phone(r.contact_phone)}


def who_handles(session: Session, lon: float, lat: float) -> Handler:
    """Who handles the point ``lon``, ``lat`` (EPSG:4326; module docstring)."""
    point = {"lon": lon, "lat": lat}
    pt = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
    grid = session.execute(text(f"""
        SELECT g.id, g.code, g.name, g.kind, g.community_code, c.name AS community_name
        FROM grids g LEFT JOIN divisions c ON c.code = g.community_code
        WHERE g.retired_at IS NULL AND g.boundary && {pt} AND ST_Covers(g.boundary, {pt})
        ORDER BY g.kind = 'dedicated' DESC, g.code LIMIT 1"""), point).mappings().one_or_none()
    workers = []
    if grid is not None:
        workers = [{"name": privacy.mask_name(r.display_name or r.username), "duty": r.duty}
                   for r in session.execute(text("""
                       SELECT u.username, u.display_name, a.duty FROM grid_assignments a JOIN users u ON u.id = a.user_id
                       WHERE a.grid_id = :g AND u.active ORDER BY a.duty = 'leader' DESC, u.username"""),
                                            {"g": grid["id"]})]
    departments = [_department(r) for r in session.execute(text(
        _DEPARTMENTS + f" WHERE d.valid_to IS NULL AND d.boundary && {pt} AND ST_Covers(d.boundary, {pt}) "
                       "ORDER BY p.name, d.code"), point)]
    return Handler(lon, lat, dict(grid) if grid else None, workers, departments)


def case_departments(session: Session, who: Principal, case_id: int) -> list[dict[str, Any]]:
    """The department grids recorded on a case when it was reported or moved (``cases.department_grid_ids``), with
    their departments and masked contacts; the case must be one ``who`` sees (:func:`spatial.store.cases.get_case`)."""
    from spatial.store import cases

    cases.get_case(session, who, case_id)
    ids = session.scalar(text("SELECT department_grid_ids FROM cases WHERE id = :id"), {"id": case_id}) or []
    return [_department(r) for r in session.execute(text(_DEPARTMENTS + " WHERE d.id = ANY(:ids) ORDER BY p.name, "
                                                                        "d.code"), {"ids": list(ids)})]
