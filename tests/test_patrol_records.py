"""Patrol records (issue 17 §2): map matching on the real Shatou walking network, scores, datum-shift detection,
bad input, who may read a track (audited), retention.

One module-scoped database: the Shatou streets (../shared/data) imported once, a community and grid drawn over a
synthetic route's surroundings, two workers, their leader and an admin. Every test works in a savepoint.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, box
from sqlalchemy import text

from benchmarks.mapmatch import graph_of, scores, synthetic_track
from spatial.analysis import mapmatch
from spatial.errors import Conflict, InvalidInput, OutOfScope
from spatial.geometry import crs as crsmod
from spatial.io import import_streets
from spatial.store import network as net
from spatial.store import patrol_records as pr
from spatial.store import users
from spatial.store.engine import acting_as
from spatial.store.models import Division, Grid, User
from tests.conftest import rolled_back

pytestmark = pytest.mark.shared_data
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)
COMMUNITY = "440304099001"


def lonlat(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return crsmod.transform_xy(xy[:, 0], xy[:, 1], 4547, 4326)


@pytest.fixture(scope="module")
def shatou(engine, shared_data):
    """(session, the network, a 10-minute synthetic track, its grid id, principals by name, building ids)."""
    with rolled_back(engine) as s:
        import_streets(s, shared_data / "futian_shatou.gpkg")
        lines = net.edge_lines(s, "walk", (113.0, 22.0, 115.0, 23.0), margin_m=0.0)
        network = mapmatch.build_network(lines.ids, lines.sources, lines.targets, lines.lines)
        rng = np.random.default_rng(7)
        track = synthetic_track(graph_of(lines), rng, 600, sigma_range=(8.0, 8.0), dropouts=0)
        x0, y0 = track.xy.min(axis=0) - 150
        x1, y1 = track.xy.max(axis=0) + 150
        (ax0, ax1), (ay0, ay1) = lonlat(np.array([[x0, y0], [x1, y1]]))
        (bx0, bx1), (by0, by1) = lonlat(np.array([[x0 + 1, y0 + 1], [x1 - 1, y1 - 1]]))
        area = MultiPolygon([box(ax0, ay0, ax1, ay1)])
        inner = MultiPolygon([box(bx0, by0, bx1, by1)])
        s.add_all([Division(code="440304000000", level="district", name="福田区"),
                   Division(code="440304099000", level="subdistrict", name="测试街道", parent_code="440304000000",
                            synthetic=True)])
        s.flush()
        s.add(Division(code=COMMUNITY, level="community", name="测试社区", parent_code="440304099000",
                       boundary=from_shape(area, srid=4326), synthetic=True))
        s.flush()
        with acting_as(s, "tester", "test fixture"):
            grid = Grid(code=COMMUNITY + "01", community_code=COMMUNITY, name="巡查网格",
                        boundary=from_shape(inner, srid=4326))
            s.add(grid)
            s.flush()
        # a building beside the route (10 m off its middle) and one 200 m beyond the grid's lanes
        mid = track.xy[len(track.xy) // 2]
        near = s.scalar(text("""INSERT INTO buildings (grid_id, footprint) VALUES (:g, ST_Multi(ST_Transform(
            ST_MakeEnvelope(:x, :y, :x + 12, :y + 12, 4547), 4326))) RETURNING id"""),
                        {"g": grid.id, "x": float(mid[0]) + 10, "y": float(mid[1]) + 10})
        far = s.scalar(text("""INSERT INTO buildings (grid_id, footprint) VALUES (:g, ST_Multi(ST_Transform(
            ST_MakeEnvelope(:x, :y, :x + 12, :y + 12, 4547), 4326))) RETURNING id"""),
                       {"g": grid.id, "x": float(x0) + 2, "y": float(y0) + 2})
        who = {}
        for name, role, duty in (("worker1", "grid_worker", "worker"), ("worker2", "grid_worker", "worker"),
                                 ("leader1", "grid_worker", "leader"), ("admin1", "admin", None)):
            user = User(username=name, password_hash="x", role=role)
            s.add(user)
            s.flush()
            if duty:
                users.assign_grids(s, user, (grid.code,), duty=duty)
            who[name] = users.principal_for_user(s, user)
        yield s, network, track, grid.id, who, (near, far)


@pytest.fixture
def env(shatou):
    s = shatou[0]
    savepoint = s.begin_nested()
    yield shatou
    savepoint.rollback()


def fixes_of(xy: np.ndarray, t: np.ndarray, start: datetime, datum: str = "EPSG:4326"):
    lon, lat = lonlat(xy)
    if datum == "GCJ-02":
        lon, lat = crsmod.wgs84_to_gcj02(lon, lat)
    return [(start + timedelta(seconds=float(s)), float(x), float(y), 8.0) for s, x, y in zip(t, lon, lat, strict=True)]


def test_matching_is_accurate_on_noisy_tracks_of_the_real_network(shatou):
    _, network, _, _, _, _ = shatou
    rng = np.random.default_rng(3)
    s = shatou[0]  # the same synthetic tracks as benchmarks/mapmatch.py
    graph = graph_of(net.edge_lines(s, "walk", (113.0, 22.0, 115.0, 23.0), margin_m=0.0))
    results = []
    for _ in range(4):
        track = synthetic_track(graph, rng, 300)
        results.append(scores(track.truth, mapmatch.match(network, track.xy, track.t).edges))
    assert np.mean([r[0] for r in results]) >= 0.6, results
    assert np.mean([r[1] for r in results]) >= 0.7, results


def test_a_patrol_is_matched_and_scored(env):
    s, network, track, grid, who, (near, far) = env
    w = who["worker1"]
    start = NOW - timedelta(hours=1)
    record = pr.start(s, w, grid_id=grid, datum="EPSG:4326", started_at=start, now=NOW)
    assert record.status == "open" and record.scores is None
    # a 60 s drop-out in the middle
    t = track.t.copy()
    keep = (t < 200) | (t >= 260)
    report = pr.add_fixes(s, w, record.id, fixes_of(track.xy[keep], t[keep], start), now=NOW)
    assert (report.accepted, report.duplicates, report.future) == (keep.sum(), 0, 0)
    mid = track.xy[len(track.xy) // 2]
    lon, lat = lonlat(mid[None, :] + 12)
    checkin, new = pr.check_in(s, w, record.id, kind="building", target_id=near, lon=float(lon[0]),
                               lat=float(lat[0]), at=start + timedelta(seconds=300), now=NOW)
    assert new and checkin["distance_m"] < 5
    again, new = pr.check_in(s, w, record.id, kind="building", target_id=near, lon=float(lon[0]), lat=float(lat[0]),
                             now=NOW)
    assert not new and again["id"] == checkin["id"]  # counted once
    done = pr.end(s, w, record.id, ended_at=start + timedelta(seconds=620), now=NOW)
    sc = done.scores
    assert done.status == "ended" and not done.datum_suspect
    assert sc["lanes"]["covered"] > 0 and len(set(sc["lanes"]["ids"]) & track.truth) >= 0.7 * sc["lanes"]["covered"]
    assert 0 < sc["lanes"]["share"] <= 1
    truth_m = sum(network.length[network.index[e]] for e in track.truth)
    assert 0.6 * truth_m <= sc["distance_m"] <= 1.4 * truth_m, (sc["distance_m"], truth_m)
    assert near in sc["buildings"]["ids"] and far not in sc["buildings"]["ids"]
    assert sc["buildings"]["total"] == 2
    assert [g["seconds"] for g in sc["gaps"]] == [61]
    assert sc["duration_s"] == 620 and sc["checkins"] == {"buildings": 1, "checkpoints": 0}
    assert pr.end(s, w, record.id, now=NOW).scores == sc  # ending twice changes nothing


def test_a_gcj02_track_declared_wgs84_is_flagged(env):
    s, _, track, grid, who, _ = env
    w = who["worker1"]
    start = NOW - timedelta(hours=1)
    record = pr.start(s, w, grid_id=grid, datum="EPSG:4326", started_at=start, now=NOW)
    pr.add_fixes(s, w, record.id, fixes_of(track.xy, track.t, start, datum="GCJ-02"), now=NOW)
    done = pr.end(s, w, record.id, ended_at=start + timedelta(seconds=600), now=NOW)
    d = done.scores["datum"]
    assert done.datum_suspect and done.datum_used == "GCJ-02" and d["suspect"]
    assert d["median_offset_m"]["EPSG:4326"] > 30 > 15 > d["median_offset_m"]["GCJ-02"]
    assert done.scores["lanes"]["covered"] > 0  # scored in the datum that fits


def test_bad_input_is_refused_or_counted_never_double_counted(env):
    s, _, track, grid, who, (near, _) = env
    w = who["worker1"]
    start = NOW - timedelta(hours=1)
    record = pr.start(s, w, grid_id=grid, datum="EPSG:4326", started_at=start, now=NOW, client_ref="phone-1")
    assert pr.start(s, w, grid_id=grid, datum="EPSG:4326", now=NOW, client_ref="phone-1").id == record.id
    with pytest.raises(Conflict) as open_one:
        pr.start(s, w, grid_id=grid, datum="EPSG:4326", now=NOW)
    assert open_one.value.code == "patrol.open"
    fixes = fixes_of(track.xy[:120], track.t[:120], start)
    jump = (fixes[60][0] + timedelta(milliseconds=500), fixes[60][1] + 0.05, fixes[60][2], 5.0)  # 5 km in 0.5 s
    future = (NOW + timedelta(hours=1), fixes[0][1], fixes[0][2], 5.0)
    early = (start - timedelta(hours=1), fixes[0][1], fixes[0][2], 5.0)
    batch = list(reversed(fixes[:100])) + [jump, future, early]
    first = pr.add_fixes(s, w, record.id, batch, now=NOW)
    assert (first.accepted, first.future, first.before_start) == (101, 1, 1)
    again = pr.add_fixes(s, w, record.id, fixes[:120], now=NOW)  # the queue sent again, and 20 more
    assert (again.accepted, again.duplicates) == (20, 100)
    with pytest.raises(InvalidInput) as far:
        pr.check_in(s, w, record.id, kind="building", target_id=near, lon=fixes[0][1] + 0.02, lat=fixes[0][2],
                    now=NOW)
    assert far.value.code == "patrol.checkin_far" and far.value.detail["distance_m"] > 1000
    with pytest.raises(InvalidInput):
        pr.end(s, w, record.id, ended_at=start - timedelta(minutes=1), now=NOW)
    done = pr.end(s, w, record.id, ended_at=start + timedelta(seconds=130), now=NOW)
    f = done.scores["fixes"]
    assert (f["received"], f["too_fast"], f["jumps"]) == (121, 1, 0) and f["used"] == 120
    with pytest.raises(Conflict):
        pr.add_fixes(s, w, record.id, fixes[:1], now=NOW)


def test_only_the_worker_their_leader_and_admins_read_a_track_and_each_read_is_audited(env):
    s, _, track, grid, who, _ = env
    start = NOW - timedelta(hours=1)
    record = pr.start(s, who["worker1"], grid_id=grid, datum="EPSG:4326", started_at=start, now=NOW)
    pr.add_fixes(s, who["worker1"], record.id, fixes_of(track.xy[:50], track.t[:50], start), now=NOW)
    for name in ("worker1", "leader1", "admin1"):
        assert len(pr.track(s, who[name], record.id)["fixes"]) == 50
        assert [r.id for r in pr.list_records(s, who[name])] == [record.id]
    with pytest.raises(OutOfScope):
        pr.track(s, who["worker2"], record.id)
    with pytest.raises(OutOfScope):
        pr.get(s, who["worker2"], record.id)
    assert pr.list_records(s, who["worker2"]) == []
    with pytest.raises(OutOfScope):  # nor write to it
        pr.add_fixes(s, who["worker2"], record.id, [], now=NOW)
    reads = s.execute(text("""SELECT username, count(*) FROM audit_log WHERE object_type = 'patrol_track'
                              AND object_id = :id GROUP BY 1 ORDER BY 1"""), {"id": str(record.id)}).all()
    assert [tuple(r) for r in reads] == [("admin1", 1), ("leader1", 1), ("worker1", 1)]


def test_retention_closes_forgotten_patrols_and_reduces_old_tracks_to_scores(env):
    s, _, track, grid, who, _ = env
    w = who["worker1"]
    start = NOW - timedelta(days=100)
    record = pr.start(s, w, grid_id=grid, datum="EPSG:4326", started_at=start, now=start)
    pr.add_fixes(s, w, record.id, fixes_of(track.xy[:300], track.t[:300], start), now=start + timedelta(hours=1))
    # never ended: a new start the next day closes it as abandoned
    later = pr.start(s, w, grid_id=grid, datum="EPSG:4326", started_at=start + timedelta(days=1),
                     now=start + timedelta(days=1))
    old = pr.get(s, w, record.id)
    assert old.status == "abandoned" and old.ended_at == start + timedelta(seconds=299)
    result = pr.prune(s, days=90, open_hours=12, now=NOW)
    assert result.abandoned == [later.id] and result.reduced == sorted([record.id, later.id])
    reduced = pr.track(s, w, record.id)
    assert reduced["fixes"] == [] and reduced["route"] is None and reduced["reduced_at"] == NOW
    assert pr.get(s, w, record.id).scores == old.scores  # the scores stay
    assert pr.prune(s, days=90, open_hours=12, now=NOW).reduced == []


def test_the_prune_command_runs_the_retention(fresh_db_url, tmp_path):
    from click.testing import CliRunner

    from gridgov.cli import main

    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["patrols", "prune", "--days", "30"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "0 open patrols closed as abandoned; 0 tracks older than 30 days" in result.output


def test_a_problem_found_on_a_patrol_is_a_case_linked_to_it(env):
    s, _, track, grid, who, _ = env
    w = who["worker1"]
    record = pr.start(s, w, grid_id=grid, datum="GCJ-02", started_at=NOW - timedelta(minutes=5), now=NOW)
    lon, lat = lonlat(track.xy[:1])
    glon, glat = crsmod.wgs84_to_gcj02(lon, lat)  # in the patrol's datum
    case = pr.report_problem(s, w, record.id, category="environment.garbage", description="垃圾堆放",
                             lon=float(glon[0]), lat=float(glat[0]), now=NOW)
    assert abs(case.lon - float(lon[0])) < 1e-6 and abs(case.lat - float(lat[0])) < 1e-6
    done = pr.end(s, w, record.id, now=NOW)
    assert done.case_ids == [case.id] and done.scores["cases"] == 1


def test_cleaning_sorts_drops_absurd_fixes_and_follows_a_real_jump():
    t = np.arange(12.0)
    xy = np.column_stack([t * 1.3, np.zeros(12)])
    xy[3] = (5000.0, 0.0)              # one absurd fix
    xy[6:] += (3000.0, 0.0)             # the phone really moved (a lift): 6 fixes agree there
    shuffled = np.r_[0, 2, 1, 3:12]
    cleaned = mapmatch.clean_track(xy[shuffled], t[shuffled], settle=5)
    kept = shuffled[cleaned.keep].tolist()
    assert kept == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]
    assert (cleaned.out_of_order, cleaned.too_fast, cleaned.jumps) == (1, 1, (5,))
