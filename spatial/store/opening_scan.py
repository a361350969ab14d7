"""Finding the openings of enclosure perimeters, linking stored checkpoints, and the derived data kept with them.

* **Detection** (:func:`scan_openings`): an opening is where an edge of the street network crosses the perimeter,
  ``ST_Intersection(edge.geom, ST_Boundary(enclosure.boundary))`` (holes included); points closer than
  :data:`MERGE_M` are one opening (a gate node shared by the edges on both sides), and a point counts only if the
  street runs on both sides of the perimeter (at least :data:`SIDE_M` within :data:`LOCAL_M` of it: a lane ending
  at the wall is not an opening, however the float rounding of its end point falls; a street running along the
  wall gives a line, not a point, and is ignored).
* **Rescans keep what planners did**: an opening found again (within :data:`MATCH_M`) keeps its state, one a
  planner deleted stays deleted, and a detected opening no street crosses any more is removed if it was still open
  (else kept and reported as stale). Manual openings left off a redrawn perimeter move onto it when near enough.
* **Stored checkpoints** are linked to the nearest free opening within ``max_from_perimeter_m`` (default 30 m);
  a checkpoint with no opening near gets one at its nearest point of the perimeter; farther ones are reported.
  An enclosure never scanned is scanned the first time its openings are used (:func:`ensure_scanned`).
* **Derived data**: the sealed stretch of perimeter of a sealed opening (:func:`refresh_barrier`, ``width_m``
  centred on the opening, cut and measured in ``metric_srid``) and the parsed weekly schedules of checkpoints
  (:func:`sync_schedules`).

No role checks here (callers in :mod:`spatial.store.openings` check them); nothing commits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.analysis.schedule import parse_opening_hours
from spatial.errors import InvalidInput

DEFAULT_MAX_FROM_PERIMETER_M = 30.0     # a checkpoint farther than this from every perimeter is refused
MAX_FROM_PERIMETER_LIMIT_M = 500.0
MIN_DISTANCE_M = 0.01                   # 1 cm: a shorter distance or width is below what the map can tell apart (and
                                        # PostgreSQL refuses subnormal numbers such as 5e-324 as out of range)
MERGE_M = 2.0                           # crossing points closer than this are one opening
MATCH_M = 5.0                           # a rescanned opening this close to a stored one is the same opening
LOCAL_M = 5.0                           # the street must run inside and outside within this of the point,
SIDE_M = 0.5                            # for at least this long on each side
WIDTH_BY_HIGHWAY_M = {"motorway": 30.0, "trunk": 24.0, "primary": 20.0, "secondary": 14.0, "tertiary": 10.0,
                      "unclassified": 7.0, "residential": 7.0, "living_street": 5.0, "service": 5.0,
                      "pedestrian": 5.0, "track": 4.0, "footway": 3.0, "path": 2.0, "steps": 3.0, "cycleway": 3.0}
DEFAULT_WIDTH_M = 5.0
_HIGHWAY_RANK = ("motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
                 "living_street", "service", "pedestrian", "track", "footway", "path", "steps", "cycleway")


@dataclass
class ScanResult:
    """What a scan of one enclosure found and changed. ``far_checkpoints``: (id, name, metres to perimeter)."""

    enclosure_id: int
    crossings: int = 0
    added: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)
    linked_checkpoints: list[int] = field(default_factory=list)
    from_checkpoints: list[int] = field(default_factory=list)
    far_checkpoints: list[tuple[int, str, float]] = field(default_factory=list)


_RANK_SQL = "array_position(CAST(:ranks AS text[]), s.highway)"

_CROSSINGS = f"""
WITH enc AS (
    SELECT id, boundary, ST_Boundary(boundary) AS ring FROM enclosures WHERE id = ANY(CAST(:ids AS integer[]))
), hits AS (
    SELECT enc.id AS enclosure_id, (ST_Dump(ST_Intersection(s.geom, enc.ring))).geom AS p
    FROM enc JOIN street_edges s ON s.geom && enc.boundary AND ST_Intersects(s.geom, enc.ring)
), pts AS (
    SELECT enclosure_id, p,
           ST_ClusterDBSCAN(ST_Transform(p, :srid), eps := :merge_m, minpoints := 1)
               OVER (PARTITION BY enclosure_id) AS k
    FROM hits WHERE GeometryType(p) = 'POINT'
), clusters AS (
    SELECT enclosure_id, k, ST_Centroid(ST_Collect(p)) AS c FROM pts GROUP BY enclosure_id, k
)
SELECT c.enclosure_id, ST_X(q.loc) AS lon, ST_Y(q.loc) AS lat, ST_X(ST_Transform(q.loc, :srid)) AS mx,
       ST_Y(ST_Transform(q.loc, :srid)) AS my, x.edge_ids, x.name, x.highway
FROM clusters c
JOIN enc ON enc.id = c.enclosure_id
CROSS JOIN LATERAL (SELECT ST_ClosestPoint(enc.ring, c.c) AS loc) q
CROSS JOIN LATERAL (
    SELECT array_agg(s.id ORDER BY s.id) AS edge_ids,
           (array_agg(s.name ORDER BY s.name IS NULL, {_RANK_SQL} NULLS LAST, s.id))[1] AS name,
           (array_agg(s.highway ORDER BY {_RANK_SQL} NULLS LAST, s.id))[1] AS highway,
           sum(ST_Length(ST_Intersection(l.piece, enc.boundary)::geography, false)) AS inside_m,
           sum(ST_Length(ST_Difference(l.piece, enc.boundary)::geography, false)) AS outside_m
    FROM street_edges s
    CROSS JOIN LATERAL (SELECT ST_Intersection(s.geom, ST_Buffer(c.c::geography, :local_m)::geometry) AS piece) l
    WHERE s.geom && ST_Expand(c.c, 0.001) AND ST_DWithin(s.geom::geography, c.c::geography, 0.5)
) x
WHERE x.inside_m > :side_m AND x.outside_m > :side_m
ORDER BY c.enclosure_id, ST_LineLocatePoint(ST_ExteriorRing(enc.boundary), q.loc)
"""

_STORED = """
SELECT o.id, o.enclosure_id, o.origin, o.status, o.checkpoint_id, o.deleted_at IS NOT NULL AS deleted,
       ST_X(ST_Transform(o.location, :srid)) AS mx, ST_Y(ST_Transform(o.location, :srid)) AS my,
       ST_Distance(o.location::geography, ST_Boundary(e.boundary)::geography) AS off_m
FROM openings o JOIN enclosures e ON e.id = o.enclosure_id
WHERE o.enclosure_id = ANY(CAST(:ids AS integer[]))
"""

INSERT_OPENING = """
INSERT INTO openings (enclosure_id, location, perimeter_fraction, origin, street_name, highway, street_edge_ids,
                      width_m, updated_by)
SELECT e.id, p.loc, ST_LineLocatePoint(ST_ExteriorRing(e.boundary), p.loc), :origin, :name, :highway,
       CAST(:edge_ids AS bigint[]), :width, :actor
FROM enclosures e
CROSS JOIN LATERAL (SELECT ST_ClosestPoint(ST_Boundary(e.boundary), ST_SetSRID(ST_Point(:lon, :lat), 4326)) AS loc) p
WHERE e.id = :enclosure_id
RETURNING id
"""


def width_for(highway: str | None) -> float:
    """Default width of an opening (metres across the street) by the OSM highway class of its street."""
    return WIDTH_BY_HIGHWAY_M.get(highway or "", DEFAULT_WIDTH_M)


def scan_openings(session: Session, enclosure_ids: Sequence[int], *, actor: str = "system",
                  metric_srid: int = 4547, max_from_perimeter_m: float = DEFAULT_MAX_FROM_PERIMETER_M
                  ) -> list[ScanResult]:
    """Detect the openings of the enclosures (see the module docstring), merge them with the stored ones,
    link stored checkpoints, and record the scan. No role check: callers check (this also runs on first use)."""
    check_max_from_perimeter(max_from_perimeter_m)
    ids = sorted({int(i) for i in enclosure_ids})
    if not ids:
        return []
    params = {"ids": ids, "srid": metric_srid}
    found = session.execute(text(_CROSSINGS), {**params, "merge_m": MERGE_M, "local_m": LOCAL_M, "side_m": SIDE_M,
                                               "ranks": list(_HIGHWAY_RANK)}).all()
    stored = session.execute(text(_STORED + " FOR UPDATE OF o"), params).all()
    results = {i: ScanResult(i) for i in ids}
    matched: set[int] = set()
    for f in found:
        result = results[f.enclosure_id]
        result.crossings += 1
        near = [(math.hypot(s.mx - f.mx, s.my - f.my), s.id) for s in stored
                if s.enclosure_id == f.enclosure_id and s.id not in matched
                and math.hypot(s.mx - f.mx, s.my - f.my) <= MATCH_M]
        if near:
            match = min(near)[1]
            matched.add(match)
            result.kept.append(match)
            session.execute(text("""
                UPDATE openings SET street_name = coalesce(:name, street_name), highway = coalesce(:highway, highway),
                       street_edge_ids = CAST(:edge_ids AS bigint[]) WHERE id = :id AND origin = 'detected'"""),
                {"name": f.name, "highway": f.highway, "edge_ids": list(f.edge_ids), "id": match})
            continue
        new_id = session.execute(text(INSERT_OPENING), {
            "enclosure_id": f.enclosure_id, "lon": f.lon, "lat": f.lat, "origin": "detected", "name": f.name,
            "highway": f.highway, "edge_ids": list(f.edge_ids), "width": width_for(f.highway), "actor": actor,
        }).scalar_one()
        result.added.append(new_id)
    for s in stored:
        if s.id in matched or s.deleted:
            continue
        if s.origin == "detected":
            if s.status == "open":
                soft_delete(session, s.id, actor)
                results[s.enclosure_id].removed.append(s.id)
            else:
                results[s.enclosure_id].stale.append(s.id)
        elif s.off_m > 0.01:  # manual opening left off a redrawn perimeter
            if s.off_m <= max_from_perimeter_m:
                _snap_to_perimeter(session, s.id, actor, metric_srid)
                results[s.enclosure_id].moved.append(s.id)
            else:
                soft_delete(session, s.id, actor)
                results[s.enclosure_id].removed.append(s.id)
    _link_checkpoints(session, ids, results, actor, metric_srid, max_from_perimeter_m)
    session.execute(text("""
        INSERT INTO enclosure_scans (enclosure_id, scanned_at, scanned_by, boundary, crossings)
        SELECT e.id, now(), :actor, e.boundary, v.n
        FROM enclosures e JOIN unnest(CAST(:ids AS integer[]), CAST(:counts AS integer[])) AS v (id, n) ON v.id = e.id
        ON CONFLICT (enclosure_id) DO UPDATE SET scanned_at = EXCLUDED.scanned_at, scanned_by = EXCLUDED.scanned_by,
            boundary = EXCLUDED.boundary, crossings = EXCLUDED.crossings"""),
        {"actor": actor, "ids": ids, "counts": [results[i].crossings for i in ids]})
    sync_schedules(session)
    return [results[i] for i in ids]


def ensure_scanned(session: Session, enclosure_ids: Sequence[int], *, metric_srid: int = 4547) -> list[int]:
    """Scan the enclosures among ``enclosure_ids`` whose openings were never detected; returns their ids.

    A derived, idempotent write (the openings follow from the stored network and perimeter): the first report
    or map of an enclosure needs its openings. Later scans happen only on request, so planners' edits stay.
    Two first uses at once do not both scan (which would store every opening twice): the enclosures to scan
    are locked and checked again, so the second waits for the first to commit and then finds them scanned.
    Enclosures already scanned (the usual case) are neither locked nor written.
    """
    todo = _never_scanned(session, enclosure_ids)
    if todo:
        session.execute(text("SELECT id FROM enclosures WHERE id = ANY(CAST(:ids AS integer[])) ORDER BY id "
                             "FOR NO KEY UPDATE"), {"ids": todo})
        todo = _never_scanned(session, todo)  # a statement of its own: it sees what the lock waited for
    if todo:
        scan_openings(session, todo, actor="gridgov (first use)", metric_srid=metric_srid)
    return todo


def _never_scanned(session: Session, enclosure_ids: Sequence[int]) -> list[int]:
    return list(session.execute(text("""
        SELECT e.id FROM enclosures e WHERE e.id = ANY(CAST(:ids AS integer[]))
        AND NOT EXISTS (SELECT 1 FROM enclosure_scans s WHERE s.enclosure_id = e.id) ORDER BY e.id"""),
        {"ids": list(enclosure_ids)}).scalars())


def soft_delete(session: Session, opening_id: int, actor: str) -> None:
    session.execute(text("""
        UPDATE openings SET deleted_at = now(), version = version + 1, updated_at = now(), updated_by = :actor
        WHERE id = :id"""), {"id": opening_id, "actor": actor})


def _snap_to_perimeter(session: Session, opening_id: int, actor: str, metric_srid: int) -> None:
    session.execute(text("""
        UPDATE openings o SET location = p.loc,
               perimeter_fraction = ST_LineLocatePoint(ST_ExteriorRing(e.boundary), p.loc),
               version = o.version + 1, updated_at = now(), updated_by = :actor
        FROM enclosures e CROSS JOIN LATERAL (SELECT ST_ClosestPoint(ST_Boundary(e.boundary), o2.location) AS loc
                                              FROM openings o2 WHERE o2.id = :id) p
        WHERE o.id = :id AND e.id = o.enclosure_id"""), {"id": opening_id, "actor": actor})
    refresh_barrier(session, [opening_id], metric_srid)


_CANDIDATE_CHECKPOINTS = """
SELECT c.id, c.name, c.status, e.id AS enclosure_id,
       ST_Distance(c.location::geography, ST_Boundary(e.boundary)::geography) AS off_m
FROM checkpoints c
JOIN enclosures e ON e.id = ANY(CAST(:ids AS integer[]))
     AND (c.enclosure_id = e.id OR (c.enclosure_id IS NULL AND c.location && ST_Expand(e.boundary, 0.01)
          AND ST_DWithin(c.location::geography, ST_Boundary(e.boundary)::geography, :max_m)))
WHERE NOT EXISTS (SELECT 1 FROM openings o WHERE o.checkpoint_id = c.id)   -- also one of a deleted opening
ORDER BY c.id
"""

_FREE_OPENINGS = """
SELECT c.id AS checkpoint_id, o.id AS opening_id, ST_Distance(c.location::geography, o.location::geography) AS d
FROM checkpoints c
JOIN openings o ON o.enclosure_id = :enclosure_id AND o.deleted_at IS NULL AND o.checkpoint_id IS NULL
WHERE c.id = ANY(CAST(:checkpoints AS integer[]))
  AND ST_DWithin(c.location::geography, o.location::geography, :max_m)
"""


def _link_checkpoints(session: Session, ids: list[int], results: dict[int, ScanResult], actor: str,
                      metric_srid: int, max_m: float) -> None:
    """Link unlinked checkpoints to the nearest free openings (greedy by distance); make openings for the rest
    within ``max_m`` of the perimeter; report the others as far."""
    candidates = session.execute(text(_CANDIDATE_CHECKPOINTS), {"ids": ids, "max_m": max_m}).all()
    by_enclosure: dict[int, list] = {}
    for c in candidates:
        by_enclosure.setdefault(c.enclosure_id, []).append(c)
    taken: set[int] = set()
    for enclosure_id, items in by_enclosure.items():
        items = [c for c in items if c.id not in taken]
        pairs = session.execute(text(_FREE_OPENINGS), {"enclosure_id": enclosure_id, "max_m": max_m,
                                                       "checkpoints": [c.id for c in items]}).all()
        used_openings: set[int] = set()
        linked: set[int] = set()
        for pair in sorted(pairs, key=lambda p: (p.d, p.checkpoint_id, p.opening_id)):
            if pair.checkpoint_id in linked or pair.opening_id in used_openings:
                continue
            _link(session, pair.opening_id, pair.checkpoint_id, actor, metric_srid)
            linked.add(pair.checkpoint_id)
            used_openings.add(pair.opening_id)
            results[enclosure_id].linked_checkpoints.append(pair.checkpoint_id)
        for c in items:
            if c.id in linked:
                continue
            taken.add(c.id)
            if c.off_m > max_m:
                results[enclosure_id].far_checkpoints.append((c.id, c.name, round(float(c.off_m), 1)))
                continue
            location = session.execute(text("SELECT ST_X(location), ST_Y(location) FROM checkpoints WHERE id = :id"),
                                       {"id": c.id}).one()
            opening = session.execute(text(INSERT_OPENING), {
                "enclosure_id": enclosure_id, "lon": location[0], "lat": location[1], "origin": "checkpoint",
                "name": None, "highway": None, "edge_ids": [], "width": DEFAULT_WIDTH_M, "actor": actor}).scalar_one()
            _link(session, opening, c.id, actor, metric_srid)
            results[enclosure_id].from_checkpoints.append(c.id)
            results[enclosure_id].added.append(opening)
        taken.update(linked)


def _link(session: Session, opening_id: int, checkpoint_id: int, actor: str, metric_srid: int) -> None:
    """Link a checkpoint to an opening: a sealed checkpoint seals the opening, any other makes it a checkpoint."""
    session.execute(text("""
        UPDATE openings o SET checkpoint_id = c.id,
               status = CASE WHEN c.status = 'sealed' THEN 'sealed' ELSE 'checkpoint' END,
               barrier_kind = CASE WHEN c.status = 'sealed' THEN coalesce(o.barrier_kind, 'unrecorded') END,
               barrier = CASE WHEN c.status = 'sealed'
                              THEN coalesce(o.barrier, ST_MakeLine(o.location, o.location)) END,
               barrier_m = CASE WHEN c.status = 'sealed' THEN coalesce(o.barrier_m, 0) END,
               version = o.version + 1, updated_at = now(), updated_by = :actor
        FROM checkpoints c WHERE c.id = :checkpoint AND o.id = :opening"""),
        {"opening": opening_id, "checkpoint": checkpoint_id, "actor": actor})
    session.execute(text("UPDATE checkpoints c SET enclosure_id = o.enclosure_id FROM openings o "
                         "WHERE o.id = :opening AND c.id = :checkpoint AND c.enclosure_id IS NULL"),
                    {"opening": opening_id, "checkpoint": checkpoint_id})
    refresh_barrier(session, [opening_id], metric_srid)


_BARRIER = """
UPDATE openings o SET barrier = CASE WHEN o.status = 'sealed' THEN ST_Transform(b.seg, 4326) END,
                      barrier_m = CASE WHEN o.status = 'sealed' THEN ST_Length(b.seg) END
FROM (
    SELECT o.id, CASE
           WHEN l.f - h.h < 0 THEN ST_RemoveRepeatedPoints(ST_MakeLine(ST_LineSubstring(r.ring, 1 + l.f - h.h, 1),
                                                                       ST_LineSubstring(r.ring, 0, l.f + h.h)))
           WHEN l.f + h.h > 1 THEN ST_RemoveRepeatedPoints(ST_MakeLine(ST_LineSubstring(r.ring, l.f - h.h, 1),
                                                                       ST_LineSubstring(r.ring, 0, l.f + h.h - 1)))
           ELSE ST_LineSubstring(r.ring, l.f - h.h, l.f + h.h) END AS seg
    FROM openings o
    JOIN enclosures e ON e.id = o.enclosure_id
    CROSS JOIN LATERAL (
        SELECT ST_Transform(ST_ExteriorRing(d.geom), :srid) AS ring FROM ST_DumpRings(e.boundary) d
        ORDER BY ST_Distance(ST_ExteriorRing(d.geom), o.location) LIMIT 1) r
    CROSS JOIN LATERAL (SELECT ST_LineLocatePoint(r.ring, ST_Transform(o.location, :srid)) AS f,
                               ST_Length(r.ring) AS len) l
    CROSS JOIN LATERAL (SELECT least(o.width_m / 2 / l.len, 0.4999) AS h) h
    WHERE o.id = ANY(CAST(:ids AS integer[]))
) b
WHERE o.id = b.id
"""


def refresh_barrier(session: Session, opening_ids: Sequence[int], metric_srid: int) -> None:
    """Recompute the barrier stretch of sealed openings (``width_m`` centred on the opening, along the ring it
    lies on, measured in ``metric_srid``); clear it for the others."""
    session.execute(text(_BARRIER), {"ids": list(opening_ids), "srid": metric_srid})


def sync_schedules(session: Session, checkpoint_ids: Sequence[int] | None = None) -> int:
    """Parse ``opening_hours`` of checkpoints that have no stored schedule yet (all, or ``checkpoint_ids``) and
    store them; strings outside the supported syntax are skipped (read as 'hours unknown'). Returns rows written."""
    where = "" if checkpoint_ids is None else "AND c.id = ANY(CAST(:ids AS integer[]))"
    rows = session.execute(text(f"""
        SELECT c.id, c.opening_hours FROM checkpoints c
        WHERE NOT EXISTS (SELECT 1 FROM checkpoint_schedules s WHERE s.checkpoint_id = c.id) {where}"""),
        {"ids": list(checkpoint_ids or [])}).all()
    values = []
    for r in rows:
        try:
            week = parse_opening_hours(r.opening_hours)
        except InvalidInput:
            continue
        values.append({"id": r.id, "hours": r.opening_hours, "lower": [a for a, _ in week.intervals],
                       "upper": [b for _, b in week.intervals], "minutes": week.minutes})
    if values:
        session.execute(text("""
            INSERT INTO checkpoint_schedules (checkpoint_id, opening_hours, staffed, staffed_minutes)
            SELECT :id, :hours,
                   coalesce((SELECT range_agg(int4range(l, u))
                             FROM unnest(CAST(:lower AS integer[]), CAST(:upper AS integer[])) AS v (l, u)),
                            '{}'::int4multirange), :minutes
            ON CONFLICT (checkpoint_id) DO NOTHING"""), values)
    return len(values)


def check_max_from_perimeter(value: float) -> None:
    """Metres (straight line) a checkpoint or opening may lie from a perimeter: MIN_DISTANCE_M to
    MAX_FROM_PERIMETER_LIMIT_M."""
    if not (isinstance(value, int | float) and math.isfinite(value)
            and MIN_DISTANCE_M <= value <= MAX_FROM_PERIMETER_LIMIT_M):
        raise InvalidInput(f"max_from_perimeter_m must be between {MIN_DISTANCE_M:g} and "
                           f"{MAX_FROM_PERIMETER_LIMIT_M:g} m, got {value}")
