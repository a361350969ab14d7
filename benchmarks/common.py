"""Shared benchmark plumbing: a throw-away migrated database, a served app on loopback, percentiles, memory.

Benchmarks print figures; they never assert on time.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spatial.store import migrate
from spatial.store.cluster import LocalCluster
from spatial.store.database import migrate_schema
from spatial.store.engine import make_engine

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def database(url: str | None, name: str = "gridgov_bench", keep: Path | None = None) -> Iterator[tuple[str, bool]]:
    """(url, throw-away?) — the given database (migrated to the newest schema), or a migrated one in an embedded
    cluster: in the folder ``keep`` (made if new, reused if there, stopped but kept afterwards), else in a fresh
    temporary folder that is removed afterwards."""
    if url:
        engine = make_engine(url, pool_size=1)
        migrate.upgrade(engine)
        engine.dispose()
        yield url, False
        return
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="gridgov-bench-"))
    cluster = LocalCluster(folder)
    try:
        cluster.start()
        cluster.ensure_database(name)
        url = cluster.owner_url(name)
        engine = make_engine(url, pool_size=1)
        migrate_schema(engine, cluster, name)
        engine.dispose()
        yield url, keep is None
    finally:
        cluster.stop()
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                for c in (t / "children").read_text().split()]
    except OSError:
        return []


def _cpu(pid: int | str) -> float:
    """user + system CPU seconds of one process so far (clock ticks from /proc/<pid>/stat; 0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of the processes and their children."""
    return sum(_cpu(pid) for pid in pids + [c for p in pids for c in children(p)])


def cpu_split(server_pid: int, postmaster_pid: int | None = None) -> dict[str, float]:
    """CPU seconds used so far by the server (``server_pid`` and its workers) and by PostgreSQL: the cluster of
    ``postmaster_pid`` (it and its children, the backends), else every PostgreSQL process of the machine; the
    difference of two calls around a load run, divided by its requests, is CPU per request."""
    if postmaster_pid is not None:
        return {"server": cpu_seconds([server_pid]), "postgres": cpu_seconds([postmaster_pid])}
    postgres = [entry.name for entry in Path("/proc").iterdir() if entry.name.isdigit()
                and _comm(entry.name).startswith("postgres")]
    return {"server": cpu_seconds([server_pid]), "postgres": sum(_cpu(pid) for pid in postgres)}


def postmaster_of(session) -> int:
    """The pid of the PostgreSQL server of ``session`` (the parent of its backend; the server is on this machine)."""
    from sqlalchemy import text

    backend = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return ""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(app) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def percentiles(samples_s: list[float]) -> str:
    """'p50 … p95 … p99 … ms (n=…)' of durations in seconds."""
    q = statistics.quantiles(sorted(samples_s), n=100, method="inclusive")
    return (f"p50 {q[49] * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms "
            f"(n={len(samples_s)})")


def http_load(base: str, token: str, paths: list[str], concurrency: int, max_seconds: float,
         method: str = "GET", bodies: list[dict] | None = None) -> tuple[list[float], float, int]:
    """Each path once (with its JSON body, if any), from ``concurrency`` threads (http.client, keep-alive: a light
    client, so that the figures are the server's); (latencies, wall seconds, non-2xx answers)."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    host, port = base.removeprefix("http://").split(":")
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    jobs = list(zip(paths, bodies or [None] * len(paths), strict=True))

    def worker(part) -> None:
        nonlocal errors
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            for path, body in part:
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
                response = connection.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    errors += not 200 <= response.status < 300
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(jobs[i::concurrency],)) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started, errors
