"""Benchmark and drill: mixed load on a served gridgov with the demo neighbourhood, optionally with PostgreSQL
crashing mid-run.

    python -m benchmarks.mixed_load [--concurrency 32] [--duration 300] [--kill-db-at S [--down-for S]]
                                    [--database-url URL] [--workers 1]
    python -m benchmarks.mixed_load --url http://127.0.0.1:8000 --password PW [--server-pid PID] [--database-url URL]

The mix (weights, ``--mix``), each request as the role that makes it:

* nearby (grid worker ``worker``): ``GET /api/field/nearby`` at random points of the worker's grid (200 m, 50);
* tile (``viewer``): a z14–17 tile over the demo, combined or one layer, gzip (mostly cache hits; saves invalidate);
* preview (``planner``): ``PUT /api/grids/{code}/boundary`` with ``preview: true``, a demo grid shrunk by 1–4 m;
* save (``planner``): ``GET /api/grids/{code}`` for the ETag, then the same PUT with ``If-Match``, toggling the grid
  between its original boundary and the boundary shrunk by 2 m (neighbours follow: ``move_shared_boundary``).
  A 412 (another virtual planner saved that grid or a neighbour in between) is expected and counted apart, not
  as an error. Every save sends a unique reason; after the run each acknowledged save (its code and the version of
  its ETag) must be in the grid's history with that reason.

Load generator: ``--concurrency`` Python threads, each with one keep-alive ``http.client`` connection (as in
``benchmarks.nearby``), not wrk: a save is a GET then a PUT with the ETag it returned, and every request is timed
by kind, which wrk's Lua hooks cannot do when a thread holds several connections. The generator's own CPU time is
printed, so its share of the machine's two cores is known.

Own setup (no ``--url``): a throw-away embedded cluster (or ``--database-url``), the demo and its users, uvicorn in a
subprocess (``--workers``); the server's resident memory is read from /proc every ``--sample-every`` seconds.
The first ``--warmup`` seconds are not counted. With ``--url`` the demo must be loaded there (``gridgov demo``);
the saves are then undone at the end (each grid redrawn to its original boundary, as a new version).

``--kill-db-at S``: S seconds into the measured run PostgreSQL is stopped as by a power cut
(``pg_ctl stop -m immediate``) and started again ``--down-for`` seconds later; needs an embedded cluster (the
throw-away one, or a ``--database-url`` over an embedded cluster's socket). Reported: the answers while it is down
(503 with Retry-After expected, fast), how long PostgreSQL took to accept connections again and the service to
answer 200 again (it is not restarted), and whether every save acknowledged before the kill is stored.

Figures only, no assertions. The machine is shared: numbers vary with what else runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import shapely
from shapely.geometry import mapping, shape
from sqlalchemy import text
from sqlalchemy.engine import make_url

from benchmarks.common import children, cpu_seconds, database, percentiles
from benchmarks.nearby import server
from spatial.geometry.crs import transform_geom
from spatial.store.cluster import LocalCluster
from spatial.store.engine import acting_as, make_engine, make_sessionmaker
from tiles.grid import tile_range
from tiles.sql import tile_layers

METRIC_SRID = 4547  # the demo lies in Shenzhen: CGCS2000 GK CM 114E
KINDS = ("nearby", "tile", "preview", "save")
TIMEOUT, CONNECTION_ERROR = "timeout", "connection error"
REASON_PREFIX = "mixed load save "
CLIENT_TIMEOUT_S = 30.0


# -- what the virtual users send --------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    code: str
    original: str                     # GeoJSON text of the boundary before the run (lon/lat)
    original_area: float              # its planar area in square degrees (only compared with itself)
    shrunk: str                       # the boundary shrunk by 2 m
    previews: list[bytes]             # preview bodies (shrunk by 1–4 m)

    def save_body(self, current: dict) -> tuple[bytes, str]:
        """A save that changes the grid as read (``current``: the GeoJSON geometry of the version edited): to
        the shrunk boundary if it has its original area (±0.1 %; shrinking by 2 m takes several %), else back to
        the original. So no save is a no-op and each applied one makes a version. Returns (body, unique reason)."""
        is_original = abs(shape(current).area - self.original_area) < 1e-3 * self.original_area
        reason = REASON_PREFIX + uuid.uuid4().hex[:12]
        geometry = self.shrunk if is_original else self.original
        return f'{{"geometry": {geometry}, "reason": "{reason}", "move_shared_boundary": true}}'.encode(), reason


@dataclass(frozen=True)
class Workload:
    headers: dict[str, dict[str, str]]    # role → Authorization header
    nearby_paths: list[str]
    tile_paths: list[str]
    grids: list[Grid]


def _shrunk(geom, metres: float):
    return transform_geom(transform_geom(geom, 4326, METRIC_SRID).buffer(-metres), METRIC_SRID, 4326)


def _grid(feature: dict) -> Grid:
    geom = shape(feature["geometry"])
    previews = [json.dumps({"geometry": mapping(_shrunk(geom, m)), "preview": True, "move_shared_boundary": True,
                            "reason": "preview"}).encode() for m in (1.0, 2.5, 4.0)]
    return Grid(feature["properties"]["code"], shapely.to_geojson(geom), geom.area,
                shapely.to_geojson(_shrunk(geom, 2.0)), previews)


def _tile_paths(bounds: tuple[float, float, float, float], layers: list[str]) -> list[str]:
    """Combined and per-layer tile paths of every tile at z14–17 touching ``bounds`` (lon/lat)."""
    paths = []
    for z in range(14, 18):
        x0, y0, x1, y1 = tile_range(bounds, z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                paths.append(f"/tiles/{z}/{x}/{y}.mvt")
                paths.extend(f"/tiles/{layer}/{z}/{x}/{y}.mvt" for layer in layers)
    return paths


def prepare_workload(base: str, password: str, seed: int = 2026) -> Workload:
    """Log in as worker, viewer and planner and build every request body once (none is built under load)."""
    import httpx

    with httpx.Client(base_url=base, timeout=60) as client:
        headers = {}
        for role in ("worker", "viewer", "planner"):
            response = client.post("/api/auth/token", data={"username": role, "password": password})
            response.raise_for_status()
            headers[role] = {"Authorization": "Bearer " + response.json()["access_token"]}
        mine = client.get("/api/field/grids", headers=headers["worker"]).json()["features"]
        grids = client.get("/api/layers/grids", params={"limit": 1000}, headers=headers["planner"]).json()["features"]
    rng = random.Random(seed)
    x0, y0, x1, y1 = shapely.union_all([shape(f["geometry"]) for f in mine]).bounds
    nearby = [("/api/field/nearby?" + urlencode({"lon": rng.uniform(x0, x1), "lat": rng.uniform(y0, y1),
                                                 "radius": 200, "limit": 50})) for _ in range(2000)]
    everything = shapely.union_all([shape(f["geometry"]) for f in grids]).bounds
    layers = [name for name, spec in tile_layers().items() if not spec.scoped]
    return Workload(headers, nearby, _tile_paths(everything, layers), [_grid(f) for f in grids])


# -- one virtual user ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    kind: str
    status: int | str                 # HTTP status, or TIMEOUT / CONNECTION_ERROR
    seconds: float
    end: float                        # monotonic time the answer arrived
    retry_after: bool


@dataclass(frozen=True)
class Ack:
    code: str
    version: int
    reason: str
    end: float


class Connection:
    """One keep-alive HTTP/1.1 connection, reopened after an error."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.conn: http.client.HTTPConnection | None = None

    def send(self, kind: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None
             ) -> tuple[Sample, dict[str, str], bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=CLIENT_TIMEOUT_S)
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
            status, got = response.status, {k.lower(): v for k, v in response.getheaders()}
        except TimeoutError:
            status, got, data = TIMEOUT, {}, b""
        except (OSError, http.client.HTTPException):
            status, got, data = CONNECTION_ERROR, {}, b""
        if isinstance(status, str) or got.get("connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        now = time.perf_counter()
        return Sample(kind, status, now - started, now, "retry-after" in got), got, data


def virtual_user(base: str, work: Workload, weights: list[float], deadline: float, rng: random.Random,
                 samples: list[Sample], acks: list[Ack]) -> None:
    """Send requests of the mix until ``deadline`` (perf_counter), appending what happened."""
    conn = Connection(base)
    json_type = {"Content-Type": "application/json"}
    while time.perf_counter() < deadline:
        kind = rng.choices(KINDS, weights)[0]
        if kind == "nearby":
            samples.append(conn.send(kind, "GET", rng.choice(work.nearby_paths), work.headers["worker"])[0])
        elif kind == "tile":
            samples.append(conn.send(kind, "GET", rng.choice(work.tile_paths),
                                     {**work.headers["viewer"], "Accept-Encoding": "gzip"})[0])
        elif kind == "preview":
            grid = rng.choice(work.grids)
            samples.append(conn.send(kind, "PUT", f"/api/grids/{grid.code}/boundary",
                                     {**work.headers["planner"], **json_type}, rng.choice(grid.previews))[0])
        else:
            grid = rng.choice(work.grids)
            read, got, data = conn.send("save: read ETag", "GET", f"/api/grids/{grid.code}", work.headers["planner"])
            samples.append(read)
            if read.status != 200:
                continue
            body, reason = grid.save_body(json.loads(data)["geometry"])
            sample, got, _ = conn.send(kind, "PUT", f"/api/grids/{grid.code}/boundary",
                                       {**work.headers["planner"], **json_type, "If-Match": got["etag"]}, body)
            samples.append(sample)
            if isinstance(sample.status, int) and 200 <= sample.status < 300:
                code, _, version = got["etag"].strip('"').partition(".v")
                acks.append(Ack(code, int(version), reason, sample.end))
    if conn.conn is not None:
        conn.conn.close()


# -- the server's memory and PostgreSQL's crash ---------------------------------------------------------
def server_pids(port: int) -> list[int]:
    """Processes serving ``port`` that this benchmark started: uvicorn children of this process, and theirs."""
    mine, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == mine and b"uvicorn" in cmdline and str(port).encode() in cmdline:
            found.append(int(entry.name))
    return found


def rss_mib(pids: list[int]) -> float | None:
    """Resident memory of the processes and their children in MiB (None if none is alive)."""
    total, alive = 0, False
    for pid in pids + [c for p in pids for c in children(p)]:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    alive = True
        except OSError:
            continue
    return total / 1024 if alive else None


def cluster_of(url: str) -> LocalCluster | None:
    """The embedded cluster a URL points at (its host is ``<data_dir>/run`` beside ``<data_dir>/pg``), else None."""
    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host or ""
    data_dir = Path(host if isinstance(host, str) else host[-1]).parent
    if not (data_dir / "pg" / "PG_VERSION").exists():
        return None
    return LocalCluster(data_dir, port=int(parsed.query.get("port") or parsed.port or 5432))


def crash(cluster: LocalCluster) -> None:
    """Stop PostgreSQL as a power cut would (no checkpoint; crash recovery at the next start)."""
    cluster.stop(crash=True)


@dataclass
class Outage:
    killed: float = 0.0               # perf_counter times
    restarted: float = 0.0            # `pg_ctl start` sent
    accepting: float = 0.0            # `pg_ctl start -w` returned: PostgreSQL accepts connections
    service_back: float = 0.0         # first 200 of /api/health after that


def kill_and_restart(cluster: LocalCluster, base: str, at: float, down_for: float, outage: Outage) -> None:
    """At perf_counter ``at`` crash PostgreSQL, start it ``down_for`` seconds later, then poll /api/health."""
    time.sleep(max(0.0, at - time.perf_counter()))
    outage.killed = time.perf_counter()
    crash(cluster)
    time.sleep(down_for)
    outage.restarted = time.perf_counter()
    cluster.start()
    outage.accepting = time.perf_counter()
    conn = Connection(base)
    for _ in range(600):
        sample = conn.send("probe", "GET", "/api/health", {})[0]
        if sample.status == 200:
            outage.service_back = sample.end
            return
        time.sleep(0.1)


def sample_memory(pids: list[int], every_s: float, until: float, out: list[tuple[float, float]]) -> None:
    while time.perf_counter() < until:
        rss = rss_mib(pids)
        if rss is not None:
            out.append((time.perf_counter(), rss))
        time.sleep(every_s)


# -- the run ---------------------------------------------------------------------------------------------
def run(base: str, work: Workload, args: argparse.Namespace, pids: list[int], cluster: LocalCluster | None,
        fault: Callable[[float], None] | None = None
        ) -> tuple[list[Sample], list[Ack], list[tuple[float, float]], Outage | None, float, float, float]:
    """Drive the mix; returns (samples, acks, memory samples, outage, measured start, end, generator CPU s).

    ``fault(start)``, if given, runs in a thread of its own beside the load (``start``: the perf_counter time the
    measured run begins), instead of ``--kill-db-at`` (``benchmarks.failover`` kills a formation's primary)."""
    weights = [float(dict(p.split("=") for p in args.mix.split(","))[k]) for k in KINDS]
    start = time.perf_counter() + args.warmup
    end = start + args.duration
    per_thread = [([], []) for _ in range(args.concurrency)]
    threads = [threading.Thread(target=virtual_user, args=(base, work, weights, end, random.Random(n), s, a),
                                daemon=True) for n, (s, a) in enumerate(per_thread)]
    memory: list[tuple[float, float]] = []
    helpers = [threading.Thread(target=sample_memory, args=(pids, args.sample_every, end, memory), daemon=True)]
    outage = None
    if fault is not None:
        helpers.append(threading.Thread(target=fault, args=(start,), daemon=True))
    elif args.kill_db_at is not None:
        outage = Outage()
        helpers.append(threading.Thread(target=kill_and_restart, daemon=True,
                                        args=(cluster, base, start + args.kill_db_at, args.down_for, outage)))
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    for t in threads + helpers:
        t.start()
    for t in threads + helpers:
        t.join(timeout=args.warmup + args.duration + CLIENT_TIMEOUT_S + 120)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    samples = [s for thread_samples, _ in per_thread for s in thread_samples if s.end >= start]
    acks = [a for _, thread_acks in per_thread for a in thread_acks]
    return samples, acks, memory, outage, start, end, cpu


def _ok(sample: Sample) -> bool:
    return isinstance(sample.status, int) and (200 <= sample.status < 300 or sample.status == 304)


def report_load(samples: list[Sample], seconds: float, title: str) -> None:
    print(title)
    print(f"  {'kind':<16} {'requests':>9} {'req/s':>7}  latency (all answers)")
    for kind in (*KINDS[:3], "save: read ETag", "save"):
        mine = [s for s in samples if s.kind == kind]
        if len(mine) >= 2:
            print(f"  {kind:<16} {len(mine):>9,} {len(mine) / seconds:>7.1f}  {percentiles([s.seconds for s in mine])}")
    if len(samples) >= 2:
        print(f"  {'all':<16} {len(samples):>9,} {len(samples) / seconds:>7.1f}  "
              f"{percentiles([s.seconds for s in samples])}")
    saves = [s for s in samples if s.kind == "save"]
    refused = sum(s.status == 412 for s in saves)
    print(f"  saves: {len(saves) - refused:,} applied, {refused:,} refused with 412 (the virtual planners' own "
          "concurrency: expected, not errors)")
    errors = Counter((s.kind, s.status) for s in samples if not _ok(s) and not (s.kind == "save" and s.status == 412))
    print("  errors: " + (", ".join(f"{kind} {status} ×{n}" for (kind, status), n in sorted(errors.items(), key=str))
                          or "none"))


def report_memory(memory: list[tuple[float, float]], start: float, every_s: float) -> None:
    if not memory:
        print("server memory: not measured (pass --server-pid with --url)")
        return
    measured = [(t, m) for t, m in memory if t >= start] or memory
    series = ", ".join(f"{m:.0f}" for _, m in measured[:: max(1, round(30 / every_s))])
    print(f"server RSS (MiB, sampled every {every_s:g} s): before load {memory[0][1]:.0f}, start {measured[0][1]:.0f}, "
          f"max {max(m for _, m in measured):.0f}, end {measured[-1][1]:.0f}; every ~30 s: {series}")


def report_outage(samples: list[Sample], outage: Outage, acks: list[Ack], stored: set | None, start: float) -> None:
    if not outage.killed:
        print("PostgreSQL was not killed (the run ended first)")
        return
    back = outage.service_back or outage.accepting
    print(f"PostgreSQL killed at {outage.killed - start:.1f} s (pg_ctl stop -m immediate), started again "
          f"{outage.restarted - outage.killed:.1f} s later; accepting connections "
          f"{outage.accepting - outage.restarted:.2f} s after the start command (crash recovery)")
    if outage.service_back:
        print(f"service answered 200 again {outage.service_back - outage.accepting:.2f} s after PostgreSQL was back "
              f"({outage.service_back - outage.killed:.1f} s after the kill), without being restarted")
    else:
        print("service did NOT answer 200 again within 60 s of PostgreSQL being back")
    down = [s for s in samples if outage.killed <= s.end <= back and s.kind != "probe"]
    unavailable = [s for s in down if s.status == 503]
    with_retry = sum(s.retry_after for s in unavailable)
    others = Counter((s.kind, s.status) for s in down if s.status != 503)
    print(f"while down: {len(down):,} answers; 503 {len(unavailable):,} ({with_retry:,} with Retry-After)"
          + (f", 503 latency {percentiles([s.seconds for s in unavailable])}" if len(unavailable) >= 2 else ""))
    listed = ", ".join(f"{k} {st} ×{n}" for (k, st), n in sorted(others.items(), key=str))
    print(f"  other answers in that window (tile cache; requests finishing at its two edges): {listed or 'none'}")
    before = [a for a in acks if a.end < outage.killed]
    if stored is not None:
        missing = [a for a in before if (a.code, a.version, a.reason) not in stored]
        print(f"saves acknowledged before the kill: {len(before):,}; missing after recovery: {len(missing)}")


def stored_saves(url: str) -> set[tuple[str, int, str]]:
    """(code, version, reason) of every grid version written by this benchmark's saves."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT code, version, reason FROM grid_versions WHERE reason LIKE :p"),
                                {"p": REASON_PREFIX + "%"}).all()
    finally:
        engine.dispose()
    return {(code, version, reason) for code, version, reason in rows}


def undo_saves(base: str, work: Workload) -> None:
    """Redraw every grid to the boundary it had before the run (as new versions), retrying on 412."""
    conn = Connection(base)
    headers = {**work.headers["planner"], "Content-Type": "application/json"}
    for grid in work.grids:
        for _ in range(5):
            _, got, _ = conn.send("undo", "GET", f"/api/grids/{grid.code}", work.headers["planner"])
            body = f'{{"geometry": {grid.original}, "reason": "mixed load: undo", "move_shared_boundary": true}}'
            sample = conn.send("undo", "PUT", f"/api/grids/{grid.code}/boundary",
                               {**headers, "If-Match": got.get("etag", "")}, body.encode())[0]
            if sample.status != 412:
                break


def drive(base: str, url: str | None, args: argparse.Namespace, password: str, pids: list[int],
          generator: str) -> None:
    cluster = cluster_of(url) if url else None
    if args.kill_db_at is not None and cluster is None:
        sys.exit("--kill-db-at needs an embedded cluster: leave out --database-url, or give an embedded one's URL")
    work = prepare_workload(base, password)
    print(f"mixed load on {base}: {args.concurrency} connections for {args.duration:g} s (+{args.warmup:g} s warm-up "
          f"not counted); mix {args.mix}; {len(work.grids)} grids, {len(work.tile_paths)} tile paths; "
          f"load generator: {generator}")
    server_cpu = cpu_seconds(pids)
    samples, acks, memory, outage, start, end, cpu = run(base, work, args, pids, cluster)
    seconds = end - start
    window = (outage.killed, outage.service_back or outage.accepting) if outage and outage.killed else None
    steady = [s for s in samples if window is None or not window[0] <= s.end <= window[1]]
    title = "results" if window is None else "results outside the outage (kill → service answering again)"
    report_load(steady, seconds - (window[1] - window[0] if window else 0.0), title)
    report_memory(memory, start, args.sample_every)
    server_cpu = cpu_seconds(pids) - server_cpu if pids else None
    print(f"CPU over the run: load generator {cpu:.1f} s ({100 * cpu / seconds:.0f}% of one core)"
          + (f", server {server_cpu:.1f} s ({100 * server_cpu / seconds:.0f}% of one core)" if server_cpu else ""))
    stored = stored_saves(url) if url else None
    if stored is not None:
        missing = [a for a in acks if (a.code, a.version, a.reason) not in stored]
        print(f"saves acknowledged: {len(acks):,}; in the history with their version and reason: "
              f"{len(acks) - len(missing):,}; missing: {len(missing)}")
    if outage is not None:
        report_outage(samples, outage, acks, stored, start)
    if args.url:
        undo_saves(base, work)


def own_setup(url: str, data_dir: Path) -> str:
    """Load the demo and its users into ``url``; returns the demo password."""
    from fixtures.demo import load_demo
    from gridgov.cli import _demo_users

    engine = make_engine(url, pool_size=1)
    try:
        with make_sessionmaker(engine).begin() as session, acting_as(session, "benchmark", "demo"):
            load_demo(session)
            return _demo_users(session, data_dir / "demo-credentials.txt")
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a served gridgov with the demo loaded (default: start one)")
    parser.add_argument("--password", help="the demo users' password (with --url)")
    parser.add_argument("--server-pid", type=int, action="append", default=[], help="with --url: for its memory")
    parser.add_argument("--database-url", help="the database (default: a throw-away embedded cluster)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the server started")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=300.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before measuring")
    parser.add_argument("--mix", default="nearby=4,tile=4,preview=1,save=1")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between memory samples")
    parser.add_argument("--kill-db-at", type=float, help="crash PostgreSQL this many seconds into the measured run")
    parser.add_argument("--down-for", type=float, default=10.0, help="seconds PostgreSQL stays down")
    args = parser.parse_args(argv)
    generator = f"{args.concurrency} Python threads, one keep-alive http.client connection each"
    if args.url:
        if not args.password:
            parser.error("--url needs --password (the demo users' password)")
        drive(args.url.rstrip("/"), args.database_url, args, args.password, args.server_pid, generator)
        return 0
    with database(args.database_url, "gridgov_bench_mixed") as (url, _), \
            tempfile.TemporaryDirectory(prefix="gridgov-mixed-") as folder, ExitStack() as stack:
        password = own_setup(url, Path(folder))
        log = Path(folder) / "server.log"
        with _stderr_to(log):  # the server inherits it: its warnings (one per 503) do not drown the figures
            base, _ = stack.enter_context(server(url, args.workers))
        pids = server_pids(urlsplit(base).port)
        drive(base, url, args, password, pids, generator + f"; uvicorn {args.workers} worker(s), own process")
        lines = log.read_text(errors="replace").splitlines()
        print(f"server log: {len(lines):,} lines, {sum('database unavailable' in x for x in lines):,} of them "
              "'database unavailable' warnings" + "".join(f"\n  {x}" for x in lines[-3:]))
    return 0


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """File descriptor 2 goes to ``path`` inside the block (for the subprocesses started there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as target:
        os.dup2(target.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


if __name__ == "__main__":
    sys.exit(main())
