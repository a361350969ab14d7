"""Benchmark: how the field queries grow from a 1,000,000-household city to a Shenzhen-sized one (7,000,000).

    python -m benchmarks.growth --households 1000000 [--keep DIR | --database-url URL] [--out FILE.json]
    python -m benchmarks.growth --compare ONE.json OTHER.json

1. Loads the synthetic city (:mod:`fixtures.synthetic_city`: divisions, grids, buildings, households, streets) and
   then, in this benchmark, its population ledger: every household's residents (``households.residents``, 2.43 on
   average) as ``persons`` rows: the head of household (the city's name, ID and mobile) and synthetic family
   members (:func:`fixtures.synthetic_city._people`), every ID and phone number sealed (AES-256-GCM) and hashed
   (HMAC-SHA256) by :class:`spatial.personal_keys.PersonalKeys` under a benchmark key (not the server's: no measured
   request opens a sealed value), masked as the importer masks them; ID numbers drawn twice are dropped (the
   first kept). How: COPY from two processes sealing in parallel, with the secondary indexes of ``persons``
   dropped during the COPY and built again after it, and the statement trigger that bumps household versions
   disabled during it (an import bumps them; versions of a fresh city do not matter here). Then cases: one per
   five households over five years (:func:`benchmarks.cases.generate` over the whole district, without events:
   no measured list reads them), the grid worker, planner and campaign of :func:`benchmarks.nearby.setup`
   (subdistrict 1, 99.5% visited), and VACUUM ANALYZE (what autovacuum does after a bulk load). Every step is
   timed and skipped when its rows are there already (``--keep DIR`` keeps the embedded cluster in ``DIR`` to
   measure again without loading).
2. Prints the database size (``pg_database_size``, and the largest tables with their indexes).
3. Measures, each on a part of fixed size so that only the city around it grows: nearby (radius 200 m, 50
   households, :mod:`benchmarks.nearby`) in the database and over HTTP; subdistrict 1's campaign coverage (the
   store function, and over HTTP); uncached combined vector tiles (every layer a planner sees) at z15 and z16 over
   subdistricts 1–2; a grid preview (a planner dragging a grid's east edge);
   the overdue-case list of subdistrict 1. HTTP: uvicorn in a subprocess (``--workers``), ``--concurrency``
   client threads (:func:`benchmarks.common.http_load`), CPU per request of the server and of this cluster's
   PostgreSQL processes (:func:`benchmarks.common.cpu_split`).

One line per figure, the same for every size; ``--out`` writes them as JSON and ``--compare`` prints two runs side
by side with the ratio. Figures only, no assertions; the machine is shared: numbers vary with what else runs.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from benchmarks import cases as case_bench
from benchmarks import nearby as nearby_bench
from benchmarks.nearby import latency_line
from benchmarks.common import cpu_split, database, http_load, postmaster_of
from fixtures import synthetic_city
from fixtures.synthetic_city import DISTRICT, ORIGIN, load_city
from spatial.personal_keys import PersonalKeys
from spatial.privacy import mask_id_number, mask_phone
from spatial.store.engine import make_engine
from spatial.store.persons import ID_FIELD, PHONE_FIELD

KEY = b"growth benchmark key of 32 bytes"
CASES_PER_HOUSEHOLD = 0.2          # over five years (benchmarks.screen writes 200,000 for 1,000,000 households)
PERSON_COLUMNS = ("household_id", "name", "gender", "relation", "kind", "id_number_sealed", "id_number_hash",
                  "id_number_masked", "phone_sealed", "phone_hash", "phone_masked", "tags", "origin")
RELATIONS = np.array(["head", "spouse", "child", "child", "parent"])  # by place in the household (5th and later: parent)
BATCH = 50_000                     # households per sealing task


# -- loading -----------------------------------------------------------------------------------------------------
def _hex(sealed: bytes) -> str:
    return "\\\\x" + sealed.hex()


def person_rows(task: tuple) -> str:
    """COPY text of the residents of a batch of households: ``(ids, residents, head names, head ID numbers, head
    phones, seed)``; the head first (the household's own values), then family members drawn with ``seed``."""
    ids, residents, head_names, head_ids, head_phones, seed = task
    rng = np.random.default_rng(seed)
    keys = PersonalKeys.of(KEY)
    n = int(residents.sum())
    household = np.repeat(ids, residents)
    place = np.arange(n) - np.repeat(np.cumsum(residents) - residents, residents)
    names, numbers, phones = (a.astype(object) for a in synthetic_city._people(rng, n))
    head = place == 0
    names[head], numbers[head], phones[head] = head_names, head_ids, head_phones
    relation = RELATIONS[np.minimum(place, 4)]
    kind = np.where(rng.random(n) < 0.6, "registered", "floating")
    draw = rng.random(n)
    tags = np.where(draw < 0.02, "{elderly_alone}", np.where(draw < 0.03, "{disabled}", "{}"))
    out = io.StringIO()
    for h, name, number, phone, rel, k, tag in zip(household.tolist(), names, numbers, phones, relation.tolist(),
                                                    kind.tolist(), tags.tolist(), strict=True):
        gender = "male" if int(number[16]) % 2 else "female"
        out.write(f"{h}\t{name}\t{gender}\t{rel}\t{k}\t{_hex(keys.seal(ID_FIELD, number))}\t"
                  f"{_hex(keys.digest(ID_FIELD, number))}\t{mask_id_number(number)}\t"
                  f"{_hex(keys.seal(PHONE_FIELD, phone))}\t{_hex(keys.digest(PHONE_FIELD, phone))}\t"
                  f"{mask_phone(phone)}\t{tag}\t{ORIGIN}\n")
    return out.getvalue()


def _batches(engine):
    """The city's households in id order, ``BATCH`` at a time, as :func:`person_rows` tasks (a second connection)."""
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor(name="growth_households") as cursor:
            cursor.itersize = BATCH
            cursor.execute("SELECT h.id, h.residents, h.head_name, h.head_id_number, h.head_phone FROM households h "
                           "JOIN buildings b ON b.id = h.building_id WHERE b.origin = %s ORDER BY h.id", (ORIGIN,))
            seed = 0
            while rows := cursor.fetchmany(BATCH):
                seed += 1
                columns = list(zip(*rows, strict=True))
                yield (np.array(columns[0], dtype=np.int64), np.array(columns[1], dtype=np.int64),
                       np.array(columns[2], dtype=object), np.array(columns[3], dtype=object),
                       np.array(columns[4], dtype=object), 1000 + seed)
    finally:
        raw.close()


def load_persons(engine, session: Session, processes: int = 2) -> dict[str, int]:
    """The population ledger of the city (see the module docstring), in the caller's transaction (committed by
    the caller); rows written and duplicate ID numbers dropped."""
    indexes = session.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'persons' "
                                   "AND indexname <> 'persons_pkey'")).all()
    for name, _ in indexes:
        session.execute(text(f"DROP INDEX {name}"))
    session.execute(text("ALTER TABLE persons DISABLE TRIGGER persons_bump_household_insert"))
    cursor = session.connection().connection.driver_connection.cursor()
    with multiprocessing.get_context("fork").Pool(processes) as pool, \
            cursor.copy(f"COPY persons ({', '.join(PERSON_COLUMNS)}) FROM STDIN") as copy:
        pending: deque = deque()  # at most 2 batches per process sealed ahead of the COPY (bounded memory)
        for task in _batches(engine):
            pending.append(pool.apply_async(person_rows, (task,)))
            if len(pending) >= 2 * processes:
                copy.write(pending.popleft().get())
        while pending:
            copy.write(pending.popleft().get())
    written = session.execute(text("SELECT count(*) FROM persons")).scalar_one()
    dropped = session.execute(text("""
        DELETE FROM persons p USING (SELECT id, row_number() OVER (PARTITION BY id_number_hash ORDER BY id) AS k
                                     FROM persons) d
        WHERE p.id = d.id AND d.k > 1""")).rowcount
    session.execute(text("ALTER TABLE persons ENABLE TRIGGER persons_bump_household_insert"))
    session.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
    for _, definition in indexes:
        session.execute(text(definition))
    return {"persons": written - dropped, "duplicate IDs dropped": dropped}


def vacuum(engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))


def load(engine, households: int) -> dict[str, float]:
    """Every loading step not done yet, timed; seconds per step (0 when it was skipped)."""
    steps: dict[str, float] = {}

    def step(name: str, needed: bool, work) -> None:
        if not needed:
            steps[name] = 0.0
            print(f"{name:<44} (already loaded)")
            return
        started = time.perf_counter()
        with Session(engine) as session:
            result = work(session)
            session.commit()
        steps[name] = time.perf_counter() - started
        print(f"{name:<44} {steps[name]:8.1f} s  " + (", ".join(f"{k} {v:,}" for k, v in result.items())
                                                      if isinstance(result, dict) else ""))

    with Session(engine) as session:
        city_there = bool(session.scalar(text("SELECT 1 FROM divisions WHERE code = :c"), {"c": DISTRICT[0]}))
        persons_there = bool(session.scalar(text("SELECT 1 FROM persons LIMIT 1")))
        cases_there = bool(session.scalar(text("SELECT 1 FROM cases LIMIT 1")))
        users_there = bool(session.scalar(text("SELECT 1 FROM users WHERE username = 'bench_worker'")))
    step(f"city ({households:,} households, COPY)", not city_there, lambda s: load_city(s, households=households))
    step("persons (sealed, hashed, COPY)", not persons_there, lambda s: load_persons(engine, s))
    step("users and campaign (subdistrict 1)", not users_there, lambda s: nearby_bench.setup(s) and None)
    n_cases = round(households * CASES_PER_HOUSEHOLD)
    step(f"cases ({n_cases:,} over five years, bulk SQL)", not cases_there,
         lambda s: case_bench.generate(s, n_cases, prefix=DISTRICT[0][:6] + "%", events=False))
    step("VACUUM ANALYZE", any(steps.values()), lambda s: vacuum(engine))
    steps["total"] = sum(steps.values())
    print(f"{'generation, total':<44} {steps['total']:8.1f} s")
    return steps


def generation(steps: dict[str, float], keep: Path | None) -> dict[str, float]:
    """The loading times of a kept cluster: written to ``keep``/generation.json when this run loaded it, read from
    there when it was loaded before (so that every run of it reports how long it took to make)."""
    record = keep / "generation.json" if keep else None
    if record is None:
        return steps
    if steps["total"] > 0:
        record.write_text(json.dumps(steps, indent=1))
        return steps
    if record.exists():
        steps = json.loads(record.read_text())
        print(f"{'generation, total (when it was loaded)':<44} {steps['total']:8.1f} s")
    return steps


def sizes(session: Session, tables: int = 8) -> dict[str, int]:
    """Bytes of the database and of its largest tables (with their indexes and TOAST)."""
    out = {"database": session.execute(text("SELECT pg_database_size(current_database())")).scalar_one()}
    rows = session.execute(text("""
        SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 2 DESC LIMIT :k"""), {"k": tables}).all()
    out.update({name: int(size) for name, size in rows})
    for name, size in out.items():
        print(f"  size of {name:<36} {size / 2**20:10,.0f} MiB")
    return out


# -- measuring ---------------------------------------------------------------------------------------------------
def tile_paths(session: Session, subdistricts: tuple[int, ...], z: int) -> list[str]:
    """The combined tiles (every layer a planner sees) at zoom ``z`` over those of the given subdistricts (1 = the
    first) that the city has,
    in a seeded order: distinct tiles, so that a server started afresh renders every one (its cache is in memory)."""
    from tiles.grid import tile_range

    paths = []
    for number in subdistricts:
        bounds = session.execute(text("SELECT ST_XMin(boundary), ST_YMin(boundary), ST_XMax(boundary), "
                                      "ST_YMax(boundary) FROM divisions WHERE code = :c"),
                                 {"c": f"{DISTRICT[0][:6]}{number:03d}000"}).one_or_none()
        if bounds is None:  # a small city
            continue
        x0, y0, x1, y1 = tile_range(tuple(bounds), z)
        paths += [f"/tiles/{z}/{x}/{y}.mvt" for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    np.random.default_rng(5).shuffle(paths)
    return paths


def preview_bodies(session: Session, n: int) -> tuple[list[str], list[dict]]:
    """``n`` previews of a redraw in subdistrict 1, as a planner dragging a grid's east edge 5–30 m either way
    sends them (``move_shared_boundary``: the east neighbour, in the same community, is recomputed too); the
    geometry in EPSG:4547 metres. (paths, bodies)."""
    grids = session.execute(text("""
        SELECT code, ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
        FROM (SELECT code, ST_Transform(boundary, 4547) AS b FROM grids
              WHERE community_code LIKE :p AND retired_at IS NULL
                AND (right(code, 2)::int - 1) % :per_side < :per_side - 1) g ORDER BY code"""),
        {"p": DISTRICT[0][:6] + "001%", "per_side": synthetic_city.GRIDS_PER_COMMUNITY}).all()
    rng = np.random.default_rng(9)
    paths, bodies = [], []
    for i in rng.integers(0, len(grids), n):
        code, x0, y0, x1, y1 = grids[int(i)]
        east = x1 + float(rng.choice((-1, 1)) * rng.uniform(5, 30))
        ring = [[x0, y0], [east, y0], [east, y1], [x0, y1], [x0, y0]]
        paths.append(f"/api/grids/{code}/boundary")
        bodies.append({"geometry": {"type": "Polygon", "coordinates": [ring]}, "crs": "EPSG:4547", "preview": True,
                       "move_shared_boundary": True})
    return paths, bodies


def http_figures(label: str, base: str, token: str, paths: list[str], pids: tuple[int, int], concurrency: int,
                 max_seconds: float, method: str = "GET", bodies: list[dict] | None = None) -> dict[str, float]:
    """One timed load run (:func:`benchmarks.common.http_load`) with the CPU it cost per request: of the server
    (``pids[0]`` and its workers) and of the cluster's PostgreSQL processes (``pids[1]``, its postmaster)."""
    before = cpu_split(*pids)
    latencies, wall, errors = http_load(base, token, paths, concurrency, max_seconds, method, bodies)
    after = cpu_split(*pids)
    figures = latency_line(label, latencies, wall)
    figures.update({f"cpu_{kind}_ms": 1000 * (after[kind] - before[kind]) / len(latencies) for kind in after})
    figures["errors"] = errors
    print(f"  CPU per request: server {figures['cpu_server_ms']:.2f} ms, PostgreSQL {figures['cpu_postgres_ms']:.2f}"
          f" ms; non-2xx {errors}")
    return figures


PARTS = ("database", "nearby", "coverage", "overdue", "tiles", "preview")


def measure(engine, url: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The figures of the module docstring (those of ``args.only``, of :data:`PARTS`), keyed by label."""
    out: dict[str, dict[str, float]] = {}
    only = set(args.only.split(","))
    with Session(engine) as session:
        worker, planner, campaign, boxes = nearby_bench.setup(session)
        session.commit()
        points = nearby_bench.positions(boxes, max(args.requests, 1000))
        if "database" in only:
            out["coverage of subdistrict 1 (store, best of 5)"] = nearby_bench.bench_coverage(session, planner,
                                                                                             campaign)
            session.rollback()
            for key, figures in nearby_bench.bench_database(session, worker, campaign, points[:1000]).items():
                out[f"nearby in the database ({key})"] = figures
        session.rollback()
        tiles = {z: tile_paths(session, (1, 2), z) for z in (15, 16)}
        warm_tiles = tile_paths(session, (1,), 17)[:40]  # other tiles than those measured
        preview_paths, preview_body = preview_bodies(session, args.previews)
        postmaster = postmaster_of(session)
    for workers in (int(w) for w in args.workers.split(",")):
        with nearby_bench.server(url, workers) as (base, pid):
            pids = (pid, postmaster)
            as_worker = case_bench.token_of(base, "bench_worker")
            as_planner = case_bench.token_of(base, "bench_planner")
            c, limit = args.concurrency, args.max_seconds
            tag = f"{workers} w., c. {c}"
            if "nearby" in only:
                nearby_bench.load(base, as_worker, points[:200], c, 30, "straight")  # warm every pooled connection
                paths = nearby_bench.nearby_paths(points[:args.requests], "straight")
                out[f"nearby over HTTP ({tag})"] = http_figures(f"nearby over HTTP, {tag}", base, as_worker, paths,
                                                                pids, c, limit)
            if "coverage" in only:
                coverage = [f"/api/field/campaigns/{campaign}/coverage"] * 50
                http_load(base, as_planner, coverage[:8], c, 30)
                out[f"coverage over HTTP ({tag})"] = http_figures(f"coverage of subdistrict 1 over HTTP, {tag}", base,
                                                                  as_planner, coverage, pids, c, limit)
            if "overdue" in only:
                overdue = ["/api/cases?overdue=true&limit=100"] * (args.requests // 3)
                http_load(base, as_planner, overdue[:40], c, 30)
                out[f"overdue list over HTTP ({tag})"] = http_figures(f"overdue list of subdistrict 1, HTTP, {tag}",
                                                                      base, as_planner, overdue, pids, c, limit)
            if "tiles" in only:
                http_load(base, as_planner, warm_tiles, c, 30)
                for z, paths in tiles.items():
                    out[f"uncached tile z{z} ({tag})"] = http_figures(
                        f"uncached tile z{z} ({len(paths)}), HTTP, {tag}", base, as_planner, paths, pids, c, limit)
            if "preview" in only:
                http_load(base, as_planner, preview_paths[:10], 1, 30, "PUT", preview_body[:10])
                out[f"grid preview over HTTP ({workers} w., one at a time)"] = http_figures(
                    f"grid preview, HTTP, {workers} w., one at a time", base, as_planner, preview_paths, pids, 1,
                    limit, "PUT", preview_body)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="an existing database (the city is loaded once and kept)")
    parser.add_argument("--keep", type=Path, help="keep the embedded cluster in this folder (reused if there)")
    parser.add_argument("--load-only", action="store_true", help="load (and print sizes), measure nothing")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("ONE", "OTHER"),
                        help="print two runs' JSON side by side (nothing is loaded or measured)")
    parser.add_argument("--requests", type=int, default=3000, help="nearby requests (the overdue list a third)")
    parser.add_argument("--previews", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts, comma-separated")
    parser.add_argument("--max-seconds", type=float, default=90.0, help="upper bound of each HTTP run")
    parser.add_argument("--only", default=",".join(PARTS), help="what to measure, comma-separated: " + ", ".join(PARTS))
    args = parser.parse_args(argv)
    if args.compare:
        runs = [json.loads(path.read_text()) for path in args.compare]
        compare(*runs)
        needed = {label for label, _, _ in DEMAND}
        for run in runs:
            missing = sorted(needed - set(run.get("figures", {})))
            if missing:  # measured with other --only, --workers or --concurrency than the model's
                print(f"no capacity model from the {run['households']:,}-household run: it lacks " + "; ".join(missing))
                continue
            print(f"capacity model (docs/decisions/0027-capacity.md) from the {run['households']:,}-household run:")
            capacity(run)
        return 0
    figures: dict[str, object] = {"households": args.households}
    with database(args.database_url, "gridgov_bench_growth", keep=args.keep) as (url, _):
        engine = make_engine(url, pool_size=2)
        figures["generation_s"] = generation(load(engine, args.households), args.keep)
        with Session(engine) as session:
            figures["bytes"] = sizes(session)
            figures["rows"] = {**synthetic_city.city_counts(session), **dict(session.execute(text(
                "SELECT 'persons', count(*) FROM persons UNION ALL SELECT 'cases', count(*) FROM cases")).all())}
        if not args.load_only:
            figures["figures"] = measure(engine, url, args)
        engine.dispose()
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))
    return 0


# The capacity model of docs/decisions/0027-capacity.md: requests per hour at the peak hour, per active field
# worker (grid workers, 网格员) or per planner / command screen, and the measured figure whose CPU each costs.
# (label of the figure, requests per hour, per what).
DEMAND = (("nearby over HTTP (1 w., c. 8)", 30, "worker"),              # one a household visited, and refreshes
          ("nearby over HTTP (1 w., c. 8)", 30, "worker"),              # the visit written: taken as a nearby's cost
          ("uncached tile z16 (1 w., c. 8)", 60, "worker"),             # 6 map moves of 10 new tiles, none cached
          ("overdue list over HTTP (1 w., c. 8)", 6, "worker"),         # the case list, every 10 minutes
          ("coverage over HTTP (1 w., c. 8)", 6, "subdistrict"),        # a subdistrict's coverage, every 10 minutes
          ("grid preview over HTTP (1 w., one at a time)", 60, "planner"))
PLACES = {"Shenzhen": {"worker": 20_000, "subdistrict": 74, "planner": 100},
          "the nation": {"worker": 4_000_000, "subdistrict": 40_000, "planner": 20_000}}
UTILISATION = 0.6                  # cores busy at the peak hour (headroom for bursts and for the writes not modelled)


def capacity(run: dict) -> dict[str, dict[str, float]]:
    """Cores needed at the peak hour (application and PostgreSQL) for each place of :data:`PLACES`, from the CPU
    per request of ``run``'s figures and :data:`DEMAND`; printed and returned."""
    out = {}
    for place, counts in PLACES.items():
        app = db = 0.0
        for label, per_hour, per in DEMAND:
            figure = run["figures"][label]
            rate = counts[per] * per_hour / 3600
            app += rate * figure["cpu_server_ms"] / 1000
            db += rate * figure["cpu_postgres_ms"] / 1000
        out[place] = {"app_cores": app / UTILISATION, "postgres_cores": db / UTILISATION}
        print(f"{place:<12} application {app / UTILISATION:9,.1f} cores, PostgreSQL {db / UTILISATION:9,.1f} cores "
              f"(busy {app:,.1f} + {db:,.1f} at the peak hour, {UTILISATION:.0%} utilisation)")
    return out


def compare(one: dict, other: dict) -> None:
    """Two runs side by side: rows, generation time, sizes, then every figure both have (p50 and p95, or the
    median, and CPU per request) with the ratio other / one."""
    names = (f"{one['households']:,} hh", f"{other['households']:,} hh")

    def line(label: str, a: float, b: float, unit: str) -> None:
        ratio = f"{b / a:6.2f}×" if a else "      "
        print(f"{label:<58} {a:>12,.1f} {b:>12,.1f} {unit:<4} {ratio}")

    print(f"{'':<58} {names[0]:>12} {names[1]:>12}")
    for key in one.get("rows", {}):
        if key in other.get("rows", {}):
            line(f"rows: {key}", one["rows"][key], other["rows"][key], "")
    line("generation, total", one["generation_s"]["total"], other["generation_s"]["total"], "s")
    for key in one["bytes"]:
        if key in other["bytes"]:
            line(f"size: {key}", one["bytes"][key] / 2**20, other["bytes"][key] / 2**20, "MiB")
    for label, a in one.get("figures", {}).items():
        b = other.get("figures", {}).get(label)
        if b is None:
            continue
        for key, name in (("p50_ms", "p50"), ("p95_ms", "p95"), ("median_ms", "median"), ("best_ms", "best"),
                          ("cpu_server_ms", "CPU server"), ("cpu_postgres_ms", "CPU PostgreSQL")):
            if key in a and key in b:
                line(f"{label}, {name}", a[key], b[key], "ms")


if __name__ == "__main__":
    sys.exit(main())
