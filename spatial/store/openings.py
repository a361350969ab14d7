"""Enclosures (围合), the openings of their perimeters, and what each opening is: sealed, a checkpoint, or open.

Conventions:

* Geometries are EPSG:4326 (lon, lat); metres are measured in ``metric_srid`` (EPSG:4547 by default) or on
  geography, never in degrees. The perimeter is the polygon's boundary (``ST_Boundary``: the outer ring and any
  holes).
* **Detection** and rescans are in :mod:`spatial.store.opening_scan` (openings where streets cross the perimeter;
  stored checkpoints linked to them; planners' edits kept); an enclosure never scanned is scanned the first time
  its openings are used (:func:`ensure_scanned`).
* **States**: ``open`` (unguarded), ``sealed`` (a barrier across ``width_m`` metres of the perimeter, centred on
  the opening; ``barrier_m`` is that stretch's length measured along the perimeter in the metric CRS), or
  ``checkpoint`` (a row of ``checkpoints``: kind, staff count, ``opening_hours``; its parsed weekly schedule is
  kept in ``checkpoint_schedules``).
* **Who**: everyone reading must be an inspector, planner, grid worker or admin, and sees the enclosures of its
  scope (the community code prefix; grid workers the enclosures touching their grids). Inspectors and planners
  change an opening's state; planners add, move and delete openings and draw enclosures. Every change bumps the
  opening's ``version`` (a stale ``version`` is refused, 412) and writes an audit row.

Nothing here commits: the caller owns the transaction, so a refused change leaves nothing behind.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import LineString, Point, Polygon
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.analysis.schedule import Week, format_week, parse_opening_hours
from spatial.errors import Conflict, InvalidInput, NotFound, OutOfScope, StaleEdit
from spatial.geometry.crs import CoordSys, parse_crs
from spatial.geometry.validate import polygon_from_geojson
from spatial.store import audit
from spatial.store.opening_scan import (DEFAULT_MAX_FROM_PERIMETER_M, DEFAULT_WIDTH_M, INSERT_OPENING, MIN_DISTANCE_M,
                                        ScanResult, check_max_from_perimeter, ensure_scanned, refresh_barrier,
                                        scan_openings, soft_delete, sync_schedules)
from spatial.store.scope import prefix_bounds, prefix_range
from spatial.vocab import BARRIER_KINDS, CHECKPOINT_KINDS, ENCLOSURE_KINDS, OPENING_STATUSES

MIN_ENCLOSURE_M2 = 100.0
MAX_WIDTH_M = 200.0                       # metres of perimeter one opening may span
MAX_ENCLOSURE_M2 = 20_000_000.0         # 20 km²: larger is a district, not an enclosure
READ_ROLES = ("inspector", "planner", "grid_worker")
MAP_ROLES = (*READ_ROLES, "viewer")     # the openings themselves (no household figure): also the overview's viewers
STATE_ROLES = ("inspector", "planner")
PLAN_ROLES = ("planner",)


# -- scope --------------------------------------------------------------------------------------------------------


def enclosure_scope(who: Principal, alias: str = "e") -> tuple[str, dict[str, Any]]:
    """SQL predicate on an ``enclosures`` alias: the enclosure is in the caller's scope."""
    if who.role == "admin":
        return "TRUE", {}
    if who.role == "grid_worker":
        return (f"EXISTS (SELECT 1 FROM grids sg WHERE sg.id = ANY(CAST(:scope_grids AS integer[])) "
                f"AND sg.boundary && {alias}.boundary AND ST_Intersects(sg.boundary, {alias}.boundary))",
                {"scope_grids": sorted(who.grid_ids)})
    prefix = who.code_prefix
    if prefix:
        return prefix_range(f"{alias}.community_code", "scope"), prefix_bounds(prefix, "scope")
    return "FALSE", {}


def visible_enclosure_ids(session: Session, who: Principal, *, enclosure_id: int | None = None,
                          division: str | None = None, roles: Sequence[str] = READ_ROLES) -> list[int]:
    """Ids of the enclosures the caller may see, all of them or one (``enclosure_id``) or those of a community,
    subdistrict or district (``division``: its code). OutOfScope if the one asked for is not visible; ``roles``
    who may ask (:data:`MAP_ROLES` for what carries no household figure)."""
    who.require_role(*roles)
    scope, params = enclosure_scope(who)
    where = [scope]
    if enclosure_id is not None:
        where.append("e.id = :enclosure_id")
        params["enclosure_id"] = int(enclosure_id)
    if division is not None:
        where.append(prefix_range("e.community_code", "division"))
        params.update(prefix_bounds(_division_prefix(session, division), "division"))
    ids = list(session.execute(text(f"SELECT e.id FROM enclosures e WHERE {' AND '.join(where)} ORDER BY e.id"),
                               params).scalars())
    if enclosure_id is not None and not ids:
        raise OutOfScope(f"enclosure {enclosure_id} does not exist or is not in your area")
    return ids


def _division_prefix(session: Session, code: str) -> str:
    from spatial.geometry.codes import scope_prefix

    level = session.scalar(text("SELECT level FROM divisions WHERE code = :code"), {"code": code})
    if level is None:
        raise NotFound(f"division {code} does not exist")
    return scope_prefix(code)


def _enclosure_row(session: Session, who: Principal, enclosure_id: int, *, lock: bool = False):
    scope, params = enclosure_scope(who)
    row = session.execute(text(f"""
        SELECT e.id, e.name, e.kind, e.community_code FROM enclosures e
        WHERE e.id = :id AND {scope} {'FOR UPDATE' if lock else ''}"""), {**params, "id": int(enclosure_id)}
    ).one_or_none()
    if row is None:
        raise OutOfScope(f"enclosure {enclosure_id} does not exist or is not in your area")
    return row


# -- enclosure geometry -------------------------------------------------------------------------------------------


def check_polygon(geometry: dict[str, Any], crs: CoordSys | str | None = None) -> Polygon:
    """A GeoJSON geometry in ``crs`` (default EPSG:4326) → one valid Shapely Polygon in EPSG:4326, or
    InvalidInput saying why it is not a closed valid polygon (the checks of
    :func:`spatial.geometry.validate.polygon_from_geojson`); a MultiPolygon must have exactly one part."""
    multi = polygon_from_geojson(geometry, parse_crs(crs))
    if len(multi.geoms) != 1:
        raise InvalidInput(f"an enclosure is one polygon; this geometry has {len(multi.geoms)} parts")
    return multi.geoms[0]


def _check_size(session: Session, polygon: Polygon, metric_srid: int) -> float:
    area = session.scalar(text("SELECT ST_Area(ST_Transform(ST_GeomFromWKB(:wkb, 4326), :srid))"),
                          {"wkb": polygon.wkb, "srid": metric_srid})
    if not MIN_ENCLOSURE_M2 <= area <= MAX_ENCLOSURE_M2:
        raise InvalidInput(f"the enclosure covers {area:,.0f} m²; an enclosure is between {MIN_ENCLOSURE_M2:,.0f} "
                           f"m² and {MAX_ENCLOSURE_M2 / 1e6:,.0f} km² (check the coordinates and their crs)")
    return float(area)


def _community_for(session: Session, who: Principal, polygon: Polygon, code: str | None) -> str:
    if code is None:
        code = session.scalar(text("""
            SELECT d.code FROM divisions d
            WHERE d.level = 'community' AND d.boundary && ST_GeomFromWKB(:wkb, 4326)
            ORDER BY ST_Area(ST_Intersection(d.boundary, ST_GeomFromWKB(:wkb, 4326))) DESC, d.code LIMIT 1"""),
            {"wkb": polygon.wkb})
        if code is None:
            raise InvalidInput("the enclosure lies in no community; give community_code")
    elif not session.scalar(text("SELECT 1 FROM divisions WHERE code = :c AND level = 'community'"), {"c": code}):
        raise InvalidInput(f"{code} is not a community code")
    who.require_scope(code)
    return code


def create_enclosure(session: Session, who: Principal, name: str, boundary: Polygon, *, kind: str = "estate",
                     community_code: str | None = None, metric_srid: int = 4547,
                     max_from_perimeter_m: float = DEFAULT_MAX_FROM_PERIMETER_M) -> tuple[int, ScanResult]:
    """Store a drawn enclosure (``boundary`` EPSG:4326, already checked by :func:`check_polygon`) and detect
    its openings. Planners (and admins) only, inside their scope. Returns (id, scan result)."""
    who.require_role(*PLAN_ROLES)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("the enclosure needs a name of 1–100 characters")
    if kind not in ENCLOSURE_KINDS:
        raise InvalidInput(f"unknown enclosure kind {kind!r}; use one of {', '.join(ENCLOSURE_KINDS)}")
    _check_size(session, boundary, metric_srid)
    community = _community_for(session, who, boundary, community_code)
    new_id = session.execute(text("""
        INSERT INTO enclosures (name, kind, community_code, boundary)
        VALUES (:name, :kind, :community, ST_GeomFromWKB(:wkb, 4326)) RETURNING id"""),
        {"name": name, "kind": kind, "community": community, "wkb": boundary.wkb}).scalar_one()
    audit.record(session, who, "create", object_type="enclosure", object_id=new_id, fields=["boundary"])
    result = scan_openings(session, [new_id], actor=who.username, metric_srid=metric_srid,
                           max_from_perimeter_m=max_from_perimeter_m)[0]
    return new_id, result


def redraw_enclosure(session: Session, who: Principal, enclosure_id: int, boundary: Polygon, *,
                     metric_srid: int = 4547, max_from_perimeter_m: float = DEFAULT_MAX_FROM_PERIMETER_M
                     ) -> ScanResult:
    """Replace an enclosure's boundary and rescan its openings (manual openings move to the new perimeter when
    within ``max_from_perimeter_m``, else they are removed and reported)."""
    who.require_role(*PLAN_ROLES)
    row = _enclosure_row(session, who, enclosure_id, lock=True)
    _check_size(session, boundary, metric_srid)
    session.execute(text("UPDATE enclosures SET boundary = ST_GeomFromWKB(:wkb, 4326) WHERE id = :id"),
                    {"wkb": boundary.wkb, "id": row.id})
    audit.record(session, who, "update", object_type="enclosure", object_id=row.id, fields=["boundary"])
    return scan_openings(session, [row.id], actor=who.username, metric_srid=metric_srid,
                         max_from_perimeter_m=max_from_perimeter_m)[0]


# -- scans on request -------------------------------------------------------------------------------------------


def rescan(session: Session, who: Principal, enclosure_id: int, *, metric_srid: int = 4547,
           max_from_perimeter_m: float = DEFAULT_MAX_FROM_PERIMETER_M) -> ScanResult:
    """Detect an enclosure's openings again (after the street network or the boundary changed). Planners."""
    who.require_role(*PLAN_ROLES)
    row = _enclosure_row(session, who, enclosure_id, lock=True)
    result = scan_openings(session, [row.id], actor=who.username, metric_srid=metric_srid,
                           max_from_perimeter_m=max_from_perimeter_m)[0]
    audit.record(session, who, "update", object_type="enclosure", object_id=row.id, fields=["openings"],
                 purpose="scan openings")
    return result


# -- reading openings ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointView:
    id: int
    name: str
    kind: str
    status: str
    opening_hours: str
    staff_count: int
    schedule: Week | None                 # None: opening_hours outside the supported syntax
    staffed: bool                         # status 'staffed' with staff and some staffed hours


@dataclass(frozen=True)
class OpeningView:
    """An opening as inspectors see it; ``location`` (lon, lat); ``barrier`` the sealed stretch (EPSG:4326)."""

    id: int
    enclosure_id: int
    enclosure_name: str
    location: tuple[float, float]
    perimeter_fraction: float
    origin: str
    street_name: str | None
    highway: str | None
    width_m: float
    status: str
    barrier_kind: str | None
    barrier_m: float | None
    barrier: LineString | None
    checkpoint: CheckpointView | None
    note: str | None
    version: int
    updated_by: str

    @property
    def unguarded_reason(self) -> str | None:
        """Why the opening lets people through unchecked: 'open', 'checkpoint_unstaffed', 'hours_unknown'."""
        if self.status == "open":
            return "open"
        if self.status == "checkpoint" and self.checkpoint is not None:
            if self.checkpoint.status != "staffed" or self.checkpoint.staff_count <= 0:
                return "checkpoint_unstaffed"
            if self.checkpoint.schedule is None:
                return "hours_unknown"
        return None



def opening_counts(openings: Sequence[OpeningView]) -> dict[str, int]:
    """The checkpoint figures of a set of openings, the one definition every page shows (overview and inspector):
    ``openings``; ``open`` / ``sealed`` / ``checkpoints`` by status; ``staffed_checkpoints`` those whose
    checkpoint is staffed (status 'staffed', staff > 0, some parsed hours); ``staff`` their staff; ``unguarded``
    openings that let people through unchecked (:attr:`OpeningView.unguarded_reason`). A checkpoint record that
    no opening links (a point far from every perimeter) is not counted: it guards no gap."""
    staffed = [o for o in openings if o.status == "checkpoint" and o.checkpoint and o.checkpoint.staffed]
    return {"openings": len(openings), "open": sum(o.status == "open" for o in openings),
            "sealed": sum(o.status == "sealed" for o in openings),
            "checkpoints": sum(o.status == "checkpoint" for o in openings), "staffed_checkpoints": len(staffed),
            "staff": sum(o.checkpoint.staff_count for o in staffed),
            "unguarded": sum(o.unguarded_reason is not None for o in openings)}


_OPENINGS = """
SELECT o.id, o.enclosure_id, e.name AS enclosure_name, ST_X(o.location) AS lon, ST_Y(o.location) AS lat,
       o.perimeter_fraction, o.origin, o.street_name, o.highway, o.width_m, o.status, o.barrier_kind, o.barrier_m,
       ST_AsBinary(o.barrier) AS barrier, o.note, o.version, o.updated_by,
       c.id AS c_id, c.name AS c_name, c.kind AS c_kind, c.status AS c_status, c.opening_hours AS c_hours,
       c.staff_count AS c_staff,
       (SELECT array_agg(ARRAY[lower(r), upper(r)]) FROM unnest(cs.staffed) r) AS c_staffed,
       cs.checkpoint_id IS NOT NULL AS c_parsed
FROM openings o
JOIN enclosures e ON e.id = o.enclosure_id
LEFT JOIN checkpoints c ON c.id = o.checkpoint_id
LEFT JOIN checkpoint_schedules cs ON cs.checkpoint_id = c.id
WHERE o.deleted_at IS NULL AND {where}
ORDER BY o.enclosure_id, o.perimeter_fraction, o.id
"""


def _view(r) -> OpeningView:
    checkpoint = None
    if r.c_id is not None:
        if r.c_parsed:
            schedule = Week.of((a, b) for a, b in (r.c_staffed or []))
        else:
            from spatial.analysis.schedule import try_parse

            schedule = try_parse(r.c_hours)
        staffed = r.c_status == "staffed" and r.c_staff > 0 and schedule is not None and not schedule.is_empty
        checkpoint = CheckpointView(r.c_id, r.c_name, r.c_kind, r.c_status, r.c_hours, r.c_staff, schedule, staffed)
    barrier = shapely.from_wkb(bytes(r.barrier)) if r.barrier is not None else None
    return OpeningView(r.id, r.enclosure_id, r.enclosure_name, (r.lon, r.lat), r.perimeter_fraction, r.origin,
                       r.street_name, r.highway, r.width_m, r.status, r.barrier_kind,
                       None if r.barrier_m is None else float(r.barrier_m), barrier, checkpoint, r.note, r.version,
                       r.updated_by)


def openings_of(session: Session, enclosure_ids: Sequence[int]) -> list[OpeningView]:
    """The current openings of the enclosures (no scope check: pass ids from :func:`visible_enclosure_ids`),
    around each perimeter in order."""
    rows = session.execute(text(_OPENINGS.format(where="o.enclosure_id = ANY(CAST(:ids AS integer[]))")),
                           {"ids": list(enclosure_ids)}).all()
    return [_view(r) for r in rows]


def get_opening(session: Session, who: Principal, opening_id: int, *, lock: bool = False) -> OpeningView:
    """One opening in the caller's scope; OutOfScope otherwise (also when deleted)."""
    who.require_role(*READ_ROLES)
    scope, params = enclosure_scope(who)
    row = session.execute(text(_OPENINGS.format(where=f"o.id = :id AND {scope}")
                               + (" FOR UPDATE OF o" if lock else "")), {**params, "id": int(opening_id)}).one_or_none()
    if row is None:
        raise OutOfScope(f"opening {opening_id} does not exist or is not in your area")
    return _view(row)


# -- editing openings ---------------------------------------------------------------------------------------------


def _distance_to_perimeter(session: Session, enclosure_id: int, lon: float, lat: float) -> float:
    return float(session.scalar(text("""
        SELECT ST_Distance(ST_Boundary(boundary)::geography, ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography)
        FROM enclosures WHERE id = :id"""), {"id": enclosure_id, "lon": lon, "lat": lat}))


def _check_lonlat(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"({lon}, {lat}) is not a longitude/latitude")


def add_opening(session: Session, who: Principal, enclosure_id: int, lon: float, lat: float, *,
                street_name: str | None = None, width_m: float | None = None, note: str | None = None,
                max_from_perimeter_m: float = DEFAULT_MAX_FROM_PERIMETER_M, metric_srid: int = 4547) -> OpeningView:
    """A gate the map does not know, at the point of the perimeter nearest (lon, lat); refused if that is more
    than ``max_from_perimeter_m`` away. Planners. The new opening is open (unguarded) until its state is set."""
    who.require_role(*PLAN_ROLES)
    _check_lonlat(lon, lat)
    check_max_from_perimeter(max_from_perimeter_m)
    row = _enclosure_row(session, who, enclosure_id, lock=True)
    ensure_scanned(session, [row.id], metric_srid=metric_srid)
    off = _distance_to_perimeter(session, row.id, lon, lat)
    if off > max_from_perimeter_m:
        raise InvalidInput(f"the point is {off:,.0f} m (straight line) from the perimeter of {row.name}; an opening "
                           f"must be within {max_from_perimeter_m:g} m of it", distance_m=round(off, 1))
    width = _check_width(width_m) if width_m is not None else DEFAULT_WIDTH_M
    new_id = session.execute(text(INSERT_OPENING), {
        "enclosure_id": row.id, "lon": lon, "lat": lat, "origin": "manual", "name": _text(street_name, 200),
        "highway": None, "edge_ids": [], "width": width, "actor": who.username}).scalar_one()
    if note:
        session.execute(text("UPDATE openings SET note = :note WHERE id = :id"),
                        {"note": _text(note, 500), "id": new_id})
    audit.record(session, who, "create", object_type="opening", object_id=new_id, fields=["location"])
    return get_opening(session, who, new_id)


def _check_width(width_m: float) -> float:
    if not (math.isfinite(width_m) and MIN_DISTANCE_M <= width_m <= MAX_WIDTH_M):
        raise InvalidInput(f"width must be between {MIN_DISTANCE_M:g} and {MAX_WIDTH_M:g} m, got {width_m}")
    return float(width_m)


def _text(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"text longer than {limit} characters")
    return value or None


@dataclass(frozen=True)
class CheckpointSpec:
    """A checkpoint for an opening: an existing one (``id``), or a new one with these fields."""

    id: int | None = None
    name: str | None = None
    kind: str = "pedestrian"
    opening_hours: str = "24/7"
    staff_count: int = 1


def update_opening(session: Session, who: Principal, opening_id: int, *, version: int | None = None,
                   status: str | None = None, barrier_kind: str | None = None, width_m: float | None = None,
                   checkpoint: CheckpointSpec | None = None, location: tuple[float, float] | None = None,
                   note: str | None = None, max_from_perimeter_m: float = DEFAULT_MAX_FROM_PERIMETER_M,
                   metric_srid: int = 4547) -> OpeningView:
    """Change an opening: its state (``status`` with ``barrier_kind`` for sealed, ``checkpoint`` for a
    checkpoint), width, note (inspectors and planners), or its place on the perimeter (planners).

    ``version``: the version edited (StaleEdit if another edit came first). Setting 'checkpoint' links the given
    checkpoint, or creates one at the opening with the given name, kind, hours and staff; its ``opening_hours``
    are normalised after parsing (InvalidInput if they cannot be read). Leaving 'checkpoint' unlinks the
    checkpoint (a linked stored checkpoint is marked 'sealed' when the opening is sealed, 'unstaffed' when opened).
    """
    who.require_role(*STATE_ROLES)
    current = get_opening(session, who, opening_id, lock=True)
    if version is not None and version != current.version:
        raise StaleEdit(f"opening {opening_id} was changed by {current.updated_by} (version {current.version}); "
                        f"you edited version {version}: reload it", version=current.version)
    # everything is checked before anything is written
    if location is not None:
        who.require_role(*PLAN_ROLES)
        _check_move(session, current, location, max_from_perimeter_m)
    width = _check_width(width_m) if width_m is not None else None
    note_text = _text(note, 500) if note is not None else None
    state = None
    if status is not None or barrier_kind is not None or checkpoint is not None:
        state = _check_state(status or current.status, barrier_kind, checkpoint)
    if location is None and width is None and note is None and state is None:
        raise InvalidInput("nothing to change: give status, barrier_kind, checkpoint, width_m, location or note")
    changed: list[str] = []
    if state is not None:      # first: linking a given checkpoint may still be refused (404, 409)
        _set_state(session, current, *state, who)
        changed.append("status")
    if location is not None:
        _move(session, current, location)
        changed.append("location")
    if width is not None:
        session.execute(text("UPDATE openings SET width_m = :w WHERE id = :id"), {"w": width, "id": current.id})
        changed.append("width_m")
    if note is not None:
        session.execute(text("UPDATE openings SET note = :n WHERE id = :id"), {"n": note_text, "id": current.id})
        changed.append("note")
    session.execute(text("UPDATE openings SET version = version + 1, updated_at = now(), updated_by = :who "
                         "WHERE id = :id"), {"id": current.id, "who": who.username})
    refresh_barrier(session, [current.id], metric_srid)
    audit.record(session, who, "update", object_type="opening", object_id=current.id, fields=changed)
    return get_opening(session, who, current.id)


def _check_move(session: Session, current: OpeningView, location: tuple[float, float], max_m: float) -> None:
    lon, lat = location
    _check_lonlat(lon, lat)
    check_max_from_perimeter(max_m)
    off = _distance_to_perimeter(session, current.enclosure_id, lon, lat)
    if off > max_m:
        raise InvalidInput(f"the new place is {off:,.0f} m (straight line) from the perimeter; an opening must be "
                           f"within {max_m:g} m of it", distance_m=round(off, 1))


def _check_state(status: str, barrier_kind: str | None, spec: CheckpointSpec | None
                 ) -> tuple[str, str | None, CheckpointSpec | None]:
    if status not in OPENING_STATUSES:
        raise InvalidInput(f"unknown status {status!r}; use one of {', '.join(OPENING_STATUSES)}")
    if barrier_kind is not None and status != "sealed":
        raise InvalidInput("barrier_kind applies to sealed openings only")
    if barrier_kind is not None and barrier_kind not in BARRIER_KINDS:
        raise InvalidInput(f"unknown barrier kind {barrier_kind!r}; use one of {', '.join(BARRIER_KINDS)}")
    if spec is not None:
        if status != "checkpoint":
            raise InvalidInput("a checkpoint applies to status 'checkpoint' only")
        if spec.kind not in CHECKPOINT_KINDS:
            raise InvalidInput(f"unknown checkpoint kind {spec.kind!r}; use one of {', '.join(CHECKPOINT_KINDS)}")
        parse_opening_hours(spec.opening_hours)
        if not 0 <= spec.staff_count <= 200:
            raise InvalidInput(f"staff_count must be between 0 and 200, got {spec.staff_count}")
        _text(spec.name, 100)
    return status, barrier_kind, spec


def _move(session: Session, current: OpeningView, location: tuple[float, float]) -> None:
    """Put the opening (and its checkpoint) at the point of the perimeter nearest ``location`` (checked before)."""
    lon, lat = location
    session.execute(text("""
        UPDATE openings o SET location = p.loc,
               perimeter_fraction = ST_LineLocatePoint(ST_ExteriorRing(e.boundary), p.loc)
        FROM enclosures e
        CROSS JOIN LATERAL (SELECT ST_ClosestPoint(ST_Boundary(e.boundary),
                                                   ST_SetSRID(ST_Point(:lon, :lat), 4326)) AS loc) p
        WHERE o.id = :id AND e.id = o.enclosure_id"""), {"id": current.id, "lon": lon, "lat": lat})
    if current.checkpoint is not None:
        session.execute(text("UPDATE checkpoints c SET location = o.location FROM openings o "
                             "WHERE o.id = :id AND c.id = o.checkpoint_id"), {"id": current.id})


def _set_state(session: Session, current: OpeningView, status: str, barrier_kind: str | None,
               spec: CheckpointSpec | None, who: Principal) -> None:
    old_checkpoint = current.checkpoint.id if current.checkpoint else None
    checkpoint_id = None
    if status == "sealed":
        kind = barrier_kind or current.barrier_kind or "unrecorded"
        checkpoint_id = old_checkpoint
        if old_checkpoint is not None:
            session.execute(text("UPDATE checkpoints SET status = 'sealed', staff_count = 0, opening_hours = 'off' "
                                 "WHERE id = :id"), {"id": old_checkpoint})
    elif status == "checkpoint":
        kind = None
        checkpoint_id = _checkpoint_for(session, current, spec, who)
    else:
        kind = None
        checkpoint_id = old_checkpoint   # the gate's checkpoint record stays linked, now unstaffed
        if old_checkpoint is not None:
            session.execute(text("UPDATE checkpoints SET status = 'unstaffed', staff_count = 0 WHERE id = :id"),
                            {"id": old_checkpoint})
    session.execute(text("""
        UPDATE openings SET status = :status, barrier_kind = :kind, checkpoint_id = :checkpoint,
               barrier = CASE WHEN :status = 'sealed' THEN coalesce(barrier, ST_MakeLine(location, location)) END,
               barrier_m = CASE WHEN :status = 'sealed' THEN coalesce(barrier_m, 0) END
        WHERE id = :id"""), {"status": status, "kind": kind, "checkpoint": checkpoint_id, "id": current.id})
    if checkpoint_id is not None:
        sync_schedules(session, [checkpoint_id])


def _checkpoint_for(session: Session, current: OpeningView, spec: CheckpointSpec | None, who: Principal) -> int:
    """The checkpoint to link: the given existing one (same enclosure, not linked elsewhere), the current one
    updated with the given fields (kept as is when none are given and it is staffed), or a new one at the
    opening (default: staffed 24/7 by one person)."""
    if spec is None and current.checkpoint is not None and current.checkpoint.status == "staffed":
        return current.checkpoint.id
    spec = spec or CheckpointSpec()
    week = parse_opening_hours(spec.opening_hours)
    hours = format_week(week)
    status = "staffed" if spec.staff_count > 0 and not week.is_empty else "unstaffed"
    if spec.id is not None:
        row = session.execute(text("""
            SELECT c.id, c.enclosure_id, (SELECT o.id FROM openings o WHERE o.checkpoint_id = c.id
                                          AND o.deleted_at IS NULL AND o.id <> :opening) AS elsewhere
            FROM checkpoints c WHERE c.id = :id FOR UPDATE"""), {"id": spec.id, "opening": current.id}).one_or_none()
        if row is None or row.enclosure_id not in (None, current.enclosure_id):
            raise NotFound(f"checkpoint {spec.id} does not exist or belongs to another enclosure")
        if row.elsewhere is not None:
            raise Conflict(f"checkpoint {spec.id} already guards opening {row.elsewhere}")
        return row.id
    name = _text(spec.name, 100)
    if current.checkpoint is not None:
        session.execute(text("""
            UPDATE checkpoints SET name = coalesce(:name, name), kind = :kind, opening_hours = :hours,
                   staff_count = :staff, status = :status WHERE id = :id"""),
            {"name": name, "kind": spec.kind, "hours": hours, "staff": spec.staff_count, "status": status,
             "id": current.checkpoint.id})
        return current.checkpoint.id
    default_name = f"{current.enclosure_name}{current.street_name or ''}卡口"
    return session.execute(text("""
        INSERT INTO checkpoints (enclosure_id, name, location, kind, status, opening_hours, staff_count)
        SELECT o.enclosure_id, :name, o.location, :kind, :status, :hours, :staff FROM openings o WHERE o.id = :id
        RETURNING id"""), {"name": name or default_name, "kind": spec.kind, "status": status, "hours": hours,
                           "staff": spec.staff_count, "id": current.id}).scalar_one()


def delete_opening(session: Session, who: Principal, opening_id: int, *, version: int | None = None) -> None:
    """Remove an opening (planners): it is marked deleted, so a rescan does not bring it back. A linked
    checkpoint is unlinked (and marked 'sealed', since the gate no longer exists)."""
    who.require_role(*PLAN_ROLES)
    current = get_opening(session, who, opening_id, lock=True)
    if version is not None and version != current.version:
        raise StaleEdit(f"opening {opening_id} was changed (version {current.version}); reload it",
                        version=current.version)
    if current.checkpoint is not None:
        session.execute(text("UPDATE checkpoints SET status = 'sealed', staff_count = 0, opening_hours = 'off' "
                             "WHERE id = :id"), {"id": current.checkpoint.id})
    soft_delete(session, current.id, who.username)
    audit.record(session, who, "delete", object_type="opening", object_id=current.id)


def create_checkpoint(session: Session, who: Principal, lon: float, lat: float, name: str, *,
                      kind: str = "pedestrian", opening_hours: str = "24/7", staff_count: int = 1,
                      enclosure_id: int | None = None, max_from_perimeter_m: float = DEFAULT_MAX_FROM_PERIMETER_M,
                      metric_srid: int = 4547) -> OpeningView:
    """Register a checkpoint at (lon, lat): on the nearest perimeter of an enclosure in the caller's scope (or of
    ``enclosure_id``) within ``max_from_perimeter_m`` — else InvalidInput saying how far it is. It takes the
    nearest free opening within that distance, or a new one at the nearest point of the perimeter."""
    who.require_role(*PLAN_ROLES)
    _check_lonlat(lon, lat)
    check_max_from_perimeter(max_from_perimeter_m)
    scope, params = enclosure_scope(who)
    only = "AND e.id = :enclosure_id" if enclosure_id is not None else ""
    nearest = session.execute(text(f"""
        SELECT e.id, e.name, ST_Distance(ST_Boundary(e.boundary)::geography, p.g::geography) AS d
        FROM enclosures e, (SELECT ST_SetSRID(ST_Point(:lon, :lat), 4326) AS g) p
        WHERE {scope} {only} ORDER BY e.boundary <-> p.g, d LIMIT 5"""),
        {**params, "lon": lon, "lat": lat, "enclosure_id": enclosure_id}).all()
    if enclosure_id is not None and not nearest:
        raise OutOfScope(f"enclosure {enclosure_id} does not exist or is not in your area")
    best = min(nearest, key=lambda r: r.d) if nearest else None
    if best is None or best.d > max_from_perimeter_m:
        where = (f"{best.d:,.0f} m (straight line) from the perimeter of {best.name}" if best
                 else "not near any enclosure")
        raise InvalidInput(f"a checkpoint stands on an enclosure's perimeter: this point is {where} (more than "
                           f"{max_from_perimeter_m:g} m)", distance_m=None if best is None else round(best.d, 1))
    ensure_scanned(session, [best.id], metric_srid=metric_srid)
    free = session.execute(text("""
        SELECT o.id FROM openings o WHERE o.enclosure_id = :e AND o.deleted_at IS NULL AND o.checkpoint_id IS NULL
        AND ST_DWithin(o.location::geography, ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography, :max_m)
        ORDER BY o.location <-> ST_SetSRID(ST_Point(:lon, :lat), 4326) LIMIT 1"""),
        {"e": best.id, "lon": lon, "lat": lat, "max_m": max_from_perimeter_m}).scalar()
    if free is None:
        free = add_opening(session, who, best.id, lon, lat, max_from_perimeter_m=max_from_perimeter_m,
                           metric_srid=metric_srid).id
    spec = CheckpointSpec(name=name, kind=kind, opening_hours=opening_hours, staff_count=staff_count)
    return update_opening(session, who, free, status="checkpoint", checkpoint=spec, metric_srid=metric_srid)


def enclosure_features(session: Session, enclosure_ids: Sequence[int], metric_srid: int = 4547) -> list[dict]:
    """Enclosures as dicts: id, name, kind, community_code, boundary (Shapely, EPSG:4326), perimeter_m, area_m2,
    scanned_at, rescan_advised (the boundary changed since the last scan)."""
    rows = session.execute(text("""
        SELECT e.id, e.name, e.kind, e.community_code, ST_AsBinary(e.boundary) AS wkb,
               ST_Perimeter(ST_Transform(e.boundary, :srid)) AS perimeter_m,
               ST_Area(ST_Transform(e.boundary, :srid)) AS area_m2,
               s.scanned_at, s.boundary IS NOT NULL AND NOT ST_Equals(s.boundary, e.boundary) AS rescan_advised
        FROM enclosures e LEFT JOIN enclosure_scans s ON s.enclosure_id = e.id
        WHERE e.id = ANY(CAST(:ids AS integer[])) ORDER BY e.id"""), {"ids": list(enclosure_ids), "srid": metric_srid})
    return [{"id": r.id, "name": r.name, "kind": r.kind, "community_code": r.community_code,
             "boundary": shapely.from_wkb(bytes(r.wkb)), "perimeter_m": float(r.perimeter_m),
             "area_m2": float(r.area_m2), "scanned_at": r.scanned_at, "rescan_advised": bool(r.rescan_advised)}
            for r in rows]


def geojson_point(lon: float, lat: float) -> dict:
    return json.loads(shapely.to_geojson(Point(lon, lat)))
