"""Benchmark: cases (网格E通) of one synthetic subdistrict over five years, through HTTP and the store.

    python -m benchmarks.cases [--cases 20000 | --full] [--requests 800] [--concurrency 8] [--workers 1]
                               [--database-url URL]

1. Loads one subdistrict of the synthetic city (fixtures/synthetic_city.py: 12 communities, 300 grids) into a
   throw-away embedded cluster, and generates ``--cases`` cases in bulk SQL (``--full``: 1,000,000) reported
   over the five years before now, with their events (report, register, dispatch, accept, report back, verify,
   close: up to 7 rows a case), a satisfaction for 70% of the closed ones, about 0.5% still open (some late, some
   flagged 督办), an assignee per grid (``bench_worker`` holds the cases of its 4 grids; a case keeps its assignee
   once dispatched, as the workflow keeps it).
2. Through HTTP (uvicorn, ``--workers`` processes (default 1; a deployment runs one per core), in a subprocess on 127.0.0.1; ``--concurrency`` client threads, http.client
   keep-alive): the escalation list of the subdistrict (``GET /api/cases/escalations``, its planner), the overdue
   list (``GET /api/cases?overdue=true``), a grid worker's open cases (``GET /api/cases?mine=true&open=true``), the
   list the field page opens with (``GET /api/cases?open=true&limit=200``: the worker's grids and own cases not
   finished) and the same of every state (its filter "all", 13,000 cases over five years at ``--full``):
   p50/p95/p99; then a new case placed and routed (``POST /api/cases``: placed in its grid and community, the
   category's department and deadline, duplicates within 50 m looked up) from the worker, one at a time.
3. The monthly figures of the subdistrict (``GET /api/cases/figures?by=community`` over the last full month, and
   ``by=month`` over the last year): best and median of 5.

Printed beside each figure: the issue's target (the peer figure the service is held to) and, for the lists, the CPU
per request of the server and of PostgreSQL during the run (2 cores hold both: their sum bounds the throughput)
and the store function behind the endpoint timed alone in this process (the floor the HTTP layer adds to).
Figures only, no assertions; the machine is shared: numbers vary with what else runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta

import httpx
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from benchmarks.common import cpu_split, database, http_load, postmaster_of
from benchmarks.nearby import PASSWORD, latency_line, server, timed
from fixtures.synthetic_city import DISTRICT, HOUSEHOLDS_PER_GRID, load_city
from spatial.store import case_followup, users
from spatial.store import cases as case_store
from spatial.store.engine import make_engine
from spatial.store.models import User

SUBDISTRICT = DISTRICT[0][:6] + "001000"
GRIDS = 300
TARGETS = {"lists": "p95 < 100 ms", "figures": "< 1 s", "report": "p95 < 50 ms"}


GENERATE = """
WITH g AS (
    SELECT row_number() OVER (ORDER BY id) - 1 AS k, id, community_code, ST_X(ST_Centroid(boundary)) AS x,
           ST_Y(ST_Centroid(boundary)) AS y
    FROM grids WHERE community_code LIKE :prefix),
n AS (SELECT count(*) AS n FROM g),
k AS (SELECT code FROM case_categories WHERE parent_code IS NOT NULL OR code IN ('public_order', 'disputes', 'market')),
kk AS (SELECT row_number() OVER (ORDER BY code) - 1 AS j, code FROM k),
raw AS (
    SELECT i, (hashint4(i) & 2147483647) % (SELECT n FROM n) AS gk, (hashint4(i * 3) & 2147483647) % 8 AS j,
           now() - make_interval(secs => ((hashint4(i * 5) & 2147483647) % (5 * 365 * 86400))) AS at,
           ((hashint4(i * 7) & 2147483647) % 10000) / 10000.0 AS u,
           ((hashint4(i * 11) & 2147483647) % 10000) / 10000.0 AS v
    FROM generate_series(1, :n) i)
INSERT INTO cases (tracking_code, category_code, location, grid_id, community_code, description, reporter_kind,
                   reporter_phone, state, priority, assignee, clock_step, clock_started_at, deadline, reported_at,
                   closed_at, satisfaction, satisfaction_channel, supervised_at, supervised_by, supervision_note)
SELECT 'Z' || upper(lpad(to_hex(raw.i), 9, '0')), kk.code,
       ST_SetSRID(ST_Point(g.x + (raw.u - 0.5) * 0.0018, g.y + (raw.v - 0.5) * 0.0016), 4326), g.id,
       g.community_code, '基准事件', 'resident', '138' || lpad((raw.i % 100000000)::text, 8, '0'), s.state,
       'normal', CASE WHEN s.state IN ('dispatched', 'handling', 'feedback', 'verified', 'closed') THEN
           CASE WHEN g.k < 4 THEN 'bench_worker' ELSE 'worker_' || g.id END END,
       CASE s.state WHEN 'closed' THEN NULL WHEN 'reported' THEN 'register' WHEN 'registered' THEN 'dispatch'
           WHEN 'feedback' THEN 'verify' ELSE 'handle' END,
       CASE WHEN s.state <> 'closed' THEN raw.at END,
       CASE WHEN s.state <> 'closed' THEN raw.at + interval '2 days' END,
       raw.at, CASE WHEN s.state = 'closed' THEN raw.at + make_interval(hours => 4 + (raw.i % 90)) END,
       CASE WHEN s.state = 'closed' AND raw.u < 0.7 THEN 1 + (raw.i % 5) END,
       CASE WHEN s.state = 'closed' AND raw.u < 0.7 THEN 'resident' END,
       CASE WHEN s.state <> 'closed' AND raw.v < 0.1 THEN raw.at + interval '1 day' END,
       CASE WHEN s.state <> 'closed' AND raw.v < 0.1 THEN 'bench_planner' END,
       CASE WHEN s.state <> 'closed' AND raw.v < 0.1 THEN '限期办结' END
FROM raw JOIN g ON g.k = raw.gk JOIN kk ON kk.j = raw.j % (SELECT count(*) FROM kk),
     LATERAL (SELECT CASE WHEN raw.at > now() - interval '12 days' OR (raw.i % 200 = 0)
                          THEN (ARRAY['reported', 'registered', 'dispatched', 'handling', 'feedback', 'verified'])[
                               1 + raw.i % 6]
                          ELSE 'closed' END AS state) s
"""

EVENTS = """
INSERT INTO case_events (case_id, at, actor, action, from_state, to_state, note, assignee)
SELECT c.id, CASE WHEN e.action = 'report' THEN c.reported_at
                  WHEN c.closed_at IS NOT NULL AND e.back IS NOT NULL THEN c.closed_at - make_interval(mins => e.back)
                  ELSE c.reported_at + make_interval(mins => e.fwd) END,
       'bench', e.action, e.from_state, e.to_state, NULL,
       CASE WHEN e.action = 'dispatch' THEN coalesce(c.assignee, 'worker_' || c.grid_id) END
FROM cases c JOIN (VALUES
    ('report', NULL, 'reported', 0, 0, NULL),
    ('register', 'reported', 'registered', 1, 10, NULL),
    ('dispatch', 'registered', 'dispatched', 2, 25, NULL),
    ('accept', 'dispatched', 'handling', 3, 55, NULL),
    ('report_back', 'handling', 'feedback', 4, NULL, 90),
    ('verify', 'feedback', 'verified', 5, NULL, 30),
    ('close', 'verified', 'closed', 6, NULL, 0)) AS e(action, from_state, to_state, rank, fwd, back)
  ON e.rank <= array_position(ARRAY['reported', 'registered', 'dispatched', 'handling', 'feedback', 'verified',
                                     'closed'], c.state) - 1
WHERE e.fwd IS NOT NULL OR c.closed_at IS NOT NULL
"""


def generate(session: Session, n: int, prefix: str = SUBDISTRICT[:9] + "%", events: bool = True) -> dict[str, int]:
    """``n`` cases spread over the grids whose community code is LIKE ``prefix`` (default the subdistrict) and,
    if ``events``, their events, in bulk SQL (the caller commits); their counts."""
    session.execute(text("SELECT setseed(0.15)"))
    session.execute(text(GENERATE), {"prefix": prefix, "n": n})
    if events:
        session.execute(text(EVENTS))
    session.execute(text("ANALYZE cases, case_events"))
    row = session.execute(text("""
        SELECT count(*), count(*) FILTER (WHERE state <> 'closed'),
               count(*) FILTER (WHERE state <> 'closed' AND deadline < now()),
               count(*) FILTER (WHERE supervised_at IS NOT NULL AND state <> 'closed'),
               count(*) FILTER (WHERE assignee = 'bench_worker' AND state <> 'closed'),
               (SELECT count(*) FROM case_events)
        FROM cases""")).one()
    return dict(zip(("cases", "open", "late", "flagged", "worker's open", "events"), row, strict=True))


def setup(session: Session) -> None:
    codes = session.execute(text("SELECT code FROM grids WHERE community_code LIKE :c ORDER BY id LIMIT 4"),
                            {"c": SUBDISTRICT[:9] + "%"}).scalars().all()
    users.create_user(session, "bench_worker", PASSWORD, "grid_worker", grid_codes=tuple(codes))
    users.create_user(session, "bench_planner", PASSWORD, "planner", scope_code=SUBDISTRICT)


def store_alone(label: str, read: Callable[[], object], runs: int = 30) -> None:
    """The store function behind the endpoint, in this process, one call at a time: its statements and the
    Python that shapes their rows, without HTTP, JSON or concurrency (the floor the HTTP layer adds to)."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        read()
        seconds.append(time.perf_counter() - started)
    latency_line(f"  {label}, store alone", seconds[5:])


def token_of(base: str, name: str) -> str:
    return httpx.post(base + "/api/auth/token", data={"username": name, "password": PASSWORD}).json()["access_token"]


NEW_CASE = "基准新事件"


def forget_reports(session: Session) -> None:
    """Delete the cases this benchmark reported through HTTP (with their events), so that the next run on a kept
    database (``--database-url``) lists the same open cases: each run reports ``--reports`` into one worker's grids."""
    session.execute(text("DELETE FROM case_events WHERE case_id IN (SELECT id FROM cases WHERE description = :d)"),
                    {"d": NEW_CASE})
    session.execute(text("DELETE FROM cases WHERE description = :d"), {"d": NEW_CASE})
    session.commit()


def bench_http(url: str, session: Session, args: argparse.Namespace) -> None:
    # where the worker reports: points inside their grids (a point of a grid's bounding box may lie in no grid)
    spots = session.execute(text(
        "SELECT ST_X(d.geom), ST_Y(d.geom) FROM (SELECT (ST_Dump(ST_GeneratePoints(ST_Union(g.boundary), :n, 3))).geom "
        "FROM grids g JOIN grid_assignments a ON a.grid_id = g.id JOIN users u ON u.id = a.user_id "
        "WHERE u.username = 'bench_worker') d"), {"n": args.reports}).all()
    with server(url, args.workers) as (base, server_pid):
        print(f"uvicorn workers: {args.workers}")
        planner, worker = token_of(base, "bench_planner"), token_of(base, "bench_worker")
        as_planner, as_worker = (users.principal_for_user(
            session, session.scalars(select(User).where(User.username == name)).one())
            for name in ("bench_planner", "bench_worker"))
        lists = [
            ("escalation list (督办) of the subdistrict", planner, "/api/cases/escalations?limit=100",
             lambda: case_followup.escalations(session, as_planner, limit=100)),
            ("overdue list of the subdistrict", planner, "/api/cases?overdue=true&limit=100",
             lambda: case_store.list_cases(session, as_planner, overdue=True, limit=100)),
            ("a grid worker's open cases", worker, "/api/cases?mine=true&open=true&limit=100",
             lambda: case_store.list_cases(session, as_worker, mine=True, open_only=True, limit=100)),
            ("the field page's first list (a worker's)", worker, "/api/cases?open=true&limit=200",
             lambda: case_store.list_cases(session, as_worker, open_only=True, limit=200)),
            ("a worker's cases of every state", worker, "/api/cases?limit=200",
             lambda: case_store.list_cases(session, as_worker, limit=200)),
        ]
        postmaster = postmaster_of(session)
        for label, token, path, read in lists:
            http_load(base, token, [path] * 40, args.concurrency, 30)  # warm every pooled connection
            before = cpu_split(server_pid, postmaster)
            latencies, wall, errors = http_load(base, token, [path] * args.requests, args.concurrency, args.max_seconds)
            after = cpu_split(server_pid, postmaster)
            latency_line(f"{label}, HTTP c. {args.concurrency}", latencies, wall)
            cpu = "  ".join(f"{k} {(after[k] - before[k]) / len(latencies) * 1000:.1f} ms" for k in after)
            print(f"  target {TARGETS['lists']}; non-2xx {errors}; CPU per request: {cpu}")
            store_alone(label, read)
        bodies = [{"category": "environment.garbage", "x": x, "y": y, "crs": "EPSG:4326", "description": NEW_CASE}
                  for x, y in spots]
        http_load(base, worker, ["/api/cases"] * 10, 1, 30, "POST", bodies[:10])
        latencies, wall, errors = http_load(base, worker, ["/api/cases"] * len(bodies), 1, args.max_seconds, "POST", bodies)
        latency_line("new case placed and routed, HTTP, one at a time", latencies, wall)
        print(f"  target {TARGETS['report']}; non-2xx {errors}")
        forget_reports(session)
        today = date.today()
        last_month_end = today.replace(day=1) - timedelta(days=1)
        for label, query in (
                ("monthly figures of the subdistrict (by community)",
                 f"by=community&from={last_month_end.replace(day=1)}&to={last_month_end}"),
                ("a year of the subdistrict by month", f"by=month&from={today - timedelta(days=364)}&to={today}")):
            seconds = []
            for _ in range(5):
                started = time.perf_counter()
                answer = httpx.get(f"{base}/api/cases/figures?{query}", headers={"Authorization": "Bearer " + planner},
                                   timeout=120)
                seconds.append(time.perf_counter() - started)
            due = sum(r["due"] for r in answer.json()["rows"]) if answer.status_code == 200 else answer.status_code
            print(f"{label:<44} best {min(seconds) * 1000:7.1f} ms  median {statistics.median(seconds) * 1000:7.1f} ms"
                  f"  ({due:,} cases due; target {TARGETS['figures']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="an existing database (the city is loaded once and kept)")
    parser.add_argument("--cases", type=int, default=20_000, help="cases over five years (default a small run)")
    parser.add_argument("--full", action="store_true", help="1,000,000 cases, as the issue asks")
    parser.add_argument("--requests", type=int, default=800, help="requests per list measured")
    parser.add_argument("--reports", type=int, default=300, help="new cases reported")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="upper bound of each HTTP run")
    args = parser.parse_args(argv)
    n = 1_000_000 if args.full else args.cases
    with database(args.database_url, "gridgov_bench_cases") as (url, _):
        engine = make_engine(url, pool_size=2)
        with Session(engine) as session:
            counts = timed(f"load one synthetic subdistrict ({GRIDS} grids)",
                           lambda: load_city(session, households=HOUSEHOLDS_PER_GRID * GRIDS))
            print("  " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
            if not session.execute(text("SELECT 1 FROM users WHERE username = 'bench_worker'")).scalar():
                setup(session)
                made = timed(f"generate {n:,} cases over five years (bulk SQL)", lambda: generate(session, n))
                print("  " + ", ".join(f"{k} {v:,}" for k, v in made.items()))
            session.commit()
            # what autovacuum does after a bulk load: the visibility map lets the lists read their index alone
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE cases, case_events"))
            bench_http(url, session, args)
            session.rollback()
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
