"""Inspection on the demo neighbourhood (fixtures/demo.py): 9 enclosures, 84 checkpoints (27 staffed, 55 sealed,
2 unstaffed), the urban village's lanes and the estates' gates."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import text

from fixtures.demo import SUBDISTRICT, load_demo
from spatial.access import Principal
from spatial.store import coverage, patrols
from spatial.store.enclosure_siting import plan_siting
from spatial.store import openings as op

INSPECTOR = Principal(2, "insp", "inspector", scope_code=SUBDISTRICT[0])
VILLAGE = "上沙村"


@pytest.fixture
def demo(db):
    load_demo(db)
    ids = op.visible_enclosure_ids(db, INSPECTOR)
    results = op.scan_openings(db, ids)
    village = db.scalar(text("SELECT id FROM enclosures WHERE name = :n"), {"n": VILLAGE})
    return db, results, village


def test_every_demo_checkpoint_sits_on_a_detected_opening(demo):
    db, results, _ = demo
    assert len(results) == 9
    assert sum(r.crossings for r in results) == 84
    assert sum(len(r.linked_checkpoints) for r in results) == 84
    assert not any(r.far_checkpoints or r.from_checkpoints for r in results)
    openings = op.openings_of(db, [r.enclosure_id for r in results])
    assert Counter(o.status for o in openings) == {"sealed": 55, "checkpoint": 29}
    assert Counter(o.unguarded_reason for o in openings if o.unguarded_reason) == {"checkpoint_unstaffed": 2}
    assert all(o.highway for o in openings)                        # every one is on a street of the network
    assert sum(bool(o.street_name) for o in openings) >= 40       # unnamed estate service roads and lanes
    sealed = [o for o in openings if o.status == "sealed"]
    assert all(o.barrier_m > 0 and o.barrier_kind == "unrecorded" for o in sealed)


def test_subdistrict_report_walking_is_never_shorter_than_straight(demo):
    db, _, village = demo
    walk = coverage.coverage_report(db, INSPECTOR, division=SUBDISTRICT[0], threshold_m=150)
    straight = coverage.coverage_report(db, INSPECTOR, division=SUBDISTRICT[0], threshold_m=150, distance="straight")
    totals = walk.totals
    assert (totals["enclosures"], totals["openings"], totals["sealed"], totals["staffed_checkpoints"],
            totals["unguarded"]) == (9, 84, 55, 27, 2)
    assert totals["households"] == db.scalar(text("SELECT count(*) FROM households"))
    assert totals["households_beyond"] > straight.totals["households_beyond"]
    for w, s in zip(walk.enclosures, straight.enclosures, strict=True):
        for bw, bs in zip(w.buildings, s.buildings, strict=True):
            assert bw.distance_m is None or bw.distance_m >= bs.distance_m - 0.5
    by_name = {e.enclosure["name"]: e for e in walk.enclosures}
    assert by_name[VILLAGE].staffing.none.is_empty                   # the village streets are staffed 24/7
    assert any(not e.staffing.sole[o.id].is_empty for e in walk.enclosures for o in e.staffed)
    assert any(c.many_grids for c in by_name[VILLAGE].checkpoint_loads)


def test_siting_and_patrols_in_the_village(demo):
    db, _, village = demo
    walk = plan_siting(db, INSPECTOR, village, threshold_m=200)
    straight = plan_siting(db, INSPECTOR, village, threshold_m=200, distance="straight")
    assert walk.solution.optimal and straight.solution.optimal
    assert walk.solution.objective >= straight.solution.objective
    assert walk.solution.rows < walk.solution.demand_points        # identical coverage merged
    best3 = plan_siting(db, INSPECTOR, village, problem="max_cover", p=3, threshold_m=200)
    assert best3.solution.optimal and best3.solution.objective <= best3.solution.total_weight
    staffed = [o.checkpoint.id for o in op.openings_of(db, [village]) if o.checkpoint and o.checkpoint.staffed]
    start = op.openings_of(db, [village])[0].location
    plan = patrols.plan_patrol(db, INSPECTOR, start, checkpoint_ids=staffed)
    assert plan.tour.optimal and len(plan.tour.order) == len(staffed) == 11
    assert list(plan.tour.arrival_m) == sorted(plan.tour.arrival_m)
    grid = db.scalar(text("SELECT id FROM grids WHERE code LIKE '44030409600101'"))
    lanes = patrols.plan_street_patrol(db, INSPECTOR, grid_id=grid)
    assert lanes.optimal and lanes.length_m >= lanes.lanes_m and lanes.lanes > 20
