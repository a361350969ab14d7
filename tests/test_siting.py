"""Checkpoint siting: the exact covering solvers against brute force, merging, the uncoverable, and the store glue
on a small enclosure (walking vs straight-line coverage)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from spatial.access import Principal
from spatial.analysis import siting
from spatial.analysis.siting import max_cover, merge_demand, set_cover
from spatial.errors import InvalidInput, NotFound
from spatial.store.enclosure_siting import plan_siting
from tests.test_inspection_store import town

ADMIN = Principal(1, "admin", "admin")


def random_instance(seed: int, demand: int = 12, sites: int = 6, radius: float = 0.35):
    rng = np.random.default_rng(seed)
    d, s = rng.uniform(0, 1, (demand, 2)), rng.uniform(0, 1, (sites, 2))
    near = np.linalg.norm(d[:, None] - s[None], axis=2) <= radius
    return [frozenset(np.flatnonzero(row).tolist()) for row in near], rng.integers(1, 20, demand).tolist()


def brute_set_cover(cover, sites):
    need = [c for c in cover if c]
    for k in range(0, sites + 1):
        for combo in itertools.combinations(range(sites), k):
            if all(c & set(combo) for c in need):
                return k
    raise AssertionError


def brute_max_cover(cover, weights, sites, p):
    return max(sum(w for c, w in zip(cover, weights, strict=True) if c & set(combo))
               for combo in itertools.combinations(range(sites), p))


@pytest.mark.parametrize("solver", siting.SOLVERS)
@pytest.mark.parametrize("seed", range(6))
def test_set_cover_is_the_true_minimum(seed, solver):
    cover, weights = random_instance(seed)
    solution = set_cover(cover, weights, 6, solver=solver)
    assert solution.optimal and solution.status == "OPTIMAL"
    assert solution.objective == brute_set_cover(cover, 6) == len(solution.sites)
    chosen = set(solution.sites)
    assert all(c & chosen for c in cover if c)
    assert solution.uncoverable == tuple(i for i, c in enumerate(cover) if not c)
    assert solution.covered_weight + solution.uncoverable_weight == sum(weights)


@pytest.mark.parametrize("solver", siting.SOLVERS)
@pytest.mark.parametrize("seed, p", [(0, 1), (1, 2), (2, 3), (3, 2), (4, 4)])
def test_max_cover_is_the_true_maximum(seed, p, solver):
    cover, weights = random_instance(seed)
    solution = max_cover(cover, weights, 6, p, solver=solver)
    assert solution.optimal and len(solution.sites) == p
    assert solution.objective == brute_max_cover(cover, weights, 6, p) == solution.covered_weight
    assert solution.bound == pytest.approx(solution.objective)


def test_identical_coverage_is_merged_before_solving():
    cover = [{0, 1}] * 50 + [{2}] * 30 + [{1, 2}] * 20 + [set()] * 5
    solution = set_cover(cover, [1] * 105, 3)
    assert solution.rows == 3 and solution.demand_points == 105
    assert solution.objective == 2 and len(solution.uncoverable) == 5 and solution.uncoverable_weight == 5
    demand, empty = merge_demand(cover, [1] * 105)
    assert sorted(demand.weight) == [20, 30, 50] and len(empty) == 5


def test_kept_and_allowed_sites_are_honoured():
    cover = [{0}, {0, 1}, {1, 2}, {2}]
    assert set_cover(cover, [1] * 4, 3).sites == (0, 2)
    assert set_cover(cover, [1] * 4, 3, keep=[1]).sites == (0, 1, 2)
    restricted = set_cover(cover, [1] * 4, 3, allowed=[0, 1])
    assert restricted.sites == (0, 1) and restricted.uncoverable == (3,)
    assert max_cover(cover, [5, 1, 1, 4], 3, 1, keep=[2]).sites == (2,)


@pytest.mark.parametrize("call", [
    lambda: max_cover([{0}], [1], 1, 2),                    # p larger than the sites
    lambda: max_cover([{0}], [1], 1, 0),
    lambda: max_cover([{0}, {1}], [1, 1], 2, 1, keep=[0, 1]),
    lambda: set_cover([{0}], [1], 0),                       # no sites
    lambda: set_cover([{0}], [1, 2], 1),                    # weights do not match
    lambda: set_cover([{0}], [-1], 1),
    lambda: set_cover([{0}], [1], 1, solver="cbc"),
    lambda: set_cover([{0}], [1], 1, time_limit_s=0),
    lambda: set_cover([{0}], [1], 1, keep=[3]),
])
def test_bad_input_is_refused(call):
    with pytest.raises(InvalidInput):
        call()


# -- on the stored enclosure -----------------------------------------------------------------------------------------


def test_siting_on_an_enclosure_walking_versus_straight(db):
    t = town(db)
    walk = plan_siting(db, ADMIN, t.enclosure_id, threshold_m=60, distance="walk")
    straight = plan_siting(db, ADMIN, t.enclosure_id, threshold_m=60, distance="straight")
    assert walk.solution.optimal and straight.solution.optimal
    assert "walking" in walk.notes[0] and "straight" in straight.notes[0]
    # the north building is 53 m from the north-west gate in a straight line but 132.5 m on foot from every gate
    assert [d.building_id for d in walk.uncoverable] == [t.buildings["north"]]
    assert straight.uncoverable == ()
    assert (walk.solution.objective, straight.solution.objective) == (2, 3)
    assert any("set covering was solved for the other" in n for n in walk.notes)
    assert walk.solution.covered_weight == walk.solution.total_weight - walk.solution.uncoverable_weight
    assert walk.chosen and all(o.enclosure_id == t.enclosure_id for o in walk.chosen)


def test_max_cover_on_an_enclosure_and_only_current_checkpoints(db):
    t = town(db)
    best = plan_siting(db, ADMIN, t.enclosure_id, problem="max_cover", p=1, threshold_m=80)
    assert best.solution.optimal and len(best.chosen) == 1
    assert best.solution.objective == max(best.households_nearest.values())
    current = plan_siting(db, ADMIN, t.enclosure_id, problem="max_cover", p=1, threshold_m=80,
                                 candidates="checkpoints")
    assert len(current.candidates) == 2 and current.solution.objective <= best.solution.objective
    with pytest.raises(InvalidInput):
        plan_siting(db, ADMIN, t.enclosure_id, problem="max_cover", threshold_m=80)   # no p
    with pytest.raises(InvalidInput):
        plan_siting(db, ADMIN, t.enclosure_id, threshold_m=0)
    with pytest.raises(InvalidInput):
        plan_siting(db, ADMIN, t.enclosure_id, threshold_m=1e6)
    with pytest.raises(InvalidInput):
        plan_siting(db, ADMIN, t.enclosure_id, keep_opening_ids=[10**9])
    with pytest.raises(NotFound):
        plan_siting(db, ADMIN, 10**6)
