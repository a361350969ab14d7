"""Coverage reports for inspectors: is every opening sealed or staffed, and is every household near a checkpoint?

Per enclosure, and summed per community, subdistrict or district (:func:`coverage_report`):

* unguarded openings (open, or a checkpoint without staff, or one whose hours cannot be read), with their place
  and the street crossing the perimeter there;
* metres of barrier (sealed openings, measured along the perimeter in the metric CRS), counts of sealed openings,
  checkpoints and staff;
* the hours of the week with no staffed checkpoint at all, and for each checkpoint the hours when it is the only
  one staffed (:mod:`spatial.analysis.schedule`, from ``opening_hours``, local time);
* households farther than ``threshold_m`` from the nearest staffed checkpoint of their enclosure — **walking**
  on the footpath network inside the enclosure (pgRouting, :mod:`spatial.store.enclosure_network`) by default, or
  straight-line (``distance='straight'``) on request; every answer says which;
* grids with no staffed checkpoint on or within :data:`NEAR_GRID_M` of them, and checkpoints that are the nearest
  one for households of ``many_grids`` grids or more.

Demand points are residential buildings whose point on surface lies in the enclosure; a building counts its
household rows, or ``buildings.households`` where it has no rows (an estimated or imported count). "Staffed"
means a checkpoint with staff and some staffed hours in the week. Household *counts* are building attributes,
not personal data; the households themselves (:func:`households_beyond`) are masked, scoped and audited.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial import privacy
from spatial.access import Principal
from spatial.analysis.schedule import Staffing, staffing
from spatial.errors import Forbidden, InvalidInput
from spatial.store import audit
from spatial.store import enclosure_network as enet
from spatial.store.scope import building_scope, prefix_bounds, prefix_range
from spatial.store import openings as op

DEFAULT_THRESHOLD_M = 300.0
MIN_THRESHOLD_M = 10.0
MAX_THRESHOLD_M = 5000.0
DEFAULT_MANY_GRIDS = 3
NEAR_GRID_M = 10.0
DISTANCES = ("walk", "straight")
MAX_ENCLOSURES = 200


def check_threshold(threshold_m: float) -> float:
    """InvalidInput unless ``threshold_m`` is a sensible walking or straight-line distance in metres."""
    if not (isinstance(threshold_m, int | float) and math.isfinite(threshold_m)
            and MIN_THRESHOLD_M <= threshold_m <= MAX_THRESHOLD_M):
        raise InvalidInput(f"the distance threshold must be between {MIN_THRESHOLD_M:g} and {MAX_THRESHOLD_M:g} m, "
                           f"got {threshold_m}", code="coverage.threshold_range", min_m=f"{MIN_THRESHOLD_M:g}",
                           max_m=f"{MAX_THRESHOLD_M:g}",
                           got=f"{threshold_m:g}" if isinstance(threshold_m, int | float) else str(threshold_m)[:20])
    return float(threshold_m)


def check_distance(distance: str) -> str:
    if distance not in DISTANCES:
        raise InvalidInput(f"distance must be 'walk' (on the footpath network) or 'straight' (straight line), "
                           f"got {distance!r}")
    return distance


@dataclass(frozen=True)
class DemandPoint:
    """A residential building of an enclosure: ``location`` its point on surface (lon, lat)."""

    building_id: int
    code: str | None
    name: str | None
    grid_id: int | None
    grid_code: str | None
    location: tuple[float, float]
    households: int


def demand_points(session: Session, enclosure_id: int) -> list[DemandPoint]:
    """Buildings with households whose point on surface lies inside the enclosure (see the module docstring)."""
    rows = session.execute(text("""
        SELECT b.id, b.code, b.name, b.grid_id, g.code AS grid_code, ST_X(s.p) AS lon, ST_Y(s.p) AS lat,
               coalesce(nullif(h.n, 0), b.households, 0) AS households
        FROM enclosures e
        JOIN buildings b ON b.footprint && e.boundary
        CROSS JOIN LATERAL (SELECT ST_PointOnSurface(b.footprint) AS p) s
        LEFT JOIN grids g ON g.id = b.grid_id
        CROSS JOIN LATERAL (SELECT count(*) AS n FROM households h WHERE h.building_id = b.id) h
        WHERE e.id = :id AND ST_Within(s.p, e.boundary) AND coalesce(nullif(h.n, 0), b.households, 0) > 0
        ORDER BY b.id"""), {"id": int(enclosure_id)}).all()
    return [DemandPoint(r.id, r.code, r.name, r.grid_id, r.grid_code, (r.lon, r.lat), int(r.households)) for r in rows]


def distance_matrix(session: Session, enclosure_id: int, sources: Sequence[tuple[float, float]],
                    targets: Sequence[tuple[float, float]], *, distance: str = "walk", max_m: float = enet.UNBOUNDED_M,
                    metric_srid: int = 4547) -> np.ndarray:
    """len(sources) × len(targets) metres: walking inside the enclosure (footpath network) or straight-line;
    ``inf`` beyond ``max_m`` or unreachable."""
    check_distance(distance)
    if distance == "straight":
        return enet.straight_matrix(session, sources, targets, max_m)
    graph = enet.enclosure_graph(session, enclosure_id, [*sources, *targets], metric_srid=metric_srid)
    n = len(sources)
    return enet.multi_reach(session, graph, list(range(n)), list(range(n, n + len(targets))), max_m)


# -- the report ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildingDistance:
    """A building and the metres to its nearest staffed checkpoint (None: none reachable)."""

    building_id: int
    code: str | None
    name: str | None
    grid_code: str | None
    location: tuple[float, float]
    households: int
    distance_m: float | None
    nearest_opening_id: int | None


@dataclass(frozen=True)
class CheckpointLoad:
    """The households (and their grids) for whom this checkpoint is the nearest staffed one."""

    opening_id: int
    checkpoint_id: int
    name: str
    households: int
    buildings: int
    grid_codes: tuple[str, ...]
    many_grids: bool


@dataclass(frozen=True)
class GridWithout:
    grid_id: int
    code: str
    name: str
    households: int


@dataclass
class EnclosureCoverage:
    """The coverage of one enclosure; see the module docstring. Distances in metres, of kind ``distance``."""

    enclosure: dict
    openings: list[op.OpeningView]
    staffing: Staffing
    distance: str
    threshold_m: float
    households: int
    buildings: list[BuildingDistance]
    checkpoint_loads: list[CheckpointLoad]
    grids_without_checkpoint: list[GridWithout]
    notes: list[str] = field(default_factory=list)

    @property
    def unguarded(self) -> list[op.OpeningView]:
        return [o for o in self.openings if o.unguarded_reason]

    @property
    def sealed(self) -> list[op.OpeningView]:
        return [o for o in self.openings if o.status == "sealed"]

    @property
    def staffed(self) -> list[op.OpeningView]:
        return [o for o in self.openings if o.status == "checkpoint" and o.checkpoint and o.checkpoint.staffed]

    @property
    def barrier_m(self) -> float:
        return float(sum(o.barrier_m or 0.0 for o in self.sealed))

    @property
    def beyond(self) -> list[BuildingDistance]:
        """Buildings farther than the threshold from every staffed checkpoint (or with none reachable)."""
        return [b for b in self.buildings if b.distance_m is None or b.distance_m > self.threshold_m]

    @property
    def households_beyond(self) -> int:
        return sum(b.households for b in self.beyond)

    def counts(self) -> dict[str, float]:
        """Counts and sums for tables and totals."""
        return {
            **op.opening_counts(self.openings),
            "barrier_m": round(self.barrier_m, 1), "households": self.households,
            "households_beyond": self.households_beyond, "buildings_beyond": len(self.beyond),
            "hours_without_staffed_checkpoint": round(self.staffing.none.hours, 2),
            "checkpoints_serving_many_grids": sum(c.many_grids for c in self.checkpoint_loads),
        }


@dataclass
class CoverageReport:
    """Coverage of the enclosures of a division (or one enclosure). ``totals`` sum the enclosures' counts."""

    level: str
    code: str | None
    name: str | None
    distance: str
    threshold_m: float
    many_grids: int
    enclosures: list[EnclosureCoverage]
    grids_without_checkpoint: list[GridWithout]

    @property
    def totals(self) -> dict[str, float]:
        keys = ("openings", "open", "sealed", "checkpoints", "staffed_checkpoints", "staff", "unguarded", "barrier_m",
                "households", "households_beyond", "buildings_beyond", "checkpoints_serving_many_grids")
        sums = {k: 0.0 for k in keys}
        for e in self.enclosures:
            counts = e.counts()
            for k in keys:
                sums[k] += counts[k]
        out = {k: (round(v, 1) if k == "barrier_m" else int(v)) for k, v in sums.items()}
        out["enclosures"] = len(self.enclosures)
        out["enclosures_with_hours_unstaffed"] = sum(not e.staffing.none.is_empty for e in self.enclosures)
        out["grids_without_checkpoint"] = len(self.grids_without_checkpoint)
        return out


def coverage_report(session: Session, who: Principal, *, enclosure_id: int | None = None,
                    division: str | None = None, threshold_m: float = DEFAULT_THRESHOLD_M, distance: str = "walk",
                    many_grids: int = DEFAULT_MANY_GRIDS, metric_srid: int = 4547) -> CoverageReport:
    """The coverage report of one enclosure, or of every enclosure of a division (all visible ones when neither
    is given). Enclosures never scanned are scanned first (:func:`spatial.store.openings.ensure_scanned`)."""
    check_threshold(threshold_m)
    check_distance(distance)
    if not 1 <= many_grids <= 100:
        raise InvalidInput(f"many_grids must be between 1 and 100, got {many_grids}")
    ids = op.visible_enclosure_ids(session, who, enclosure_id=enclosure_id, division=division)
    if len(ids) > MAX_ENCLOSURES:
        raise InvalidInput(f"{len(ids)} enclosures: ask for a community or subdistrict (at most {MAX_ENCLOSURES})")
    op.ensure_scanned(session, ids, metric_srid=metric_srid)
    features = op.enclosure_features(session, ids, metric_srid)
    all_openings = op.openings_of(session, ids)
    items = [_enclosure(session, f, [o for o in all_openings if o.enclosure_id == f["id"]], threshold_m, distance,
                        many_grids, metric_srid) for f in features]
    level, code, name = _level(session, enclosure_id, division, features)
    grids = (_grids_without(session, who, division=division, metric_srid=metric_srid) if division is not None
             else items[0].grids_without_checkpoint if enclosure_id is not None and items else [])
    return CoverageReport(level, code, name, distance, threshold_m, many_grids, items, grids)


def _level(session: Session, enclosure_id, division, features) -> tuple[str, str | None, str | None]:
    if enclosure_id is not None:
        return "enclosure", str(enclosure_id), features[0]["name"] if features else None
    if division is not None:
        row = session.execute(text("SELECT level, name FROM divisions WHERE code = :c"), {"c": division}).one()
        return row.level, division, row.name
    return "all", None, None


def _enclosure(session: Session, feature: dict, openings: list[op.OpeningView], threshold_m: float, distance: str,
               many_grids: int, metric_srid: int) -> EnclosureCoverage:
    notes = []
    if feature["rescan_advised"]:
        notes.append("the boundary changed since its openings were detected: rescan them")
    staffed = [o for o in openings if o.status == "checkpoint" and o.checkpoint and o.checkpoint.staffed]
    schedules = {o.id: o.checkpoint.schedule for o in staffed}
    demand = demand_points(session, feature["id"])
    nearest, dist = _nearest(session, feature["id"], staffed, demand, distance, metric_srid)
    buildings = [BuildingDistance(d.building_id, d.code, d.name, d.grid_code, d.location, d.households,
                                  None if not np.isfinite(dist[k]) else round(float(dist[k]), 1),
                                  None if nearest[k] < 0 else staffed[nearest[k]].id) for k, d in enumerate(demand)]
    loads = _loads(staffed, demand, nearest, many_grids)
    if not staffed:
        notes.append("no staffed checkpoint: every household is beyond reach")
    grids = _grids_without(session, None, enclosure_id=feature["id"], metric_srid=metric_srid)
    return EnclosureCoverage(feature, openings, staffing(schedules), distance, threshold_m,
                             sum(d.households for d in demand), buildings, loads, grids, notes)


def _nearest(session: Session, enclosure_id: int, staffed: list[op.OpeningView], demand: list[DemandPoint],
             distance: str, metric_srid: int) -> tuple[np.ndarray, np.ndarray]:
    """Per demand point: index (into ``staffed``) of the nearest staffed checkpoint (-1: none) and its metres."""
    if not staffed or not demand:
        return np.full(len(demand), -1), np.full(len(demand), np.inf)
    matrix = distance_matrix(session, enclosure_id, [o.location for o in staffed], [d.location for d in demand],
                             distance=distance, metric_srid=metric_srid)
    best = np.argmin(matrix, axis=0)
    dist = matrix[best, np.arange(len(demand))]
    return np.where(np.isfinite(dist), best, -1), dist


def _loads(staffed: list[op.OpeningView], demand: list[DemandPoint], nearest: np.ndarray,
           many_grids: int) -> list[CheckpointLoad]:
    out = []
    for k, o in enumerate(staffed):
        served = [d for d, n in zip(demand, nearest, strict=True) if n == k]
        grids = tuple(sorted({d.grid_code for d in served if d.grid_code}))
        out.append(CheckpointLoad(o.id, o.checkpoint.id, o.checkpoint.name, sum(d.households for d in served),
                                  len(served), grids, len(grids) >= many_grids))
    return sorted(out, key=lambda c: (-len(c.grid_codes), -c.households, c.opening_id))


_GRIDS_WITHOUT = """
SELECT g.id, g.code, g.name,
       (SELECT coalesce(sum(coalesce(nullif(hc.n, 0), b.households, 0)), 0) FROM buildings b
        CROSS JOIN LATERAL (SELECT count(*) AS n FROM households h WHERE h.building_id = b.id) hc
        WHERE b.grid_id = g.id) AS households
FROM grids g
WHERE g.retired_at IS NULL AND {where}
  AND EXISTS (SELECT 1 FROM buildings b WHERE b.grid_id = g.id AND b.households > 0
              OR b.grid_id = g.id AND EXISTS (SELECT 1 FROM households h WHERE h.building_id = b.id))
  AND NOT EXISTS (
      SELECT 1 FROM openings o JOIN checkpoints c ON c.id = o.checkpoint_id
      WHERE o.deleted_at IS NULL AND o.status = 'checkpoint' AND c.status = 'staffed' AND c.staff_count > 0
        AND c.opening_hours <> 'off'
        AND o.location && ST_Expand(g.boundary, 0.001)
        AND ST_DWithin(o.location::geography, g.boundary::geography, :near_m))
ORDER BY g.code
"""


def _grids_without(session: Session, who: Principal | None, *, enclosure_id: int | None = None,
                   division: str | None = None, metric_srid: int = 4547) -> list[GridWithout]:
    """Active grids with households (overlapping the enclosure, or of the division in the caller's scope) with
    no staffed checkpoint on them or within :data:`NEAR_GRID_M` metres."""
    params: dict = {"near_m": NEAR_GRID_M, "srid": metric_srid}
    if enclosure_id is not None:
        where = ("EXISTS (SELECT 1 FROM enclosures e WHERE e.id = :enclosure AND e.boundary && g.boundary "
                 "AND ST_Area(ST_Transform(ST_Intersection(e.boundary, g.boundary), :srid)) > 1)")
        params["enclosure"] = enclosure_id
    else:
        where = prefix_range("g.community_code")
        params.update(prefix_bounds(op._division_prefix(session, division)))  # noqa: SLF001
        if who is not None and who.role != "admin":
            prefix = who.code_prefix
            if who.role == "grid_worker":
                where += " AND g.id = ANY(CAST(:grids AS integer[]))"
                params["grids"] = sorted(who.grid_ids)
            elif prefix:
                where += " AND " + prefix_range("g.code", "scope")
                params.update(prefix_bounds(prefix, "scope"))
            else:
                where += " AND FALSE"
    rows = session.execute(text(_GRIDS_WITHOUT.format(where=where)), params).all()
    return [GridWithout(r.id, r.code, r.name, int(r.households)) for r in rows]


# -- households beyond the threshold (personal data: masked, scoped, audited) ------------------------------------


def households_beyond(session: Session, who: Principal, report: CoverageReport, *,
                      purpose: str = "coverage report: households far from a checkpoint") -> list[dict]:
    """The household rows of the buildings beyond the threshold in ``report``, masked (surname + *, no ID
    number or phone) and limited to the caller's scope; one audit row lists their ids."""
    household_scope = who.require_household_read()
    ids = [b.building_id for e in report.enclosures for b in e.beyond]
    if not ids:
        return []
    scope, params = building_scope(household_scope)
    if household_scope.nothing:
        raise Forbidden("you have no area assigned, so no households to see")
    rows = session.execute(text(f"""
        SELECT h.id, h.building_id, b.code AS building_code, b.grid_id, h.unit, h.floor, h.room, h.residents,
               h.head_name FROM households h JOIN buildings b ON b.id = h.building_id
        WHERE h.building_id = ANY(CAST(:ids AS bigint[])) AND {scope}
        ORDER BY h.building_id, h.unit, h.floor, h.room"""), {**params, "ids": ids}).mappings().all()
    out = [privacy.mask_record(dict(r)) for r in rows]
    if out:
        audit.record(session, who, "read_masked", object_type="household",
                     object_id=[r["id"] for r in out], fields=["head_name", "unit", "room"],
                     purpose=purpose)
    return out
