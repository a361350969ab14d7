"""Grid edits at the store level: micro-grids follow a boundary change, keeping the groups that did not change."""

from __future__ import annotations

from sqlalchemy import text

from spatial.store import grids as store
from spatial.store.microgrids import regenerate_micro_grids
from tests import factories


def test_redraw_regenerates_micro_grids_and_keeps_unchanged_groups(db):
    west, east = factories.two_grids(db)
    for i in range(10):  # two rows of five along the south of the west grid
        factories.building(db, west, 10 + 35 * (i % 5), 10 + 40 * (i // 5), number=i + 1, households=30)
    factories.building(db, east, 215, 150, number=1, households=30)  # x 215–235, y 150–165
    regenerate_micro_grids(db, west.id)
    before = dict(db.execute(text("SELECT m.id, array_agg(b.id ORDER BY b.id) FROM micro_grids m "
                                  "JOIN buildings b ON b.micro_grid_id = m.id GROUP BY m.id")).all())
    assert sorted(len(v) for v in before.values()) == [5, 5]

    boundary = factories.metres_box(0, 0, 240, 200)
    result = store.redraw_grid(db, west.code, boundary, store.Edit("planner1", "take the corner building",
                                                                    {west.code: 1}), move_shared_boundary=True)
    assert result.report.ok and [m.to_grid for m in result.report.moved_buildings] == [west.code]
    after = dict(db.execute(text("SELECT m.id, array_agg(b.id ORDER BY b.id) FROM micro_grids m "
                                 "JOIN buildings b ON b.micro_grid_id = m.id WHERE m.grid_id = :g GROUP BY m.id"),
                            {"g": west.id}).all())
    assert sorted(len(v) for v in after.values()) == [5, 6]
    assert set(before) & set(after), "an unchanged group keeps its micro-grid"
    unassigned = db.execute(text("SELECT count(*) FROM buildings WHERE grid_id = :g AND micro_grid_id IS NULL"),
                            {"g": west.id}).scalar()
    assert unassigned == 0


def _workers(s, *specs):
    factories.users_with_grids(s, [(name, "grid_worker", None, grid) for name, grid in specs], "not a real hash")


def _assigned(s, username: str) -> list[str]:
    return s.execute(text("SELECT g.code FROM grid_assignments a JOIN grids g ON g.id = a.grid_id "
                          "JOIN users u ON u.id = a.user_id WHERE u.username = :u ORDER BY g.code"),
                     {"u": username}).scalars().all()


def test_grid_workers_follow_their_land_when_grids_merge(db):
    west, east = factories.two_grids(db)
    _workers(db, ("wang", east.code), ("li.ming", west.code), ("both", west.code))
    db.execute(text("INSERT INTO grid_assignments (user_id, grid_id) SELECT id, :g FROM users WHERE username = 'both'"),
               {"g": east.id})
    result = store.merge_grids(db, [west.code, east.code], store.Edit("planner", "one team now", {
        west.code: west.version, east.code: east.version}))
    assert result.assignments == [{"username": "both", "from_grid": east.code, "to_grid": west.code},
                                  {"username": "wang", "from_grid": east.code, "to_grid": west.code}]
    assert _assigned(db, "wang") == _assigned(db, "li.ming") == _assigned(db, "both") == [west.code]
    logged = db.execute(text("SELECT username, object_id, purpose, result FROM audit_log WHERE action = 'assign' "
                             "ORDER BY object_id")).all()
    assert [tuple(r) for r in logged] == [
        ("planner", name, "one team now", f"grid {east.code} → {west.code} (followed its land)")
        for name in ("both", "wang")]


def test_a_grid_retired_to_a_gap_keeps_its_workers_and_the_check_says_so(db):
    from spatial.store.checks import run_checks

    _, east = factories.two_grids(db)
    _workers(db, ("wang", east.code))
    result = store.retire_grid(db, east.code, store.Edit("planner", "land handed to the district", {
        east.code: east.version}))
    assert result.assignments == [] and _assigned(db, "wang") == [east.code]
    check = {c.name: c for c in run_checks(db)}["no grid worker assigned to a retired grid"]
    assert not check.ok and check.detail == "1 failing"
