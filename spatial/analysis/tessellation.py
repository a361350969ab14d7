"""Morphological tessellation: every building gets the land closer to it than to any other building.

Pure Shapely/numpy, no database. **Coordinates are metres in a projected CRS** (EPSG:4547, CGCS2000
Gauss-Kruger CM 114°E, for Shenzhen): convert lon/lat first (``spatial.geometry.crs.transform_geom`` or
pyproj with ``always_xy=True``). Areas are m².

Method (see docs/decisions/0007-tessellation-and-balancing.md):

1. The container is cut into *enclosures* by the optional ``barriers`` (street centrelines, estate walls):
   land never goes to a building across a barrier, unless the enclosure has no building at all.
2. Each building's outline (clipped to the container) is densified every ``spacing_m`` metres; the Voronoi
   cells of these sample points, computed per enclosure, are dissolved per building. Their union approximates
   the generalised Voronoi diagram of the footprints.
3. The boundaries of the container, enclosures, footprints and dissolved regions are noded **once** (snap
   rounding on a ``grid_size_m`` grid, 1 nm by default) and polygonized into faces. Every face goes to the
   building it lies in, else to the region it lies in, else (empty enclosure) to the nearest building.
   Because all cells are unions of faces of one arrangement, neighbouring cells share identical vertices:
   they tile the container with no gap and no overlap (up to the nm snapping of the container's own
   vertices), and a footprint is never cut, whatever the floating-point Voronoi edges did.
4. Pieces of a cell that do not touch its building (floating-point slivers, or land a non-convex container
   cut off) are handed to the neighbour with which they share the longest border, so cells are connected
   whenever the container allows.

Edge cases: no building → no cell (the whole container is ``unowned``); one building → the container;
buildings touching or overlapping each other (an overlap goes to the first building in input order; a
footprint entirely covered by earlier ones is ``excluded``); multipolygon buildings (all parts belong to one
cell, which may then be in several pieces); a building partly outside the container is kept when at least
``min_share`` of its footprint lies inside (majority rule: the grid holding most of the footprint owns it)
and its cell holds its inside part (listed in ``straddling``); otherwise it is ``excluded`` and its inside
part goes to the neighbouring cells.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely import Geometry
from shapely.geometry import MultiPoint, Polygon

DEFAULT_SPACING_M = 2.0
DEFAULT_GRID_SIZE_M = 1e-9


@dataclass(frozen=True)
class Tessellation:
    """Cells by building key (metres). ``cells`` tile ``container`` exactly when there is at least one building.

    ``enclosures`` are the container cut by the barriers (just the container without barriers) and
    ``enclosure_of`` gives each kept building's enclosure index (the one holding most of its footprint).
    """

    container: Geometry
    cells: dict[Hashable, Geometry]
    enclosures: tuple[Geometry, ...] = ()
    enclosure_of: dict[Hashable, int] = field(default_factory=dict)
    excluded: tuple[Hashable, ...] = ()
    straddling: tuple[Hashable, ...] = ()
    unowned: Geometry | None = None

    def union(self) -> Geometry:
        """The union of all cells (equal to the container up to µm snapping)."""
        return shapely.coverage_union_all(list(self.cells.values())) if self.cells else Polygon()


def tessellate(container: Geometry, buildings: Mapping[Hashable, Geometry], *, barriers=(),
               spacing_m: float = DEFAULT_SPACING_M, grid_size_m: float = DEFAULT_GRID_SIZE_M,
               min_share: float = 0.5, straddle_tolerance_m2: float = 0.01) -> Tessellation:
    """Tessellate ``container`` (Polygon/MultiPolygon, metres) among ``buildings`` (key → footprint, metres).

    ``barriers`` are lines (metres) the cells should not cross; ``min_share`` is the share of a footprint that
    must lie inside the container for the building to be kept (0 keeps every building that touches it with
    some area, for callers that already decided membership). Returns a :class:`Tessellation`.

    >>> from shapely.geometry import box
    >>> t = tessellate(box(0, 0, 100, 50), {"a": box(10, 10, 20, 20), "b": box(70, 10, 90, 30)})
    >>> sorted(t.cells), round(sum(c.area for c in t.cells.values()), 6)
    (['a', 'b'], 5000.0)
    >>> t.cells["a"].contains(box(10, 10, 20, 20)), round(t.cells["a"].bounds[2], 1)
    (True, 45.0)
    """
    container = _polygonal(shapely.make_valid(container))
    if container.is_empty:
        raise ValueError("the container is empty")
    origin = np.floor(np.asarray(container.bounds[:2]))
    local = _shift(container, -origin)
    keys, footprints, excluded, straddling = _members(local, buildings, origin, min_share, straddle_tolerance_m2)
    if not keys:
        return Tessellation(container, {}, (container,), {}, tuple(excluded), (), container)
    enclosures = _enclosures(local, [_shift(b, -origin) for b in barriers], grid_size_m)
    enclosure_of = _majority(footprints, enclosures)
    regions = _regions(footprints, enclosure_of, enclosures, spacing_m)
    faces = _faces(local, enclosures, footprints, regions, grid_size_m)
    owner, inside = _assign(faces, footprints, enclosures, enclosure_of, regions)
    owner = _merge_orphans(faces, owner, inside)
    cells = {}
    for i, key in enumerate(keys):
        mine = faces[owner == i]
        cells[key] = _shift(_dissolve(mine), origin)
    return Tessellation(container, cells, tuple(_shift(e, origin) for e in enclosures),
                        {keys[i]: int(enclosure_of[i]) for i in range(len(keys))}, tuple(excluded),
                        tuple(straddling))


def majority_owner(footprints, containers) -> np.ndarray:
    """For each footprint, the index of the container holding most of its area, or -1 if none holds any.

    The rule gridgov applies everywhere: "a building goes to the grid that holds most of its footprint".
    Ties go to the lower index. Both inputs are sequences of geometries in the same metric CRS.

    >>> from shapely.geometry import box
    >>> majority_owner([box(8, 0, 12, 1), box(30, 0, 31, 1)], [box(0, 0, 10, 10), box(10, 0, 20, 10)]).tolist()
    [0, -1]
    """
    footprints = np.asarray(footprints, dtype=object)
    containers = np.asarray(containers, dtype=object)
    best = np.full(len(footprints), -1, dtype=np.int64)
    if not len(footprints) or not len(containers):
        return best
    tree = shapely.STRtree(containers)
    fi, ci = tree.query(footprints, predicate="intersects")
    if not len(fi):
        return best
    areas = shapely.area(shapely.intersection(footprints[fi], containers[ci]))
    order = np.lexsort((ci, -areas, fi))          # per footprint: largest area first, then lowest index
    fi, ci, areas = fi[order], ci[order], areas[order]
    first = np.r_[True, fi[1:] != fi[:-1]] & (areas > 0)
    best[fi[first]] = ci[first]
    return best


# --- steps -------------------------------------------------------------------------------------------------


def _polygonal(geom: Geometry) -> Geometry:
    """The polygonal part of a geometry (make_valid may return collections with lines)."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon") and not p.is_empty]
    if not parts:
        return Polygon()
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def _dissolve(polygons) -> Geometry:
    """Union of polygons forming a coverage (exactly shared edges): the fast coverage union, or the general
    overlay when floating-point Voronoi edges are not noded exactly."""
    try:
        return shapely.coverage_union_all(polygons)
    except shapely.errors.GEOSException:
        return shapely.union_all(shapely.make_valid(polygons), grid_size=DEFAULT_GRID_SIZE_M)


def _shift(geom: Geometry, offset) -> Geometry:
    """Translate by ``offset`` (x, y) metres; keeps coordinates small so Voronoi and noding stay precise."""
    dx, dy = float(offset[0]), float(offset[1])
    return shapely.transform(geom, lambda xy: xy + np.array([dx, dy]))


def _members(local, buildings, origin, min_share, straddle_tolerance):
    """Buildings kept in the container: keys, footprints clipped to it and made disjoint (local coordinates)."""
    keys, footprints, excluded, straddling = [], [], [], []
    shapely.prepare(local)
    for key, footprint in buildings.items():
        footprint = _polygonal(shapely.make_valid(_shift(footprint, -origin)))
        area = footprint.area
        inside = _polygonal(shapely.intersection(footprint, local)) if area > 0 and local.intersects(footprint) \
            else Polygon()
        if inside.area <= 0 or inside.area < min_share * area:
            excluded.append(key)
            continue
        if area - inside.area > straddle_tolerance:
            straddling.append(key)
        keys.append(key)
        footprints.append(inside)
    footprints = np.array(footprints, dtype=object)
    if len(footprints) > 1:                           # overlaps go to the earlier building
        later, earlier = shapely.STRtree(footprints).query(footprints, predicate="intersects")
        keep = later > earlier
        keep[keep] = shapely.area(shapely.intersection(footprints[later[keep]], footprints[earlier[keep]])) > 1e-9
        for i in np.unique(later[keep]):
            others = footprints[earlier[keep][later[keep] == i]]
            footprints[i] = _polygonal(shapely.difference(footprints[i], shapely.union_all(others)))
        empty = shapely.area(footprints) <= 1e-9
        if empty.any():
            excluded += [k for k, e in zip(keys, empty) if e]
            straddling = [k for k in straddling if k not in set(excluded)]
            keys = [k for k, e in zip(keys, empty) if not e]
            footprints = footprints[~empty]
    return keys, footprints, excluded, straddling


def _enclosures(local, barriers, grid_size) -> list[Geometry]:
    """The container cut by the barrier lines (faces of their arrangement inside the container)."""
    barriers = np.asarray([b for b in barriers if b is not None and not b.is_empty], dtype=object)
    if len(barriers):
        barriers = barriers[shapely.STRtree(barriers).query(local, predicate="intersects")]
    lines = [shapely.intersection(b, local) for b in barriers]
    lines = [g for g in lines if not g.is_empty and g.length > 0]
    if not lines:
        return [local]
    noded = shapely.union_all([shapely.boundary(local), *lines], grid_size=grid_size)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    inside = shapely.contains_xy(local, *shapely.get_coordinates(shapely.point_on_surface(faces)).T)
    faces = faces[inside]
    return list(faces) if len(faces) else [local]


def _majority(footprints, enclosures) -> np.ndarray:
    if len(enclosures) == 1:
        return np.zeros(len(footprints), dtype=np.int64)
    owner = majority_owner(footprints, enclosures)
    missing = owner < 0
    if missing.any():                                 # snapped away: nearest enclosure
        tree = shapely.STRtree(enclosures)
        owner[missing] = tree.query_nearest(footprints[missing], all_matches=False)[1]
    return owner


def _regions(footprints, enclosure_of, enclosures, spacing) -> np.ndarray:
    """Per building, the land of its enclosure closer to it than to the other buildings there."""
    regions = np.empty(len(footprints), dtype=object)
    for e, enclosure in enumerate(enclosures):
        members = np.flatnonzero(enclosure_of == e)
        if len(members) == 1:
            regions[members[0]] = enclosure
        elif len(members) > 1:
            regions[members] = _voronoi_regions(footprints[members], enclosure, spacing)
    return regions


def _voronoi_regions(footprints, enclosure, spacing) -> list[Geometry]:
    points, owners = [], []
    for i, footprint in enumerate(footprints):
        xy = shapely.get_coordinates(shapely.segmentize(shapely.boundary(footprint), spacing))
        points.append(xy)
        owners.append(np.full(len(xy), i))
    xy, first = np.unique(np.round(np.concatenate(points), 3), axis=0, return_index=True)  # 1 mm
    owner = np.concatenate(owners)[first]
    if len(np.unique(owner)) < 2:
        return [enclosure] * len(footprints)
    # a deterministic sub-millimetre jitter breaks the co-circular sample points of aligned rectangles, which
    # otherwise yield self-intersecting Voronoi cells; footprints are enforced later, so it costs nothing
    xy = xy + np.random.default_rng(len(xy)).uniform(-5e-4, 5e-4, xy.shape)
    cells = np.asarray(shapely.get_parts(shapely.voronoi_polygons(MultiPoint(xy), extend_to=enclosure,
                                                                   ordered=True)), dtype=object)
    bad = ~shapely.is_valid(cells)
    if bad.any():
        cells[bad] = [_polygonal(g) for g in shapely.make_valid(cells[bad])]
    regions = []
    for i in range(len(footprints)):
        mine = cells[owner == i]
        region = _dissolve(mine) if len(mine) else Polygon()
        regions.append(shapely.intersection(region, enclosure))
    return regions


def _faces(local, enclosures, footprints, regions, grid_size) -> np.ndarray:
    """Faces of the single noded arrangement of every boundary, inside the container."""
    lines = [shapely.boundary(local), *(shapely.boundary(e) for e in enclosures),
             *shapely.boundary(footprints), *(shapely.boundary(r) for r in regions if r is not None)]
    noded = shapely.union_all([g for g in lines if g is not None and not g.is_empty], grid_size=grid_size)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    faces = faces[shapely.area(faces) > 0]
    x, y = shapely.get_coordinates(shapely.point_on_surface(faces)).T
    return faces[shapely.contains_xy(local, x, y)]


def _assign(faces, footprints, enclosures, enclosure_of, regions):
    """Owner index of every face, and whether the face lies inside its owner's footprint."""
    reps = shapely.point_on_surface(faces)
    owner = np.full(len(faces), -1, dtype=np.int64)
    inside = np.zeros(len(faces), dtype=bool)
    f, b = shapely.STRtree(footprints).query(reps, predicate="within")
    owner[f], inside[f] = b, True
    todo = np.flatnonzero(owner < 0)
    if len(todo):
        valid = np.array([r is not None and not r.is_empty for r in regions])
        region_index = np.flatnonzero(valid)
        if len(region_index):
            f, r = shapely.STRtree(regions[region_index]).query(reps[todo], predicate="within")
            owner[todo[f]] = region_index[r]
    todo = np.flatnonzero(owner < 0)
    if len(todo):                                      # empty enclosures, floating-point misses
        owner[todo] = shapely.STRtree(footprints).query_nearest(reps[todo], all_matches=False)[1]
    return owner, inside


def _face_adjacency(faces):
    """Pairs (a, b), a < b, of faces sharing a border of positive length, with that length (m)."""
    a, b = shapely.STRtree(faces).query(faces, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    shared = shapely.length(shapely.intersection(shapely.boundary(faces[a]), shapely.boundary(faces[b])))
    keep = shared > 0
    return a[keep], b[keep], shared[keep]


def _merge_orphans(faces, owner, inside, rounds: int = 6) -> np.ndarray:
    """Give every connected piece of a cell that holds none of its footprint to the neighbour sharing the
    longest border with it."""
    a, b, shared = _face_adjacency(faces)
    owner = owner.copy()
    for _ in range(rounds):
        same = owner[a] == owner[b]
        roots = _components(len(faces), a[same], b[same])
        anchored = np.zeros(len(faces), dtype=bool)
        anchored[roots[inside]] = True
        orphan = ~anchored[roots]
        if not orphan.any():
            break
        border: dict[int, dict[int, float]] = {}
        for x, y, s in zip(a[~same], b[~same], shared[~same]):
            if orphan[x]:
                border.setdefault(roots[x], {}).setdefault(owner[y], 0.0)
                border[roots[x]][owner[y]] += s
            if orphan[y]:
                border.setdefault(roots[y], {}).setdefault(owner[x], 0.0)
                border[roots[y]][owner[x]] += s
        if not border:
            break
        for root, lengths in border.items():
            owner[roots == root] = max(lengths, key=lengths.get)
    return owner


def _components(n: int, a, b) -> np.ndarray:
    """Root of each of ``n`` nodes under the undirected edges (a[i], b[i]) (union-find)."""
    parent = np.arange(n)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for x, y in zip(a.tolist(), b.tolist()):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[rx] = ry
    return np.array([find(i) for i in range(n)], dtype=np.int64)
