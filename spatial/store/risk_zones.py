"""Risk zones (风险区域 · 五色图): designate, change and lift; the level of a building, unit, household or person at
time t; households and persons per level; the households of a zone; suggestions from rules.

* **What a zone is drawn on** (``target_kind``): a division (code; one without a boundary of its own takes the
  union of its communities'), an enclosure (id), a grid (code), a building
  (id), a unit of a building (building id + unit) or a drawn polygon (GeoJSON, EPSG:4326). Its boundary is a
  snapshot of the target's geometry when designated (EPSG:4326 MultiPolygon); later redraws of the grid or division
  do not move the zone. A drawn polygon belongs to the community it overlaps most; its ``scope_code`` (who may
  change it) is the smallest division holding every community it overlaps.
* **Who belongs to it**: a building and all its households belong to an area zone (division, enclosure, grid,
  polygon) when the building's point on surface (``ST_PointOnSurface(footprint)``) lies in the zone's boundary; a
  building zone holds its building; a unit zone only the households of that unit (``households.unit``). The
  *building's* level is that of its area and building zones; unit zones raise only their unit's households (a
  building's answer lists its units with a higher level). A person's level is that of the household they lived in
  at t (``persons.moved_in``/``moved_out``).
* **Which level wins**: of the zones applying at t, the highest severity; then the later designation
  (:func:`spatial.analysis.risk_levels.highest`). No zone: level None (未划定).
* **History**: ``risk_zone_versions`` holds the zone's periods ``[valid_from, valid_to)``; every level at t is read
  from the periods containing t (migration 0021). A change at T closes the running period at T (never before its
  start) and opens the next; a lift closes it and records a zero-length 'lift' period. Each write checks the
  caller's version (:class:`~spatial.errors.StaleEdit` → 412), is audited (``designate_zone``, ``change_zone``,
  ``lift_zone``) and needs a role of ``roles`` (default planner; admin always) and the zone's ``scope_code`` in
  the caller's area.
* **Reads**: zones are seen by whoever's area overlaps the zone's scope code (its subtree, or a division above
  it); household lists are household data (masked, audited, ``who.household_scope``); per-grid counts per level
  are workload figures (like per-grid totals) and follow ``who.area``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial import privacy
from spatial.access import Principal
from spatial.analysis import risk_levels as rl
from spatial.errors import Conflict, Forbidden, InvalidInput, NotFound, OutOfScope, StaleEdit
from spatial.geometry.codes import division_level, scope_prefix
from spatial.store import audit
from spatial.store.engine import jit_off
from spatial.store.household_reads import HouseholdView, audit_read
from spatial.store.scope import building_scope, grid_scope, prefix_bounds, prefix_range

TARGETS = ("division", "enclosure", "grid", "building", "unit", "polygon")
DEFAULT_ROLES = ("planner",)
DEFAULT_SCHEME = "five_colour"
MAX_HOUSEHOLDS = 20_000
MAX_WINDOW_DAYS = 90


@dataclass(frozen=True)
class Zone:
    """A zone as of its latest version: what it is drawn on, its scheme and level, its period (``valid_to`` None:
    open-ended), who and why, ``in_force`` now, and the boundary (EPSG:4326 MultiPolygon)."""

    id: int
    name: str
    target_kind: str
    target_ref: str | None
    building_id: int | None
    unit: str | None
    community_code: str | None
    scope_code: str
    version: int
    scheme: str
    level: str
    severity: int
    valid_from: datetime
    valid_to: datetime | None
    change: str
    author: str
    reason: str
    in_force: bool
    boundary: Any
    basis: Any = None


@dataclass(frozen=True)
class LevelAnswer:
    """The level at ``at`` of a building (its units with a higher level in ``units``), unit, household or person:
    the winning zone (None: no zone), every zone applying, and what was asked."""

    at: datetime
    winner: rl.ZoneLevel | None
    zones: tuple[rl.ZoneLevel, ...]
    building_id: int
    unit: str | None = None
    household_id: int | None = None
    units: dict[str, rl.ZoneLevel] = field(default_factory=dict)


# -- schemes ------------------------------------------------------------------------------------------------------


def schemes(session: Session) -> dict[str, rl.Scheme]:
    """Every level scheme (``risk_schemes``), by name."""
    rows = session.execute(text("SELECT name, label_zh, label_en, levels FROM risk_schemes ORDER BY builtin DESC, "
                                "name")).all()
    return {r.name: rl.Scheme.from_row(r.name, r.label_zh, r.label_en, r.levels) for r in rows}


def scheme(session: Session, name: str) -> rl.Scheme:
    found = schemes(session)
    if name not in found:
        raise InvalidInput(f"no level scheme {name!r}; schemes are {', '.join(found)}", code="risk_zones.scheme",
                           scheme=name, schemes=", ".join(found))
    return found[name]


def _level(session: Session, scheme_name: str, level: str) -> rl.Level:
    s = scheme(session, scheme_name)
    try:
        return s.level(level)
    except KeyError:
        levels = ", ".join(lv.level for lv in s.levels)
        raise InvalidInput(f"scheme {scheme_name} has no level {level!r}; its levels are {levels}",
                           code="risk_zones.level", level=level, scheme=scheme_name, levels=levels) from None


# -- visibility ---------------------------------------------------------------------------------------------------

_ZONE_PREFIX = ("(CASE WHEN substr({c}, 7) = '000000' THEN substr({c}, 1, 6) "
                "WHEN substr({c}, 10) = '000' THEN substr({c}, 1, 9) ELSE {c} END)")


def visible_sql(who: Principal, alias: str = "z") -> tuple[str, dict[str, Any]]:
    """Predicate on a ``risk_zones`` alias: the zone's scope code lies in the caller's area, or the caller's area
    lies inside the zone's scope (a zone over the caller's subdistrict is seen by its community planners); grid
    workers see the zones of their grids' communities and above."""
    area = who.area
    zone_prefix = _ZONE_PREFIX.format(c=f"{alias}.scope_code")
    if area.everything:
        return "TRUE", {}
    if area.grid_ids:
        return (f"EXISTS (SELECT 1 FROM grids g WHERE g.id = ANY(CAST(:zone_grids AS integer[])) "
                f"AND g.community_code LIKE {zone_prefix} || '%')"), {"zone_grids": sorted(area.grid_ids)}
    if area.prefix:
        return (f"({alias}.scope_code LIKE :zone_prefix || '%' OR :zone_code LIKE {zone_prefix} || '%')",
                {"zone_prefix": area.prefix, "zone_code": who.scope_code})
    return "FALSE", {}


# -- writing ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    kind: str
    ref: str | None
    building_id: int | None
    unit: str | None
    community_code: str | None
    scope_code: str
    boundary_wkb: bytes
    name: str


def _one(session: Session, sql: str, params: dict[str, Any], missing: str, **detail: Any):
    row = session.execute(text(sql), params).one_or_none()
    if row is None or row.wkb is None:
        raise NotFound(missing, code="risk_zones.target_missing", what=missing, **detail)
    return row


def resolve_target(session: Session, kind: str, ref: str | None, *, unit: str | None = None,
                   polygon: Any = None) -> Target:
    """What a zone is drawn on: its boundary (WKB, EPSG:4326 MultiPolygon), community and scope code, and a
    default name. ``polygon`` is a shapely (Multi)Polygon in EPSG:4326 for kind 'polygon'. NotFound when the
    target does not exist; InvalidInput when the kind and its reference do not fit."""
    if kind not in TARGETS:
        raise InvalidInput(f"a zone is drawn on one of {', '.join(TARGETS)}, not {kind!r}", code="risk_zones.target",
                           kind=kind, kinds=", ".join(TARGETS))
    if (kind == "polygon") != (polygon is not None) or (kind != "polygon" and not ref):
        raise InvalidInput("send a geometry for a drawn polygon, and a reference (code or id) for any other target",
                           code="risk_zones.target_ref")
    if (kind == "unit") != bool(unit):
        raise InvalidInput("a unit zone names its building and its unit (and only a unit zone names a unit)",
                           code="risk_zones.unit")
    if kind == "division":
        try:
            division_level(ref)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        r = _one(session, f"""
            SELECT d.code, d.level, d.name, ST_AsBinary(coalesce(d.boundary, (
                       SELECT ST_Multi(ST_Union(c.boundary)) FROM divisions c
                       WHERE c.level = 'community' AND {prefix_range('c.code')}))) AS wkb
            FROM divisions d WHERE d.code = :c""",
                 {"c": ref, **prefix_bounds(scope_prefix(ref))}, f"division {ref} (with a boundary)")
        return Target(kind, ref, None, None, ref if r.level == "community" else None, ref, bytes(r.wkb), r.name)
    if kind == "grid":
        r = _one(session, "SELECT code, name, community_code, ST_AsBinary(boundary) AS wkb FROM grids "
                          "WHERE code = :c AND retired_at IS NULL", {"c": ref}, f"current grid {ref}")
        return Target(kind, ref, None, None, r.community_code, r.community_code, bytes(r.wkb), r.name)
    if kind == "enclosure":
        if not ref.isdigit():
            raise InvalidInput("an enclosure is named by its id", code="risk_zones.target_ref")
        r = _one(session, """
            SELECT e.name, coalesce(e.community_code, (SELECT d.code FROM divisions d WHERE d.level = 'community'
                   AND ST_Covers(d.boundary, ST_PointOnSurface(e.boundary)) LIMIT 1)) AS community_code,
                   ST_AsBinary(ST_Multi(e.boundary)) AS wkb FROM enclosures e WHERE e.id = :id""",
                 {"id": int(ref)}, f"enclosure {ref}")
        if r.community_code is None:
            raise InvalidInput(f"enclosure {ref} lies in no community", code="risk_zones.outside")
        return Target(kind, ref, None, None, r.community_code, r.community_code, bytes(r.wkb), r.name)
    if kind in ("building", "unit"):
        if not ref.isdigit():
            raise InvalidInput("a building is named by its id", code="risk_zones.target_ref")
        r = _one(session, "SELECT id, code, name, community_code, ST_AsBinary(footprint) AS wkb FROM buildings "
                          "WHERE id = :id", {"id": int(ref)}, f"building {ref}")
        if r.community_code is None:
            raise InvalidInput(f"building {ref} lies in no community", code="risk_zones.outside")
        label = r.name or r.code or f"#{r.id}"
        if kind == "unit":
            if not session.scalar(text("SELECT EXISTS (SELECT 1 FROM households WHERE building_id = :b AND unit = :u)"),
                                  {"b": r.id, "u": unit}):
                raise NotFound(f"building {ref} has no household in unit {unit}", code="risk_zones.target_missing",
                               what=f"unit {unit} of building {ref}")
            label = f"{label} {unit}单元"
        return Target(kind, ref, r.id, unit, r.community_code, r.community_code, bytes(r.wkb), label)
    wkb = shapely.to_wkb(shapely.multipolygons(shapely.get_parts(polygon)) if polygon.geom_type == "Polygon"
                         else polygon)
    rows = session.execute(text("""
        WITH p AS (SELECT ST_SetSRID(ST_GeomFromWKB(:wkb), 4326) AS g)
        SELECT d.code FROM divisions d, p WHERE d.level = 'community' AND d.boundary && p.g
          AND ST_Area(ST_Intersection(d.boundary, p.g)) > 0
        ORDER BY ST_Area(ST_Intersection(d.boundary, p.g)) DESC"""), {"wkb": wkb}).scalars().all()
    if not rows:
        raise InvalidInput("the polygon lies outside every community", code="risk_zones.outside")
    scope = common_division(rows)
    return Target(kind, None, None, None, rows[0], scope, wkb, "")


def common_division(codes: Sequence[str]) -> str:
    """The smallest division holding every community of ``codes``: the community, its subdistrict or district."""
    if len(set(codes)) == 1:
        return codes[0]
    if len({c[:9] for c in codes}) == 1:
        return codes[0][:9] + "000"
    return codes[0][:6] + "000000"



def _may_write(who: Principal, scope_code: str, roles: Sequence[str]) -> None:
    who.require_role(*roles)
    who.require_scope(scope_code)


def _instant(value: datetime | None, now: datetime) -> datetime:
    if value is None:
        return now
    if value.tzinfo is None:
        raise InvalidInput("times need a time zone (e.g. 2026-12-03T08:00:00+08:00)", code="risk_zones.naive_time")
    return value


def _now(session: Session) -> datetime:
    return session.execute(text("SELECT now()")).scalar_one()


def designate(session: Session, who: Principal, *, target_kind: str, target_ref: str | None = None,
              unit: str | None = None, polygon: Any = None, level: str, scheme_name: str = DEFAULT_SCHEME,
              name: str | None = None, valid_from: datetime | None = None, valid_to: datetime | None = None,
              reason: str, basis: Any = None, roles: Sequence[str] = DEFAULT_ROLES) -> Zone:
    """Designate a zone (version 1, change 'designate') from ``valid_from`` (default now) to ``valid_to`` (None:
    until lifted). ``basis``: what the designation rests on (a confirmed suggestion's reasons), kept with the
    version. Audited."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("say why: every designation is recorded with a reason", code="risk_zones.reason")
    target = resolve_target(session, target_kind, target_ref, unit=unit, polygon=polygon)
    _may_write(who, target.scope_code, roles)
    lv = _level(session, scheme_name, level)
    now = _now(session)
    start = _instant(valid_from, now)
    end = None if valid_to is None else _instant(valid_to, now)
    if end is not None and end <= start:
        raise InvalidInput("valid_to must be after valid_from", code="risk_zones.period")
    label = (name or "").strip() or f"{target.name}{lv.label_zh}".strip()
    if len(label) > 200:
        raise InvalidInput("a zone's name is limited to 200 characters", code="risk_zones.name")
    zone_id = session.execute(text("""
        INSERT INTO risk_zones (name, target_kind, target_ref, building_id, unit, community_code, scope_code,
                                created_by)
        VALUES (:name, :kind, :ref, :b, :unit, :community, :scope, :by) RETURNING id"""),
        {"name": label, "kind": target.kind, "ref": target.ref, "b": target.building_id, "unit": target.unit,
         "community": target.community_code, "scope": target.scope_code, "by": who.username}).scalar_one()
    _insert_version(session, zone_id, 1, "designate", lv, target.building_id, target.unit,
                    "ST_Multi(ST_SetSRID(ST_GeomFromWKB(:wkb), 4326))", {"wkb": target.boundary_wkb}, start, end,
                    who.username, reason, basis)
    audit.record(session, who, "designate_zone", object_type="risk_zone", object_id=zone_id, purpose=reason,
                 result=f"{target.kind} {target.ref or 'polygon'}: {lv.scheme}.{lv.level} from {start.isoformat()}"
                        + (f" to {end.isoformat()}" if end else ""))
    return get_zone(session, who, zone_id)


def _insert_version(session: Session, zone_id: int, version: int, change: str, lv: rl.Level,
                    building_id: int | None, unit: str | None, boundary_sql: str, boundary_params: dict[str, Any],
                    start: datetime, end: datetime | None, author: str, reason: str, basis: Any) -> None:
    session.execute(text(f"""
        INSERT INTO risk_zone_versions (zone_id, version, change, scheme, level, severity, building_id, unit,
                                        boundary, valid_from, valid_to, author, reason, basis)
        VALUES (:z, :v, :change, :scheme, :level, :severity, :b, :unit, {boundary_sql}, :start, :end, :author,
                :reason, CAST(:basis AS jsonb))"""),
        {**boundary_params, "z": zone_id, "v": version, "change": change, "scheme": lv.scheme, "level": lv.level,
         "severity": lv.severity, "b": building_id, "unit": unit, "start": start, "end": end, "author": author,
         "reason": reason[:1000], "basis": None if basis is None else json.dumps(basis, ensure_ascii=False,
                                                                                   default=str)})


_UNSET: Any = object()


def change(session: Session, who: Principal, zone_id: int, expected_version: int, *, reason: str,
           level: str | None = None, scheme_name: str | None = None, valid_to: datetime | None = _UNSET,
           polygon: Any = None, at: datetime | None = None, basis: Any = None,
           roles: Sequence[str] = DEFAULT_ROLES) -> Zone:
    """Change a zone's level (and scheme), planned end (``valid_to``; None: until lifted) or, for a drawn polygon,
    its boundary, as of ``at`` (default now; not before the running period's start, which it then replaces): the
    running period ends at that time and a new version starts. StaleEdit unless ``expected_version`` is the
    zone's; Conflict for a lifted or ended zone."""
    return _next_version(session, who, zone_id, expected_version, "change", reason=reason, level=level,
                         scheme_name=scheme_name, valid_to=valid_to, polygon=polygon, at=at, basis=basis, roles=roles)


def lift(session: Session, who: Principal, zone_id: int, expected_version: int, *, reason: str,
         at: datetime | None = None, roles: Sequence[str] = DEFAULT_ROLES) -> Zone:
    """Lift a zone as of ``at`` (default now): its running period ends then; a zero-length 'lift' version records
    who and why."""
    return _next_version(session, who, zone_id, expected_version, "lift", reason=reason, at=at, roles=roles)


def _next_version(session: Session, who: Principal, zone_id: int, expected_version: int, kind: str, *, reason: str,
                  level: str | None = None, scheme_name: str | None = None, valid_to: datetime | None = _UNSET,
                  polygon: Any = None, at: datetime | None = None, basis: Any = None,
                  roles: Sequence[str] = DEFAULT_ROLES) -> Zone:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("say why: every change to a zone is recorded with a reason", code="risk_zones.reason")
    zone = session.execute(text("SELECT id, version, scope_code, target_kind FROM risk_zones WHERE id = :id "
                                "FOR UPDATE"), {"id": zone_id}).one_or_none()
    visible, params = visible_sql(who)
    if zone is None or not session.scalar(text(f"SELECT {visible} FROM risk_zones z WHERE z.id = :id"),
                                          {**params, "id": zone_id}):
        raise OutOfScope(f"no risk zone {zone_id} in your area", code="risk_zones.not_found", zone=zone_id)
    _may_write(who, zone.scope_code, roles)
    if zone.version != expected_version:
        raise StaleEdit(f"zone {zone_id} is at version {zone.version} but your change was made on version "
                        f"{expected_version}: reload the zone and redo the change", code="risk_zones.stale",
                        zone=zone_id, current_version=zone.version, your_version=expected_version)
    last = session.execute(text("SELECT * FROM risk_zone_versions WHERE zone_id = :z AND version = :v"),
                           {"z": zone_id, "v": zone.version}).mappings().one()
    now = _now(session)
    when = max(_instant(at, now), last["valid_from"])
    if last["change"] == "lift" or (last["valid_to"] is not None and last["valid_to"] <= when):
        raise Conflict(f"zone {zone_id} has ended (lifted or past its end): designate a new zone instead",
                       code="risk_zones.ended", zone=zone_id)
    if polygon is not None and zone.target_kind != "polygon":
        raise InvalidInput("only a drawn polygon's boundary can be redrawn; designate the new target instead",
                           code="risk_zones.redraw")
    lv = _level(session, scheme_name or last["scheme"], level or last["level"])
    end = last["valid_to"] if valid_to is _UNSET else (None if valid_to is None else _instant(valid_to, now))
    if kind == "lift":
        end = when
    elif end is not None and end <= when:
        raise InvalidInput("valid_to must be after the time the change takes effect", code="risk_zones.period")
    if kind == "change" and (lv.scheme, lv.level, end, polygon) == (last["scheme"], last["level"], last["valid_to"],
                                                                     None):
        raise InvalidInput("nothing to change: send a new level, end or boundary", code="risk_zones.no_change")
    session.execute(text("UPDATE risk_zone_versions SET valid_to = :t WHERE zone_id = :z AND version = :v"),
                    {"t": when, "z": zone_id, "v": zone.version})
    if polygon is not None:
        boundary_sql, boundary_params = "ST_Multi(ST_SetSRID(ST_GeomFromWKB(:wkb), 4326))", {"wkb": shapely.to_wkb(polygon)}
    else:
        boundary_sql, boundary_params = ("(SELECT boundary FROM risk_zone_versions WHERE zone_id = :z AND version = :pv)",
                                         {"pv": zone.version})
    _insert_version(session, zone_id, zone.version + 1, kind, lv, last["building_id"], last["unit"], boundary_sql,
                    boundary_params, when, end, who.username, reason, basis)
    session.execute(text("UPDATE risk_zones SET version = version + 1, updated_at = now() WHERE id = :z"),
                    {"z": zone_id})
    audit.record(session, who, f"{kind}_zone", object_type="risk_zone", object_id=zone_id, purpose=reason,
                 result=(f"lifted at {when.isoformat()}" if kind == "lift" else
                         f"{last['scheme']}.{last['level']} → {lv.scheme}.{lv.level} at {when.isoformat()}"))
    return get_zone(session, who, zone_id)


# -- reading zones ------------------------------------------------------------------------------------------------

_ZONE_SQL = """
SELECT z.id, z.name, z.target_kind, z.target_ref, z.building_id, z.unit, z.community_code, z.scope_code, z.version,
       v.scheme, v.level, v.severity, v.change, v.author, v.reason, v.basis,
       (SELECT min(p.valid_from) FROM risk_zone_versions p WHERE p.zone_id = z.id) AS valid_from,
       v.valid_to, ST_AsBinary(v.boundary) AS wkb,
       EXISTS (SELECT 1 FROM risk_zone_versions p WHERE p.zone_id = z.id AND p.valid_from <= now()
               AND (p.valid_to IS NULL OR p.valid_to > now())) AS in_force
FROM risk_zones z JOIN risk_zone_versions v ON v.zone_id = z.id AND v.version = z.version
"""


def _zone(row) -> Zone:
    values = {k: v for k, v in row._mapping.items() if k != "wkb"}
    return Zone(**values, boundary=shapely.from_wkb(bytes(row.wkb)))


def get_zone(session: Session, who: Principal, zone_id: int) -> Zone:
    """The zone as of its latest version; OutOfScope if the caller does not see it."""
    visible, params = visible_sql(who)
    row = session.execute(text(f"{_ZONE_SQL} WHERE z.id = :id AND {visible}"), {**params, "id": zone_id}).one_or_none()
    if row is None:
        raise OutOfScope(f"no risk zone {zone_id} in your area", code="risk_zones.not_found", zone=zone_id)
    return _zone(row)


def list_zones(session: Session, who: Principal, *, division_code: str | None = None, in_force: bool | None = None,
               limit: int = 1000) -> list[Zone]:
    """Zones the caller sees (optionally within ``division_code``'s subtree; ``in_force`` True: in force now,
    False: not), newest first, at most ``limit``."""
    visible, params = visible_sql(who)
    rows = session.execute(text(f"""
        SELECT * FROM ({_ZONE_SQL} WHERE {visible}
                       AND (CAST(:division AS text) IS NULL OR z.scope_code LIKE :division_prefix || '%')) q
        WHERE CAST(:in_force AS boolean) IS NULL OR q.in_force = :in_force
        ORDER BY q.id DESC LIMIT :limit"""),
        {**params, "division": division_code, "division_prefix": scope_prefix(division_code) if division_code else "",
         "in_force": in_force, "limit": limit}).all()
    return [_zone(r) for r in rows]


def history(session: Session, who: Principal, zone_id: int) -> list[dict[str, Any]]:
    """Every version of the zone, oldest first: change, scheme, level, severity, period, author, reason, basis,
    recorded_at."""
    get_zone(session, who, zone_id)
    return [dict(r) for r in session.execute(text("""
        SELECT version, change, scheme, level, severity, valid_from, valid_to, author, reason, basis, recorded_at
        FROM risk_zone_versions WHERE zone_id = :z ORDER BY version"""), {"z": zone_id}).mappings()]


# -- levels at time t ---------------------------------------------------------------------------------------------

IN_FORCE = "v.valid_from <= :at AND (v.valid_to IS NULL OR v.valid_to > :at)"
"""A period in force at ``:at`` (zero-length lift periods never are)."""

_BUILDING_ZONES = f"""
WITH b AS (SELECT id, ST_PointOnSurface(footprint) AS p FROM buildings WHERE id = :b)
SELECT v.zone_id, v.version, v.scheme, v.level, v.severity, z.name, z.target_kind, v.unit
FROM b JOIN risk_zone_versions v ON v.building_id IS NULL AND v.boundary && b.p AND ST_Intersects(v.boundary, b.p)
JOIN risk_zones z ON z.id = v.zone_id WHERE {IN_FORCE}
UNION ALL
SELECT v.zone_id, v.version, v.scheme, v.level, v.severity, z.name, z.target_kind, v.unit
FROM risk_zone_versions v JOIN risk_zones z ON z.id = v.zone_id
WHERE v.building_id = :b AND {IN_FORCE}
"""
BUILDING_LEVEL_SQL = f"SELECT max(severity) FROM ({_BUILDING_ZONES}) q WHERE unit IS NULL"
"""The severity of building ``:b`` at ``:at`` (NULL: no zone): the query the benchmark times."""


def _at(session: Session, at: datetime | None) -> datetime:
    return _instant(at, _now(session))


def visible_building(session: Session, who: Principal, building_id: int) -> None:
    """OutOfScope unless the building lies in the caller's area (:attr:`Principal.area`)."""
    predicate, params = building_scope(who.area)
    if not session.scalar(text(f"SELECT EXISTS (SELECT 1 FROM buildings b WHERE b.id = :b AND {predicate})"),
                          {**params, "b": building_id}):
        raise OutOfScope(f"no building {building_id} in your area", code="risk_zones.target_missing",
                         what=f"building {building_id}")


def building_level(session: Session, building_id: int, at: datetime | None = None, *, unit: str | None = None,
                   household_id: int | None = None) -> LevelAnswer:
    """The level of a building (or of one of its units) at ``at`` (default now). Building levels are not personal
    data; callers check the caller sees the building. NotFound for an unknown building."""
    when = _at(session, at)
    if not session.scalar(text("SELECT EXISTS (SELECT 1 FROM buildings WHERE id = :b)"), {"b": building_id}):
        raise NotFound(f"no building {building_id}", code="risk_zones.target_missing", what=f"building {building_id}")
    rows = session.execute(text(_BUILDING_ZONES), {"b": building_id, "at": when}).all()
    zones = [rl.ZoneLevel(r.zone_id, r.version, r.scheme, r.level, r.severity, r.name, r.target_kind, r.unit)
             for r in rows]
    whole = [z for z in zones if z.unit is None]
    if unit is not None:
        applying = whole + [z for z in zones if z.unit == unit]
        return LevelAnswer(when, rl.highest(applying), tuple(applying), building_id, unit, household_id)
    base = rl.highest(whole)
    units = {}
    for z in zones:
        if z.unit is not None and (base is None or z.severity > base.severity):
            best = rl.highest([u for u in (units.get(z.unit), z) if u is not None])
            units[z.unit] = best
    return LevelAnswer(when, base, tuple(whole), building_id, None, None, units)


def household_level(session: Session, who: Principal, household_id: int, at: datetime | None = None) -> LevelAnswer:
    """The level of a household at ``at``: its building's and its unit's zones. Household data: within
    ``who.household_scope`` (OutOfScope otherwise), audited."""
    scope = who.require_household_read()
    predicate, params = building_scope(scope)
    row = session.execute(text(f"SELECT h.building_id, h.unit FROM households h JOIN buildings b ON b.id = "
                               f"h.building_id WHERE h.id = :h AND {predicate}"), {**params, "h": household_id}).one_or_none()
    if row is None:
        raise OutOfScope(f"no household {household_id} in your area", code="risk_zones.household_missing",
                         household=household_id)
    audit.record_read(session, who, "read_risk_level", object_type="household", object_id=household_id,
                      fields=("risk_level",), purpose="risk level")
    return building_level(session, row.building_id, at, unit=row.unit, household_id=household_id)


def person_level(session: Session, who: Principal, person_id: int, at: datetime | None = None) -> LevelAnswer:
    """The level of a person at ``at``: that of the household they lived in then (moved in on or before that day
    and not moved out by it). NotFound when they lived in no household of the caller's scope at that time."""
    scope = who.require_household_read()
    when = _at(session, at)
    predicate, params = building_scope(scope)
    row = session.execute(text(f"""
        SELECT p.household_id FROM persons p JOIN households h ON h.id = p.household_id
        JOIN buildings b ON b.id = h.building_id
        WHERE p.id = :p AND {predicate}
          AND (p.moved_in IS NULL OR p.moved_in <= CAST(:at AS timestamptz)::date)
          AND (p.moved_out IS NULL OR p.moved_out > CAST(:at AS timestamptz)::date)"""),
        {**params, "p": person_id, "at": when}).one_or_none()
    if row is None:
        raise OutOfScope(f"person {person_id} lived in no household of your area at {when.isoformat()}",
                         code="risk_zones.person_missing", person=person_id)
    audit.record_read(session, who, "read_risk_level", object_type="person", object_id=person_id,
                      fields=("risk_level",), purpose="risk level")
    return household_level(session, who, row.household_id, when)


# -- households and persons per level -----------------------------------------------------------------------------

_PER_UNIT = f"""
WITH zv AS MATERIALIZED (SELECT v.zone_id, v.severity, v.building_id, v.unit, v.boundary FROM risk_zone_versions v
                         WHERE {IN_FORCE}),
bs AS MATERIALIZED (SELECT b.id, b.grid_id, b.community_code FROM buildings b
                    WHERE {prefix_range('b.community_code')} AND {{scope}}),
area AS (SELECT b.id, max(zv.severity) AS severity
         FROM zv JOIN buildings b ON zv.building_id IS NULL AND b.footprint && zv.boundary
              AND ST_Intersects(zv.boundary, ST_PointOnSurface(b.footprint))
         WHERE {prefix_range('b.community_code')} AND {{scope}} GROUP BY b.id),
own AS (SELECT zv.building_id AS id, zv.unit, max(zv.severity) AS severity FROM zv WHERE zv.building_id IS NOT NULL
        GROUP BY zv.building_id, zv.unit),
ledger AS (SELECT p.household_id, count(*) AS persons FROM persons p JOIN households h ON h.id = p.household_id
           JOIN bs ON bs.id = h.building_id
           WHERE (p.moved_in IS NULL OR p.moved_in <= CAST(:at AS timestamptz)::date)
             AND (p.moved_out IS NULL OR p.moved_out > CAST(:at AS timestamptz)::date)
           GROUP BY p.household_id),
units AS (SELECT h.building_id, h.unit, count(*) AS households, sum(coalesce(l.persons, h.residents)) AS persons
          FROM households h JOIN bs ON bs.id = h.building_id LEFT JOIN ledger l ON l.household_id = h.id
          GROUP BY h.building_id, h.unit),
hh AS (SELECT u.households, u.persons, bs.grid_id, bs.community_code,
              greatest(a.severity, ob.severity, ou.severity) AS severity
       FROM units u JOIN bs ON bs.id = u.building_id
       LEFT JOIN area a ON a.id = u.building_id
       LEFT JOIN own ob ON ob.id = u.building_id AND ob.unit IS NULL
       LEFT JOIN own ou ON ou.id = u.building_id AND ou.unit = u.unit)
"""
"""Per unit of every building of the division (``:prefix_from``/``:prefix_to``) in scope: households, persons and the
severity at ``:at`` (households of a unit share its level, so the 100,000 households of a subdistrict are summed per
unit before any join)."""


@dataclass(frozen=True)
class LevelCount:
    """Households and persons at one severity (None: in no zone) in one grid or community; ``persons`` counts the
    ledger's residents at t of households that have ledger rows, else the household's registered residents."""

    code: str
    severity: int | None
    households: int
    persons: int


def _check_figures_area(who: Principal, division_code: str, by: str) -> None:
    """The checks shared by the per-area figures: ``by`` is 'grid' or 'community', ``division_code`` a division
    code, inside the caller's area (grid workers: their grids decide, so no division check)."""
    if by not in ("grid", "community"):
        raise InvalidInput("figures are per grid or per community", code="risk_zones.by")
    try:
        division_level(division_code)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if not who.area.grid_ids:
        who.require_scope(division_code)


def per_level(session: Session, who: Principal, division_code: str, *, at: datetime | None = None,
              by: str = "grid") -> tuple[datetime, list[LevelCount]]:
    """Households and persons per severity at ``at`` in each grid (``by`` 'grid': current grid codes) or community
    of ``division_code`` (a subdistrict or community; the caller's area). Workload figures, like per-grid totals:
    they follow ``who.area``, and rows are sorted by code then severity (highest first, no zone last)."""
    _check_figures_area(who, division_code, by)
    when = _at(session, at)
    scope, params = building_scope(who.area, "b")
    key = "g.code" if by == "grid" else "hh.community_code"
    join = "JOIN grids g ON g.id = hh.grid_id" if by == "grid" else ""
    jit_off(session)
    rows = session.execute(text(_PER_UNIT.format(scope=scope) + f"""
        SELECT {key} AS code, hh.severity, sum(hh.households) AS households, coalesce(sum(hh.persons), 0) AS persons
        FROM hh {join} GROUP BY 1, 2 ORDER BY 1, 2 DESC NULLS LAST"""),
        {**params, "at": when, **prefix_bounds(scope_prefix(division_code))}).all()
    return when, [LevelCount(r.code, r.severity, r.households, int(r.persons)) for r in rows]


def levels_per_community(session: Session, who: Principal, division_code: str | None = None, *,
                         at: datetime | None = None) -> list[dict[str, Any]]:
    """Per community of ``division_code`` (default: the caller's scope code; admin: every community with zones):
    the highest severity of any household at ``at`` (None: none in a zone), households and persons per severity,
    and zones in force per severity (``zones``: {severity: count}) — what the command-centre screen colours
    communities by."""
    code = division_code or who.scope_code
    if code is None:
        if who.role != "admin":
            raise Forbidden("your account has no area", code="scope.no_area")
        codes = session.execute(text("SELECT DISTINCT substr(scope_code, 1, 9) || '000' FROM risk_zones "
                                     "WHERE substr(scope_code, 7, 3) <> '000'")).scalars().all()
    else:
        codes = [code]
    out: dict[str, dict[str, Any]] = {}
    for c in codes:
        when, rows = per_level(session, who, c, at=at, by="community")
        for r in rows:
            entry = out.setdefault(r.code, {"community_code": r.code, "severity": None, "households": {}, "persons": {},
                                            "zones": {}})
            key = str(r.severity) if r.severity is not None else "none"
            entry["households"][key] = r.households
            entry["persons"][key] = r.persons
            if r.severity is not None and (entry["severity"] is None or r.severity > entry["severity"]):
                entry["severity"] = r.severity
        visible, params = visible_sql(who)
        for zc, sev, n in session.execute(text(f"""
                SELECT z.community_code, v.severity, count(*) FROM risk_zones z
                JOIN risk_zone_versions v ON v.zone_id = z.id AND {IN_FORCE}
                WHERE {prefix_range('z.community_code')} AND {visible} GROUP BY 1, 2"""),
                {**params, "at": when, **prefix_bounds(scope_prefix(c))}).all():
            entry = out.setdefault(zc, {"community_code": zc, "severity": None, "households": {}, "persons": {},
                                        "zones": {}})
            entry["zones"][str(sev)] = n
    return [out[k] for k in sorted(out)]


def zones_per_community(session: Session, codes: Sequence[str], at: datetime) -> dict[str | None, dict[str, Any]]:
    """Zones in force at ``at`` per community of ``codes``, by severity, and the highest severity (None: no zone):
    a zone counts for its community, and a zone over a subdistrict or district (no community of its own) for every
    community in it. Key None: the distinct zones of all ``codes`` together. Counts only, no household: the
    command-centre screen colours communities by it (:mod:`spatial.store.screen`), every poll."""
    rows = session.execute(text(f"""
        SELECT d.code, v.zone_id, v.severity FROM divisions d
        JOIN risk_zones z ON z.community_code = d.code
                          OR (z.community_code IS NULL AND d.code LIKE {_ZONE_PREFIX.format(c="z.scope_code")} || '%')
        JOIN risk_zone_versions v ON v.zone_id = z.id AND {IN_FORCE}
        WHERE d.code = ANY(CAST(:codes AS text[]))"""), {"codes": list(codes), "at": at}).all()
    out: dict[str | None, dict[str, Any]] = {}
    seen: set[int] = set()
    for code, zone_id, severity in rows:
        for key in (code,) if zone_id in seen else (code, None):
            entry = out.setdefault(key, {"severity": None, "zones": {}})
            entry["zones"][str(severity)] = entry["zones"].get(str(severity), 0) + 1
            entry["severity"] = severity if entry["severity"] is None else max(entry["severity"], severity)
        seen.add(zone_id)
    return out


# -- the households of a zone ---------------------------------------------------------------------------------------

_HOUSEHOLD_COLUMNS = """h.id, h.building_id, b.code AS building_code, b.name AS building_name, b.grid_id, h.unit,
       h.floor, h.room, h.residents, h.head_name, h.head_id_number, h.head_phone, h.tags,
       ST_X(ST_PointOnSurface(b.footprint)) AS x, ST_Y(ST_PointOnSurface(b.footprint)) AS y"""


def zone_households_sql(columns: str, scope: str) -> str:
    """SELECT ``columns`` (on ``h`` households, ``b`` buildings) of the households in zone ``:z`` at ``:at`` whose
    building satisfies ``scope`` (a predicate on ``b``): one row per household, whatever the zone is drawn on."""
    return f"""
WITH zv AS (SELECT v.* FROM risk_zone_versions v WHERE v.zone_id = :z AND {IN_FORCE})
SELECT {columns}
FROM zv JOIN buildings b ON (zv.building_id IS NULL AND zv.boundary && b.footprint
                             AND ST_Intersects(zv.boundary, ST_PointOnSurface(b.footprint)))
                            OR b.id = zv.building_id
JOIN households h ON h.building_id = b.id AND (zv.unit IS NULL OR h.unit = zv.unit)
WHERE {scope}"""


def zone_household_grids(session: Session, zone_id: int, at: datetime) -> list[tuple[int, int | None]]:
    """(household id, its building's current grid id) of every household in the zone at ``at``, in any scope (for
    callers that check the scope themselves: a campaign over the zone)."""
    return [tuple(r) for r in session.execute(text(zone_households_sql("h.id, b.grid_id", "TRUE") + " ORDER BY h.id"),
                                               {"z": zone_id, "at": at})]


def zone_households(session: Session, who: Principal, zone_id: int, *, at: datetime | None = None,
                    limit: int = MAX_HOUSEHOLDS, purpose: str | None = None) -> list[HouseholdView]:
    """The households in the zone at ``at`` (default now; none when the zone is not in force then) within the
    caller's household scope, by building, unit, floor and room: masked, audited (one row)."""
    scope = who.require_household_read()
    get_zone(session, who, zone_id)
    if not 1 <= limit <= MAX_HOUSEHOLDS:
        raise InvalidInput(f"limit must be between 1 and {MAX_HOUSEHOLDS}", code="risk_zones.limit",
                           max=MAX_HOUSEHOLDS)
    predicate, params = building_scope(scope)
    rows = session.execute(text(zone_households_sql(_HOUSEHOLD_COLUMNS, predicate) + """
        ORDER BY b.code NULLS LAST, b.id, h.unit, h.floor NULLS LAST, h.room, h.id LIMIT :limit"""),
                           {**params, "z": zone_id, "at": _at(session, at), "limit": limit}).all()
    out = []
    for r in rows:
        masked = privacy.mask_record({"head_name": r.head_name, "head_id_number": r.head_id_number,
                                      "head_phone": r.head_phone})
        out.append(HouseholdView(id=r.id, building_id=r.building_id, building_code=r.building_code,
                                 building_name=r.building_name, grid_id=r.grid_id, unit=r.unit, floor=r.floor,
                                 room=r.room, residents=r.residents, tags=tuple(r.tags or ()), location=(r.x, r.y),
                                 **masked))
    audit_read(session, who, out, purpose or f"households of risk zone {zone_id}")
    return out


def zone_sheet(session: Session, who: Principal, zone_id: int, *, metric_srid: int = 4547) -> dict[str, Any]:
    """What the printable zone sheet shows: the zone, its households now per grid and unit (counts only, in the
    caller's household scope; zero for roles that read none), the checkpoints and openings within 50 m of its
    boundary, and its area (m², ``metric_srid``)."""
    zone = get_zone(session, who, zone_id)
    scope = who.household_scope
    predicate, params = building_scope(scope)
    when = _now(session)
    counts = session.execute(text(f"""
        SELECT coalesce(g.code, '') AS grid_code, count(*) AS households, coalesce(sum(q.residents), 0) AS residents,
               count(DISTINCT q.building_id) AS buildings
        FROM ({zone_households_sql("h.building_id, h.residents, b.grid_id", predicate)}) q
        LEFT JOIN grids g ON g.id = q.grid_id
        GROUP BY 1 ORDER BY 1"""), {**params, "z": zone_id, "at": when}).mappings().all()
    wkb = shapely.to_wkb(zone.boundary)
    checkpoints = session.execute(text("""
        SELECT c.id, c.name, c.status, c.kind, c.staff_count, c.opening_hours, ST_X(c.location) AS lon,
               ST_Y(c.location) AS lat
        FROM checkpoints c
        WHERE ST_DWithin(c.location::geography, ST_SetSRID(ST_GeomFromWKB(:wkb), 4326)::geography, 50)
        ORDER BY c.name, c.id"""), {"wkb": wkb}).mappings().all()
    area = session.scalar(text("SELECT ST_Area(ST_Transform(ST_SetSRID(ST_GeomFromWKB(:wkb), 4326), :srid))"),
                          {"wkb": wkb, "srid": metric_srid})
    return {"zone": zone, "grids": [dict(r) for r in counts], "checkpoints": [dict(r) for r in checkpoints],
            "area_m2": round(float(area), 1), "at": when}


def enclosure_of(session: Session, who: Principal, zone_id: int) -> int:
    """The enclosure to site checkpoints around a zone: the zone's own (an enclosure zone), else the smallest
    enclosure holding (99% of) the zone's boundary. InvalidInput when there is none: draw the enclosure first."""
    zone = get_zone(session, who, zone_id)
    if zone.target_kind == "enclosure":
        return int(zone.target_ref)
    found = session.scalar(text("""
        WITH z AS (SELECT ST_SetSRID(ST_GeomFromWKB(:wkb), 4326) AS g)
        SELECT e.id FROM enclosures e, z WHERE e.boundary && z.g
          AND ST_Area(ST_Intersection(e.boundary, z.g)) >= 0.99 * ST_Area(z.g)
        ORDER BY ST_Area(e.boundary), e.id LIMIT 1"""), {"wkb": shapely.to_wkb(zone.boundary)})
    if found is None:
        raise InvalidInput(f"risk zone {zone_id} lies in no enclosure: draw the enclosure first",
                           code="risk_zones.no_enclosure", zone=zone_id)
    return found


# -- suggestions ----------------------------------------------------------------------------------------------------


def _figures_sql(by: str) -> str:
    key = "g.code" if by == "grid" else "g.community_code"
    return f"""
WITH areas AS (SELECT {key} AS code, array_agg(g.id) AS grid_ids FROM grids g
               WHERE g.retired_at IS NULL AND {prefix_range('g.community_code')} AND {{scope}} GROUP BY 1),
cases AS (SELECT {key} AS code, c.category_code FROM cases c JOIN grids g ON g.id = c.grid_id
          WHERE c.reported_at >= :since AND c.reported_at < :at AND c.duplicate_of IS NULL
            AND {prefix_range('g.community_code')}),
screen AS (SELECT {key} AS code, count(*) AS visits, count(*) FILTER (WHERE v.result = 'follow_up') AS positive
           FROM campaign_visits_current v JOIN campaign_targets t ON t.campaign_id = v.campaign_id
                AND t.household_id = v.household_id
           JOIN grids g ON g.id = t.grid_id
           WHERE v.visited_at >= :since AND v.visited_at < :at AND {prefix_range('g.community_code')} GROUP BY 1),
ledger AS (SELECT {key} AS code, count(*) AS persons,
                  count(*) FILTER (WHERE 'home_isolation' = ANY(p.tags) AND p.isolation_from IS NOT NULL
                                   AND p.isolation_from < CAST(:at AS timestamptz)::date
                                   AND (p.isolation_to IS NULL OR p.isolation_to >= CAST(:since AS timestamptz)::date))
                      AS isolated
           FROM persons p JOIN households h ON h.id = p.household_id JOIN buildings b ON b.id = h.building_id
           JOIN grids g ON g.id = b.grid_id
           WHERE {prefix_range('g.community_code')} AND p.moved_out IS NULL GROUP BY 1)
SELECT a.code, s.visits, s.positive, l.persons, l.isolated,
       (SELECT coalesce(jsonb_object_agg(category_code, n), '{{}}') FROM
          (SELECT category_code, count(*) AS n FROM cases WHERE cases.code = a.code GROUP BY 1) k) AS cases
FROM areas a LEFT JOIN screen s ON s.code = a.code LEFT JOIN ledger l ON l.code = a.code
ORDER BY a.code"""


def area_figures(session: Session, who: Principal, division_code: str, rules: Sequence[rl.Rule], *,
                 at: datetime | None = None, window_days: int = 14, by: str = "grid"
                 ) -> tuple[datetime, dict[str, dict[str, int | None]]]:
    """Each area's figure per rule (:func:`spatial.analysis.risk_levels.rule_key`) over the ``window_days`` before
    ``at``: cases reported (by category prefix; an area with no case is 0: every report has a grid), households
    screened positive ('follow_up' visits; None when nobody in the area was visited in the window), persons under
    home isolation in the window (ledger persons tagged home_isolation whose isolation overlaps it; None when the
    area has no ledger). Areas: current grids or communities of ``division_code`` in the caller's area."""
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise InvalidInput(f"the window is 1–{MAX_WINDOW_DAYS} days", code="risk_zones.window", max=MAX_WINDOW_DAYS)
    _check_figures_area(who, division_code, by)
    when = _at(session, at)
    scope, params = grid_scope(who.area)
    rows = session.execute(text(_figures_sql(by).replace("{scope}", scope)),
                           {**params, **prefix_bounds(scope_prefix(division_code)), "at": when,
                            "since": when - timedelta(days=window_days)}).all()
    out = {}
    for r in rows:
        figures: dict[str, int | None] = {}
        for rule in rules:
            key = rl.rule_key(rule)
            if rule.indicator == "cases":
                figures[key] = sum(n for code, n in (r.cases or {}).items()
                                   if not rule.categories or any(code == c or code.startswith(c + ".")
                                                                 for c in rule.categories))
            elif rule.indicator == "positive_screenings":
                figures[key] = r.positive if r.visits else None
            else:
                figures[key] = r.isolated if r.persons else None
        out[r.code] = figures
    return when, out


def suggestions(session: Session, who: Principal, division_code: str, *, rules: Sequence[rl.Rule] = rl.DEFAULT_RULES,
                rule_scheme: str = DEFAULT_SCHEME, scheme_name: str = DEFAULT_SCHEME, at: datetime | None = None,
                window_days: int = 14, by: str = "grid") -> tuple[datetime, list[rl.Suggestion]]:
    """What the rules suggest for each area (:func:`area_figures`, :func:`spatial.analysis.risk_levels.suggest`):
    advice with its reasons; nothing is designated. Rules name levels of ``rule_scheme``; suggestions are given in
    ``scheme_name``."""
    source = scheme(session, rule_scheme)
    for rule in rules:
        try:
            source.level(rule.level)
        except KeyError:
            levels = ", ".join(lv.level for lv in source.levels)
            raise InvalidInput(f"scheme {rule_scheme} has no level {rule.level!r}; its levels are {levels}",
                               code="risk_zones.level", level=rule.level, scheme=rule_scheme, levels=levels) from None
    target = scheme(session, scheme_name)
    when, figures = area_figures(session, who, division_code, rules, at=at, window_days=window_days, by=by)
    return when, [rl.suggest(code, f, rules, target, source) for code, f in figures.items()]
