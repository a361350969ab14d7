"""Risk zones on the synthetic city: the level of a building at time t, and households per level per grid of a
subdistrict, against GeoPandas doing the same in memory.

The synthetic city (``fixtures.synthetic_city``; default 100,000 households, ``--full``: the issue's 1,000,000) is
loaded into a throw-away database, then 28 days of designations are written through :mod:`spatial.store.risk_zones`
in every subdistrict: one subdistrict-wide blue zone, community and grid zones (yellow/orange), building zones
(red), unit zones (red) and drawn polygons, each changed once or twice (a raise, a lowering) and a fifth lifted, so
the history has several periods per zone. Then:

* **level of a building at t** (aim: under 5 ms in the database): :data:`spatial.store.risk_zones.BUILDING_LEVEL_SQL`
  for random buildings and random instants of the last 28 days; the server's own execution time (``EXPLAIN
  (ANALYZE)``) and the round trip from Python;
* **households per level per grid of a subdistrict** (aim: under 1 s): :func:`spatial.store.risk_zones.per_level`,
  now and 14 days ago;
* **peer**: GeoPandas 1.x — read the subdistrict's building points, households and the periods in force at t, then
  ``sjoin`` (STRtree) and ``groupby`` — the analyst's way; timed with and without the reads.

    python -m benchmarks.risk_zones [--households 100000 | --full] [--samples 500] [--database-url URL]

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import datetime, timedelta

import geopandas as gpd
import pandas as pd
import shapely
import shapely.geometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from benchmarks.common import database
from fixtures.synthetic_city import load_city
from spatial.access import Principal
from spatial.store import risk_zones as rz
from spatial.store.engine import make_engine

ADMIN = Principal(0, "benchmark", "admin")


def designate_history(session: Session, seed: int = 7) -> dict[str, int]:
    """28 days of zones in every subdistrict (module docstring); returns counts."""
    rng = random.Random(seed)
    now = session.execute(text("SELECT now()")).scalar_one()
    start = now - timedelta(days=28)
    subdistricts = session.execute(text("SELECT code FROM divisions WHERE level = 'subdistrict' ORDER BY code")
                                   ).scalars().all()
    made = 0
    for sub in subdistricts:
        prefix = sub[:9]
        communities = session.execute(text("SELECT code FROM divisions WHERE level = 'community' AND code LIKE :p "
                                           "ORDER BY code"), {"p": prefix + "%"}).scalars().all()
        grids = session.execute(text("SELECT code FROM grids WHERE community_code LIKE :p ORDER BY code"),
                                {"p": prefix + "%"}).scalars().all()
        buildings = session.execute(text("""
            SELECT b.id, (SELECT min(unit) FROM households h WHERE h.building_id = b.id) AS unit
            FROM buildings b WHERE b.community_code LIKE :p AND b.households > 0 ORDER BY b.id"""),
            {"p": prefix + "%"}).all()
        zones = [dict(target_kind="division", target_ref=sub, level="blue")]
        zones += [dict(target_kind="division", target_ref=c, level="yellow") for c in rng.sample(communities, 2)]
        zones += [dict(target_kind="grid", target_ref=g, level="orange") for g in rng.sample(grids, min(10, len(grids)))]
        for b in rng.sample(buildings, min(60, len(buildings))):
            zones.append(dict(target_kind="building", target_ref=str(b.id), level="red"))
        for b in rng.sample(buildings, min(30, len(buildings))):
            zones.append(dict(target_kind="unit", target_ref=str(b.id), unit=b.unit, level="red"))
        for g in rng.sample(grids, min(5, len(grids))):
            grid = session.execute(text("SELECT ST_AsBinary(ST_PointOnSurface(boundary)) FROM grids WHERE code = :c"),
                                   {"c": g}).scalar_one()
            p = shapely.from_wkb(bytes(grid))
            zones.append(dict(target_kind="polygon", polygon=shapely.geometry.box(p.x - 0.002, p.y - 0.002,
                                                                                  p.x + 0.002, p.y + 0.002),
                              level="orange"))
        for spec in zones:
            begin = start + timedelta(hours=rng.randrange(0, 24 * 14))
            zone = rz.designate(session, ADMIN, reason="benchmark", valid_from=begin, **spec)
            version = 1
            for _ in range(rng.randrange(1, 3)):
                begin += timedelta(hours=rng.randrange(24, 24 * 5))
                if begin >= now:
                    break
                level = rng.choice(["red", "orange", "yellow", "blue"])
                if level == zone.level:
                    continue
                zone = rz.change(session, ADMIN, zone.id, version, level=level, reason="benchmark", at=begin)
                version += 1
            if rng.random() < 0.2:
                rz.lift(session, ADMIN, zone.id, version, reason="benchmark",
                        at=min(now, begin + timedelta(days=rng.randrange(1, 7))))
            made += 1
    session.execute(text("ANALYZE risk_zones, risk_zone_versions"))
    return {"zones": made, "versions": session.scalar(text("SELECT count(*) FROM risk_zone_versions")),
            "subdistricts": len(subdistricts)}


def building_levels(session: Session, samples: int, seed: int = 11) -> tuple[list[float], list[float]]:
    """(server execution ms, round-trip ms) of :data:`BUILDING_LEVEL_SQL` for ``samples`` random buildings and
    instants."""
    rng = random.Random(seed)
    now = session.execute(text("SELECT now()")).scalar_one()
    ids = session.execute(text("SELECT id FROM buildings ORDER BY random() LIMIT :n"), {"n": samples}).scalars().all()
    server, trip = [], []
    for b in ids:
        at = now - timedelta(minutes=rng.randrange(0, 28 * 24 * 60))
        plan = session.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + rz.BUILDING_LEVEL_SQL),
                               {"b": b, "at": at}).scalar_one()
        server.append(plan[0]["Execution Time"])
        started = time.perf_counter()
        session.execute(text(rz.BUILDING_LEVEL_SQL), {"b": b, "at": at}).scalar()
        trip.append((time.perf_counter() - started) * 1000)
    return server, trip


def per_grid_gridgov(session: Session, subdistrict: str, at: datetime, runs: int = 5) -> tuple[float, int]:
    times, rows = [], []
    for _ in range(runs):
        started = time.perf_counter()
        _, rows = rz.per_level(session, ADMIN, subdistrict, at=at, by="grid")
        times.append(time.perf_counter() - started)
    return statistics.median(times), sum(r.households for r in rows)


def per_grid_geopandas(session: Session, subdistrict: str, at: datetime) -> tuple[float, float, int]:
    """(total s, compute-only s, households) of the same figures in GeoPandas (area and building zones; unit zones
    joined on building and unit)."""
    started = time.perf_counter()
    prefix = subdistrict[:9] + "%"
    buildings = gpd.GeoDataFrame.from_postgis(text("""
        SELECT b.id, g.code AS grid, ST_PointOnSurface(b.footprint) AS geom FROM buildings b
        JOIN grids g ON g.id = b.grid_id WHERE b.community_code LIKE :p"""), session.connection(), geom_col="geom",
        params={"p": prefix})
    households = pd.read_sql(text("""
        SELECT h.building_id, h.unit, h.residents FROM households h JOIN buildings b ON b.id = h.building_id
        WHERE b.community_code LIKE :p"""), session.connection(), params={"p": prefix})
    periods = gpd.GeoDataFrame.from_postgis(text(f"""
        SELECT v.severity, v.building_id, v.unit, v.boundary AS geom FROM risk_zone_versions v
        WHERE {rz.IN_FORCE}"""), session.connection(), geom_col="geom", params={"at": at})
    read = time.perf_counter()
    areas = periods[periods.building_id.isna()]
    hits = gpd.sjoin(buildings, areas[["severity", "geom"]], predicate="within")
    area_sev = hits.groupby("id").severity.max()
    own = periods[periods.building_id.notna()]
    whole = own[own.unit.isna()].groupby("building_id").severity.max()
    units = own[own.unit.notna()].groupby(["building_id", "unit"]).severity.max()
    hh = households.merge(buildings[["id", "grid"]], left_on="building_id", right_on="id")
    sev = pd.concat([hh.building_id.map(area_sev), hh.building_id.map(whole),
                     pd.Series(pd.MultiIndex.from_frame(hh[["building_id", "unit"]]).map(units.to_dict().get),
                               index=hh.index, dtype="float")], axis=1).max(axis=1)
    hh["severity"] = sev
    table = hh.groupby(["grid", "severity"], dropna=False).agg(households=("id", "size"),
                                                              persons=("residents", "sum"))
    done = time.perf_counter()
    return done - started, done - read, int(table.households.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--full", action="store_true", help="the issue's 1,000,000 households")
    parser.add_argument("--samples", type=int, default=500, help="buildings timed for the level at t")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    households = 1_000_000 if args.full else args.households
    with database(args.database_url, "gridgov_bench_risk") as (url, _):
        engine = make_engine(url, pool_size=1)
        with Session(engine) as session:
            started = time.perf_counter()
            counts = load_city(session, households=households)
            session.commit()
            print(f"city: {households:,} households, {counts.get('buildings', 0):,} buildings, "
                  f"{counts.get('grids', 0):,} grids (load {time.perf_counter() - started:.0f} s)")
            started = time.perf_counter()
            made = designate_history(session)
            session.commit()
            print(f"zones: {made['zones']} zones with {made['versions']} periods over 28 days in "
                  f"{made['subdistricts']} subdistricts (written in {time.perf_counter() - started:.1f} s)")
            server, trip = building_levels(session, args.samples)
            q = statistics.quantiles(server, n=100)
            print(f"level of a building at t ({len(server)} buildings × random t): in the database median "
                  f"{statistics.median(server):.2f} ms, p95 {q[94]:.2f} ms, max {max(server):.2f} ms "
                  f"(aim < 5 ms); round trip from Python median {statistics.median(trip):.2f} ms")
            subdistrict = session.scalar(text("SELECT min(code) FROM divisions WHERE level = 'subdistrict'"))
            now = session.execute(text("SELECT now()")).scalar_one()
            for label, at in (("now", now), ("14 days ago", now - timedelta(days=14))):
                ours, total = per_grid_gridgov(session, subdistrict, at)
                peer, compute, peer_total = per_grid_geopandas(session, subdistrict, at)
                print(f"households per level per grid of {subdistrict} at {label} ({total:,} households): "
                      f"gridgov (one SQL statement) {ours * 1000:.0f} ms (aim < 1 s) | GeoPandas {gpd.__version__} "
                      f"sjoin+groupby {peer * 1000:.0f} ms with reads, {compute * 1000:.0f} ms compute only "
                      f"({peer_total:,} households)")
        engine.dispose()


if __name__ == "__main__":
    main()
