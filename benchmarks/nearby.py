"""Benchmark: nearby households on a synthetic city of 1,000,000 households, and campaign coverage.

    python -m benchmarks.nearby [--households 1000000] [--requests 3000] [--concurrency 8] [--database-url URL]

1. Loads the synthetic city (fixtures/synthetic_city.py) into a throw-away embedded cluster (or the database given,
   where it is kept: loading is idempotent).
2. Opens a screening campaign over the whole of subdistrict 1 (about 125,000 households, 300,000 residents) and
   records visits for 99.5% of its households in bulk; times the coverage query (per grid, community, total).
3. Nearby in the database alone (the one statement of a straight-line ``spatial.store.nearby.nearby``: checks,
   households and audit row; one connection, sequential) and through the domain function (masking and the audit row included).
4. Nearby queries through the HTTP API: uvicorn (1 and 2 workers) in a subprocess on 127.0.0.1, ``concurrency``
   client threads (http.client, keep-alive), positions in GCJ-02 inside a grid worker's 4 grids, radius 200 m, 50 households;
   a bounded loop (``requests`` in all, at most ``--max-seconds``). Prints p50/p95/p99 latency and throughput,
   then the same for walking distance (fewer requests); then the same again driven by wrk (if installed; a C
   client, so the Python client's own CPU use does not weigh on the server's two cores), 20 s and 10 s.

Figures only, no assertions. The machine is shared: numbers vary with what else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from benchmarks.common import cpu_split, database, free_port, http_load
from fixtures.synthetic_city import DISTRICT, load_city
from spatial.access import Principal
from spatial.geometry.crs import wgs84_to_gcj02
from spatial.store import campaigns, nearby, users
from spatial.store.engine import cached_text, make_engine

SUBDISTRICT = DISTRICT[0][:6] + "001000"
WRK_SCRIPT = Path(__file__).with_name("nearby.lua")
PASSWORD = "benchmark password"


def timed(label: str, work: Callable[[], object]) -> object:
    started = time.perf_counter()
    result = work()
    print(f"{label:<44} {time.perf_counter() - started:8.2f} s")
    return result


def latency_line(label: str, seconds: list[float], wall: float | None = None) -> dict[str, float]:
    """Print one line of latency figures (durations in seconds; ``wall``: seconds of the run, for the rate) and
    return them: n, p50_ms, p95_ms, p99_ms and, with ``wall``, per_s."""
    ms = np.array(seconds) * 1000
    figures = {"n": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
               "p99_ms": float(np.percentile(ms, 99))}
    if wall:
        figures["per_s"] = len(ms) / wall
    rate = f"  {figures['per_s']:7.1f} req/s" if wall else ""
    print(f"{label:<44} n={len(ms):>5}  p50 {figures['p50_ms']:6.2f} ms  p95 {figures['p95_ms']:6.2f} ms"
          f"  p99 {figures['p99_ms']:6.2f} ms{rate}")
    return figures


def setup(session: Session) -> tuple[Principal, Principal, int, list[tuple[float, float, float, float]]]:
    """A grid worker of 4 grids, a subdistrict planner, a campaign over subdistrict 1; the worker's grid boxes."""
    codes = session.execute(text("SELECT code FROM grids WHERE community_code LIKE :c ORDER BY code LIMIT 4"),
                            {"c": SUBDISTRICT[:9] + "%"}).scalars().all()
    if not session.execute(text("SELECT 1 FROM users WHERE username = 'bench_worker'")).scalar():
        users.create_user(session, "bench_worker", PASSWORD, "grid_worker", grid_codes=tuple(codes))
        users.create_user(session, "bench_planner", PASSWORD, "planner", scope_code=SUBDISTRICT)
    grid_ids = session.execute(text("SELECT id FROM grids WHERE code = ANY(:c)"), {"c": list(codes)}).scalars().all()
    worker = Principal(1, "bench_worker", "grid_worker", grid_ids=frozenset(grid_ids))
    planner = Principal(2, "bench_planner", "planner", scope_code=SUBDISTRICT)
    boxes = session.execute(text("SELECT ST_XMin(boundary), ST_YMin(boundary), ST_XMax(boundary), ST_YMax(boundary) "
                                 "FROM grids WHERE id = ANY(:g)"), {"g": list(grid_ids)}).all()
    campaign = campaigns.current_campaign_id(session, planner)
    if campaign is None:
        campaign = timed("open campaign over subdistrict 1", lambda: campaigns.open_campaign(
            session, planner, "基准排查", division_code=SUBDISTRICT).id)
        timed("record 99.5% of its visits (bulk SQL)", lambda: session.execute(text("""
            INSERT INTO campaign_visits (campaign_id, household_id, result, visited_at, worker, worker_position,
                                         distance_m, far_from_building)
            SELECT t.campaign_id, t.household_id, 'normal', now(), 'bench', ST_PointOnSurface(b.footprint), 0, false
            FROM campaign_targets t JOIN households h ON h.id = t.household_id JOIN buildings b ON b.id = h.building_id
            WHERE t.campaign_id = :c AND abs(hashtext(t.household_id::text)) % 1000 >= 5"""),
            {"c": campaign}))
        session.execute(text("ANALYZE campaigns, campaign_grids, campaign_targets, campaign_visits"))
    return worker, planner, campaign, [tuple(b) for b in boxes]


def positions(boxes, n: int, seed: int = 1) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(boxes), n)
    return [(float(rng.uniform(boxes[i][0], boxes[i][2])), float(rng.uniform(boxes[i][1], boxes[i][3]))) for i in picks]


def bench_coverage(session: Session, planner: Principal, campaign: int) -> dict[str, float]:
    """Times the campaign's progress (per grid, community, total) 5 times; best_ms and median_ms."""
    residents, households = session.execute(text(
        "SELECT sum(b.residents), sum(b.households) FROM buildings b JOIN grids g ON g.id = b.grid_id "
        "WHERE g.community_code LIKE :p"), {"p": SUBDISTRICT[:9] + "%"}).one()
    times, rows = [], []
    for _ in range(5):
        started = time.perf_counter()
        rows = campaigns.progress(session, planner, campaign)
        times.append(time.perf_counter() - started)
    total = rows[-1]
    print(f"subdistrict 1: {residents:,} residents, {households:,} households; campaign {total.screened:,} / "
          f"{total.targeted:,} screened = {100 * total.ratio:.2f}%, {len(rows)} rows")
    print(f"{'coverage (grids + communities + total)':<44} best {min(times) * 1000:7.1f} ms  "
          f"median {statistics.median(times) * 1000:7.1f} ms  (5 runs)")
    return {"best_ms": min(times) * 1000, "median_ms": statistics.median(times) * 1000}


def bench_database(session: Session, worker: Principal, campaign: int, points) -> dict[str, dict[str, float]]:
    """Nearby in the database (the statement alone, the domain function, walking); their latency figures."""
    out = {}
    seconds = []
    for lon, lat in points:
        sql, params = nearby.nearby_statement(worker, lon, lat, radius_m=200, limit=50, campaign_id=campaign)
        started = time.perf_counter()
        session.execute(cached_text(sql), params).all()
        seconds.append(time.perf_counter() - started)
    out["statement"] = latency_line("nearby, database statement alone (sequential)", seconds[20:])
    seconds = []
    for lon, lat in points[:300]:
        started = time.perf_counter()
        nearby.nearby(session, worker, lon, lat, radius_m=200, limit=50)
        seconds.append(time.perf_counter() - started)
    out["domain"] = latency_line("nearby, domain function (mask + audit)", seconds[20:])
    seconds = []
    for lon, lat in points[:60]:
        started = time.perf_counter()
        nearby.nearby(session, worker, lon, lat, radius_m=200, limit=50, mode="walk")
        seconds.append(time.perf_counter() - started)
    out["walk"] = latency_line("nearby walking, domain function", seconds[10:])
    return out


@contextmanager
def server(url: str, workers: int = 1, read_url: str | None = None) -> Iterator[tuple[str, int]]:
    """(base URL, pid): uvicorn serving the app on a free loopback port, in a subprocess stopped at the end;
    ``read_url``: its ``GRIDGOV_READ_DATABASE_URL`` (read replicas)."""
    port = free_port()
    env = {**os.environ, "GRIDGOV_DATABASE_URL": url, **({"GRIDGOV_READ_DATABASE_URL": read_url} if read_url else {})}
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
                                "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log", "--workers", str(workers)],
                               env=env, cwd=Path(__file__).resolve().parents[1])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a big database on a busy machine starts slowly
        while True:
            try:
                if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer {base}/api/health (exit status {process.poll()})")
            time.sleep(0.2)  # also after a non-200 answer (a server still starting), not only a refused connection
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def nearby_paths(points, mode: str) -> list[str]:
    """One nearby request per point (lon, lat in EPSG:4326), sent in GCJ-02 as phones do: radius 200 m, 50 households."""
    return ["/api/field/nearby?" + urlencode({"lon": float(glon), "lat": float(glat), "crs": "GCJ-02", "radius": 200,
                                              "limit": 50, "mode": mode})
            for glon, glat in (wgs84_to_gcj02(lon, lat) for lon, lat in points)]


def load(base: str, token: str, points, concurrency: int, max_seconds: float, mode: str) -> tuple[list[float], float, int]:
    """:func:`nearby_paths` from ``concurrency`` threads (:func:`benchmarks.common.http_load`); (latencies, wall
    seconds, non-2xx answers)."""
    return http_load(base, token, nearby_paths(points, mode), concurrency, max_seconds)


def load_wrk(base: str, token: str, points, concurrency: int, seconds: float, mode: str) -> dict | None:
    """The same requests driven by wrk (a C load generator using little CPU, so the figures are the server's):
    ``concurrency`` connections on 2 threads for ``seconds``. None when wrk is not installed."""
    if shutil.which("wrk") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        for lon, lat in points:
            glon, glat = wgs84_to_gcj02(lon, lat)
            listing.write(urlencode({"lon": float(glon), "lat": float(glat), "crs": "GCJ-02", "radius": 200,
                                     "limit": 50, "mode": mode}) + "\n")
    try:
        done = subprocess.run(["wrk", "-t2", f"-c{concurrency}", f"-d{seconds:.0f}s", "-s", str(WRK_SCRIPT), base],
                              capture_output=True, text=True, env={**os.environ, "TOKEN": token, "POINTS": listing.name},
                              timeout=seconds + 60)
    finally:
        os.unlink(listing.name)
    return json.loads(done.stdout.strip().splitlines()[-1])


def wrk_line(label: str, figures: dict) -> None:
    print(f"{label:<44} n={figures['requests']:>5}  p50 {figures['p50_ms']:6.2f} ms  p95 {figures['p95_ms']:6.2f} ms"
          f"  p99 {figures['p99_ms']:6.2f} ms  {figures['requests'] / figures['seconds']:7.1f} req/s"
          f"  errors {figures['errors']}")


def bench_http(url: str, points, concurrency: int, requests: int, max_seconds: float, workers: int) -> None:
    with server(url, workers) as (base, pid):
        token = httpx.post(base + "/api/auth/token", data={"username": "bench_worker", "password": PASSWORD}).json()
        token = token["access_token"]
        load(base, token, points[:200], concurrency, 30, "straight")  # warm up every pooled connection
        load(base, token, points[:40], concurrency, 30, "walk")
        latencies, wall, errors = load(base, token, points[:requests], concurrency, max_seconds, "straight")
        latency_line(f"nearby over HTTP, {workers} worker(s), concurrency {concurrency}", latencies, wall)
        latencies, wall, errors_walk = load(base, token, points[:max(80, requests // 10)], concurrency, max_seconds,
                                            "walk")
        latency_line(f"nearby walking over HTTP, {workers} worker(s), c. {concurrency}", latencies, wall)
        if errors or errors_walk:
            print(f"non-200 answers: {errors} straight, {errors_walk} walking")
        for mode, seconds in (("straight", 20), ("walk", 10)):
            before = cpu_split(pid)
            figures = load_wrk(base, token, points, concurrency, seconds, mode)
            if figures:
                after = cpu_split(pid)
                wrk_line(f"nearby {mode} over HTTP (wrk), {workers} w., c. {concurrency}", figures)
                print("  CPU per request: " + ", ".join(
                    f"{kind} {1000 * (after[kind] - before[kind]) / figures['requests']:.2f} ms" for kind in after))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="an existing database (the city is loaded once and kept)")
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=120.0, help="upper bound of each HTTP run")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts to measure, comma-separated")
    args = parser.parse_args(argv)
    with database(args.database_url, "gridgov_bench_nearby") as (url, _):
        engine = make_engine(url, pool_size=2)
        with Session(engine) as session:
            counts = timed(f"load synthetic city ({args.households:,} households)",
                           lambda: load_city(session, households=args.households))
            print("  " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
            worker, planner, campaign, boxes = setup(session)
            session.commit()
            bench_coverage(session, planner, campaign)
            session.rollback()
            points = positions(boxes, max(args.requests, 1000))
            bench_database(session, worker, campaign, points[:1000])
            session.rollback()
        engine.dispose()
        for workers in (int(w) for w in args.workers.split(",")):
            bench_http(url, points, args.concurrency, args.requests, args.max_seconds, workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
