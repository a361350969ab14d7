"""Benchmark: a federation of two cities (spatial/store/federation.py, docs/decisions/0026-federation.md).

    python -m benchmarks.federation [--households 100000] [--cases 20000] [--repeat 5]

1. One embedded cluster, two city databases migrated to revision 0027 (before the city code), each loaded with the
   synthetic city (fixtures/synthetic_city.py, ``--households`` each) and ``--cases`` cases
   (:func:`benchmarks.screen.write_cases`). Both hold the same synthetic district: the benchmark measures costs.
2. Migration 0029 on each loaded city, timed, with the size of ``households`` before and after (the same size:
   the column with a constant default is added without a rewrite; the time is the unique keys' index builds).
3. Stating the city after loading (``set_city_code``: every hot row relabelled), timed: the cost a deployment
   pays when it states its city late.
4. A province attaching both; the provincial roll-up per city and per community, ``--repeat`` times after a
   warm-up, side by side with the peer: each city's own command-centre figures of the same district
   (:func:`spatial.store.screen.screen_figures`, what a city's screen polls).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from benchmarks.common import percentiles
from benchmarks.screen import ADMIN, write_cases
from fixtures.synthetic_city import DISTRICT, load_city
from spatial.store import federation as fed
from spatial.store import migrate
from spatial.store.cluster import LocalCluster
from spatial.store.engine import make_engine
from spatial.store.screen import screen_figures
from spatial.worktime import LOCAL

CITIES = ("4403", "4401")


def timed(fn, repeat: int) -> tuple[list[float], object]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gridgov-bench-fed-"))
    cluster = LocalCluster(folder)
    engines = {}
    try:
        cluster.start()
        for code in CITIES:
            name = f"gridgov_city_{code}"
            cluster.ensure_database(name)
            engine = engines[code] = make_engine(cluster.owner_url(name), pool_size=2)
            with cluster.migration_window(name):
                migrate.upgrade(engine, "0027")
            started = time.perf_counter()
            with Session(engine) as session, session.begin():
                load_city(session, args.households)
                write_cases(session, args.cases)
            print(f"city {code}: {args.households:,} households and {args.cases:,} cases loaded in "
                  f"{time.perf_counter() - started:.1f} s")
            size = "SELECT pg_relation_size('households'), pg_relation_filenode('households')"
            with engine.connect() as conn:
                before = conn.execute(text(size)).one()
            started = time.perf_counter()
            with cluster.migration_window(name):
                migrate.upgrade(engine)
            took = time.perf_counter() - started
            with engine.connect() as conn:
                after = conn.execute(text(size)).one()
            print(f"  migration 0029: {took:.2f} s; households {before[0] / 2**20:.1f} MiB → "
                  f"{after[0] / 2**20:.1f} MiB, "
                  f"{'same file (no rewrite)' if before[1] == after[1] else 'rewritten'}")
            started = time.perf_counter()
            with engine.begin() as conn:
                changed = fed.set_city_code(conn, code)
            print(f"  stating city {code} after loading: {changed:,} rows relabelled in "
                  f"{time.perf_counter() - started:.1f} s")
            admin = make_engine(cluster.url(name), pool_size=1)
            with admin.begin() as conn:
                fed.grant_federation_role(conn)
            admin.dispose()
        cluster.ensure_database("gridgov_province")
        province = make_engine(cluster.url("gridgov_province"), pool_size=1)
        with province.begin() as conn:
            for code in CITIES:
                fed.attach_city(conn, code, f"postgresql://{fed.READER_ROLE}@/gridgov_city_{code}"
                                            f"?host={cluster.socket_dir}&port={cluster.port}")
        at = datetime.now(LOCAL)
        today = at.date()

        def rollup(by: str):
            def run():
                with province.begin() as conn:
                    return fed.rollup(conn, by=by, at=at, date_from=date(today.year, 1, 1), date_to=today)
            return run

        for by in ("city", "community"):
            times, rows = timed(rollup(by), args.repeat)
            print(f"province roll-up by {by:<9} (2 cities, {len(rows):>3} rows): {percentiles(times)}")
        params = fed._params(None, None, None, at, date(today.year, 1, 1), today)
        for name, statement in fed.rollup_statements(by="community").items():
            def provincial(statement=statement):
                with province.begin() as conn:
                    fed._pushdown(conn)
                    return conn.execute(text(statement), params).all()
            direct = statement.replace("federation.risk_zones", "federation_risk_zones").replace(
                "federation.grids", "federation_grids").replace("federation.cases", "federation_cases")

            def in_city(direct=direct, jit="on"):
                with engines[CITIES[0]].begin() as conn:
                    conn.execute(text(f"SET LOCAL jit = {jit}"))
                    return conn.execute(text(direct), params).all()
            times, _ = timed(provincial, args.repeat)
            print(f"  {name:<6} by community, province (2 cities): {percentiles(times)}")
            for jit in ("on", "off"):
                times, _ = timed(lambda jit=jit, in_city=in_city: in_city(jit=jit), args.repeat)
                print(f"  {name:<6} by community, in one city directly, jit {jit:<3}: {percentiles(times)}")
        for code in CITIES:
            def screen(code=code):
                with Session(engines[code]) as session, session.begin():
                    return screen_figures(session, ADMIN, DISTRICT[0], at=at)
            times, figures = timed(screen, args.repeat)
            print(f"peer: city {code}'s own screen figures ({len(figures.communities)} communities): "
                  f"{percentiles(times)}")
        province.dispose()
    finally:
        for engine in engines.values():
            engine.dispose()
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
