"""Checkpoint siting on a stored enclosure: which of its openings to keep staffed for its households.

:func:`plan_siting` reads the enclosure's openings (:mod:`spatial.store.openings`, scanned first if never scanned)
and the distances from each candidate opening to each building with households (:mod:`spatial.store.coverage`,
walking inside the enclosure or straight-line, metres), and solves set covering or maximal covering on them
(:mod:`spatial.analysis.siting`, pure). Writes nothing but that first scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.analysis.siting import DEFAULT_TIME_LIMIT_S, PROBLEMS, CoverSolution, max_cover, set_cover
from spatial.errors import InvalidInput
from spatial.store import coverage
from spatial.store import openings as op

CANDIDATES = ("all", "checkpoints")


@dataclass(frozen=True)
class SitingResult:
    """The answer for one enclosure. ``chosen`` openings to staff (with ``households_nearest``: households for whom
    each is the nearest chosen one); ``current`` how the openings staffed today do on the same measure;
    ``uncoverable`` buildings no candidate reaches within the threshold; ``notes`` say what was assumed."""

    enclosure_id: int
    enclosure_name: str
    problem: str
    distance: str
    threshold_m: float
    p: int | None
    candidates: tuple
    chosen: tuple
    households_nearest: dict
    solution: CoverSolution
    current: dict
    uncoverable: tuple
    notes: tuple[str, ...]


def plan_siting(session: Session, who: Principal, enclosure_id: int, *, problem: str = "set_cover",
                threshold_m: float = 300.0, distance: str = "walk", p: int | None = None, candidates: str = "all",
                keep_opening_ids: Sequence[int] = (), time_limit_s: float = DEFAULT_TIME_LIMIT_S,
                solver: str = "cp-sat", metric_srid: int = 4547) -> SitingResult:
    """Site checkpoints among the openings of an enclosure (``candidates`` 'all' openings, or only today's
    'checkpoints': which of them could close) for ``problem`` 'set_cover' or 'max_cover' (with ``p``).

    The coverage sets come from :func:`spatial.store.coverage.distance_matrix` (walking inside the enclosure on
    the footpath network, or straight-line), bounded by ``threshold_m``; the solve is :func:`set_cover` or
    :func:`max_cover`. Writes nothing (except a first scan of an enclosure never scanned).
    """
    if problem not in PROBLEMS:
        raise InvalidInput(f"problem must be one of {', '.join(PROBLEMS)}, got {problem!r}")
    if candidates not in CANDIDATES:
        raise InvalidInput(f"candidates must be one of {', '.join(CANDIDATES)}, got {candidates!r}")
    if problem == "max_cover" and p is None:
        raise InvalidInput("maximal covering needs p, the number of checkpoints to staff")
    coverage.check_threshold(threshold_m)
    coverage.check_distance(distance)
    ids = op.visible_enclosure_ids(session, who, enclosure_id=enclosure_id)
    op.ensure_scanned(session, ids, metric_srid=metric_srid)
    feature = op.enclosure_features(session, ids, metric_srid)[0]
    openings = op.openings_of(session, ids)
    sites = [o for o in openings if candidates == "all" or o.status == "checkpoint"]
    if not sites:
        raise InvalidInput(f"{feature['name']} has no {'openings' if candidates == 'all' else 'checkpoints'} "
                           "to choose from")
    index = {o.id: j for j, o in enumerate(sites)}
    unknown = [k for k in keep_opening_ids if k not in index]
    if unknown:
        raise InvalidInput(f"openings {unknown} are not candidates of this enclosure", openings=unknown)
    demand = coverage.demand_points(session, feature["id"])
    if not demand:
        raise InvalidInput(f"no households live in {feature['name']}: nothing to cover")
    matrix = coverage.distance_matrix(session, feature["id"], [o.location for o in sites], [d.location for d in demand],
                                      distance=distance, max_m=threshold_m, metric_srid=metric_srid)
    reach = matrix <= threshold_m
    cover = [frozenset(np.flatnonzero(reach[:, i]).tolist()) for i in range(len(demand))]
    weights = [d.households for d in demand]
    keep = [index[k] for k in keep_opening_ids]
    if problem == "set_cover":
        solution = set_cover(cover, weights, len(sites), keep=keep, time_limit_s=time_limit_s, solver=solver)
    else:
        solution = max_cover(cover, weights, len(sites), int(p), keep=keep, time_limit_s=time_limit_s, solver=solver)
    chosen = [sites[j] for j in solution.sites]
    nearest = {o.id: 0 for o in chosen}
    if chosen:
        sub = matrix[list(solution.sites)]
        for i, d in enumerate(demand):
            k = int(np.argmin(sub[:, i]))
            if np.isfinite(sub[k, i]):
                nearest[chosen[k].id] += d.households
    staffed_now = [index[o.id] for o in sites if o.status == "checkpoint" and o.checkpoint and o.checkpoint.staffed]
    current = {"staffed_checkpoints": len(staffed_now),
               "households_covered": int(sum(w for c, w in zip(cover, weights, strict=True) if c & set(staffed_now)))}
    uncoverable = tuple(demand[i] for i in solution.uncoverable)
    return SitingResult(feature["id"], feature["name"], problem, distance, float(threshold_m), p, tuple(sites),
                        tuple(chosen), nearest, solution, current, uncoverable,
                        tuple(_notes(solution, uncoverable, distance, threshold_m)))


def _notes(solution: CoverSolution, uncoverable: tuple, distance: str, threshold_m: float) -> list[str]:
    how = "walking on the footpath network" if distance == "walk" else "in a straight line"
    notes = [f"distances are {how}; the threshold is {threshold_m:g} m"]
    if uncoverable:
        notes.append(f"{solution.uncoverable_weight} households in {len(uncoverable)} buildings are farther than "
                     f"{threshold_m:g} m ({how}) from every candidate opening: no choice covers them"
                     + ("; set covering was solved for the other "
                        f"{solution.total_weight - solution.uncoverable_weight} households"
                        if solution.problem == "set_cover" else ""))
    notes.append("proven optimal" if solution.optimal else
                 f"not proven optimal within the time limit (best bound {solution.bound:g})")
    return notes
