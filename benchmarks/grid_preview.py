"""Benchmark: the planner's live preview of a redraw, through HTTP, on a community of 50 grids and
3,000 buildings (target: p95 under 150 ms).

    python -m benchmarks.grid_preview [--database-url URL] [--requests 200]

The community is synthetic: 1,000 m × 600 m in Futian (EPSG:4547 around lon 114.07, lat 22.56), 10 × 5 grids
of 100 m × 120 m, each holding 60 buildings of 8 m × 8 m with 7 households. Every request moves the east
edge of a random grid by 5–30 m either way with ``move_shared_boundary`` (the heaviest preview: the
neighbour is recomputed too). Requests are sequential, as one planner dragging a vertex sends them.
"""

from __future__ import annotations

import argparse
import random
import time

import httpx
from shapely.geometry import box, mapping
from sqlalchemy import text

from api.app import create_app
from benchmarks.common import database, percentiles, served
from spatial.geometry.crs import transform_geom
from spatial.settings import Settings
from spatial.store import bulk, users
from spatial.store.engine import acting_as, make_engine, make_sessionmaker

X0, Y0 = 507_000.0, 2_495_000.0  # EPSG:4547 metres
COMMUNITY, PASSWORD = "440304097001", "benchmark password"
COLUMNS, ROWS, GRID_W, GRID_H = 10, 5, 100.0, 120.0


def lonlat(x0: float, y0: float, x1: float, y1: float):
    return transform_geom(box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1), 4547, 4326)


def seed(sessions) -> None:
    with sessions.begin() as s, acting_as(s, "benchmark", "seed"):
        s.execute(text("INSERT INTO divisions (code, level, name) VALUES ('440304000000', 'district', '福田区') "
                       "ON CONFLICT DO NOTHING"))
        s.execute(text("INSERT INTO divisions (code, level, name, parent_code) VALUES "
                       "('440304097000', 'subdistrict', '基准街道', '440304000000'), "
                       "(:c, 'community', '基准社区', '440304097000')"), {"c": COMMUNITY})
        s.execute(text("UPDATE divisions SET boundary = ST_Multi(ST_GeomFromText(:wkt, 4326)) WHERE code = :c"),
                  {"c": COMMUNITY, "wkt": lonlat(0, 0, COLUMNS * GRID_W, ROWS * GRID_H).wkt})
        for n, (col, row) in enumerate(((c, r) for r in range(ROWS) for c in range(COLUMNS)), 1):
            s.execute(text("INSERT INTO grids (code, community_code, name, boundary) VALUES "
                           "(:code, :c, :name, ST_Multi(ST_GeomFromText(:wkt, 4326)))"),
                      {"code": f"{COMMUNITY}{n:02d}", "c": COMMUNITY, "name": f"基准第{n}网格",
                       "wkt": lonlat(col * GRID_W, row * GRID_H, (col + 1) * GRID_W, (row + 1) * GRID_H).wkt})
        records = [{"origin_ref": f"b{col}-{row}-{i}-{j}", "footprint": lonlat(
                        col * GRID_W + 4 + 16 * i, row * GRID_H + 2 + 12 * j,
                        col * GRID_W + 12 + 16 * i, row * GRID_H + 10 + 12 * j),
                    "households": 7, "residents": 18, "community_code": COMMUNITY}
                   for col in range(COLUMNS) for row in range(ROWS) for i in range(6) for j in range(10)]
        bulk.load_buildings(s, "benchmark", records)
        s.execute(text("UPDATE buildings b SET grid_id = g.id FROM grids g "
                       "WHERE ST_Within(ST_Centroid(b.footprint), g.boundary)"))
        users.create_user(s, "bench.planner", PASSWORD, "planner", scope_code="440304097000")


def run(url: str, requests: int) -> None:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    seed(sessions)
    with sessions() as s:
        grids, buildings = s.execute(text("SELECT (SELECT count(*) FROM grids), (SELECT count(*) FROM buildings)")).one()
    print(f"community: {grids} grids, {buildings} buildings")
    rng = random.Random(2020)
    with served(create_app(Settings(database_url=url), engine=engine)) as base, httpx.Client(base_url=base) as http:
        token = http.post("/api/auth/token", data={"username": "bench.planner", "password": PASSWORD}).json()
        headers = {"Authorization": "Bearer " + token["access_token"]}
        samples, statuses = [], set()
        for _ in range(requests):
            col, row = rng.randrange(COLUMNS - 1), rng.randrange(ROWS)
            east = (col + 1) * GRID_W + rng.choice((-1, 1)) * rng.uniform(5, 30)
            body = {"geometry": mapping(lonlat(col * GRID_W, row * GRID_H, east, (row + 1) * GRID_H)),
                    "preview": True, "move_shared_boundary": True}
            started = time.perf_counter()
            response = http.put(f"/api/grids/{COMMUNITY}{row * COLUMNS + col + 1:02d}/boundary", json=body,
                                headers=headers)
            samples.append(time.perf_counter() - started)
            statuses.add(response.status_code)
    print(f"preview through HTTP: {percentiles(samples)}; statuses {sorted(statuses)}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with database(args.database_url, "gridgov_bench_preview") as (url, _):
        run(url, args.requests)


if __name__ == "__main__":
    main()
