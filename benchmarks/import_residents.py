"""Benchmark: import a population ledger of N persons (default 1,000,000 in ~410,000 households), then again.

    python -m benchmarks.import_residents [--persons N] [--xlsx] [--workers N] [--no-trace] [--database-url URL]

The buildings and households come from the synthetic city (:mod:`fixtures.synthetic_city`, N / 2.43 households);
the ledger gives every household its residents (the city's head plus synthetic family members, each with a
valid ID number and mobile; duplicate ID numbers drawn by chance are dropped), as a CSV (default) or an .xlsx
(``--xlsx``; openpyxl writes it, slowly, before the clock starts). Prints the wall time of the import (commit
included), of the re-import of the unchanged file, and the peak Python memory of a third, traced run
(``tracemalloc`` slows Python down, so that run is timed apart); the PostgreSQL server's memory is not included.
``--workers 1`` checks every row in the importing process (the default spreads the checking over the machine's
cores past ``spatial.io.residents.PARALLEL_FROM`` rows). Without a URL a throw-away embedded cluster is used; with one, the work is committed there (use a scratch database).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
import tracemalloc
from datetime import date
from pathlib import Path

import numpy as np
from sqlalchemy import text

from benchmarks.common import database, peak_rss_mib
from fixtures import synthetic_city
from spatial.io.residents import import_residents
from spatial.personal_keys import PersonalKeys
from spatial.store.engine import acting_as, make_engine, make_sessionmaker

HEADER = ["姓名", "身份证号", "联系电话", "与户主关系", "楼栋编码", "单元", "楼层", "房号", "人员类型", "标签"]
RELATIONS = np.array(["户主", "配偶", "子女", "子女", "父母"])
TAGS = {"elderly_alone": "独居老人", "disabled": "残疾人", "home_isolation": "居家隔离", "low_income": "低保户"}


def ledger_rows(city: synthetic_city.SyntheticCity, seed: int = 11) -> tuple[list[list[str]], int]:
    """One row per resident of every household of ``city`` (head first), and how many duplicates were dropped."""
    rng = np.random.default_rng(seed)
    residents = city.household_residents
    n = int(residents.sum())
    household = np.repeat(np.arange(len(residents)), residents)
    position = np.arange(n) - np.repeat(np.cumsum(residents) - residents, residents)
    names, ids, phones = synthetic_city._people(rng, n)
    head = position == 0
    names[head], ids[head], phones[head] = (city.head_names[household[head]], city.head_ids[household[head]],
                                            city.head_phones[household[head]])
    kept_idx = np.sort(np.unique(ids, return_index=True)[1])  # the first of each ID number
    b = city.household_building[household]
    codes = np.char.add(city.grid_codes[city.building_grid[b]],
                        np.char.zfill(city.building_number[b].astype(str), 5))
    kinds = np.where(rng.random(n) < 0.6, "户籍", "流动")
    tag_draw = rng.random(n)
    tags = np.where(tag_draw < 0.02, TAGS["elderly_alone"], np.where(tag_draw < 0.03, TAGS["disabled"], np.where(
        tag_draw < 0.035, TAGS["home_isolation"], "")))
    rows = [[names[i], ids[i], phones[i], RELATIONS[min(position[i], 4)], codes[i], "1",
             str(city.household_floor[household[i]]), city.household_room[household[i]], kinds[i], tags[i]]
            for i in kept_idx.tolist()]
    return rows, n - len(rows)


def write(rows: list[list[str]], path: Path) -> None:
    if path.suffix == ".csv":
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(HEADER)
            writer.writerows(rows)
        return
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    book.save(path)


def run(url: str, persons: int, xlsx: bool, workers: int | None = None, traced: bool = True) -> None:
    engine = make_engine(url, pool_size=1)
    sessions = make_sessionmaker(engine)
    households = max(1, round(persons / 2.43))  # the city draws 2.43 residents per household on average
    started = time.perf_counter()
    city = synthetic_city.generate(households)
    with sessions.begin() as session:
        synthetic_city.load_city(session, households)
    rows, dropped = ledger_rows(city)
    print(f"city of {households:,} households loaded, ledger of {len(rows):,} persons ({dropped} duplicate IDs "
          f"dropped) built in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory(prefix="gridgov-bench-") as tmp:
        path = Path(tmp) / ("ledger.xlsx" if xlsx else "ledger.csv")
        started = time.perf_counter()
        write(rows, path)
        del rows
        print(f"wrote {path.name} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s")
        keys = PersonalKeys.of(b"benchmark key of 32 bytes.......")

        def once(label: str, traced: bool = False):
            if traced:
                tracemalloc.start()
            started = time.perf_counter()
            with sessions.begin() as session, acting_as(session, "benchmark", "import residents"):
                report = import_residents(session, path, keys, as_of=date(2026, 12, 1), workers=workers)
            elapsed = time.perf_counter() - started
            peak = ""
            if traced:
                peak = f", peak Python memory (tracemalloc) {tracemalloc.get_traced_memory()[1] / 2**20:.0f} MiB"
                tracemalloc.stop()
            c = report.counts
            print(f"{label:<26} {elapsed:7.1f} s  {report.tally('persons').read / elapsed:>9,.0f} rows/s  "
                  f"{c.inserted:,} new, {c.updated} updated, {c.unchanged:,} unchanged, "
                  f"{c.households_created} households created, {c.households_updated:,} updated, "
                  f"{report.issue_count} rejected{peak}; peak RSS {peak_rss_mib():.0f} MiB")
            return report

        once("import")
        once("re-import (unchanged)")
        if traced:
            once("re-import, traced", traced=True)
    with sessions() as session:
        print("persons stored:", session.execute(text("SELECT count(*) FROM persons")).scalar_one())
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--xlsx", action="store_true", help="an .xlsx ledger instead of a CSV")
    parser.add_argument("--workers", type=int, help="processes checking rows (default: the machine's cores)")
    parser.add_argument("--no-trace", action="store_true", help="leave out the traced run (peak Python memory)")
    parser.add_argument("--database-url", help="an existing migrated PostGIS database (a scratch one: committed)")
    args = parser.parse_args(argv)
    with database(args.database_url) as (url, _):
        run(url, args.persons, args.xlsx, args.workers, not args.no_trace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
