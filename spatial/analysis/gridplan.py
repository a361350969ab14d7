"""Grid plans of one community: what an edit does, computed in pure Shapely (no database).

Everything here is in the deployment's metric CRS (EPSG:4547 for Shenzhen): coordinates in metres,
areas in m². The store (``store/grids.py``) loads a :class:`Community`, asks one of the ``plan_*``
functions for the proposed boundaries, checks them with :func:`check_plan`, and writes them.

Why Python and not SQL: a planner's preview runs on every vertex drag. One community (≤ ~100 grids,
≤ ~5,000 buildings) fits in memory, and vectorised Shapely on an STRtree answers "which grid holds most of
each building" for all buildings in a few milliseconds, with no temporary tables; the same code then serves
tests and notebooks without a database.

Rules (shared/domain.md §1):
* a building belongs to the grid that holds most of its footprint, and boundaries snap around buildings,
  so no building is ever cut (:func:`snap_around_buildings`);
* grids of a community cover it with no gap and no overlap; pieces under ``tolerance_m2`` are
  floating-point slivers and ignored;
* with ``move_shared_boundary`` an edited grid takes exactly the land it claims from its neighbours, and
  land it gives up goes to the neighbour sharing the longest border with it (else it is reported as a gap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely import Geometry
from shapely.ops import split as split_by

from spatial.errors import InvalidInput
from spatial.messages import render

Plan = dict[int, Geometry | None]
"""Proposed boundaries by grid id (negative ids are new grids); ``None`` retires a grid; absent = unchanged."""

DEFAULT_TOLERANCE_M2 = 1.0
PRECISION_M = 0.001
"""Coordinates are snapped to a 1 mm grid (``shapely.set_precision``) so that overlays of shared edges
do not leave near-duplicate vertices that make polygons invalid."""


@dataclass
class Grid:
    id: int
    code: str
    name: str
    kind: str
    geom: Geometry
    version: int = 1
    workers: int = 0


@dataclass
class Buildings:
    """Footprints (metric) with their current grid (0 if none), code and occupancy, aligned arrays."""

    ids: np.ndarray
    footprints: np.ndarray
    grid_ids: np.ndarray
    codes: list[str | None]
    households: np.ndarray
    residents: np.ndarray

    @classmethod
    def empty(cls) -> Buildings:
        return cls(np.array([], dtype=np.int64), np.array([], dtype=object), np.array([], dtype=np.int64), [],
                   np.array([], dtype=np.int64), np.array([], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Community:
    code: str
    boundary: Geometry
    grids: dict[int, Grid]
    buildings: Buildings = field(default_factory=Buildings.empty)

    def proposed(self, plan: Plan) -> dict[int, Geometry]:
        """The active grids after ``plan``: id → boundary."""
        result = {gid: g.geom for gid, g in self.grids.items()}
        for gid, geom in plan.items():
            if geom is None:
                result.pop(gid, None)
            else:
                result[gid] = geom
        return result


# -- building assignment ----------------------------------------------------------------------------------
def assign_buildings(footprints: np.ndarray, grids: dict[int, Geometry], tolerance_m2: float = 0.5,
                     current: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each footprint: the id of the grid holding most of it (0 if none), whether it is cut (partly in
    that grid and more than ``tolerance_m2`` outside it; a building wholly on uncovered land is not cut but
    has grid 0), and the share (0–1) inside that grid. A footprint lying
    wholly inside several (overlapping) grids stays in its ``current`` grid if that is one of them."""
    best = np.zeros(len(footprints), dtype=np.int64)
    inside = np.zeros(len(footprints))
    if len(footprints) == 0 or not grids:
        return best, np.zeros(len(footprints), dtype=bool), inside
    ids = np.array(list(grids))
    geoms = np.array(list(grids.values()), dtype=object)
    shapely.prepare(geoms)
    tree = shapely.STRtree(geoms)
    footprint_area = shapely.area(footprints)
    # fast path: most footprints lie within one grid, which a prepared predicate answers without overlay
    w_idx, wg_idx = tree.query(footprints, predicate="within")
    if current is not None:  # assignments run in order, so put the current grid's pairs last
        keep_last = np.argsort(ids[wg_idx] == current[w_idx], kind="stable")
        w_idx, wg_idx = w_idx[keep_last], wg_idx[keep_last]
    best[w_idx] = ids[wg_idx]
    inside[w_idx] = footprint_area[w_idx]
    rest = np.setdiff1d(np.arange(len(footprints)), w_idx)
    r_idx, g_idx = tree.query(footprints[rest], predicate="intersects")
    b_idx = rest[r_idx]
    areas = shapely.area(shapely.intersection(footprints[b_idx], geoms[g_idx]))
    order = np.lexsort((-areas, b_idx))  # per building, largest intersection first
    first = np.unique(b_idx[order], return_index=True)[1]
    winners = order[first]
    best[b_idx[winners]] = ids[g_idx[winners]]
    inside[b_idx[winners]] = areas[winners]
    cut = (inside > 0) & (footprint_area - inside > tolerance_m2)
    return best, cut, np.divide(inside, footprint_area, out=np.zeros_like(inside), where=footprint_area > 0)


def snap_around_buildings(geom: Geometry, footprints: np.ndarray) -> Geometry:
    """``geom`` grown to hold every building it holds most of, and shrunk to leave out every building it
    holds less than half of: afterwards no footprint crosses its boundary."""
    if len(footprints) == 0 or geom.is_empty:
        return geom
    touching = footprints[shapely.STRtree(footprints).query(geom, predicate="intersects")]
    if len(touching) == 0:
        return geom
    share = shapely.area(shapely.intersection(touching, geom)) / shapely.area(touching)
    grown = shapely.union_all([geom, *touching[share >= 0.5]])
    return clean(shapely.difference(grown, shapely.union_all(touching[share < 0.5])))


# -- edits -----------------------------------------------------------------------------------------------
def plan_redraw(c: Community, grid_id: int, geom: Geometry, *, move_shared_boundary: bool = False) -> Plan:
    """New boundary for one grid (``grid_id`` may be a new, negative id), snapped around buildings; with
    ``move_shared_boundary`` the neighbours give up exactly what it claims and receive what it releases."""
    snapped = snap_around_buildings(geom, c.buildings.footprints)
    if not move_shared_boundary:
        return {grid_id: snapped}
    snapped = clean(shapely.intersection(snapped, c.boundary))
    if snapped.is_empty:
        raise InvalidInput(f"the boundary lies outside community {c.code}: draw it inside the community",
                           code="plan.boundary_outside", community=c.code)
    plan: Plan = {grid_id: snapped}
    neighbours = {gid: g.geom for gid, g in c.grids.items() if gid != grid_id}
    for gid, other in neighbours.items():
        if shapely.intersects(other, snapped):
            plan[gid] = clean(shapely.difference(other, snapped))
    old = c.grids[grid_id].geom if grid_id in c.grids else None
    if old is not None:
        released = shapely.difference(old, snapped)
        for piece in shapely.get_parts(released):
            if piece.area <= DEFAULT_TOLERANCE_M2:
                continue
            target = _longest_border(piece, {gid: plan.get(gid, g) for gid, g in neighbours.items()})
            if target is not None:
                plan[target] = clean(shapely.union(plan.get(target, neighbours[target]), piece))
    return {gid: geom for gid, geom in plan.items() if geom is None or not geom.is_empty}


def plan_split(c: Community, grid_id: int, line: Geometry, new_id: int = -1) -> Plan:
    """Cut a grid in two along ``line`` (snapped around buildings). The part with the larger area keeps
    the grid; the other becomes grid ``new_id``. InvalidInput unless the line cuts it into exactly two."""
    grid = _grid(c, grid_id)
    parts = [p for p in shapely.get_parts(split_by(grid.geom, line)) if p.area > DEFAULT_TOLERANCE_M2]
    if len(parts) != 2:
        raise InvalidInput(f"the line must cut grid {grid.code} into exactly two parts; it makes {len(parts)}: "
                           "draw it from one side of the grid to the other", code="split.parts", grid=grid.code,
                           parts=len(parts))
    smaller = min(parts, key=lambda p: p.area)
    cut_off = clean(shapely.intersection(snap_around_buildings(smaller, c.buildings.footprints), grid.geom))
    kept = clean(shapely.difference(grid.geom, cut_off))
    if cut_off.is_empty or kept.is_empty:
        raise InvalidInput(f"after keeping buildings whole, one side of grid {grid.code} is empty: "
                           "move the line so that each side holds land of its own", code="split.side_empty",
                           grid=grid.code)
    return {grid_id: kept, new_id: cut_off}


def plan_merge(c: Community, grid_ids: list[int], min_shared_m: float = 1.0) -> Plan:
    """The first grid takes the union of all; the others retire. InvalidInput if the grids do not form one
    connected group sharing borders of at least ``min_shared_m`` metres."""
    grids = [_grid(c, gid) for gid in grid_ids]
    if len(grids) < 2:
        raise InvalidInput("a merge needs at least two grids", code="merge.needs_two")
    joined, pending = [grids[0]], grids[1:]
    while pending:
        touching = next((g for g in pending if any(_shared_length(g.geom, j.geom) >= min_shared_m for j in joined)),
                        None)
        if touching is None:
            apart, joined_codes = ", ".join(g.code for g in pending), ", ".join(g.code for g in joined)
            raise InvalidInput(f"grids {apart} share no border with {joined_codes}: only adjacent grids can be merged",
                               code="merge.not_adjacent", grids=apart, joined=joined_codes)
        joined.append(touching)
        pending.remove(touching)
    union = clean(shapely.union_all([g.geom for g in grids]))
    return {grids[0].id: union, **{g.id: None for g in grids[1:]}}


def plan_retire(c: Community, grid_id: int) -> Plan:
    _grid(c, grid_id)
    return {grid_id: None}


# -- checking --------------------------------------------------------------------------------------------
@dataclass
class Piece:
    geometry: Geometry
    area_m2: float
    grids: tuple[str, ...] = ()


@dataclass
class MovedBuilding:
    id: int
    from_grid: str | None
    to_grid: str | None
    old_code: str | None
    households: int
    new_code: str | None = None
    """Filled by the store: the 19-digit code the building gets (next free number in ``to_grid``)."""


@dataclass
class Workload:
    grid: str
    households: int
    residents: int
    workers: int
    in_range: bool
    touched: bool = True
    """Whether the change redraws this grid (by more than the report's tolerance), makes it, or moves buildings
    into or out of it: the grids a planner looks at; the others are listed for the whole picture."""

    @property
    def households_per_worker(self) -> float | None:
        return self.households / self.workers if self.workers else None


@dataclass
class Report:
    tolerance_m2: float
    households_range: tuple[int, int]
    gaps: list[Piece]
    overlaps: list[Piece]
    outside: list[Piece]
    cut_buildings: list[tuple[int, str | None]]
    moved_buildings: list[MovedBuilding]
    workload: list[Workload]
    building_grid: dict[int, int] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """No overlap, nothing outside the community, no cut building (gaps and workload only warn)."""
        return not (self.overlaps or self.outside or self.cut_buildings)

    def to_dict(self, geometry: Callable[[Geometry], dict]) -> dict:
        """JSON-ready report; ``geometry`` turns a metric geometry into GeoJSON in the caller's CRS."""
        def pieces(items: list[Piece]) -> list[dict]:
            return [{"grids": list(p.grids), "area_m2": p.area_m2, "geometry": geometry(p.geometry)} for p in items]

        return {
            "ok": self.ok, "problems": self.problems(), "problem_codes": self.problem_codes(),
            "warning_codes": self.warning_codes(),
            "tolerance_m2": self.tolerance_m2,
            "households_range": list(self.households_range),
            "gaps": {"area_m2": round(sum(p.area_m2 for p in self.gaps), 1), "pieces": pieces(self.gaps)},
            "overlaps": pieces(self.overlaps), "outside": pieces(self.outside),
            "cut_buildings": [{"id": i, "code": code} for i, code in self.cut_buildings],
            "moved_buildings": [vars(m) for m in self.moved_buildings],
            "workload": [{**vars(w), "households_per_worker": w.households_per_worker} for w in self.workload],
        }

    def problem_codes(self) -> list[dict]:
        """The problems as message codes of :mod:`spatial.messages` with their ``count``, for the pages."""
        return [{"code": code, "count": len(bad)} for code, bad in (
            ("plan.overlaps", self.overlaps), ("plan.outside", self.outside),
            ("plan.cut_buildings", self.cut_buildings)) if bad]

    def problems(self) -> list[str]:
        """The problems in English (:meth:`problem_codes` in the catalogue's words)."""
        return [render(p["code"], p, "en") for p in self.problem_codes()]

    def warning_codes(self) -> list[dict]:
        """What the change may save but a planner should see first, as message codes with their fields: each
        touched grid whose households fall outside ``households_range``, and uncovered land."""
        low, high = self.households_range
        found = [{"code": "plan.households_out_of_range", "grid": w.grid, "households": w.households,
                  "low": low, "high": high} for w in self.workload if w.touched and not w.in_range]
        area = round(sum(p.area_m2 for p in self.gaps), 1)
        if area:
            found.append({"code": "plan.gaps", "count": len(self.gaps), "area_m2": area})
        return found


def check_plan(c: Community, plan: Plan, codes: dict[int, str], *, tolerance_m2: float = DEFAULT_TOLERANCE_M2,
               households_range: tuple[int, int] = (300, 500)) -> Report:
    """Gaps, overlaps, parts outside the community, cut and moved buildings, and workload of the community
    after ``plan``. ``codes`` names every grid id (including new ones) for the report."""
    grids = c.proposed(plan)
    ids = sorted(grids)
    geoms = [grids[i] for i in ids]
    covered = shapely.union_all(geoms) if geoms else shapely.Polygon()
    gaps = _pieces(shapely.difference(c.boundary, covered), tolerance_m2)
    outside = [p for gid in ids for p in _pieces(shapely.difference(grids[gid], c.boundary), tolerance_m2,
                                                   (codes[gid],))]
    overlaps = _overlaps(ids, geoms, codes, tolerance_m2)
    b = c.buildings
    best, cut, _ = assign_buildings(b.footprints, grids, current=b.grid_ids)
    moved = [MovedBuilding(int(b.ids[i]), codes.get(int(b.grid_ids[i])), codes.get(int(best[i])), b.codes[i],
                           int(b.households[i])) for i in np.flatnonzero(best != b.grid_ids)]
    workload = []
    low, high = households_range
    moved_between = {g for m in moved for g in (m.from_grid, m.to_grid)}  # grid codes
    redrawn = {gid for gid, geom in plan.items() if geom is None or gid not in c.grids
               or shapely.area(shapely.symmetric_difference(geom, c.grids[gid].geom)) > tolerance_m2}
    for gid in ids:
        mine = best == gid
        households = int(b.households[mine].sum())
        worker_count = c.grids[gid].workers if gid in c.grids else 0
        workload.append(Workload(codes[gid], households, int(b.residents[mine].sum()), worker_count,
                                 low <= households <= high, gid in redrawn or codes[gid] in moved_between))
    return Report(tolerance_m2, households_range, gaps, overlaps, outside,
                  [(int(b.ids[i]), b.codes[i]) for i in np.flatnonzero(cut)], moved, workload,
                  {int(b.ids[i]): int(best[i]) for i in range(len(b))})


# -- helpers ---------------------------------------------------------------------------------------------
def _grid(c: Community, grid_id: int) -> Grid:
    if grid_id not in c.grids:
        raise InvalidInput(f"grid {grid_id} is not an active grid of community {c.code}", code="plan.not_active_grid",
                           grid_id=grid_id, community=c.code)
    return c.grids[grid_id]


def clean(geom: Geometry, grid_size: float = PRECISION_M) -> Geometry:
    """Polygonal part only, valid, on the ``grid_size`` precision grid, without zero-area slivers left by
    floating-point overlay. Works in any CRS given a grid size in its units."""
    geom = shapely.make_valid(geom) if not shapely.is_valid(geom) else geom
    geom = shapely.set_precision(geom, grid_size)
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon") and p.area > 0]
    polys = [q for p in parts for q in shapely.get_parts(p)]
    return shapely.union_all(polys, grid_size=grid_size) if polys else shapely.Polygon()


def _pieces(geom: Geometry, tolerance_m2: float, grids: tuple[str, ...] = ()) -> list[Piece]:
    return [Piece(p, round(p.area, 1), grids) for p in shapely.get_parts(clean(geom)) if p.area > tolerance_m2]


def _overlaps(ids: list[int], geoms: list[Geometry], codes: dict[int, str], tolerance_m2: float) -> list[Piece]:
    if len(geoms) < 2:
        return []
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pairs = [(i, j) for i, j in zip(left, right, strict=True) if i < j]
    result = []
    for i, j in pairs:
        overlap = clean(shapely.intersection(geoms[i], geoms[j]))
        if overlap.area > tolerance_m2:
            result.append(Piece(overlap, round(overlap.area, 1), (codes[ids[i]], codes[ids[j]])))
    return result


def _shared_length(a: Geometry, b: Geometry, snap_m: float = 0.05) -> float:
    """Metres of ``a``'s boundary lying within ``snap_m`` of ``b``'s (robust to vertices that differ by
    floating-point noise)."""
    return shapely.length(shapely.intersection(shapely.boundary(a), shapely.buffer(shapely.boundary(b), snap_m)))


def _longest_border(piece: Geometry, candidates: dict[int, Geometry | None]) -> int | None:
    lengths = {gid: _shared_length(piece, g) for gid, g in candidates.items() if g is not None and not g.is_empty}
    best = max(lengths, key=lengths.get, default=None)
    return best if best is not None and lengths[best] > 0.5 else None
