"""The synthetic city generator (fixtures/synthetic_city.py): exact counts, valid codes and people, deterministic,
nested divisions, a connected walking network, and an idempotent COPY load."""

from __future__ import annotations

import re

import numpy as np
import pytest
import shapely
from sqlalchemy import text

from fixtures.synthetic_city import BLOCKS_PER_GRID, DISTRICT, HOUSEHOLDS_PER_GRID, generate, load_city
from spatial import vocab
from spatial.geometry.codes import is_valid_id_number


@pytest.fixture(scope="module")
def city():
    return generate(9000, seed=4)


def test_counts_are_exact_and_every_building_belongs_to_a_grid(city):
    counts = city.counts()
    assert counts["households"] == 9000 == int(city.building_households.sum())
    assert counts["grids"] == -(-9000 // HOUSEHOLDS_PER_GRID)
    assert counts["buildings"] == counts["grids"] * BLOCKS_PER_GRID ** 2
    assert counts["residents"] == int(city.building_residents.sum())
    assert 2.2 < counts["residents"] / counts["households"] < 2.7
    assert set(city.building_use) == {"residential", "commercial"}
    assert (city.building_households[city.building_use == "commercial"] == 0).all()


def test_codes_nest_and_people_are_valid(city):
    codes = {d["code"]: d for d in city.divisions}
    assert DISTRICT[0] in codes
    for d in city.divisions[1:]:
        assert d["parent_code"] in codes and re.fullmatch(r"\d{12}", d["code"])
    for grid in city.grid_codes:
        assert grid[:12] in codes and codes[grid[:12]]["level"] == "community"
    assert all(is_valid_id_number(i) for i in city.head_ids)
    assert all(re.fullmatch(r"1[3589]\d{9}", p) for p in city.head_phones[:2000])
    tags = {t for literal in city.household_tags for t in literal.strip("{}").split(",") if t}
    assert tags and tags <= set(vocab.HOUSEHOLD_TAGS)


def test_grids_tile_their_community_and_buildings_sit_inside_their_grid(city):
    community = next(d for d in city.divisions if d["level"] == "community")
    grids = city.grid_boundaries[[c.startswith(community["code"]) for c in city.grid_codes]]
    assert shapely.union_all(grids).symmetric_difference(community["boundary"]).area < 1e-12
    inside = shapely.contains(city.grid_boundaries[city.building_grid], city.building_footprints)
    assert inside.all()


def test_generation_is_deterministic():
    a, b, c = generate(1200, seed=1), generate(1200, seed=1), generate(1200, seed=2)
    assert (a.head_ids == b.head_ids).all() and (a.building_households == b.building_households).all()
    assert not (a.head_ids == c.head_ids).all()


def test_load_is_idempotent_and_matches_the_plan(db):
    first = load_city(db, households=1500, seed=9)
    again = load_city(db, households=1500, seed=9)
    assert first["already_loaded"] == 0 and again["already_loaded"] == 1
    assert first["households"] == 1500 and {k: v for k, v in first.items() if k != "already_loaded"} == \
        {k: v for k, v in again.items() if k != "already_loaded"}
    bad = db.execute(text("SELECT count(*) FROM buildings b JOIN grids g ON g.id = b.grid_id "
                          "WHERE b.origin = 'synthetic' AND (NOT ST_Within(b.footprint, g.boundary) "
                          "OR b.code NOT LIKE g.code || '%')")).scalar()
    assert bad == 0
    components = db.execute(text(
        "SELECT count(DISTINCT component) FROM pgr_connectedComponents("
        "'SELECT id, source, target, cost, reverse_cost FROM walk_edges')")).scalar()
    assert components == 1
    lengths = db.execute(text("SELECT min(ST_Length(ST_Transform(geom, 4547))), max(ST_Length(ST_Transform(geom, 4547))) "
                              "FROM street_edges WHERE origin = 'synthetic'")).one()
    assert np.allclose(lengths, 50.0, atol=0.01)


def test_command_line_loads_a_city_opens_a_campaign_and_reports_coverage(fresh_db_url, tmp_path):
    from click.testing import CliRunner

    from gridgov.cli import main

    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path)}

    def run(*args: str):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    loaded = run("synthetic-city", "--households", "900")
    assert loaded.exit_code == 0 and "households 900" in loaded.output
    opened = run("campaign", "open", "冬季排查", "--division", "440399001001")
    assert opened.exit_code == 0 and "900 households" in opened.output
    report = run("campaign", "coverage", opened.output.split()[1])
    assert report.exit_code == 0
    assert report.output.strip().splitlines()[-1].split()[:5] == ["campaign", "(total)", "0", "/", "900"]
    refused = run("campaign", "open", "x", "--grid", "44039900100199")
    assert refused.exit_code == 2 and "no current grid" in refused.output
