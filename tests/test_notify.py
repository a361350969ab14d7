"""Changes reach every server process: NOTIFY sent in the writer's transaction, heard by each process's listener
(tile invalidations, revoked tokens), only when the transaction commits."""

from __future__ import annotations

import queue
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from spatial.settings import Settings
from spatial.store import users
from spatial.store.engine import make_engine, make_sessionmaker
from spatial.store.notify import Listener, publish
from tiles import cache as tile_cache

PASSWORD = "correct horse battery"


def libpq(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def heard(fresh_db_url):
    """(sessionmaker, queue of payloads heard on channel 'test_channel')."""
    got: queue.Queue = queue.Queue()
    listener = Listener(libpq(fresh_db_url), {"test_channel": got.put}, poll_s=0.1).start()
    assert listener.listening.wait(10)
    engine = make_engine(fresh_db_url, pool_size=1)
    yield make_sessionmaker(engine), got
    listener.stop()
    engine.dispose()


def test_a_notification_is_heard_when_the_transaction_commits_and_never_after_a_rollback(heard):
    sessions, got = heard
    with sessions() as session:
        publish(session, "test_channel", {"n": 1})
        session.rollback()
        publish(session, "test_channel", {"n": 2})
        time.sleep(0.3)
        assert got.empty()  # not before the commit
        session.commit()
    assert got.get(timeout=5) == {"n": 2}
    time.sleep(0.3)
    assert got.empty()  # the rolled-back one never comes


def test_a_write_to_a_drawn_table_publishes_its_extent_from_the_database(heard, fresh_db_url):
    """No caller publishes: the trigger of migration 0011 does, once per statement, on commit only."""
    sessions, _ = heard
    boxes: queue.Queue = queue.Queue()
    listener = Listener(libpq(fresh_db_url), {tile_cache.CHANNEL: boxes.put}, poll_s=0.1).start()
    insert = text("INSERT INTO checkpoints (name, location) "
                  "VALUES ('东门', ST_SetSRID(ST_MakePoint(:x, 22.5), 4326))")
    try:
        assert listener.listening.wait(10)
        with sessions() as session:
            session.execute(insert, {"x": 114.2})
            session.rollback()
        with sessions.begin() as session:
            session.execute(insert, {"x": 114.0})
        assert boxes.get(timeout=5) == {"boxes": [[114.0, 22.5, 114.0, 22.5]], "layers": ["checkpoints"]}
        time.sleep(0.3)
        assert boxes.empty()  # the rolled-back insert never announced anything
    finally:
        listener.stop()


def test_a_tile_cache_applies_an_invalidation_heard_from_another_process():
    from tiles.grid import Tile

    cache = tile_cache.TileCache(max_bytes=1_000_000)
    near, far = ("grids", 14, 13348, 7130, "all"), ("grids", 14, 13000, 7000, "all")
    for key in (near, far):
        assert cache.put(key, tile_cache.Entry(b"tile", '"e"'), cache.generation)
    west, south, east, north = Tile(14, 13348, 7130).bounds(0)
    tile_cache.on_notify({"boxes": [[west, south, east, north]], "layers": None})
    assert cache.get(near) is None and cache.get(far) is not None


def test_logging_out_in_one_process_ends_the_token_in_the_others(fresh_db_url, tmp_path):
    """Two apps on one database stand for two server workers, each with its own principal cache."""
    sessions = make_sessionmaker(make_engine(fresh_db_url, pool_size=1))
    with sessions.begin() as s:
        users.create_user(s, "viewer1", PASSWORD, "viewer")
    settings = Settings(database_url=fresh_db_url, data_dir=tmp_path)
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        token = first.post("/api/auth/token", data={"username": "viewer1", "password": PASSWORD}).json()
        headers = {"Authorization": "Bearer " + token["access_token"]}
        assert second.get("/api/auth/me", headers=headers).status_code == 200  # now cached in the second
        assert first.post("/api/auth/logout", headers=headers).status_code == 204
        deadline = time.monotonic() + 5  # well under the cache's 10 s: only the notification can end it
        while second.get("/api/auth/me", headers=headers).status_code == 200:
            assert time.monotonic() < deadline, "the second process still accepts the revoked token"
            time.sleep(0.1)
    assert second.get("/api/health").status_code == 200


def test_grid_workers_moved_by_an_edit_see_their_new_grid_at_once_in_every_process(fresh_db_url, tmp_path):
    """A merge hands the east grid's worker to the west grid; a process that remembered the worker with the
    east grid forgets it when the merge commits, well before its cache would expire."""
    from spatial.store import grids as grid_store
    from tests import factories

    sessions = make_sessionmaker(make_engine(fresh_db_url, pool_size=1))
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        users.create_user(s, "wang.fang", PASSWORD, "grid_worker", grid_codes=(east.code,))
        codes, versions = (west.code, east.code), {west.code: west.version, east.code: east.version}
        ids = {"west": west.id, "east": east.id}
    settings = Settings(database_url=fresh_db_url, data_dir=tmp_path)
    with TestClient(create_app(settings)) as server:
        token = server.post("/api/auth/token", data={"username": "wang.fang", "password": PASSWORD}).json()
        headers = {"Authorization": "Bearer " + token["access_token"]}
        assert server.get("/api/auth/me", headers=headers).json()["grid_ids"] == [ids["east"]]  # remembered
        with sessions.begin() as s:
            grid_store.merge_grids(s, list(codes), grid_store.Edit("planner", "one team", versions))
        deadline = time.monotonic() + 5  # well under the cache's 10 s: only the notification can end it
        while server.get("/api/auth/me", headers=headers).json()["grid_ids"] != [ids["west"]]:
            assert time.monotonic() < deadline, "the process still remembers the worker's old grid"
            time.sleep(0.1)
