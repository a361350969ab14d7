"""Benchmark: balanced grid plans against PySAL spopt's max-p regionalisation, on the real Shatou buildings.

    python -m benchmarks.balance [--database-url URL] [--square-m 1000] [--limit 3] [--low 300 --high 500]

Data: ../shared/data/futian_shatou.gpkg (© OpenStreetMap contributors, ODbL): buildings and streets are imported
into a throw-away gridgov database (or the one given, rolled back) and households are estimated with
``spatial.store.occupancy`` (no household counts are open data). No community boundary is published, so synthetic
communities are built: the ``derived_street_blocks`` whose centroids share a ``--square-m`` square are unioned
(labelled synthetic); the ``--limit`` communities with the most households are planned (max-p is slow).

Both methods get the same units of each community (building cells grouped by street block,
:func:`spatial.analysis.balance.plan_units`; blocks heavier than half the range's width split into cells) and the
same households:

* gridgov: :func:`spatial.analysis.balance.balance_units` (recursive spanning-tree bisection + local moves);
* peer: ``spopt.region.MaxPHeuristic`` with the threshold = the range's low end, rook contiguity, unit
  centroids as attributes (so regions are compact), ``top_n=2``, its default iterations, numpy seed 0.

Figures, over all grids of the planned communities: grids, mean absolute deviation of households per grid from
the mean (households and share of the mean), max deviation, share of grids inside the range, Polsby-Popper
compactness (mean, min), wall time of the partition (units are built once, outside the timing).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from benchmarks.common import SHARED_DATA, database
from spatial.analysis.balance import (
    balance_units,
    plan_stats,
    plan_units,
    units_grid_count,
)
from spatial.analysis.tessellation import majority_owner
from spatial.store.engine import make_engine

DATA = SHARED_DATA / "futian_shatou.gpkg"


def communities(square_m: float) -> list[shapely.Geometry]:
    """Synthetic communities: unions of the street blocks whose centroid falls in the same square (EPSG:4547)."""
    import geopandas as gpd

    blocks = gpd.read_file(DATA, layer="derived_street_blocks").to_crs(4547).geometry.values
    squares: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(shapely.get_coordinates(shapely.centroid(blocks))):
        squares.setdefault((int(x // square_m), int(y // square_m)), []).append(i)
    return [shapely.union_all(blocks[idx]) for idx in squares.values()]


def load_buildings(session: Session) -> tuple[np.ndarray, np.ndarray, list[shapely.Geometry]]:
    """Import Shatou, estimate households; (footprints in EPSG:4547, households, street lines in EPSG:4547)."""
    from spatial.store.occupancy import estimate_occupancy
    from spatial.io import import_buildings, import_streets

    import_buildings(session, DATA, layer="buildings", origin="bench:shatou")
    import_streets(session, DATA, origin="bench:shatou")
    estimate_occupancy(session)
    rows = session.execute(text("""
        SELECT ST_AsBinary(ST_Transform(footprint, 4547)) AS wkb, coalesce(households, 0) AS households
        FROM buildings WHERE origin = 'bench:shatou' ORDER BY id""")).all()
    streets = session.execute(text("SELECT ST_AsBinary(ST_Transform(geom, 4547)) FROM street_edges")).scalars().all()
    return (shapely.from_wkb([bytes(r.wkb) for r in rows]), np.array([r.households for r in rows]),
            list(shapely.from_wkb([bytes(s) for s in streets])))


def max_p(units, low: int) -> np.ndarray:
    import geopandas as gpd
    from libpysal.weights import Rook
    from spopt.region import MaxPHeuristic

    gdf = gpd.GeoDataFrame({"households": [u.households for u in units]}, geometry=[u.polygon for u in units],
                           crs=4547)
    centroids = gdf.geometry.centroid
    gdf["x"], gdf["y"] = centroids.x, centroids.y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = Rook.from_dataframe(gdf, use_index=False, silence_warnings=True)
        np.random.seed(0)
        model = MaxPHeuristic(gdf, w, ["x", "y"], "households", low, 2)
        model.solve()
    return np.asarray(model.labels_)


def regions(units, labels) -> tuple[list, list]:
    polygons, households = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        polygons.append(shapely.union_all([units[i].polygon for i in members]))
        households.append(sum(units[i].households for i in members))
    return polygons, households


def line(name: str, polygons, households, seconds: float, low: int, high: int) -> str:
    s = plan_stats(polygons, households, low, high)
    return (f"{name:<9} {s['grids']:>5} {s['mean_households']:>7.0f} {s['mean_abs_deviation']:>7.1f} "
            f"{s['mean_abs_deviation_share']:>7.1%} {s['max_abs_deviation']:>7.0f} {s['share_in_range']:>8.1%} "
            f"{s['polsby_popper_mean']:>7.3f} {s['polsby_popper_min']:>7.3f} {seconds:>8.2f}")


HEADER = (f"{'method':<9} {'grids':>5} {'mean hh':>7} {'MAD':>7} {'MAD %':>7} {'max dev':>7} {'in range':>8} "
          f"{'PP mean':>7} {'PP min':>7} {'time s':>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="an existing migrated PostGIS database (work is rolled back)")
    parser.add_argument("--square-m", type=float, default=1000.0, help="side of the squares making communities")
    parser.add_argument("--limit", type=int, default=3, help="plan the N communities with the most households")
    parser.add_argument("--low", type=int, default=300)
    parser.add_argument("--high", type=int, default=500)
    parser.add_argument("--skip-peer", action="store_true", help="run gridgov only")
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"{DATA} is absent", file=sys.stderr)
        return 2
    with database(args.database_url) as (url, _):
        engine = make_engine(url, pool_size=1)
        with Session(engine) as session:
            started = time.perf_counter()
            footprints, households, streets = load_buildings(session)
            print(f"Shatou: {len(footprints)} buildings, {int(households.sum()):,} estimated households, "
                  f"{len(streets)} street edges (import + estimate {time.perf_counter() - started:.1f} s; "
                  f"© OpenStreetMap contributors, ODbL)")
            session.rollback()
        engine.dispose()
    areas = communities(args.square_m)
    owner = majority_owner(footprints, areas)
    totals = [int(households[owner == i].sum()) for i in range(len(areas))]
    chosen = sorted(range(len(areas)), key=lambda i: -totals[i])[:args.limit]
    ours_all: tuple[list, list] = ([], [])
    peer_all: tuple[list, list] = ([], [])
    ours_s = peer_s = 0.0
    try:
        import spopt  # noqa: F401
        peer = not args.skip_peer
    except ImportError:
        print("spopt is not installed (pip install -e '.[bench]'); peer skipped")
        peer = False
    for i in chosen:
        idx = np.flatnonzero(owner == i)
        units, _ = plan_units(areas[i], {int(j): footprints[j] for j in idx},
                              {int(j): int(households[j]) for j in idx}, streets,
                              split_above=(args.high - args.low) // 2)
        total = sum(u.households for u in units)
        k = units_grid_count([u.households for u in units], args.low, args.high)
        print(f"\nsynthetic community {i}: {areas[i].area / 1e6:.2f} km², {len(idx)} buildings, {total:,} households, "
              f"{len(units)} units, {k} grids planned by gridgov")
        print(HEADER)
        started = time.perf_counter()
        labels = balance_units(units, k, args.low, args.high)
        seconds = time.perf_counter() - started
        polygons, hh = regions(units, labels)
        print(line("gridgov", polygons, hh, seconds, args.low, args.high))
        ours_all[0].extend(polygons)
        ours_all[1].extend(hh)
        ours_s += seconds
        if peer:
            started = time.perf_counter()
            labels = max_p(units, args.low)
            seconds = time.perf_counter() - started
            polygons, hh = regions(units, labels)
            print(line("max-p", polygons, hh, seconds, args.low, args.high))
            peer_all[0].extend(polygons)
            peer_all[1].extend(hh)
            peer_s += seconds
    print(f"\nall {len(chosen)} communities")
    print(HEADER)
    print(line("gridgov", *ours_all, ours_s, args.low, args.high))
    if peer:
        print(line("max-p", *peer_all, peer_s, args.low, args.high))
        print(f"{'':<9} gridgov is {peer_s / max(ours_s, 1e-9):.0f}× faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
