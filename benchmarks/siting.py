"""Checkpoint siting against PySAL spopt (LSCP, MCLP) on the same inputs: objective and runtime.

A synthetic urban village (``fixtures.synthetic_enclosure``: ~5,000 households in ~1,800 buildings, ~200 openings
where its lanes cross the wall) is loaded into a throw-away database. The coverage of each opening (walking on the
lanes inside the enclosure within the threshold, pgRouting) is computed once (timed), then expanded to one demand
row per household — the input spopt gets, as in the issue (5,000 households × 200 candidate sites) — and solved by:

* gridgov (``spatial.analysis.siting``): identical rows merged, then CP-SAT, and SCIP for comparison;
* spopt ``LSCP.from_cost_matrix`` / ``MCLP.from_cost_matrix`` with its bundled CBC (PuLP), on the raw rows and on
  the rows merged the same way (spopt takes a weight per row for MCLP; LSCP needs no weight).

Then a harder, purely geometric instance: 5,000 households and 200 sites scattered over a 3 km square,
straight-line coverage (more distinct coverage sets, a weaker LP relaxation).

Households no opening reaches are left out of set covering for both (spopt's LSCP would be infeasible).

    python -m benchmarks.siting [--households 5000] [--threshold 300] [--p 5 10] [--spopt-time-limit 600]
    [--database-url URL]   (needs ``pip install -e '.[bench]'`` for spopt)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sqlalchemy.orm import Session

from benchmarks.common import database
from fixtures.synthetic_enclosure import load_enclosure
from spatial.access import Principal
from spatial.analysis import siting
from spatial.store import coverage
from spatial.store import openings as op
from spatial.store.engine import make_engine

ADMIN = Principal(0, "benchmark", "admin")


def inputs(session: Session, households: int, threshold: float):
    started = time.perf_counter()
    enclosure = load_enclosure(session, households=households)
    session.commit()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    op.ensure_scanned(session, [enclosure])
    openings = op.openings_of(session, [enclosure])
    scan_s = time.perf_counter() - started
    demand = coverage.demand_points(session, enclosure)
    started = time.perf_counter()
    walk = coverage.distance_matrix(session, enclosure, [o.location for o in openings], [d.location for d in demand],
                                    max_m=threshold)
    walk_s = time.perf_counter() - started
    started = time.perf_counter()
    straight = coverage.distance_matrix(session, enclosure, [o.location for o in openings],
                                        [d.location for d in demand], distance="straight", max_m=threshold)
    straight_s = time.perf_counter() - started
    print(f"enclosure: {len(openings)} openings, {len(demand)} buildings, {sum(d.households for d in demand)} "
          f"households (load {load_s:.1f} s, scan {scan_s:.2f} s)")
    print(f"coverage matrix {len(openings)} × {len(demand)}: walking (pgRouting, one multi-root "
          f"pgr_drivingDistance) {walk_s:.2f} s; straight line (ST_DWithin on geography) {straight_s:.2f} s")
    return openings, demand, walk, straight


def per_household(matrix: np.ndarray, demand) -> np.ndarray:
    """buildings × sites → households × sites (one row per household, as spopt is usually fed)."""
    return np.repeat(matrix.T, [d.households for d in demand], axis=0)


def ours(cost: np.ndarray, threshold: float, ps: list[int]) -> dict:
    cover = [frozenset(np.flatnonzero(row <= threshold).tolist()) for row in cost]
    weights = [1] * len(cover)
    results = {}
    for solver in siting.SOLVERS:
        started = time.perf_counter()
        s = siting.set_cover(cover, weights, cost.shape[1], solver=solver)
        results[("LSCP", None, solver)] = (s.objective, s.optimal, time.perf_counter() - started, s.rows,
                                          s.uncoverable_weight)
        for p in ps:
            started = time.perf_counter()
            s = siting.max_cover(cover, weights, cost.shape[1], p, solver=solver)
            results[("MCLP", p, solver)] = (s.objective, s.optimal, time.perf_counter() - started, s.rows, 0)
    return results


def spopt_runs(cost: np.ndarray, threshold: float, ps: list[int], time_limit: float, merged: bool) -> dict:
    import pulp
    from spopt.locate import LSCP, MCLP

    results = {}
    reach = cost <= threshold
    keep = reach.any(axis=1)
    matrix, weights = np.where(reach[keep], 0.0, 2 * threshold), np.ones(int(keep.sum()))
    if merged:
        rows, inverse = np.unique(reach[keep], axis=0, return_inverse=True)
        matrix = np.where(rows, 0.0, 2 * threshold)
        weights = np.bincount(inverse.ravel(), minlength=len(rows)).astype(float)
    label = "spopt+merged" if merged else "spopt"
    started = time.perf_counter()
    lscp = LSCP.from_cost_matrix(matrix, threshold).solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit))
    status = pulp.LpStatus[lscp.problem.status]
    results[("LSCP", None, label)] = (pulp.value(lscp.problem.objective), status == "Optimal",
                                      time.perf_counter() - started, len(matrix), 0)
    for p in ps:
        started = time.perf_counter()
        mclp = MCLP.from_cost_matrix(matrix, weights, threshold, p).solve(
            pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit))
        status = pulp.LpStatus[mclp.problem.status]
        results[("MCLP", p, label)] = (pulp.value(mclp.problem.objective), status == "Optimal",
                                       time.perf_counter() - started, len(matrix), 0)
    return results


def report(results: dict) -> None:
    print(f"{'problem':<10} {'solver':<14} {'rows':>6} {'objective':>10} {'proven':>7} {'time':>9}")
    for (problem, p, solver), (objective, optimal, seconds, rows, _) in sorted(
            results.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2])):
        name = problem if p is None else f"{problem} p={p}"
        print(f"{name:<10} {solver:<14} {rows:>6} {objective:>10.0f} {'yes' if optimal else 'no':>7} {seconds:>8.2f}s")


def scattered(households: int, sites: int, threshold: float, ps: list[int], time_limit: float, skip_spopt: bool):
    """A harder, purely geometric instance (no database): households and candidate sites scattered uniformly over
    a 3 km square, straight-line coverage, one row per household."""
    rng = np.random.default_rng(3)
    demand, candidates = rng.uniform(0, 3000, (households, 2)), rng.uniform(0, 3000, (sites, 2))
    cost = np.linalg.norm(demand[:, None] - candidates[None], axis=2)
    print(f"\n== scattered: {households} households and {sites} sites uniformly in a 3 km square, straight line "
          f"within {threshold:g} m; {int((~(cost <= threshold).any(axis=1)).sum())} households no site reaches")
    results = ours(cost, threshold, ps)
    if not skip_spopt:
        results |= spopt_runs(cost, threshold, ps, time_limit, merged=False)
    report(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=5000)
    parser.add_argument("--threshold", type=float, default=300.0, help="walking metres")
    parser.add_argument("--p", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--spopt-time-limit", type=float, default=600.0, help="seconds per spopt solve")
    parser.add_argument("--skip-spopt", action="store_true")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with database(args.database_url, "gridgov_bench_siting") as (url, _):
        engine = make_engine(url, pool_size=1)
        with Session(engine) as session:
            openings, demand, walk, straight = inputs(session, args.households, args.threshold)
            for label, matrix in (("walking", walk), ("straight-line", straight)):
                cost = per_household(matrix, demand)
                print(f"\n== {label} coverage within {args.threshold:g} m: {cost.shape[0]} households × "
                      f"{cost.shape[1]} openings; {int((~(cost <= args.threshold).any(axis=1)).sum())} households "
                      "no opening reaches (left out of set covering)")
                results = ours(cost, args.threshold, args.p)
                if not args.skip_spopt and label == "walking":
                    results |= spopt_runs(cost, args.threshold, args.p, args.spopt_time_limit, merged=True)
                    results |= spopt_runs(cost, args.threshold, args.p, args.spopt_time_limit, merged=False)
                report(results)
            session.rollback()
        engine.dispose()
    scattered(args.households, 200, args.threshold, [10, 20], args.spopt_time_limit, args.skip_spopt)


if __name__ == "__main__":
    main()
