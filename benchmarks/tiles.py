"""Benchmark: vector tiles of ~200,000 buildings, gridgov against tipg, same database, same tiles, side by side.

    python -m benchmarks.tiles [--database-url URL] [--copies 3] [--tiles 300] [--concurrency 8] [--seconds 60]

Data: the 71,903 real footprints of ../shared/data/shenzhen_buildings.gpkg plus shifted copies
(:mod:`fixtures.scaled_city`; 3 copies = 215,709 buildings) with estimated households, in a throw-away embedded
cluster (or the database given, whose data are then kept). Both servers run as their own uvicorn process on
loopback, serving the same ``buildings`` table: gridgov at ``/tiles/buildings/{z}/{x}/{y}.mvt`` (needs a
token; per-zoom attributes and simplification), tipg (PyPI, installed with ``pip install -e .[bench]``) at
``/collections/public.buildings/tiles/WebMercatorQuad/{z}/{x}/{y}`` (all columns, as it serves by default).

Tiles: a seeded list of ``--tiles`` distinct tiles at zooms 12–16, each holding a building chosen at random.
Load: ``--concurrency`` clients on keep-alive connections asking for gzip, every pass bounded by ``--seconds``.
Passes: tipg once to warm PostgreSQL's buffers (not counted), then tipg, gridgov uncached (its cache is new and
every tile distinct, so each request renders; the X-Tile-Cache header is checked), then gridgov from its
cache (the list repeated for at least 3 s). Printed: tiles/s, median and p95 latency, bytes on the wire and
decoded, features per tile, and the ratios. The machine is shared: figures move by ±10–20% between runs.
Map data © OpenStreetMap contributors (ODbL).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "shenzhen_buildings.gpkg"
PASSWORD = "benchmark password"


# -- data ----------------------------------------------------------------------------------------------------
def load(url: str, copies: int) -> int:
    """Buildings in the database after loading the scaled city (idempotent) and estimating occupancy."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from spatial.store.occupancy import estimate_occupancy
    from fixtures.scaled_city import load_scaled_buildings
    from spatial.store import migrate, users
    from spatial.store.engine import make_engine
    from spatial.store.models import Building, User

    engine = make_engine(url, pool_size=1)
    migrate.upgrade(engine)
    with Session(engine) as session:
        started = time.perf_counter()
        inserted = load_scaled_buildings(session, DATA, copies=copies)
        estimated = estimate_occupancy(session, where=Building.households.is_(None))
        if not session.scalar(select(User).where(User.username == "bench")):
            users.create_user(session, "bench", PASSWORD, "admin")
        session.commit()
        total = session.scalar(select(func.count()).select_from(Building))
        print(f"data: {inserted:,} buildings inserted, {estimated:,} estimated, {total:,} in all "
              f"({time.perf_counter() - started:.1f} s)")
    with engine.begin() as conn:  # fresh planner statistics for the freshly loaded table
        conn.exec_driver_sql("ANALYZE buildings")
    engine.dispose()
    return total


def tile_list(n: int, copies: int, seed: int = 2026) -> list[tuple[int, int, int]]:
    """``n`` distinct tiles (z, x, y) at zooms 12–16, each around a building picked with a seeded generator."""
    import pyogrio
    import shapely

    from fixtures.scaled_city import GAP_DEG
    from tiles.grid import tile_range

    _, _, wkb, _ = pyogrio.raw.read(DATA, layer="buildings", columns=[])
    geoms = shapely.from_wkb(wkb)
    points = shapely.get_coordinates(shapely.centroid(geoms))
    xmin, _, xmax, _ = shapely.total_bounds(geoms)
    dx = (xmax - xmin) + GAP_DEG  # the shift of each copy (fixtures.scaled_city.shifted_copies)
    rng = random.Random(seed)
    chosen: dict[tuple[int, int, int], None] = {}
    while len(chosen) < n:
        lon, lat = points[rng.randrange(len(points))]
        lon += dx * rng.randrange(copies)
        z = rng.randint(12, 16)
        x, y, _, _ = tile_range((lon, lat, lon, lat), z)
        chosen[(z, x, y)] = None
    return list(chosen)


# -- servers -------------------------------------------------------------------------------------------------
def serve_gridgov(url: str, port: int) -> None:
    import uvicorn

    from api.app import create_app
    from spatial.settings import Settings

    with tempfile.TemporaryDirectory(prefix="gridgov-bench-") as data_dir:
        app = create_app(Settings(database_url=url, data_dir=Path(data_dir)))
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def asyncpg_url(url: str) -> str:
    """The psycopg URL of a Unix-socket database as a DSN asyncpg (tipg) takes: the socket folder as host."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host or "localhost"
    port = parsed.query.get("port") or parsed.port or 5432
    auth = parsed.username + (f":{parsed.password}" if parsed.password else "")
    return f"postgresql://{auth}@{quote(str(host), safe='')}:{port}/{parsed.database}"


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if (await client.get(url, timeout=2)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout_s} s")


# -- load ----------------------------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    wire: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    cache: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] * 1000 if ordered else float("nan")


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
               ) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on a kept-alive connection: (status, headers, body as sent on the wire)."""
    writer.write(request)
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while (size := int((await reader.readline()).split(b";")[0], 16)) > 0:
            parts.append(await reader.readexactly(size))
            await reader.readline()
        await reader.readline()
        body = b"".join(parts)
    else:
        body = b""
    return status, headers, body


async def run_pass(name: str, urls: list[str], headers: dict[str, str], concurrency: int, seconds: float,
                   min_seconds: float = 0.0) -> Result:
    """Ask for every URL (repeating the list until ``min_seconds`` have passed) with ``concurrency`` clients,
    each on its own keep-alive connection; stops at ``seconds`` whatever is left. The client is a minimal
    HTTP/1.1 loop on asyncio streams, so that it takes little of the CPU the servers share with it."""
    from urllib.parse import urlsplit

    result = Result(name)
    first = urlsplit(urls[0])
    extra = "".join(f"{k}: {v}\r\n" for k, v in {"Accept-Encoding": "gzip", **headers}.items())
    requests = [f"GET {urlsplit(u).path} HTTP/1.1\r\nHost: {first.netloc}\r\n{extra}\r\n".encode()
                for u in urls]
    started = time.perf_counter()
    deadline = started + seconds
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(first.hostname, first.port)
        try:
            while time.perf_counter() < deadline:
                if queue.empty():
                    if time.perf_counter() - started >= min_seconds:
                        return
                    for request in requests:
                        queue.put_nowait(request)
                request = queue.get_nowait()
                t0 = time.perf_counter()
                status, response_headers, body = await _get(reader, writer, request)
                result.latencies.append(time.perf_counter() - t0)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 200:
                    result.wire.append(len(body))
                mark = response_headers.get("x-tile-cache")
                if mark:
                    result.cache[mark] = result.cache.get(mark, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


async def describe(urls: list[str], headers: dict[str, str], sample: int = 40) -> tuple[float, float]:
    """Untimed: mean decoded tile size (KiB) over all URLs and mean features per tile over the first ``sample``."""
    import httpx
    import mapbox_vector_tile

    sizes, counts = [], []
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        for i, url in enumerate(urls):
            response = await client.get(url)
            sizes.append(len(response.content) if response.status_code == 200 else 0)
            if i < sample:
                tile = mapbox_vector_tile.decode(response.content) if response.content else {}
                counts.append(sum(len(layer["features"]) for layer in tile.values()))
    return statistics.mean(sizes) / 1024, statistics.mean(counts)


def report(result: Result) -> None:
    kib = [b / 1024 for b in result.wire] or [0]
    cache = f"  cache {result.cache}" if result.cache else ""
    print(f"{result.name:<18} {len(result.latencies):>5} tiles in {result.elapsed:5.1f} s  {result.rate:7.1f} tiles/s  "
          f"p50 {result.pct(0.5):7.1f} ms  p95 {result.pct(0.95):7.1f} ms  "
          f"gzip {statistics.mean(kib):6.1f} KiB (max {max(kib):6.1f})  statuses {result.statuses}{cache}")


async def compare(url: str, tiles: list[tuple[int, int, int]], concurrency: int, seconds: float) -> None:
    import httpx

    gridgov_port, tipg_port = 18731, 18732
    python = sys.executable
    gridgov = start([python, "-m", "benchmarks.tiles", "--serve-gridgov", url, str(gridgov_port)], {})
    tipg = start([python, "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1", "--port", str(tipg_port),
                  "--log-level", "warning", "--no-access-log"],
                 {"DATABASE_URL": asyncpg_url(url), "TIPG_DB_TABLES": '["public.buildings"]',
                  "TIPG_DB_SPATIAL_EXTENT": "false", "TIPG_DB_DATETIME_EXTENT": "false"})
    try:
        g_base, t_base = f"http://127.0.0.1:{gridgov_port}", f"http://127.0.0.1:{tipg_port}"
        await wait_ready(f"{g_base}/api/health", gridgov)
        await wait_ready(f"{t_base}/collections", tipg)
        async with httpx.AsyncClient() as client:
            token = (await client.post(f"{g_base}/api/auth/token",
                                       data={"username": "bench", "password": PASSWORD})).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        g_urls = [f"{g_base}/tiles/buildings/{z}/{x}/{y}.mvt" for z, x, y in tiles]
        t_urls = [f"{t_base}/collections/public.buildings/tiles/WebMercatorQuad/{z}/{x}/{y}" for z, x, y in tiles]
        print(f"{len(tiles)} tiles, zooms 12–16 ({', '.join(f'z{z}: {sum(t[0] == z for t in tiles)}' for z in range(12, 17))}),"
              f" concurrency {concurrency}, each pass ≤ {seconds:.0f} s")
        await run_pass("(warm-up, tipg)", t_urls, {}, concurrency, seconds)
        results = [await run_pass("tipg", t_urls, {}, concurrency, seconds),
                   await run_pass("gridgov uncached", g_urls, auth, concurrency, seconds),
                   await run_pass("gridgov cached", g_urls, auth, concurrency, seconds, min_seconds=3.0)]
        for result in results:
            report(result)
        tipg_r, uncached, cached = results
        print(f"gridgov uncached / tipg: {uncached.rate / tipg_r.rate:.2f}× tiles/s, "
              f"p95 {uncached.pct(0.95) / tipg_r.pct(0.95):.2f}×; cached / tipg: {cached.rate / tipg_r.rate:.1f}×")
        for name, urls, headers in (("gridgov", g_urls, auth), ("tipg", t_urls, {})):
            decoded, features = await describe(urls, headers)
            print(f"{name}: decoded tiles {decoded:.1f} KiB on average; {features:.0f} features per tile "
                  "(first 40 tiles)")
    finally:
        for process in (gridgov, tipg):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="an existing PostGIS database (the scaled city is loaded into it)")
    parser.add_argument("--copies", type=int, default=3, help="copies of the Shenzhen buildings (3 → 215,709)")
    parser.add_argument("--tiles", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0, help="upper bound of each pass")
    parser.add_argument("--serve-gridgov", nargs=2, metavar=("URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_gridgov:
        serve_gridgov(args.serve_gridgov[0], int(args.serve_gridgov[1]))
        return 0
    if not DATA.is_file():
        print(f"{DATA} is absent", file=sys.stderr)
        return 2
    from benchmarks.import_buildings import database

    with database(args.database_url) as (url, _):
        load(url, args.copies)
        tiles = tile_list(args.tiles, args.copies)
        asyncio.run(compare(url, tiles, args.concurrency, args.seconds))  # client on the default event loop
    return 0


if __name__ == "__main__":
    sys.exit(main())
