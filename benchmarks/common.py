"""Shared benchmark plumbing: a throw-away migrated database, a served app on loopback, percentiles, memory.

Benchmarks print figures; they never assert on time.
"""

from __future__ import annotations

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
from spatial.store.engine import make_engine

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def database(url: str | None, name: str = "gridgov_bench") -> Iterator[tuple[str, bool]]:
    """(url, throw-away?) — the given database (migrated to the newest schema), or a fresh migrated one in an
    embedded cluster that is removed afterwards."""
    if url:
        engine = make_engine(url, pool_size=1)
        migrate.upgrade(engine)
        engine.dispose()
        yield url, False
        return
    folder = Path(tempfile.mkdtemp(prefix="gridgov-bench-"))
    cluster = LocalCluster(folder)
    try:
        cluster.start()
        cluster.ensure_database(name)
        url = cluster.url(name)
        engine = make_engine(url, pool_size=1)
        migrate.upgrade(engine)
        engine.dispose()
        yield url, True
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid → (parent pid, name, CPU seconds used so far, user + system) of every live process (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
            found[int(entry)] = (int(rest[1]), name, (int(rest[11]) + int(rest[12])) / tick)
    return found


def cpu_split(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the process tree of ``server_pid`` ("server") and by every PostgreSQL process
    ("postgres"); the difference of two calls around a load run, divided by its requests, is CPU per request."""
    processes = _processes()
    tree, grew = {server_pid}, True
    while grew:
        grew = False
        for pid, (parent, _, _) in processes.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {"server": sum(processes[pid][2] for pid in tree if pid in processes),
            "postgres": sum(cpu for _, name, cpu in processes.values() if name.startswith("postgres"))}


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
