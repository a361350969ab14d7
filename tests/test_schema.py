"""The migrated schema enforces the domain's rules itself: codes, history, derived building codes,
append-only audit. Each test tries to break a rule and checks that PostgreSQL refuses."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from spatial import vocab
from spatial.store import migrate
from spatial.store.engine import acting_as, make_engine
from spatial.store.models import Base, Division, Household
from tests import factories


def test_migrations_run_from_empty_down_and_up_again(fresh_db_url, pg_server):
    engine = make_engine(fresh_db_url, pool_size=1)
    assert migrate.current_revisions(engine) == migrate.head_revisions()
    with pg_server.migration_window(fresh_db_url):  # the owner may change the audit tables only while migrating
        migrate.downgrade(engine, "base")
        with engine.connect() as conn:
            tables = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                                       "AND tablename NOT IN ('spatial_ref_sys', 'alembic_version')")).scalar()
        assert tables == 0
        migrate.upgrade(engine)
    migrate.upgrade(engine)  # idempotent
    assert migrate.current_revisions(engine) == migrate.head_revisions()
    engine.dispose()


def test_models_match_migrated_tables(db):
    for table in Base.metadata.sorted_tables:
        db_columns = set(db.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = :t"), {"t": table.name}).scalars())
        assert {c.name for c in table.columns} == db_columns, table.name


@pytest.mark.parametrize("code, level, parent", [
    ("44030400000", "district", None),          # 11 digits
    ("440304000000", "community", None),        # level does not match the code
    ("440304099001", "community", "440304098000"),  # parent is not the code's prefix
])
def test_division_codes_are_checked(db, code, level, parent):
    factories.community(db)
    with pytest.raises(IntegrityError):
        with db.begin_nested():
            db.add(Division(code=code, level=level, name="x", parent_code=parent))
            db.flush()


def test_grid_code_must_start_with_its_community(db):
    factories.community(db)
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(text("INSERT INTO grids (code, community_code, name, boundary) "
                        "VALUES ('44030409900201', '440304099001', 'g', (SELECT boundary FROM divisions "
                        "WHERE code = '440304099001'))"))


def test_building_code_is_derived_from_grid_and_number(db):
    west, east = factories.two_grids(db)
    b = factories.building(db, west, 10, 10, number=7)
    assert b.code == west.code + "00007"
    assert b.community_code == factories.COMMUNITY
    b.grid_id, b.number = east.id, 12
    db.flush()
    db.refresh(b)
    assert b.code == east.code + "00012"
    unassigned = factories.building(db, None, 300, 100)
    assert unassigned.code is None


def test_grid_code_change_recodes_its_buildings(db):
    west, _ = factories.two_grids(db)
    b = factories.building(db, west, 10, 10, number=3)
    with acting_as(db, "planner1", "renumber"):
        west.code = factories.COMMUNITY + "09"
        db.flush()
    db.refresh(b)
    assert b.code == factories.COMMUNITY + "0900003"


def test_every_grid_change_is_a_version_with_author_and_reason(db):
    west, east = factories.two_grids(db)
    with acting_as(db, "planner1", "move boundary east"):
        db.execute(text("UPDATE grids SET boundary = ST_Multi(ST_Union(boundary, (SELECT boundary FROM grids "
                        "WHERE id = :east))) WHERE id = :west"), {"west": west.id, "east": east.id})
        db.execute(text("UPDATE grids SET name = name WHERE id = :west"), {"west": west.id})  # no change
    rows = db.execute(text("SELECT version, author, reason, valid_to IS NULL AS current FROM grid_versions "
                           "WHERE grid_id = :g ORDER BY version"), {"g": west.id}).all()
    assert [(r.version, r.author, r.reason, r.current) for r in rows] == [
        (1, "tester", "test fixture", False), (2, "planner1", "move boundary east", True)]


def test_grids_cannot_be_deleted(db):
    west, _ = factories.two_grids(db)
    with pytest.raises(DBAPIError, match="retire the grid instead"), db.begin_nested():
        db.execute(text("DELETE FROM grids WHERE id = :g"), {"g": west.id})


def test_audit_log_is_append_only(db):
    db.execute(text("INSERT INTO audit_log (username, action) VALUES ('a', 'read')"))
    for statement in ("UPDATE audit_log SET action = 'nothing'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
            db.execute(text(statement))


def test_household_tags_follow_the_vocabulary(db):
    west, _ = factories.two_grids(db)
    b = factories.building(db, west, 10, 10, number=1)
    db.add(Household(building_id=b.id, room="0101", tags=list(vocab.HOUSEHOLD_TAGS)))
    db.flush()
    with pytest.raises(IntegrityError), db.begin_nested():
        db.add(Household(building_id=b.id, room="0102", tags=["not_a_tag"]))
        db.flush()


def test_invalid_geometry_is_refused(db):
    factories.community(db)
    bowtie = "SRID=4326;MULTIPOLYGON(((114 22.5, 114.01 22.51, 114.01 22.5, 114 22.51, 114 22.5)))"
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(text("INSERT INTO buildings (footprint) VALUES (ST_GeomFromEWKT(:g))"), {"g": bowtie})


def test_staffed_checkpoint_needs_staff(db):
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(text("INSERT INTO checkpoints (name, location, status, staff_count) "
                        "VALUES ('东门', ST_SetSRID(ST_Point(114.07, 22.56), 4326), 'staffed', 0)"))
