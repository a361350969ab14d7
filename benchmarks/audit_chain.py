"""The price of the audit's integrity (migration 0010, spatial/store/audit_chain.py), on a throw-away cluster.

* one audit row written the way a nearby read writes it (one autocommit INSERT of 50 household ids, as
  ``gridgov_app``), with the stamping trigger and without it (disabled by the superuser, the column default back);
* the same while a seal of ``--rows`` rows runs beside it (the request path takes no lock the sealer holds);
* sealing and verifying: rows per second.

    python -m benchmarks.audit_chain [--rows 100000] [--inserts 3000]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from spatial.store.audit_chain import seal, verify
from spatial.store.cluster import LocalCluster
from spatial.store.database import migrate_schema
from spatial.store.engine import make_engine
from spatial.store.privileges import login_url

INSERT = ("INSERT INTO audit_log (username, role, action, object_type, object_id, fields, purpose, result, "
          "client_addr) SELECT %s, %s, 'read_masked', 'household', %s, '{head_name,head_phone}', 'nearby', 'ok', "
          "'127.0.0.1' FROM (SELECT set_config('synchronous_commit', 'off', true)) relaxed")
IDS = ",".join(str(i) for i in range(100_000, 100_050))


def insert_latencies_ms(conninfo: str, n: int, stop: threading.Event | None = None) -> list[float]:
    out = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while len(out) < n and not (stop and stop.is_set()):
            started = time.perf_counter()
            conn.execute(INSERT, ("worker1", "grid_worker", IDS), prepare=True)
            out.append((time.perf_counter() - started) * 1000)
    return out


def describe(label: str, ms: list[float]) -> None:
    ms = sorted(ms)
    print(f"{label:<52} n={len(ms):>6}  mean {statistics.fmean(ms):.3f} ms  p50 {ms[len(ms) // 2]:.3f}  "
          f"p99 {ms[int(len(ms) * 0.99)]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--inserts", type=int, default=3000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gridgov-bench-"))
    cluster = LocalCluster(folder)
    try:
        cluster.start()
        cluster.ensure_database("bench")
        owner = make_engine(cluster.owner_url("bench"), pool_size=2)
        migrate_schema(owner, cluster, "bench")
        app_url = login_url(cluster.owner_url("bench"))
        app = make_engine(app_url, pool_size=2)
        app_info = app.url.set(drivername="postgresql").render_as_string(hide_password=False)
        admin = cluster.url("bench").replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("INSERT INTO users (username, password_hash, role) VALUES ('worker1', 'x', 'grid_worker')")
        insert_latencies_ms(app_info, 500)  # warm up
        for round_ in range(2):
            describe(f"insert with the stamping trigger (round {round_ + 1})",
                     insert_latencies_ms(app_info, args.inserts))
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_stamp")
                conn.execute("ALTER TABLE audit_log ALTER COLUMN id SET DEFAULT nextval('audit_log_id_seq')")
            describe(f"insert without it, as before 0010 (round {round_ + 1})",
                     insert_latencies_ms(app_info, args.inserts))
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("ALTER TABLE audit_log ALTER COLUMN id DROP DEFAULT")
                conn.execute("ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_stamp")
        started = time.perf_counter()
        sealed = seal(app)
        print(f"sealed the {sealed.rows:,} rows of the measurements in {time.perf_counter() - started:.2f} s")
        with psycopg.connect(app_info, autocommit=True) as conn:
            conn.execute("INSERT INTO audit_log (username, action, object_id) SELECT 'worker1', 'read_masked', "
                         "%s FROM generate_series(1, %s)", (IDS, args.rows))
        done = threading.Event()
        beside: list[float] = []
        thread = threading.Thread(target=lambda: beside.extend(insert_latencies_ms(app_info, 10**9, done)))
        thread.start()
        started = time.perf_counter()
        sealed = seal(app)
        seconds = time.perf_counter() - started
        done.set()
        thread.join()
        print(f"seal: {sealed.rows:,} rows in {seconds:.2f} s = {sealed.rows / seconds:,.0f} rows/s "
              "(while one connection kept inserting)")
        describe("insert while that seal ran", beside)
        started = time.perf_counter()
        verdict = verify(owner)
        seconds = time.perf_counter() - started
        print(f"verify: {verdict.length:,} rows in {seconds:.2f} s = {verdict.length / seconds:,.0f} rows/s; "
              "it says (the rows written with the trigger disabled are found):")
        for line in verdict.lines():
            print("   ", line[:150])
        for label in ("the next seal (what was written meanwhile)", "a seal with nothing to do",
                      "another one, after VACUUM of the queue"):
            if label.startswith("another"):
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute("VACUUM audit_unsealed")
            started = time.perf_counter()
            idle = seal(app)
            print(f"{label}: {(time.perf_counter() - started) * 1000:.1f} ms ({idle.rows} rows)")
        owner.dispose()
        app.dispose()
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
