"""Benchmark: import all 71,903 buildings of ../shared/data/shenzhen_buildings.gpkg, then estimate occupancy.

    python -m benchmarks.import_buildings [--database-url URL]

Without a URL a throw-away embedded cluster is started in a temporary folder (and removed afterwards);
with one, the work is rolled back at the end so the database is left as it was. Prints wall time,
rows per second and the peak resident memory of this Python process (``getrusage`` maxrss); the PostgreSQL
server's memory is separate and not included. Map data © OpenStreetMap contributors (ODbL).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from benchmarks.common import SHARED_DATA, database, peak_rss_mib
from spatial.store.occupancy import estimate_occupancy
from spatial.io import import_buildings
from spatial.io.safe_files import COMMAND_LINE
from spatial.store.engine import make_engine
from spatial.store.models import Building

DATA = SHARED_DATA / "shenzhen_buildings.gpkg"


def timed(label: str, work: Callable[[], Any], rows: Callable[[Any], int] | None = None) -> Any:
    """Run ``work`` and print its wall time, rows/s (rows counted by ``rows(result)``) and peak RSS so far."""
    started = time.perf_counter()
    result = work()
    elapsed = time.perf_counter() - started
    rate = f"{rows(result):>7,} rows {rows(result) / elapsed:>8,.0f} rows/s" if rows else " " * 29
    print(f"{label:<20} {elapsed:7.2f} s {rate}  peak RSS {peak_rss_mib():6.1f} MiB")
    return result


def run(url: str, throw_away: bool, path: Path) -> None:
    engine = make_engine(url, pool_size=1)
    with Session(engine) as session:
        print(f"{'(libraries loaded)':<46} peak RSS {peak_rss_mib():6.1f} MiB")
        origin = f"benchmark:{path.stem}:{time.strftime('%Y%m%dT%H%M%S')}"  # new rows even in a used database
        report = timed("import buildings", lambda: import_buildings(session, path, origin=origin, limits=COMMAND_LINE),
                       lambda r: r.inserted)
        timed("estimate occupancy", lambda: estimate_occupancy(session, where=Building.origin == origin), lambda n: n)
        if throw_away:
            timed("commit", session.commit)
        else:
            session.rollback()
        print(report.summary().splitlines()[1].strip())
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="an existing migrated PostGIS database (work is rolled back)")
    parser.add_argument("--file", type=Path, default=DATA, help=f"GeoPackage to import (default {DATA})")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"{args.file} is absent", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with database(args.database_url) as (url, throw_away):
        print(f"database ready in {time.perf_counter() - started:.1f} s "
              f"({'embedded, throw-away' if throw_away else 'external, rolled back'}); peak RSS excludes the server")
        run(url, throw_away, args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
