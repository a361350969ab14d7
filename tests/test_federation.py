"""A federation of cities (issue 18 §3, spatial/store/federation.py): two city deployments and a province on one
test cluster. The province's roll-ups equal what each city computes itself, each city aggregates and filters its
own rows (``Remote SQL``), a one-city query reads one partition, no personal column reaches the province, and the
hot tables carry the city code."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.errors import GridgovError
from spatial.store import federation as fed
from spatial.store import risk_zones
from spatial.store.case_figures import case_figures
from spatial.store.checks import run_checks
from spatial.store.engine import acting_as, make_engine
from spatial.store.screen import screen_figures
from spatial.worktime import LOCAL
from tests.conftest import TEMPLATE

AT = datetime(2026, 11, 20, 12, 0, tzinfo=LOCAL)
FROM, TO = date(2026, 11, 1), date(2026, 11, 30)
ADMIN = Principal(user_id=0, username="admin", role="admin")
GRID_DEG = 0.002  # about 200 m
# city code -> (district code, south-west corner lon/lat, grids per community, households per building)
CITIES = {"4403": ("440304", (114.05, 22.54), 2, 7), "4401": ("440106", (113.33, 23.12), 3, 5)}
PERSONAL = ("name", "head_name", "id_number", "head_id_number", "phone", "head_phone", "reporter_name",
            "reporter_phone", "reporter_address", "description", "assignee", "note")


def _load_city(conn, district: str, corner: tuple[float, float], per_community: int, per_building: int) -> None:
    """Two communities of ``per_community`` grids each, two buildings per grid (``per_building`` households each,
    two household rows with 1–3 persons), an open campaign over every grid (every other household screened),
    cases in every state, and risk zones (one in force, one lifted before ``AT``)."""
    lon0, lat0 = corner
    sub = district + "001000"
    conn.execute(text("INSERT INTO divisions (code, level, name, parent_code) VALUES (:d, 'district', '区', NULL), "
                      "(:s, 'subdistrict', '街道', :d)"), {"d": district + "000000", "s": sub})
    box = "ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))"
    grid_ids, person = [], 0
    for k in range(2):
        community = district + f"001{k + 1:03d}"
        conn.execute(text("INSERT INTO divisions (code, level, name, parent_code) VALUES (:c, 'community', '社区', :s)"),
                     {"c": community, "s": sub})
        for j in range(per_community):
            x0 = lon0 + (k * per_community + j) * GRID_DEG
            grid = conn.scalar(text(f"INSERT INTO grids (code, community_code, name, boundary) VALUES "
                                    f"(:code, :c, '网格', {box}) RETURNING id"),
                               {"code": community + f"{j + 1:02d}", "c": community, "x0": x0, "y0": lat0,
                                "x1": x0 + GRID_DEG, "y1": lat0 + GRID_DEG})
            grid_ids.append(grid)
            for n in range(2):
                bx = x0 + 0.0002 + n * 0.0009
                building = conn.scalar(text(f"INSERT INTO buildings (grid_id, number, footprint, households) VALUES "
                                            f"(:g, :n, {box}, :h) RETURNING id"),
                                       {"g": grid, "n": n + 1, "x0": bx, "y0": lat0 + 0.0002, "x1": bx + 0.0002,
                                        "y1": lat0 + 0.00035, "h": per_building + n})
                for room in range(2):
                    household = conn.scalar(text("INSERT INTO households (building_id, room, head_name, head_phone) "
                                                 "VALUES (:b, :r, '张三', '13800138000') RETURNING id"),
                                            {"b": building, "r": f"{room + 1}01"})
                    for _ in range(1 + (household + room) % 3):
                        person += 1
                        digest = hashlib.sha256(f"{district}-{person}".encode()).digest()
                        moved = person % 7 == 0  # some persons moved out: not counted
                        conn.execute(text(
                            "INSERT INTO persons (household_id, name, id_number_sealed, id_number_hash, "
                            "id_number_masked, moved_in, moved_out, moved_out_reason) VALUES (:h, '李四', :s, :d, "
                            "'440304********1234', DATE '2020-01-01', :out, :why)"),
                            {"h": household, "s": b"sealed", "d": digest, "out": date(2025, 1, 1) if moved else None,
                             "why": "moved" if moved else None})
    campaign = conn.scalar(text("INSERT INTO campaigns (name, division_code, created_by) VALUES ('排查', :s, 't') "
                                "RETURNING id"), {"s": sub})
    conn.execute(text("INSERT INTO campaign_grids SELECT :c, unnest(CAST(:g AS integer[]))"),
                 {"c": campaign, "g": grid_ids})
    conn.execute(text("INSERT INTO campaign_targets (campaign_id, household_id, grid_id) SELECT :c, h.id, b.grid_id "
                      "FROM households h JOIN buildings b ON b.id = h.building_id"), {"c": campaign})
    conn.execute(text("""INSERT INTO campaign_visits (campaign_id, household_id, result, visited_at, worker,
                             worker_position, distance_m, far_from_building)
                         SELECT :c, household_id, 'normal', :at, 'w', ST_SetSRID(ST_MakePoint(:x, :y), 4326), 5, false
                         FROM campaign_targets WHERE campaign_id = :c AND household_id % 2 = 0"""),
                 {"c": campaign, "at": AT, "x": lon0, "y": lat0})
    states = [("closed", -15, -12), ("closed", -10, -11), ("handling", -3, None), ("dispatched", 5, None),
              ("registered", -25, None), ("rejected", None, None), ("closed", -40, -40)]
    for i, (state, deadline_days, closed_days) in enumerate(states * len(grid_ids)):
        grid = grid_ids[i % len(grid_ids)]
        case = conn.scalar(text("""
            INSERT INTO cases (tracking_code, category_code, location, grid_id, community_code, description,
                               reporter_kind, reporter_name, reporter_phone, state, deadline, closed_at, reported_at)
            SELECT :t, 'environment.garbage', ST_PointOnSurface(g.boundary), g.id, g.community_code, '门口有垃圾',
                   'resident', '王五', '13900139000', :state, :deadline, :closed, :reported
            FROM grids g WHERE g.id = :g RETURNING id"""),
            {"t": f"T{district}{i}", "g": grid, "state": state,
             "deadline": None if deadline_days is None else AT + timedelta(days=deadline_days),
             "closed": None if closed_days is None else AT + timedelta(days=closed_days),
             "reported": AT - timedelta(days=50)})
        if state == "closed" and i % 2:
            conn.execute(text("INSERT INTO case_events (case_id, actor, action, from_state, to_state, late_minutes) "
                              "VALUES (:c, 't', 'close', 'verified', 'closed', 30)"), {"c": case})
    for n, (level, severity, lifted) in enumerate((("sealed", 5, False), ("controlled", 4, True),
                                                   ("precaution", 2, False))):
        community = district + "001001"
        zone = conn.scalar(text("INSERT INTO risk_zones (name, target_kind, community_code, scope_code, created_by) "
                                "VALUES ('区域', 'polygon', :c, :c, 't') RETURNING id"), {"c": community})
        x0 = lon0 + n * GRID_DEG
        conn.execute(text(f"""
            INSERT INTO risk_zone_versions (zone_id, version, change, scheme, level, severity, boundary, valid_from,
                                            valid_to, author, reason)
            VALUES (:z, 1, 'designate', 'control', :level, :sev, {box}, :start, :end, 't', '测试')"""),
            {"z": zone, "level": level, "sev": severity, "x0": x0, "y0": lat0, "x1": x0 + GRID_DEG,
             "y1": lat0 + GRID_DEG, "start": AT - timedelta(days=30),
             "end": AT - timedelta(days=1) if lifted else None})


@pytest.fixture(scope="module")
def federation(pg_server, template_url):
    """Two cities (one database each, city code stated, loaded, roles granted) and a province attaching both.
    Yields (province engine as superuser, {city: (owner engine, reader URL)})."""
    cluster = pg_server.cluster
    if cluster is None:
        pytest.skip("the federation test needs the embedded cluster (a superuser, Unix sockets)")
    cities, names = {}, []
    for code, (district, corner, per_community, per_building) in CITIES.items():
        name = f"gridgov_city_{code}"
        names.append(name)
        engine = make_engine(pg_server.create(name, template=TEMPLATE), pool_size=2)
        with engine.begin() as conn:
            assert fed.city_code(conn) == fed.UNSTATED  # the template has no divisions
            fed.set_city_code(conn, code)
        with engine.begin() as conn:
            with acting_as(conn, "tester", "federation fixture"):
                _load_city(conn, district, corner, per_community, per_building)
        admin = make_engine(pg_server.url(name), pool_size=1)
        with admin.begin() as conn:
            fed.grant_federation_role(conn)
        admin.dispose()
        reader = f"postgresql://{fed.READER_ROLE}@/{name}?host={cluster.socket_dir}&port={cluster.port}"
        cities[code] = (engine, reader)
    names.append("gridgov_province")
    pg_server.create("gridgov_province")
    province = make_engine(pg_server.url("gridgov_province"), pool_size=2)
    with province.begin() as conn:
        fed.prepare_province(conn)
        for code, (_engine, reader) in cities.items():
            fed.attach_city(conn, code, reader)
    yield province, cities
    province.dispose()
    for engine, _reader in cities.values():
        engine.dispose()
    for name in names:
        pg_server.drop(name)


def _remote(plan: str) -> str:
    return "\n".join(line for line in plan.splitlines() if "Remote SQL" in line)


def _rollup(province, **kwargs):
    with province.begin() as conn:
        return fed.rollup(conn, at=AT, date_from=FROM, date_to=TO, **kwargs)


def test_provincial_figures_equal_each_citys_own(federation):
    province, cities = federation
    by_city = {r.city_code: r for r in _rollup(province)}
    assert set(by_city) == set(CITIES)
    communities = {(r.city_code, r.key): r for r in _rollup(province, by="community")}
    for code, (engine, _reader) in cities.items():
        district = CITIES[code][0] + "000000"
        with engine.begin() as conn:
            session = Session(bind=conn)
            screen = screen_figures(session, ADMIN, district, at=AT)
            figures = case_figures(session, ADMIN, by="community", date_from=FROM, date_to=TO)
            zones = risk_zones.zones_per_community(session, [c.code for c in screen.communities], AT)[None]["zones"]
        row, total = by_city[code], screen.total
        assert (row.households, row.persons, row.targeted, row.screened, row.open_cases, row.overdue_cases) == (
            total.households, total.persons, total.targeted, total.screened, total.open_cases, total.overdue_cases)
        assert row.households > 0 and row.persons > 0 and 0 < row.screened < row.targeted and row.overdue_cases > 0
        assert row.due == sum(f.due for f in figures.rows) > 0
        assert row.closed == sum(f.closed for f in figures.rows)
        assert row.closed_on_time == sum(f.closed_on_time for f in figures.rows) < row.closed
        assert 0 < row.closure_rate < 1
        assert sorted(row.zones.values()) == sorted(zones.values())
        assert row.zones == {"control:sealed": 1, "control:precaution": 1}  # the lifted zone is not in force
        for c in screen.communities:  # per community too
            mine = communities[(code, c.code)]
            assert (mine.households, mine.persons, mine.open_cases, mine.coverage) == (
                c.households, c.persons, c.open_cases, c.coverage)
    assert by_city["4403"].households != by_city["4401"].households  # two different cities
    districts = {(r.city_code, r.key): r.households for r in _rollup(province, by="district")}
    assert districts == {(c, CITIES[c][0]): by_city[c].households for c in CITIES}
    inside = _rollup(province, by="community", division=CITIES["4401"][0] + "001002")
    assert [(r.city_code, r.key) for r in inside] == [("4401", "440106001002")]
    one = _rollup(province, city="4401")
    assert [r.city_code for r in one] == ["4401"] and one[0].as_dict() == by_city["4401"].as_dict()


def test_each_city_aggregates_and_filters_its_own_rows(federation):
    province, _cities = federation
    lon, lat = CITIES["4403"][1]
    near = fed.Near(lon, lat, 300.0)
    statements = fed.rollup_statements(near=near)
    with province.begin() as conn:
        plan = fed.explain_rollup(conn, statements["cases"], at=AT, date_from=FROM, date_to=TO, near=near)
        remote = [line for line in plan.splitlines() if "Remote SQL" in line]
        assert len(remote) == 2 and plan.count("Async Foreign Scan") == 2, plan  # one per city, both at once
        for line in remote:
            assert "count(*) FILTER" in line and "GROUP BY" in line, plan  # the aggregate runs in the city
            assert "&&" in line and "st_dwithin" in line.lower(), plan  # so does the spatial filter
        one = fed.rollup_statements(city="4403", by="community")
        plan = fed.explain_rollup(conn, one["grids"], at=AT, date_from=FROM, date_to=TO, city="4403")
        assert "grids_4403" in plan and "grids_4401" not in plan, plan  # partition pruning
        assert "Relations: Aggregate on" in plan and "sum(households)" in plan, plan
        # one city near a point: one partition, the filter in the city (on a city this small the planner may
        # aggregate the few rows it fetches in the province: costs within 1%, decision 0026)
        one = fed.rollup_statements(city="4403", near=near)
        plan = fed.explain_rollup(conn, one["grids"], at=AT, date_from=FROM, date_to=TO, city="4403", near=near)
        assert "grids_4401" not in plan and "st_dwithin" in _remote(plan).lower(), plan
        # not pushed in PostgreSQL 15: a semi-join between two foreign tables (each city sends both sides)
        conn.execute(text("SET LOCAL enable_partitionwise_join = on"))
        plan = "\n".join(conn.scalars(text(
            "EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM federation.grids g WHERE g.city_code = '4403' AND "
            "EXISTS (SELECT 1 FROM federation.cases c WHERE c.city_code = g.city_code AND c.grid_code = g.grid_code "
            "AND c.open)")))
        assert "FROM public.federation_grids" in plan and "FROM public.federation_cases" in plan, plan
        assert "SEMI JOIN" not in _remote(plan).upper(), plan
    near_rows = _rollup(province, near=near)
    everything = {r.city_code: r for r in _rollup(province)}
    assert [r.city_code for r in near_rows] == ["4403"]  # the other city is 80 km away
    assert 0 < near_rows[0].households < everything["4403"].households


def test_no_personal_column_reaches_the_province(federation):
    province, cities = federation
    with province.begin() as conn:
        columns = set(conn.scalars(text("SELECT column_name FROM information_schema.columns "
                                        "WHERE table_schema = 'federation'")))
        assert not {c for c in columns for p in PERSONAL if p in c} - {"name"}, columns
        assert "name" not in set(conn.scalars(text(  # the only "name" is a grid's
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'federation' "
            "AND table_name LIKE 'cases%'")))
    for table, column in (("persons", "name"), ("households", "head_phone"), ("cases", "reporter_phone")):
        with province.begin() as conn:  # a foreign table of the city's own table: its reader may not read it
            conn.execute(text(f"CREATE FOREIGN TABLE public.probe ({column} text) SERVER city_4403 "
                              f"OPTIONS (schema_name 'public', table_name '{table}')"))
            with pytest.raises(DBAPIError, match="permission denied"):
                conn.execute(text("SELECT * FROM public.probe")).all()
    reader = make_engine(cities["4403"][1], pool_size=1)
    try:
        with reader.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM federation_grids")) > 0
            with pytest.raises(DBAPIError, match="permission denied"):
                conn.execute(text("SELECT id_number_masked FROM persons")).all()
    finally:
        reader.dispose()


def test_hot_tables_carry_the_city_code(federation):
    province, cities = federation
    engine = cities["4401"][0]
    with engine.begin() as conn:
        for table in fed.HOT_TABLES:
            default, rows, others = conn.execute(text(f"""
                SELECT (SELECT column_default FROM information_schema.columns WHERE table_name = :t
                        AND column_name = 'city_code'),
                       (SELECT count(*) FROM {table}), (SELECT count(*) FROM {table} WHERE city_code <> '4401')"""),
                {"t": table}).one()
            assert default.startswith("'4401'") and rows > 0 and others == 0, table
            assert conn.scalar(text("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = :n"),
                               {"n": f"{table}_city_key"}) == "UNIQUE (city_code, id)"
        check = {c.name: c for c in run_checks(Session(bind=conn))}["grids in the deployment's city"]
        assert check.ok and check.detail == "city 4401: 0 grids of another city"
        written = conn.scalar(text("INSERT INTO households (building_id, room) SELECT min(id), '999' FROM buildings "
                                   "RETURNING city_code"))
        assert written == "4401"  # a write without one gets the deployment's
        conn.rollback()
    with cities["4403"][0].connect() as conn:  # stated late: every row relabelled, visits too (then rolled back)
        visits = conn.scalar(text("SELECT count(*) FROM campaign_visits"))
        assert fed.set_city_code(conn, "4405") >= visits > 0
        assert conn.scalar(text("SELECT count(*) FROM campaign_visits WHERE city_code = '4405'")) == visits
        with pytest.raises(DBAPIError, match="refused"):  # and visits are records of fact again
            conn.execute(text("UPDATE campaign_visits SET note = 'x'"))
        conn.rollback()
    with province.connect() as conn, pytest.raises(GridgovError) as refused:  # a URL of another city
        fed.attach_city(conn, "4405", cities["4401"][1])
    assert refused.value.code == "federation.city_mismatch"
    with province.begin() as conn:
        assert fed.attached_cities(conn) == ["4401", "4403"]


def test_the_command_line_attaches_and_rolls_up(federation, pg_server, tmp_path):
    from click.testing import CliRunner

    from gridgov.cli import main

    _province, cities = federation

    def run(url: str, *args: str):
        env = {"GRIDGOV_DATABASE_URL": url, "GRIDGOV_DATA_DIR": str(tmp_path)}
        return CliRunner().invoke(main, ["federation", *args], env=env, catch_exceptions=False)

    city = run(str(cities["4401"][0].url.render_as_string(hide_password=False)), "city", "4401")
    assert city.exit_code == 0 and "0 rows relabelled" in city.output, city.output
    province = pg_server.url("gridgov_province")
    assert "city 4401 detached" in run(province, "detach", "--city", "4401").output
    refused = run(province, "attach", "--city", "4402", "--url", cities["4401"][1])
    assert refused.exit_code == 2 and "serves city 4401, not 4402" in refused.output
    attached = run(province, "attach", "--city", "4401", "--url", cities["4401"][1])
    assert attached.exit_code == 0 and "reads 4401, 4403" in attached.output, attached.output
    rolled = run(province, "rollup", "--by", "community", "--from", "2026-11-01", "--to", "2026-11-30")
    assert rolled.exit_code == 0, rolled.output
    lines = rolled.output.splitlines()
    assert sum(line.startswith("4401 ") for line in lines) == 2 and sum(line.startswith("4403 ") for line in lines) == 2
