"""Household/resident estimates: plausible, never overwriting registered counts, deterministic for a seed."""

from __future__ import annotations

import pyproj
import pytest
from sqlalchemy import text

from spatial.store.occupancy import estimate_occupancy
from spatial.io import import_buildings
from spatial.store.models import Building

TO_GK = pyproj.Transformer.from_crs(4326, 4547, always_xy=True)
X0, Y0 = TO_GK.transform(114.05, 22.55)  # metres in EPSG:4547 (CGCS2000 GK CM 114E)


def add(db, ref: str, x: float, y: float, w: float, h: float, **columns) -> int:
    """A rectangular building w × h metres with its lower-left corner (x, y) metres from (X0, Y0)."""
    values = {"use": "residential", "levels": None, "height_m": None, "households": None, "residents": None,
              "units": None, **columns}
    return db.execute(text("""
        INSERT INTO buildings (origin, origin_ref, footprint, use, levels, height_m, households, residents, units)
        VALUES ('test', :ref, ST_Multi(ST_Transform(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4547), 4326)),
                :use, :levels, :height_m, :households, :residents, :units)
        RETURNING id"""), {"ref": ref, "x0": X0 + x, "y0": Y0 + y, "x1": X0 + x + w, "y1": Y0 + y + h, **values}
    ).scalar_one()


def row(db, building_id: int):
    return db.execute(text(
        "SELECT households, residents, units, urban_village, occupancy_estimated FROM buildings WHERE id = :id"),
        {"id": building_id}).one()


@pytest.fixture
def village(db) -> int:
    """A 4 × 4 block of 7-storey 150 m² (12.25 m square) houses 3 m apart; returns an inner one's id."""
    side, gap, ids = 150 ** 0.5, 3.0, {}
    for i in range(4):
        for j in range(4):
            ids[i, j] = add(db, f"v{i}{j}", i * (side + gap), j * (side + gap), side, side, levels=7)
    return ids[1, 1]


def test_urban_village_house(db, village):
    assert estimate_occupancy(db) == 16
    households, residents, units, urban_village, estimated = row(db, village)
    assert 20 <= households <= 30
    assert 1.8 * 0.85 * households <= residents <= 1.8 * 1.15 * households + 1
    assert (units, urban_village, estimated) == (1, True, True)


def test_estate_tower_industrial_and_height(db):
    tower = add(db, "tower", 0, 0, 25, 24, levels=30)  # 600 m², isolated
    slab = add(db, "slab", 500, 0, 25, 24, height_m=30.0)  # no levels: 30 m / 3 m = 10 storeys
    factory = add(db, "factory", 1000, 0, 60, 40, use="industrial", levels=4)
    estimate_occupancy(db)
    households, residents, units, urban_village, _ = row(db, tower)
    assert 135 <= households <= 183 and not urban_village and units == 2
    assert 2.7 * 0.85 * households <= residents <= 2.7 * 1.15 * households + 1
    assert 45 <= row(db, slab)[0] <= 61
    assert tuple(row(db, factory)[:3]) == (0, 0, 0)


def test_registered_counts_are_kept(db):
    partly = add(db, "partly", 0, 0, 25, 24, levels=30, households=50)
    registered = add(db, "registered", 500, 0, 25, 24, levels=30, households=10, residents=20, units=1)
    assert estimate_occupancy(db) == 1
    households, residents, _, _, estimated = row(db, partly)
    assert households == 50 and 114 <= residents <= 156 and estimated
    assert tuple(row(db, registered)) == (10, 20, 1, False, False)
    assert estimate_occupancy(db) == 0  # nothing left to fill


@pytest.mark.shared_data
def test_deterministic_per_seed_and_subset(db, shared_data):
    import_buildings(db, shared_data / "futian_shatou.gpkg")
    query = text("SELECT id, households, residents, units FROM buildings ORDER BY id")

    def run(**kwargs):
        savepoint = db.begin_nested()
        estimate_occupancy(db, **kwargs)
        result = db.execute(query).all()
        savepoint.rollback()
        return result

    first = run(seed=2020)
    assert run(seed=2020) == first
    assert run(seed=7) != first
    some = [r.id for r in first[::10]]
    subset = {r.id: tuple(r) for r in run(where=Building.id.in_(some)) if r.id in some}
    assert subset == {r.id: tuple(r) for r in first if r.id in some}
    industrial = set(db.execute(text("SELECT id FROM buildings WHERE use = 'industrial'")).scalars())
    assert {r.id for r in run(where=Building.use == "industrial") if r.households is not None} == industrial


@pytest.mark.shared_data
def test_shatou_totals_are_plausible(db, shared_data):
    import_buildings(db, shared_data / "futian_shatou.gpkg")
    assert estimate_occupancy(db, where=Building.origin == "futian_shatou:buildings") == 1829
    villages, median_village, residents = db.execute(text("""
        SELECT count(*) FILTER (WHERE urban_village),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY households) FILTER (WHERE urban_village),
               sum(residents) FROM buildings""")).one()
    # Shangsha/Xiasha urban villages; Shatou subdistrict has 328,000 residents in 13.59 km²
    assert villages > 500 and 15 <= median_village <= 35 and 100_000 < residents < 500_000
    assert db.execute(text("SELECT bool_and(occupancy_estimated) FROM buildings")).scalar_one()
