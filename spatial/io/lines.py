"""Routable streets from a plain road-centreline layer: LineStrings / MultiLineStrings with no node ids.

A district GIS office's road layer (Shapefile, GeoPackage) holds lines and attributes, no graph. This module
nodes it into the nodes and edges :func:`.streets.load_network` writes for OpenStreetMap data, so pgRouting
(:mod:`spatial.store.network`) routes on it the same way.

**Attributes** (field names case-insensitive; the first present of each list is used, see the ``*_FIELDS``):
class from ``highway`` (OSM), ``fclass`` (Geofabrik) or ``道路等级`` and similar (Chinese grades), mapped by
:func:`.mapping.road_classes` and then :func:`.mapping.foot_car`; ``oneway`` by
:func:`.mapping.oneway_directions` (Geofabrik ``F``/``T``/``B``: along / against the line / both; a one-way line
drawn against its direction is reversed); motorways (OSM classes only: a Chinese 高速 centreline stands for both
carriageways) and ``junction=roundabout`` are one-way when ``oneway`` is missing.

**Levels**: :func:`.mapping.levels` — the OSM ``layer`` field, else 1 for a bridge (``bridge``/``桥梁`` = yes, T, 1,
是, viaduct …), -1 for a tunnel (``tunnel``/``隧道``; ``building_passage`` stays on the ground), else 0. Lines cross
at one height when they are on the ground, or share a ``layer`` value; a bridge or tunnel with no ``layer`` value is
at a height of its own (two flyovers crossing are usually at different heights: on the Shatou data, treating
every bridge as one level made a junction between two ramps that OSM keeps 49 m apart and shortened a 1.7 km
walk by 15 %), so it meets other lines only at line ends.

**Noding**, in a transverse Mercator projection centred on the layer (metres; results back in EPSG:4326):

1. Snapping (``snap_m``, default :data:`DEFAULT_SNAP_M`): line ends closer than ``snap_m`` to each other move to
   one place (the first in file order), whatever their level; an end left alone within ``snap_m`` of another line
   of its own level moves onto it (an undershooting T-junction). Nothing else moves.
2. Lines of one level are cut wherever they cross, touch, overlap or share a vertex; a line of any level is cut
   where an end of another line lies on it (within :data:`MERGE_M`). So a bridge passing over a street makes no
   node, while the bridge's ends join whatever they meet. A line crossing itself is not cut there.
3. Piece ends within :data:`MERGE_M` (1 cm) are one node; its reference is ``xy/<lon>,<lat>`` (8 decimals),
   so importing the same file again yields the same references and inserts nothing. Pieces shorter than 1 cm
   are dropped. Lengths are geodesic metres (as for every import, :func:`.streets.geodesic_lengths`).

**Why Shapely and not ST_Node/ST_Split.** Measured on the Shatou lines (2,597 lines made from the OSM edges of
``futian_shatou.gpkg``, 149 levels; ``python -m benchmarks.street_lines``, best of 3 on a shared 2-core machine):
``shapely.node`` per level 0.007 s, and the STRtree + ``intersection`` + cutting used here, which keeps each
piece's line (hence its attributes and direction), 0.15 s; in PostGIS ``ST_Node(ST_Collect(geom))`` per level
0.39 s and ``ST_Split`` of each line at its crossings 0.65 s, not counting the upload of the lines. ST_Node also
loses which line a piece came from (matching it back with ST_Covers is fragile where lines overlap), and the level
and line-end rules are plain numpy here. The whole import of those lines takes 0.8 s (the osmnx graph: 0.35 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyproj
import shapely

from spatial.errors import InvalidInput
from spatial.io.mapping import (GROUND_TUNNELS, first_int, flagged, is_missing, levels, oneway_directions,
                                road_classes)
from spatial.io.report import ImportReport
from spatial.io.streets import EdgeColumns, NodeColumns
from spatial.io.validate import Source

if TYPE_CHECKING:
    from spatial.io.files import Layer

DEFAULT_SNAP_M = 0.5
MAX_SNAP_M = 10.0
MERGE_M = 0.01  # ends closer than this (metres) are the same node
OWN_LEVEL = 1_000_000  # levels from here on: one per bridge/tunnel line without a layer value

CLASS_FIELDS = ("highway", "fclass", "道路等级", "道路类型", "道路类别", "等级", "type")
OSM_CLASS_FIELDS = ("highway", "fclass", "type")
ONEWAY_FIELDS = ("oneway", "单行", "是否单行", "单向", "单行线", "通行方向")
BRIDGE_FIELDS = ("bridge", "桥梁", "是否桥梁", "桥")
TUNNEL_FIELDS = ("tunnel", "隧道", "是否隧道")
LAYER_FIELDS = ("layer", "z_level", "zlevel", "层级")
NAME_FIELDS = ("name", "name:zh", "name_zh", "道路名称", "路名", "名称", "road_name")
WAY_ID_FIELDS = ("osm_id", "osmid", "way_id")
LINEAR = (shapely.GeometryType.LINESTRING, shapely.GeometryType.MULTILINESTRING)


@dataclass
class StreetLines:
    """A road layer mapped onto edge attributes, one entry per feature; ``geoms`` in EPSG:4326. ``oneway``/``flip``
    as :func:`.mapping.oneway_directions` returns them; ``levels``: lines of equal level are cut where they cross
    (0 the ground, a ``layer`` value, or a level of the feature's own for a bridge/tunnel without one, numbered
    from :data:`OWN_LEVEL`); ``unrecognised`` counts features whose
    class value was not understood (kept as given, open to walkers and drivers)."""

    geoms: np.ndarray
    levels: np.ndarray
    highways: np.ndarray
    oneway: np.ndarray
    flip: np.ndarray
    names: np.ndarray
    way_ids: np.ndarray
    foot_tags: np.ndarray | None
    class_field: str | None
    unrecognised: int


def check_line_layer(layer: Layer) -> None:
    """InvalidInput unless the layer holds some LineString/MultiLineString features."""
    where = f"{layer.file}, layer {layer.name!r}"
    need = "; a street layer needs LineString or MultiLineString features"
    if len(layer.geoms) == 0:
        raise InvalidInput(f"{where} has no features{need}", file=layer.file, layer=layer.name)
    present = layer.geoms[~(shapely.is_missing(layer.geoms) | shapely.is_empty(layer.geoms))]
    if len(present) == 0:
        raise InvalidInput(f"{where} has no geometry (features without shapes){need}", file=layer.file,
                           layer=layer.name)
    if not np.isin(shapely.get_type_id(present), LINEAR).any():
        kinds = sorted({g.geom_type for g in present[:1000]})
        raise InvalidInput(f"{where} holds {', '.join(kinds)} geometries, not lines{need}", file=layer.file,
                           layer=layer.name, geometry_types=kinds)


def street_lines(layer: Layer) -> StreetLines:
    """Map a line layer's fields (see the module docstring). InvalidInput when it holds no lines."""
    check_line_layer(layer)
    n = len(layer.geoms)
    none = np.full(n, None, dtype=object)
    class_field = next((c for c in CLASS_FIELDS if c in layer.fields), None)
    if class_field is None:
        highways, known = none.copy(), np.zeros(n, dtype=bool)
    else:
        highways, known = road_classes(layer.fields[class_field])
    given = np.array([not is_missing(v) for v in layer.fields[class_field]]) if class_field else known
    junction = layer.field(("junction",))
    implied = np.array([class_field in OSM_CLASS_FIELDS and h == "motorway" for h in highways], dtype=bool)
    if junction is not None:
        implied |= np.array([str(j).lower() == "roundabout" for j in junction], dtype=bool)
    oneway_values = layer.field(ONEWAY_FIELDS)
    oneway, flip = oneway_directions(oneway_values if oneway_values is not None else none, implied)
    bridge = flagged(layer.field(BRIDGE_FIELDS), n)
    tunnel = flagged(layer.field(TUNNEL_FIELDS), n, GROUND_TUNNELS)
    way_ids = layer.field(WAY_ID_FIELDS)
    names = layer.field(NAME_FIELDS)
    level, layered = levels(layer.field(LAYER_FIELDS), bridge, tunnel)
    level = np.where((level == 0) | layered, level, OWN_LEVEL + np.arange(n))
    return StreetLines(
        geoms=layer.geoms, levels=level, highways=highways,
        oneway=oneway, flip=flip, names=names if names is not None else none,
        way_ids=first_int(way_ids) if way_ids is not None else none, foot_tags=layer.field(("foot",)),
        class_field=class_field, unrecognised=int((given & ~known).sum()))


def check_snap(snap_m: float) -> float:
    if not (isinstance(snap_m, (int, float)) and 0 <= snap_m <= MAX_SNAP_M):
        raise InvalidInput(f"snap_m must be a number of metres from 0 to {MAX_SNAP_M:g}, not {snap_m!r}",
                           snap_m=str(snap_m))
    return float(snap_m)


# -- geometry helpers (metres) ---------------------------------------------------------------------------------------
def _local_metric(geoms: np.ndarray) -> tuple[pyproj.Transformer, pyproj.Transformer]:
    """(lon/lat → metres, metres → lon/lat): transverse Mercator on the layer's central meridian (scale error
    under 0.1 % within 2.5° of it; used for tolerances and cutting, never for lengths)."""
    x0, _, x1, _ = shapely.total_bounds(geoms)
    local = pyproj.CRS.from_proj4(f"+proj=tmerc +lat_0=0 +lon_0={(x0 + x1) / 2:.4f} +k=1 +x_0=0 +y_0=0 "
                                  "+ellps=WGS84 +units=m +no_defs")
    return (pyproj.Transformer.from_crs(4326, local, always_xy=True),
            pyproj.Transformer.from_crs(local, 4326, always_xy=True))


def _apply(transformer: pyproj.Transformer, geoms: np.ndarray) -> np.ndarray:
    return shapely.transform(geoms, lambda c: np.column_stack(transformer.transform(c[:, 0], c[:, 1])))


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of n items linked by pairs (i, j): each item's label is the smallest index of its
    component (min-label propagation with pointer jumping, vectorised)."""
    label = np.arange(n)
    while True:
        before = label.copy()
        np.minimum.at(label, i, label[j])
        np.minimum.at(label, j, label[i])
        label = label[label]
        if np.array_equal(label, before):
            return label


def _clusters(points: np.ndarray, distance: float) -> np.ndarray:
    """For each point, the index of the first point of its cluster (points linked when within ``distance``)."""
    i, j = shapely.STRtree(points).query(points, predicate="dwithin", distance=distance)
    return components(len(points), i, j)


def _ends(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coordinates array, index of each part's first coordinate, of its last)."""
    coords, index = shapely.get_coordinates(parts, return_index=True)
    first = np.searchsorted(index, np.arange(len(parts)))
    last = np.r_[first[1:], len(index)] - 1
    return coords, first, last


def _with_ends(parts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``parts`` with their first and last coordinates replaced by ``ends`` (2P × 2: all starts, then all ends)."""
    coords, first, last = _ends(parts)
    index = np.repeat(np.arange(len(parts)), shapely.get_num_coordinates(parts))
    coords[first], coords[last] = ends[:len(parts)], ends[len(parts):]
    return shapely.linestrings(coords, indices=index)


def _snap(parts: np.ndarray, level: np.ndarray, snap_m: float) -> np.ndarray:
    """Step 1 of the docstring: the parts with their ends snapped."""
    coords, first, last = _ends(parts)
    ends = np.concatenate([coords[first], coords[last]])
    points = shapely.points(ends)
    rep = _clusters(points, max(snap_m, MERGE_M))
    ends = ends[rep]
    n = len(parts)
    alone = np.flatnonzero(np.bincount(rep, minlength=2 * n)[rep] == 1)
    if snap_m > 0 and len(alone):
        e, p = shapely.STRtree(parts).query(points[alone], predicate="dwithin", distance=snap_m)
        e = alone[e]
        keep = (p != e % n) & (level[p] == level[e % n])
        e, p = e[keep], p[keep]
        dist = shapely.distance(points[e], parts[p])
        order = np.lexsort((dist, e))
        e, p, dist = e[order], p[order], dist[order]
        nearest = np.r_[True, e[1:] != e[:-1]] & (dist > MERGE_M)
        e, p = e[nearest], p[nearest]
        onto = shapely.line_interpolate_point(parts[p], shapely.line_locate_point(parts[p], points[e]))
        ends[e] = shapely.get_coordinates(onto)
    return _with_ends(parts, ends)


def _cut_points(parts: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: (part index, cut point xy) for every place a part must be cut (unsorted, may repeat)."""
    tree = shapely.STRtree(parts)
    a, b = tree.query(parts, predicate="intersects")
    same = (a < b) & (level[a] == level[b])
    a, b = a[same], b[same]
    meet, k = shapely.get_parts(shapely.intersection(parts[a], parts[b]), return_index=True)
    kind = shapely.get_type_id(meet)
    spots = [(k[kind == shapely.GeometryType.POINT], shapely.get_coordinates(meet[kind == shapely.GeometryType.POINT]))]
    overlaps, k_over = meet[kind == shapely.GeometryType.LINESTRING], k[kind == shapely.GeometryType.LINESTRING]
    for end in (0, -1):  # an overlap cuts both lines at its two ends
        spots.append((k_over, shapely.get_coordinates(shapely.get_point(overlaps, end))))
    pairs = np.concatenate([s[0] for s in spots]).astype(int)
    xy = np.concatenate([s[1] for s in spots]).reshape(-1, 2)
    coords, first, last = _ends(parts)
    ends = np.concatenate([coords[first], coords[last]])
    e, p = tree.query(shapely.points(ends), predicate="dwithin", distance=MERGE_M)
    other = p != e % len(parts)
    return (np.concatenate([a[pairs], b[pairs], p[other]]),
            np.concatenate([xy, xy, ends[e[other]]]).reshape(-1, 2))


def _cut(coords: np.ndarray, at: np.ndarray, xy: np.ndarray) -> list[np.ndarray]:
    """A polyline (metres) cut at distances ``at`` along it (sorted, inside, at least MERGE_M apart) at the
    points ``xy``; vertices within MERGE_M/2 of a cut give way to the cut point."""
    cum = np.r_[0.0, np.cumsum(np.hypot(*np.diff(coords, axis=0).T))]
    pieces, current, vi, last = [], [coords[0]], 1, len(coords) - 1
    for d, point in zip(at, xy):
        while vi < last and cum[vi] < d - MERGE_M / 2:
            current.append(coords[vi])
            vi += 1
        while vi < last and cum[vi] <= d + MERGE_M / 2:
            vi += 1
        current.append(point)
        pieces.append(np.array(current))
        current = [point]
    current.extend(coords[vi:])
    pieces.append(np.array(current))
    return pieces


def _pieces(parts: np.ndarray, level: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Step 2 done: (piece coordinate arrays, part index of each piece), pieces in part order."""
    cut_part, cut_xy = _cut_points(parts, level)
    at = shapely.line_locate_point(parts[cut_part], shapely.points(cut_xy)) if len(cut_part) else np.zeros(0)
    lengths = shapely.length(parts)
    inside = (at > MERGE_M) & (at < lengths[cut_part] - MERGE_M)
    cut_part, cut_xy, at = cut_part[inside], cut_xy[inside], at[inside]
    order = np.lexsort((at, cut_part))
    cut_part, cut_xy, at = cut_part[order], cut_xy[order], at[order]
    coords, first, last = _ends(parts)
    starts = np.searchsorted(cut_part, np.arange(len(parts)))
    stops = np.searchsorted(cut_part, np.arange(len(parts)), side="right")
    pieces: list[np.ndarray] = []
    owner: list[int] = []
    for i in range(len(parts)):
        line = coords[first[i]:last[i] + 1]
        if starts[i] == stops[i]:
            pieces.append(line)
            owner.append(i)
            continue
        d, xy = at[starts[i]:stops[i]], cut_xy[starts[i]:stops[i]]
        apart = np.r_[True, np.diff(d) > MERGE_M]
        new = _cut(line, d[apart], xy[apart])
        pieces.extend(new)
        owner.extend([i] * len(new))
    return pieces, np.array(owner, dtype=int)


# -- the network -----------------------------------------------------------------------------------------------------
def _usable_parts(lines: StreetLines, source: Source, report: ImportReport, to_m: pyproj.Transformer
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(line parts in metres, feature index of each): MultiLineStrings split into their lines; features with
    nothing usable are skipped and reported under ``street_lines``."""
    geoms = lines.geoms
    tally = report.tally("street_lines")
    tally.read, tally.stored = tally.read + len(geoms), False
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    linear = ~empty & np.isin(shapely.get_type_id(geoms), LINEAR)
    for i in np.flatnonzero(empty):
        report.skip("street_lines", "empty geometry", source.labels(i))
    for i in np.flatnonzero(~empty & ~linear):
        report.skip("street_lines", "not a line", source.labels(i), f"not a line ({geoms[i].geom_type})")
    index = np.flatnonzero(linear)
    parts, k = shapely.get_parts(geoms[index], return_index=True)
    parts, feature = _apply(to_m, parts), index[k]
    usable = ~shapely.is_empty(parts) & (shapely.length(parts) > MERGE_M)
    for i in np.setdiff1d(index, feature[usable]):
        report.skip("street_lines", "no length", source.labels(i), "shorter than 1 cm (fewer than two distinct points)")
    return parts[usable], feature[usable]


def lines_network(lines: StreetLines, source: Source, report: ImportReport, *, snap_m: float = DEFAULT_SNAP_M
                  ) -> tuple[NodeColumns, EdgeColumns, np.ndarray]:
    """Node ``lines`` (see the module docstring) into (nodes, edges, feature index of each edge) ready for
    :func:`.streets.load_network`. Features left out are counted in ``report`` (``street_lines``)."""
    to_m, to_lonlat = _local_metric(lines.geoms[~(shapely.is_missing(lines.geoms) | shapely.is_empty(lines.geoms))])
    parts, feature = _usable_parts(lines, source, report, to_m)
    level = lines.levels[feature]
    parts = _snap(parts, level, snap_m)
    collapsed = shapely.length(parts) <= MERGE_M
    for i in np.setdiff1d(feature[collapsed], feature[~collapsed]):
        report.skip("street_lines", "shorter than the snapping tolerance", source.labels(i),
                    f"both ends snapped together (snap_m={snap_m:g})")
    parts, feature, level = parts[~collapsed], feature[~collapsed], level[~collapsed]
    pieces, part_of = _pieces(parts, level) if len(parts) else ([], np.zeros(0, dtype=int))
    owner = feature[part_of]
    n = len(pieces)
    ends = np.array([p[0] for p in pieces] + [p[-1] for p in pieces]).reshape(-1, 2)
    rep = _clusters(shapely.points(ends), MERGE_M) if n else np.zeros(0, dtype=int)
    for k, piece in enumerate(pieces):
        piece[0], piece[-1] = ends[rep[k]], ends[rep[n + k]]
    lines_m = (shapely.linestrings(np.concatenate(pieces), indices=np.repeat(np.arange(n), [len(p) for p in pieces]))
               if n else np.zeros(0, dtype=object))
    keep = (shapely.length(lines_m) > MERGE_M) if n else np.zeros(0, dtype=bool)
    if n and (~keep).any():
        report.notes.append(f"{int((~keep).sum())} pieces shorter than 1 cm left out")
    lines_m, owner, start, end = lines_m[keep], owner[keep], rep[:n][keep], rep[n:][keep]
    used = np.unique(np.r_[start, end])
    lonlat = np.column_stack(to_lonlat.transform(ends[used, 0], ends[used, 1]))
    ref_of = dict(zip(used.tolist(), [f"xy/{x:.8f},{y:.8f}" for x, y in lonlat]))
    u = np.array([ref_of[i] for i in start], dtype=object)
    v = np.array([ref_of[i] for i in end], dtype=object)
    geoms = _apply(to_lonlat, lines_m)
    flip = lines.flip[owner]
    geoms[flip] = shapely.reverse(geoms[flip])
    u[flip], v[flip] = v[flip], u[flip].copy()
    nodes = NodeColumns(np.array([ref_of[i] for i in used], dtype=object), shapely.points(lonlat))
    edges = EdgeColumns(
        u=u, v=v, geoms=geoms, way_ids=lines.way_ids[owner], highways=lines.highways[owner],
        names=lines.names[owner], oneway=[bool(x) for x in lines.oneway[owner]],
        foot_tags=lines.foot_tags[owner] if lines.foot_tags is not None else None)
    return nodes, edges, owner
