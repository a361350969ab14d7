"""Benchmark: the command centre's figures (大屏, ``spatial.store.screen.screen_figures``) for a district.

    python -m benchmarks.screen [--households 1000000] [--cases 200000] [--repeat 10] [--database-url URL]

1. Loads the synthetic city (fixtures/synthetic_city.py: households, persons, grids, communities) into a throw-away
   embedded cluster, opens a screening campaign over subdistrict 1 with 99.5% of its households visited (as
   ``benchmarks.nearby`` does) and writes ``--cases`` cases spread over the city's buildings (a fifth open, half of
   those past their deadline) in one SQL statement.
2. Times the figures of the whole district (every community) and of subdistrict 1 as an admin, ``--repeat`` times
   each after one warm-up: the screen polls them every 20 s. Aim (issue 16): a district in under 1 s.

There is no peer to run beside it: the figures are gridgov's own (the screen itself is MapLibre on gridgov's
tiles, tested in tests/test_screen.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from benchmarks.common import database, percentiles
from benchmarks.nearby import SUBDISTRICT, setup, timed
from fixtures.synthetic_city import DISTRICT, load_city
from spatial.access import Principal
from spatial.store.engine import make_engine
from spatial.store.screen import screen_figures

ADMIN = Principal(0, "bench_admin", "admin")


def write_cases(session: Session, n: int) -> None:
    """``n`` cases on random buildings of the city: 80% closed, 20% open of which half are overdue."""
    session.execute(text("""
        INSERT INTO cases (tracking_code, category_code, location, building_id, grid_id, community_code, description,
                           reporter_kind, state, deadline, reported_at, closed_at)
        SELECT 'B' || lpad(i::text, 9, '0'), (SELECT min(code) FROM case_categories WHERE parent_code IS NOT NULL),
               ST_PointOnSurface(b.footprint), b.id, b.grid_id, b.community_code, 'benchmark case', 'grid_worker',
               CASE WHEN i % 5 = 0 THEN 'dispatched' ELSE 'closed' END,
               now() + CASE WHEN i % 10 = 0 THEN interval '-1 day' ELSE interval '1 day' END,
               now() - interval '2 days', CASE WHEN i % 5 = 0 THEN NULL ELSE now() END
        FROM generate_series(1, :n) i
        JOIN LATERAL (SELECT id, footprint, grid_id, community_code FROM buildings
                      WHERE id = 1 + (hashtext(i::text) & 2147483647) % (SELECT max(id) FROM buildings)) b ON true"""),
        {"n": n})
    session.execute(text("ANALYZE cases"))


def bench(session: Session, division: str, label: str, repeat: int) -> None:
    screen_figures(session, ADMIN, division, at=datetime.now(UTC))  # warm-up (openings scanned once)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        figures = screen_figures(session, ADMIN, division, at=datetime.now(UTC))
        times.append(time.perf_counter() - started)
    t = figures.total
    print(f"{label}: {len(figures.communities)} communities, {t.households:,} households, {t.persons:,} persons, "
          f"{t.screened:,}/{t.targeted:,} screened, {t.open_cases:,} open cases ({t.overdue_cases:,} overdue)")
    print(f"  screen figures ×{repeat}: {percentiles(times)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="an existing database (the city is loaded once and kept)")
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    with database(args.database_url, "gridgov_bench_screen") as (url, _):
        engine = make_engine(url, pool_size=1)
        with Session(engine) as session:
            counts = timed(f"load synthetic city ({args.households:,} households)",
                           lambda: load_city(session, households=args.households))
            print("  " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
            setup(session)
            if not session.execute(text("SELECT 1 FROM cases WHERE tracking_code LIKE 'B%' LIMIT 1")).scalar():
                timed(f"write {args.cases:,} cases (bulk SQL)", lambda: write_cases(session, args.cases))
            session.commit()
            bench(session, DISTRICT[0], f"district {DISTRICT[0]}", args.repeat)
            bench(session, SUBDISTRICT, f"subdistrict {SUBDISTRICT}", args.repeat)
            session.rollback()
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
