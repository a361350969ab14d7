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
