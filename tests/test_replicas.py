"""Read replicas with honest freshness (issue 18 §1, docs/decisions/0022-read-replicas.md), against a real hot
standby of the test cluster made once for this module over its Unix socket (``LocalCluster.standby``).

A replica that lags is made by pausing its replay (``pg_wal_replay_pause()``), so every check is deterministic:
reads land on the standby, writes on the primary, the writer's reads never show their write undone, a tile
invalidated meanwhile is not cached from the stale standby, and a stopped standby sends reads to the primary.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import mapbox_vector_tile
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from spatial.store import users
from spatial.store.engine import libpq_url, make_engine
from spatial.store.models import Enclosure
from spatial.store.privileges import APP_ROLE
from spatial.store.replica import REPLAY
from tests import factories
from tests.conftest import TEMPLATE, login
from tests.test_tile_writes import features, polygon, tile_at

PASSWORD = "correct horse battery"
TILE = tile_at(16, 100, 100)
TILE_URL = f"/tiles/checkpoints/{TILE.z}/{TILE.x}/{TILE.y}.mvt"


@pytest.fixture(scope="module")
def standby(pg_server):
    """(primary cluster, standby cluster): a hot standby of the test cluster, stopped after the module."""
    if pg_server.cluster is None:
        pytest.skip("needs the embedded test cluster (GRIDGOV_TEST_DATABASE_URL is set)")
    folder = Path(tempfile.mkdtemp(prefix="gridgov-standby-"))
    replica = pg_server.cluster.standby(folder)
    try:
        yield pg_server.cluster, replica
    finally:
        replica.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _admin(cluster, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(host=str(cluster.socket_dir), port=cluster.port, user=cluster.superuser, dbname=dbname,
                           autocommit=True)


def _wait_until(check, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


def _caught_up(primary, replica) -> bool:
    """Whether the standby has replayed everything the primary has written so far."""
    with _admin(primary) as p, _admin(replica) as r:
        target = p.execute("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint").fetchone()[0]
        return (r.execute(REPLAY).fetchone()[1] or 0) >= target


@pytest.fixture(scope="module")
def world(pg_server, template_url, standby):
    """The app on a new database of the primary, its reads on the standby: (client, app, sessions, headers)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from spatial.settings import Settings
    from spatial.store.engine import make_sessionmaker

    primary, replica = standby
    name = "gridgov_r_" + uuid.uuid4().hex[:8]
    url = pg_server.create(name, template=TEMPLATE)
    engine = make_engine(url, pool_size=4, role=APP_ROLE)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        factories.two_grids(s)
        s.add(Enclosure(name="老围合", kind="estate", community_code=factories.COMMUNITY,
                        boundary=polygon(10, 10, 190, 190)))
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
    _wait_until(lambda: _caught_up(primary, replica), "the standby has the new database")
    read_url = make_url(replica.owner_url(name)).render_as_string(hide_password=False)
    read_engine = make_engine(read_url, pool_size=4, role=APP_ROLE)
    folder = Path(tempfile.mkdtemp(prefix="gridgov-r-"))
    settings = Settings(database_url=url, data_dir=folder, audit_seal_interval_s=0)
    with TestClient(create_app(settings, engine=engine, read_engine=read_engine)) as client:
        headers = {"planner": login(client, "planner1", PASSWORD), "viewer": login(client, "viewer1", PASSWORD)}
        yield client, client.app, sessions, headers
    read_engine.dispose()
    engine.dispose()
    shutil.rmtree(folder, ignore_errors=True)
    pg_server.drop(name)


class paused:
    """The standby stops replaying while the block runs (it lags for as long), then catches up."""

    def __init__(self, primary, replica) -> None:
        self.primary, self.replica = primary, replica

    def __enter__(self) -> None:
        with _admin(self.replica) as r:
            r.execute("SELECT pg_wal_replay_pause()")

    def __exit__(self, *exc) -> None:
        with _admin(self.replica) as r:
            r.execute("SELECT pg_wal_replay_resume()")
        _wait_until(lambda: _caught_up(self.primary, self.replica), "the standby caught up")


def _checkpoint(client, headers, name: str, y_m: float = 100) -> int:
    lon, lat = factories.metres_box(10, y_m, 10.1, y_m + 0.1).centroid.coords[0]  # on the enclosure's west edge
    created = client.post("/api/inspection/checkpoints", headers=headers, json={"lon": lon, "lat": lat, "name": name,
                                                                                 "staff_count": 1})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _ogc_names(client, headers) -> set[str]:
    response = client.get("/ogc/collections/checkpoints/items", headers=headers)
    assert response.status_code == 200, response.text
    return {f["properties"]["name"] for f in response.json()["features"]}


def _tile(client, headers) -> tuple[set[str], str]:
    response = client.get(TILE_URL, headers=headers)
    assert response.status_code in (200, 204), response.text
    decoded = mapbox_vector_tile.decode(response.content) if response.content else {}
    return {f["properties"].get("name") for f in features(decoded, "checkpoints")}, response.headers["x-tile-cache"]


def _landed(world, standby) -> tuple[bool, str]:
    """Where a read engine on the multi-host URL of the settings' kind (standby first, then the primary,
    ``prefer-standby``) connects: (in recovery, current user)."""
    from spatial.settings import Settings
    from spatial.store.database import open_read_engine

    _, app, sessions, _ = world
    primary, replica = standby
    dbname = make_url(app.state.settings.database_url).database
    url = (f"postgresql://{primary.owner}@/{dbname}?host={replica.socket_dir},{primary.socket_dir}"
           f"&port={replica.port},{primary.port}&target_session_attrs=prefer-standby")
    engine = open_read_engine(Settings(read_database_url=url, data_dir=app.state.settings.data_dir),
                              sessions.kw["bind"])
    try:
        with engine.connect() as connection:
            return tuple(connection.execute(text("SELECT pg_is_in_recovery(), current_user")).one())
    finally:
        engine.dispose()


def _counts(app) -> tuple[int, int, int]:
    r = app.state.replicas
    return r.replica_reads, r.primary_reads, r.fallbacks


def test_reads_land_on_the_standby_and_writes_on_the_primary(world, standby):
    client, app, sessions, headers = world
    replicas = app.state.replicas
    with replicas.session() as s:
        assert s.scalar(text("SELECT pg_is_in_recovery()")) is True
    with sessions() as s:
        assert s.scalar(text("SELECT pg_is_in_recovery()")) is False
    assert _landed(world, standby) == (True, APP_ROLE)  # libpq's multi-host routing, as the service's role
    client.cookies.clear()
    before = _counts(app)
    _ogc_names(client, headers["viewer"])
    exported = client.get("/api/export/layers/grids?format=geojson", headers=headers["viewer"])
    assert exported.status_code == 200, exported.text
    assert _counts(app)[0] == before[0] + 2 and _counts(app)[1:] == before[1:]
    # the export's audit row was written on the primary (the standby refuses writes), before the answer
    with sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'export' AND object_id = 'grids' "
                             "AND username = 'viewer1'")) == 1
    # a write goes to the primary (the standby would refuse it) and tells the caller where it committed
    _checkpoint(client, headers["planner"], "北门", y_m=60)
    assert 0 < int(client.cookies["gridgov-lsn"], 16) <= replicas.primary_lsn


def test_the_writer_never_reads_their_write_undone(world, standby):
    client, app, _, headers = world
    client.cookies.clear()
    with paused(*standby):
        _checkpoint(client, headers["planner"], "东门", y_m=140)
        cookie = client.cookies["gridgov-lsn"]
        before = _counts(app)
        assert "东门" in _ogc_names(client, headers["planner"])  # the standby is behind: the primary answered
        assert _counts(app)[1] == before[1] + 1 and _counts(app)[2] == before[2] + 1
        client.cookies.clear()
        assert "东门" not in _ogc_names(client, headers["viewer"])  # others may read the lagging standby
        # another worker knows the write only by the cookie
        app.state.replicas.marks._marks.clear()
        client.cookies.set("gridgov-lsn", cookie)
        assert "东门" in _ogc_names(client, headers["planner"])
    before = _counts(app)
    assert "东门" in _ogc_names(client, headers["planner"])  # caught up: the standby answers, with the write
    assert _counts(app)[0] == before[0] + 1
    client.cookies.set("gridgov-lsn", "ffffffffffff")  # beyond anything the primary reached: the primary, no wait
    before = _counts(app)
    assert "东门" in _ogc_names(client, headers["planner"])
    assert _counts(app) == (before[0], before[1] + 1, before[2])  # not a fallback: the replica was not waited for


def test_a_tile_invalidated_while_the_standby_lags_is_not_cached_from_it(world, standby):
    client, app, sessions, headers = world
    client.cookies.clear()
    app.state.replicas.marks._marks.clear()
    _tile(client, headers["viewer"])
    names, state = _tile(client, headers["viewer"])
    assert state == "hit" and "西门" not in names
    cache = app.state.tile_service.cache
    with paused(*standby):
        _checkpoint(client, headers["planner"], "西门")  # through this process: its own commit's position
        client.cookies.clear()
        for _ in range(2):  # rendered on the lagging standby each time, never cached
            names, state = _tile(client, headers["viewer"])
            assert (state, "西门" in names) == ("miss", False)
    names, state = _tile(client, headers["viewer"])
    assert (state, "西门" in names) == ("miss", True)  # the standby caught up: rendered there, fresh, cached
    assert _tile(client, headers["viewer"]) == (names, "hit")
    with paused(*standby):  # as another worker or psql writes: the listener hears it, with the primary's position
        generation = cache.generation
        x, y = factories.metres_box(10, 110, 10.1, 110.1).centroid.coords[0]
        with psycopg.connect(libpq_url(sessions.kw["bind"]), autocommit=True) as conn:
            conn.execute("INSERT INTO checkpoints (name, location) VALUES ('南门', ST_SetSRID(ST_MakePoint(%s, %s), "
                         "4326))", (x, y))
        _wait_until(lambda: cache.generation > generation, "the listener heard the write")
        for _ in range(2):
            names, state = _tile(client, headers["viewer"])
            assert (state, "南门" in names) == ("miss", False)
    names, state = _tile(client, headers["viewer"])
    assert (state, "南门" in names) == ("miss", True)


def test_a_stopped_standby_sends_reads_to_the_primary(world, standby):
    client, app, _, headers = world
    client.cookies.clear()
    primary, replica = standby
    replica.stop()
    try:
        before = _counts(app)
        assert "东门" in _ogc_names(client, headers["viewer"])
        client.app.state.tile_service.cache.clear()
        names, state = _tile(client, headers["viewer"])
        assert "西门" in names and state == "miss"
        replica_reads, primary_reads, fallbacks = _counts(app)
        assert replica_reads == before[0] and primary_reads == before[1] + 2 and fallbacks >= before[2] + 1
        assert _landed(world, standby) == (False, APP_ROLE)  # a multi-host URL falls back by itself
    finally:
        replica.start()


def test_the_tile_cache_refuses_a_replica_tile_only_behind_an_invalidation_touching_it():
    """No database: a replica render is refused only if an invalidation touching it is at a later position."""
    from tiles.cache import Entry, TileCache, _HISTORY
    from tiles.grid import Tile

    cache = TileCache()
    here, there = Tile(16, 54_000, 28_000), Tile(16, 54_100, 28_100)
    key = lambda tile: ("checkpoints", tile.z, tile.x, tile.y, "")  # noqa: E731
    cache.invalidate([here.bounds()], ["checkpoints"], lsn=1_000)
    generation = cache.generation
    assert not cache.put(key(here), Entry(b"", '"a"'), generation, seen_lsn=999)  # replica had not replayed it
    assert cache.put(key(there), Entry(b"", '"b"'), generation, seen_lsn=999)    # elsewhere: nothing changed
    assert cache.put(key(here), Entry(b"", '"c"'), generation, seen_lsn=1_000)   # replayed
    assert cache.put(key(here), Entry(b"", '"d"'), generation)                   # the primary's: current
    for lsn in range(2_000, 2_000 + _HISTORY):  # the touching invalidation falls out of the history
        cache.invalidate([there.bounds()], ["buildings"], lsn=lsn)
    assert not cache.put(key(here), Entry(b"", '"e"'), cache.generation, seen_lsn=999)  # too far behind to tell
    assert cache.put(key(here), Entry(b"", '"f"'), cache.generation, seen_lsn=1_500)  # later ones are elsewhere


def test_a_read_cancelled_by_a_conflict_with_recovery_is_an_outage_to_retry():
    """A standby cancels a long read whose rows the replay must remove (sync sessions: 503 with Retry-After)."""
    from sqlalchemy.exc import DBAPIError

    from api.errors import is_outage

    def wrapped(message: str) -> DBAPIError:
        return DBAPIError.instance("SELECT 1", None, psycopg.errors.SerializationFailure(message), psycopg.Error)

    assert is_outage(wrapped("canceling statement due to conflict with recovery"))
    assert not is_outage(wrapped("could not serialize access due to concurrent update"))
