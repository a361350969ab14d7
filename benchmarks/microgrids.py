"""Benchmark: micro-grids of five buildings against HOT's splitter (PyPI ``area-splitter``, building-count split).

    python -m benchmarks.microgrids [--database-url URL] [--cell-m 250] [--limit N]

Data: the real OpenStreetMap buildings and streets of Shatou, ../shared/data/futian_shatou.gpkg (© OpenStreetMap
contributors, ODbL), measured in EPSG:4547 metres. Containers, two sets:

* ``blocks``: the ``derived_street_blocks`` holding at least one building (buildings go to the block holding most
  of their footprint);
* ``grids``: synthetic grids = unions of the blocks whose centroid falls in the same ``--cell-m`` square.

Both methods get the same containers and buildings. gridgov: :func:`spatial.analysis.microgrids.plan_micro_grids`
(pure Python; streets = the classes of ``spatial.store.microgrids.STREET_HIGHWAYS``). Peer:
``area_splitter.split_by_sql(aoi, db, num_buildings=5, osm_extract=...)`` — its SQL algorithm (k-means of
buildings per area split by major roads, Voronoi, simplify, merge small tasks) runs in PostGIS, in a scratch
database ``gridgov_splitter`` of the same server (it creates its own tables named ``buildings``, ``ways_poly``...).

Figures per method: micro-grids; share with exactly five buildings; share with 4–6 (over all micro-grids, and
over containers whose count allows 4–6 at all, i.e. n ∉ {1, 2, 3, 7}); buildings cut (footprint, inside its
container, meeting two micro-grids by more than 0.01 m² each, or lying partly in none); buildings in no
micro-grid; gap, overlap and spill (area outside the container) in m²; wall time. A building counts in the
micro-grid holding most of its footprint.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely import Geometry

from benchmarks.common import SHARED_DATA, database
from spatial.analysis.microgrids import group_sizes, plan_micro_grids
from spatial.analysis.tessellation import majority_owner
from spatial.store.microgrids import STREET_HIGHWAYS

DATA = SHARED_DATA / "futian_shatou.gpkg"
TOL_M2 = 0.01


@dataclass
class Tally:
    groups: list[int] = field(default_factory=list)          # buildings per micro-grid
    allowed: list[int] = field(default_factory=list)         # ... in containers where 4–6 is possible
    buildings: int = 0
    cut: int = 0
    unassigned: int = 0
    gap_m2: float = 0.0
    overlap_m2: float = 0.0
    spill_m2: float = 0.0
    seconds: float = 0.0
    failures: int = 0

    def line(self, name: str) -> str:
        n = max(len(self.groups), 1)
        five = sum(s == 5 for s in self.groups) / n
        valid = sum(4 <= s <= 6 for s in self.groups) / n
        allowed = sum(4 <= s <= 6 for s in self.allowed) / max(len(self.allowed), 1)
        return (f"{name:<10} {len(self.groups):>6} {five:>8.1%} {valid:>8.1%} {allowed:>10.1%} "
                f"{self.cut:>5} ({self.cut / max(self.buildings, 1):>5.1%}) {self.unassigned:>6} "
                f"{self.gap_m2:>10.2f} {self.overlap_m2:>10.2f} {self.spill_m2:>10.2f} {self.seconds:>8.2f}"
                + (f"  failed containers: {self.failures}" if self.failures else ""))


HEADER = (f"{'method':<10} {'groups':>6} {'exact 5':>8} {'4–6':>8} {'4–6 (ok n)':>10} {'cut':>13} "
          f"{'no grp':>6} {'gap m²':>10} {'overlap m²':>10} {'spill m²':>10} {'time s':>8}")


def load(cell_m: float):
    """(buildings, streets, {set name: containers}) in EPSG:4547 metres."""
    import geopandas as gpd

    buildings = gpd.read_file(DATA, layer="buildings").to_crs(4547).geometry.values
    streets = gpd.read_file(DATA, layer="streets").to_crs(4547)
    major = streets[streets.highway.isin(STREET_HIGHWAYS)]
    blocks = gpd.read_file(DATA, layer="derived_street_blocks").to_crs(4547).geometry.values
    owner = majority_owner(buildings, blocks)
    with_buildings = np.unique(owner[owner >= 0])
    centroids = shapely.get_coordinates(shapely.centroid(blocks))
    lattice: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(centroids):
        lattice.setdefault((int(x // cell_m), int(y // cell_m)), []).append(i)
    grids = [shapely.union_all(blocks[idx]) for idx in lattice.values()]
    grid_owner = majority_owner(buildings, grids)
    grids = [grids[i] for i in np.unique(grid_owner[grid_owner >= 0])]
    return np.asarray(buildings), list(major.geometry.values), {"blocks": list(blocks[with_buildings]),
                                                                   "grids": grids}


def members(buildings, containers) -> list[np.ndarray]:
    owner = majority_owner(buildings, containers)
    return [np.flatnonzero(owner == i) for i in range(len(containers))]


def measure(tally: Tally, container: Geometry, feet: np.ndarray, polygons: list[Geometry]) -> None:
    """Add one container's result to ``tally``."""
    n = len(feet)
    tally.buildings += n
    polygons = [p for p in polygons if p is not None and not p.is_empty]
    if not polygons:
        tally.unassigned += n
        tally.gap_m2 += container.area
        return
    polys = np.array(polygons, dtype=object)
    union = shapely.union_all(polys)
    tally.gap_m2 += shapely.difference(container, union).area
    tally.spill_m2 += shapely.difference(union, container).area
    a, b = shapely.STRtree(polys).query(polys, predicate="intersects")
    k = a < b
    tally.overlap_m2 += float(shapely.area(shapely.intersection(polys[a[k]], polys[b[k]])).sum())
    inside = shapely.intersection(feet, container)
    counts = Counter()
    owner = majority_owner(inside, polys)
    for i, footprint in enumerate(inside):
        if owner[i] < 0:
            tally.unassigned += 1
            continue
        counts[owner[i]] += 1
        hit = shapely.area(shapely.intersection(footprint, polys)) > TOL_M2
        if hit.sum() > 1 or footprint.area - shapely.intersection(footprint, union).area > TOL_M2:
            tally.cut += 1
    sizes = [counts.get(i, 0) for i in range(len(polys))]
    tally.groups += sizes
    if n not in (1, 2, 3, 7):
        tally.allowed += sizes


def run_gridgov(containers, buildings, streets, groups) -> Tally:
    tally = Tally()
    tree = shapely.STRtree(np.array(streets, dtype=object))
    for container, idx in zip(containers, groups):
        if not len(idx):
            continue
        near = [streets[j] for j in tree.query(container, predicate="intersects")]
        started = time.perf_counter()
        plan = plan_micro_grids(container, {int(i): buildings[i] for i in idx}, near)
        tally.seconds += time.perf_counter() - started
        measure(tally, container, buildings[idx], [g.polygon for g in plan.groups])
    return tally


def run_splitter(containers, buildings, streets_lonlat, groups, url: str) -> Tally:
    """HOT's splitter on each container (inputs in EPSG:4326, as it expects)."""
    import psycopg
    from area_splitter.splitter import split_by_sql

    from spatial.geometry.crs import transform_geom

    tally = Tally()
    tree = shapely.STRtree(np.array([s for s, _ in streets_lonlat], dtype=object))
    for container, idx in zip(containers, groups):
        if not len(idx):
            continue
        aoi = transform_geom(container, "EPSG:4547", "EPSG:4326")
        features = [{"type": "Feature", "geometry": shapely.geometry.mapping(transform_geom(buildings[i], "EPSG:4547",
                                                                                             "EPSG:4326")),
                     "properties": {"osm_id": int(i), "tags": {"building": "yes"}}} for i in idx]
        for j in tree.query(aoi, predicate="intersects"):
            line, highway = streets_lonlat[j]
            features.append({"type": "Feature", "geometry": shapely.geometry.mapping(line),
                             "properties": {"osm_id": 10_000_000 + int(j), "tags": {"highway": highway}}})
        aoi_fc = {"type": "FeatureCollection",
                  "features": [{"type": "Feature", "geometry": shapely.geometry.mapping(aoi), "properties": {}}]}
        started = time.perf_counter()
        try:
            with psycopg.connect(url) as conn:
                result = split_by_sql(aoi_fc, conn, num_buildings=5,
                                      osm_extract={"type": "FeatureCollection", "features": features})
            polygons = [transform_geom(shapely.geometry.shape(f["geometry"]), "EPSG:4326", "EPSG:4547")
                        for f in result.get("features", [])]
        except Exception as exc:  # noqa: BLE001 — a failing container is counted, not fatal
            tally.failures += 1
            print(f"  splitter failed on a container of {len(idx)} buildings: {type(exc).__name__}: "
                  f"{str(exc).splitlines()[0][:120]}", file=sys.stderr)
            polygons = []
        tally.seconds += time.perf_counter() - started
        measure(tally, container, buildings[idx], polygons)
    return tally


def splitter_database(url: str) -> str:
    """A scratch PostGIS database beside ``url`` for the splitter's own tables."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from spatial.store.engine import make_engine

    admin = make_engine(make_url(url).set(database="postgres").render_as_string(hide_password=False), pool_size=1)
    with admin.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS gridgov_splitter WITH (FORCE)'))
        conn.execute(text('CREATE DATABASE gridgov_splitter'))
    admin.dispose()
    scratch = make_url(url).set(database="gridgov_splitter")
    engine = make_engine(scratch.render_as_string(hide_password=False), pool_size=1)
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    engine.dispose()
    return scratch.set(drivername="postgresql").render_as_string(hide_password=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostGIS server for the splitter (a scratch database is made)")
    parser.add_argument("--cell-m", type=float, default=250.0, help="side of the squares grouping blocks into grids")
    parser.add_argument("--limit", type=int, default=0, help="only the first N containers of each set")
    parser.add_argument("--skip-peer", action="store_true", help="run gridgov only")
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"{DATA} is absent", file=sys.stderr)
        return 2
    import geopandas as gpd

    buildings, streets, sets = load(args.cell_m)
    lonlat = gpd.read_file(DATA, layer="streets")
    streets_lonlat = list(zip(lonlat.geometry.values, lonlat.highway.astype(str).values))
    print(f"Shatou: {len(buildings)} buildings, {len(streets)} street edges of the separating classes "
          f"(© OpenStreetMap contributors, ODbL)")
    peer_url = None
    with database(args.database_url) as (url, _):
        if not args.skip_peer:
            try:
                import area_splitter  # noqa: F401
                peer_url = splitter_database(url)
            except ImportError:
                print("area-splitter is not installed (pip install -e '.[bench]'); peer skipped")
        for name, containers in sets.items():
            if args.limit:
                containers = containers[:args.limit]
            groups = members(buildings, containers)
            n = sum(len(g) for g in groups)
            print(f"\n{name}: {len(containers)} containers, {n} buildings "
                  f"(median {int(np.median([len(g) for g in groups]))} per container)")
            best = [s for g in groups if len(g) for s in group_sizes(len(g))]
            print(f"(the size arithmetic allows at most {sum(s == 5 for s in best) / len(best):.1%} exact fives "
                  f"and {sum(4 <= s <= 6 for s in best) / len(best):.1%} of 4–6 over {len(best)} micro-grids)")
            print(HEADER)
            ours = run_gridgov(containers, buildings, streets, groups)
            print(ours.line("gridgov"))
            if peer_url:
                peer = run_splitter(containers, buildings, streets_lonlat, groups, peer_url)
                print(peer.line("splitter"))
                if ours.seconds:
                    print(f"{'':<10} gridgov is {peer.seconds / ours.seconds:.1f}× faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
