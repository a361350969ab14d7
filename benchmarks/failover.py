"""Drill: mixed load on gridgov served from a pg_auto_failover formation, its primary killed mid-run.

    python -m benchmarks.failover [--concurrency 8] [--duration 40] [--kill-at 10] [--kill node|postmaster]
                                  [--no-rejoin] [--standby-reads] [--folder F] [--mix nearby=2,tile=2,preview=1,save=3]

A throw-away formation (:class:`spatial.store.formation.Formation`: monitor, primary, synchronous standby, on
loopback) in a temporary folder (or in ``--folder``/formation, which must be new or empty; the logs beside it), the
demo neighbourhood and its users, uvicorn in a subprocess on the formation's multi-host URL
(``target_session_attrs=read-write``), and the load of ``benchmarks.mixed_load`` (its saves are the writes:
``PUT /api/grids/{code}/boundary`` answered 2xx only after the commit, each with a unique reason, looked for afterwards
with the version its ETag named). ``--kill-at`` seconds into the measured run the primary is killed as by a power
cut (SIGKILL to its pg_autoctl, postmaster and backends); the monitor promotes the standby; unless ``--no-rejoin``
the old primary is started again once the new one takes writes and comes back as its standby (``pg_rewind``).
``--kill postmaster`` kills PostgreSQL alone: its pg_autoctl restarts it in place, or the monitor fails over if that
takes too long.

Printed: requests, writes acknowledged, writes found afterwards and lost (0 expected), the 503s (and how many had
``Retry-After``) and any other 5xx (none expected), the time without writes (last acknowledged save before the
kill → first after it), the time from the kill to the first acknowledged save, to the monitor's promotion, and to
a primary with its synchronous standby again (the old primary rejoined). Peer: ``python -m benchmarks.mixed_load
--kill-db-at`` (one server, no standby: writes come back only when PostgreSQL is started again).

Figures only; :func:`drill` returns them for ``tests/test_failover_drill.py`` (opt-in, ``GRIDGOV_DRILL=1``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import percentiles
from benchmarks.mixed_load import Connection, Sample, _stderr_to, own_setup, prepare_workload, run, stored_saves
from benchmarks.nearby import server
from spatial.store.formation import Formation


@dataclass
class Failover:
    """perf_counter times of the fault (0.0: did not happen) and the nodes involved."""

    killed: float = 0.0
    promoted: float = 0.0             # the monitor shows another node accepting writes
    rejoined: float = 0.0             # the old primary is the new one's synchronous standby again
    old_primary: str = ""
    new_primary: str = ""


@dataclass
class DrillResult:
    requests: int
    acknowledged: int                 # saves answered 2xx
    found: int                        # of those, stored afterwards with their version and reason
    unavailable: int                  # 503 answers
    unavailable_with_retry_after: int
    other_5xx: dict[str, int]         # "kind status" → count: 5xx that are not 503 (bugs)
    connection_errors: int            # the HTTP connection failed or timed out (the server, not the database)
    no_writes_s: float | None         # last acknowledged save before the kill → first after it
    first_write_after_kill_s: float | None
    promotion_s: float | None         # kill → the monitor shows the new primary accepting writes
    rejoin_s: float | None            # kill → a primary with a synchronous standby again
    latency_503: str
    old_primary: str
    new_primary: str

    @property
    def lost(self) -> int:
        return self.acknowledged - self.found

    def lines(self) -> list[str]:
        def secs(value: float | None) -> str:
            return "never" if value is None else f"{value:.2f} s"

        return [
            f"requests: {self.requests:,}",
            f"writes acknowledged (saves answered 2xx): {self.acknowledged:,}; found afterwards: {self.found:,}; "
            f"lost: {self.lost} (0 expected)",
            f"503 answers: {self.unavailable:,} ({self.unavailable_with_retry_after:,} with Retry-After)"
            + (f", latency {self.latency_503}" if self.latency_503 else ""),
            "other 5xx: " + (", ".join(f"{k} ×{n}" for k, n in sorted(self.other_5xx.items())) or "none")
            + f"; HTTP connection errors or timeouts: {self.connection_errors}",
            f"primary {self.old_primary} killed; {self.new_primary or 'no node'} promoted {secs(self.promotion_s)} "
            "after the kill",
            f"time without writes: {secs(self.no_writes_s)} (last acknowledged save before the kill → first after)",
            f"time to first acknowledged save after the kill: {secs(self.first_write_after_kill_s)}",
            f"a primary with its synchronous standby again: {secs(self.rejoin_s)} after the kill",
        ]


def kill_primary(formation: Formation, at: float, what: str, rejoin: bool, outage: Failover,
                 timeout_s: float = 90) -> None:
    """At perf_counter ``at`` kill the node accepting writes (``what``: :meth:`Formation.kill`); note when another
    one accepts writes; then (``rejoin``, a whole node killed) start the old one again, and note when a primary
    has its synchronous standby again. A postmaster killed alone may be restarted in place by its pg_autoctl
    before the monitor fails over: then nobody is promoted."""
    time.sleep(max(0.0, at - time.perf_counter()))
    outage.old_primary = formation.writable() or ""
    if not outage.old_primary:
        return
    outage.killed = time.perf_counter()
    formation.kill(outage.old_primary, what)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        writable = formation.writable()
        if writable and writable != outage.old_primary:
            outage.promoted, outage.new_primary = time.perf_counter(), writable
            break
        if what == "postmaster" and time.perf_counter() - outage.killed > 20:
            return  # restarted in place by its pg_autoctl: nobody promoted
        time.sleep(0.1)
    if not outage.promoted or (what == "node" and not rejoin):
        return
    if what == "node":
        formation.rejoin(outage.old_primary)  # a killed postmaster's pg_autoctl makes it a standby by itself
    while time.monotonic() < deadline:
        if formation.primary() is not None:
            outage.rejoined = time.perf_counter()
            return
        time.sleep(0.2)


def summarise(samples: list[Sample], acks, stored: set, outage: Failover) -> DrillResult:
    found = sum((a.code, a.version, a.reason) in stored for a in acks)
    unavailable = [s for s in samples if s.status == 503]
    other = dict(Counter(f"{s.kind} {s.status}" for s in samples
                         if isinstance(s.status, int) and s.status >= 500 and s.status != 503))
    before = [a.end for a in acks if a.end < outage.killed]
    after = [a.end for a in acks if a.end >= outage.killed]
    killed = outage.killed or None
    return DrillResult(
        requests=len(samples), acknowledged=len(acks), found=found, unavailable=len(unavailable),
        unavailable_with_retry_after=sum(s.retry_after for s in unavailable), other_5xx=other,
        connection_errors=sum(isinstance(s.status, str) for s in samples),
        no_writes_s=min(after) - max(before) if killed and before and after else None,
        first_write_after_kill_s=min(after) - outage.killed if killed and after else None,
        promotion_s=outage.promoted - outage.killed if killed and outage.promoted else None,
        rejoin_s=outage.rejoined - outage.killed if killed and outage.rejoined else None,
        latency_503=percentiles([s.seconds for s in unavailable]) if len(unavailable) >= 2 else "",
        old_primary=outage.old_primary, new_primary=outage.new_primary)


def drill(*, concurrency: int = 8, duration: float = 40.0, kill_at: float = 10.0, warmup: float = 3.0,
          kill: str = "node", rejoin: bool = True, mix: str = "nearby=2,tile=2,preview=1,save=3",
          standby_reads: bool = False, folder: Path | None = None, echo=print) -> DrillResult:
    """Run the drill (see the module's text) in a new formation, removed afterwards unless ``folder`` is given;
    ``standby_reads``: the server also has the formation's ``prefer-standby`` URL as its read replicas (0022)."""
    own = folder is None
    folder = Path(tempfile.mkdtemp(prefix="gridgov-failover-")) if own else folder
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # the servers may run as the 'postgres' user
    formation = Formation(folder / "formation")
    try:
        started = time.perf_counter()
        url = formation.create()
        echo(f"formation created in {time.perf_counter() - started:.1f} s: {formation.folder}")
        password = own_setup(url, folder)
        args = argparse.Namespace(mix=mix, warmup=warmup, duration=duration, concurrency=concurrency,
                                  sample_every=5.0, kill_db_at=None)
        with ExitStack() as stack:
            with _stderr_to(folder / "server.log"):
                read_url = formation.url("prefer-standby") if standby_reads else None
                base, _ = stack.enter_context(server(url, 1, read_url))
            work = prepare_workload(base, password)
            echo(f"mixed load on {base} ({mix}; {concurrency} connections, {duration:g} s after {warmup:g} s "
                 f"warm-up), primary's {kill} killed at {kill_at:g} s"
                 + ("; lagging reads on the standby" if standby_reads else ""))
            outage = Failover()
            samples, acks, *_ = run(base, work, args, [], None,
                                    fault=lambda start: kill_primary(formation, start + kill_at, kill, rejoin,
                                                                     outage))
            probe = Connection(base).send("probe", "GET", "/api/health", {})[0]
            echo(f"after the run: /api/health {probe.status}")
        result = summarise(samples, acks, stored_saves(url), outage)
        lines = (folder / "server.log").read_text(errors="replace").splitlines()
        echo(f"server log: {len(lines):,} lines, {sum('Traceback' in x for x in lines)} tracebacks")
        return result
    finally:
        if formation.created:
            formation.stop()
        if own:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=40.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--kill-at", type=float, default=10.0, help="kill the primary this many seconds in")
    parser.add_argument("--kill", choices=("node", "postmaster"), default="node",
                        help="node: pg_autoctl and PostgreSQL (a power cut); postmaster: PostgreSQL only")
    parser.add_argument("--no-rejoin", action="store_true", help="leave the old primary down")
    parser.add_argument("--standby-reads", action="store_true",
                        help="serve lagging reads (uncached tiles...) from the standby (GRIDGOV_READ_DATABASE_URL)")
    parser.add_argument("--mix", default="nearby=2,tile=2,preview=1,save=3")
    parser.add_argument("--folder", type=Path, help="keep the formation (in F/formation: new or empty) and the logs in F")
    args = parser.parse_args(argv)
    if args.kill_at >= args.duration:
        parser.error("--kill-at must fall inside --duration")
    result = drill(concurrency=args.concurrency, duration=args.duration, kill_at=args.kill_at, warmup=args.warmup,
                   kill=args.kill, rejoin=not args.no_rejoin, standby_reads=args.standby_reads, mix=args.mix,
                   folder=args.folder)
    print("\n".join(result.lines()))
    print(f"(killed: the primary's {args.kill})")
    print("peer: python -m benchmarks.mixed_load --kill-db-at S (one server, no standby): no write until "
          "PostgreSQL is started again (--down-for, by hand or by a supervisor)")
    return 0 if result.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
