"""Fault drill: PostgreSQL crashes under a running service.

The service (a real uvicorn) runs on a throw-away cluster of this module's own, which the test stops abruptly
(``pg_ctl stop -m immediate``: no checkpoint, crash recovery at the next start). While it is down every kind of
request — reads, writes, visits, nearby, tiles (through the tile router's own thread pool), login, health — must
answer at once with 503, a ``Retry-After`` header and a JSON error body: never a 500, never a hang (the client
gives up after :data:`CLIENT_TIMEOUT_S`). After the cluster is started again the same app, not restarted, answers
200 within a bounded number of retries, with every edit it acknowledged before the crash stored.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from spatial.store.cluster import LocalCluster
from spatial.store.database import migrate_schema
from spatial.store.engine import make_engine
from tests import drills
from tests.drills import WEST

CLIENT_TIMEOUT_S = 10.0
RECOVERY_TRIES, RECOVERY_PAUSE_S = 60, 0.5
TILE_BEFORE, TILE_DURING = (16, 53534, 28549), (17, 107068, 57099)  # around lon 114.072, lat 22.565


@pytest.fixture(scope="module")
def crashable() -> Iterator[LocalCluster]:
    """A cluster of this module's own, in a temporary folder: the tests crash it."""
    folder = Path(tempfile.mkdtemp(prefix="gridgov-faults-"))
    cluster = LocalCluster(folder)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_db_url(crashable: LocalCluster) -> Iterator[str]:
    """Overrides conftest's: ``app_env`` and ``live_server`` of this module run on the crashable cluster."""
    name = "gridgov_faults_" + uuid.uuid4().hex[:8]
    crashable.ensure_database(name)
    url = crashable.owner_url(name)
    engine = make_engine(url, pool_size=1)
    migrate_schema(engine, crashable, name)
    engine.dispose()
    yield url
    crashable.start()  # a failed test may have left it down
    crashable.drop_database(name)


def crash(cluster: LocalCluster) -> None:
    """Stop the server as a power cut would: ``pg_ctl stop -m immediate``."""
    cluster.stop(crash=True)
    assert not cluster.running()


def assert_unavailable(kind: str, response: httpx.Response) -> None:
    assert response.status_code == 503, (kind, response.status_code, response.text)
    assert int(response.headers["Retry-After"]) > 0, kind
    assert response.json()["error"] == "DatabaseUnavailable", kind


def tile(client: httpx.Client, headers: dict[str, str], zxy: tuple[int, int, int]) -> httpx.Response:
    z, x, y = zxy
    return client.get(f"/tiles/grids/{z}/{x}/{y}.mvt", headers=headers)


def test_a_crashed_database_gives_fast_503s_and_the_service_recovers_with_every_acknowledged_edit(
        live_server, crashable):
    base, sessions = live_server
    drill = drills.seed(sessions)
    with httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT_S) as client:
        planner, worker, viewer = (drills.token(client, name) for name in ("planner1", "worker1", "viewer1"))
        etag = client.get(f"/api/grids/{WEST}", headers=planner).headers["ETag"]
        saved = []
        for x in (150, 160, 170):
            response = drills.redraw(client, planner, x, etag)
            assert response.status_code == 200, response.text
            etag = response.headers["ETag"]
            saved.append(x)
        visits = [drills.visit(client, worker, drill, h) for h in drill.household_ids[:3]]
        assert [v.status_code for v in visits] == [201] * 3
        assert tile(client, planner, TILE_BEFORE).status_code in (200, 204)  # the tile router now knows the planner

        crash(crashable)
        lon, lat = drill.position
        down = {
            "read": client.get(f"/api/grids/{WEST}", headers=planner),
            "history": client.get(f"/api/grids/{WEST}/versions", headers=planner),
            "write": drills.redraw(client, planner, 180, etag),
            "visit": drills.visit(client, worker, drill, drill.household_ids[3]),
            "nearby": client.get("/api/field/nearby", headers=worker, params={"lon": lon, "lat": lat}),
            "tile, caller remembered": tile(client, planner, TILE_DURING),
            "tile, caller looked up": tile(client, viewer, TILE_DURING),
            "login": client.post("/api/auth/token", data={"username": "planner1", "password": drills.PASSWORD}),
            "health": client.get("/api/health"),
        }
        for kind, response in down.items():
            assert_unavailable(kind, response)

        crashable.start()
        for _ in range(RECOVERY_TRIES):
            health = client.get("/api/health")
            if health.status_code == 200:
                break
            assert_unavailable("health while recovering", health)
            time.sleep(RECOVERY_PAUSE_S)
        assert health.status_code == 200, health.text

        again = client.get(f"/api/grids/{WEST}", headers=planner)  # the same token: sessions survive the crash
        assert again.status_code == 200 and again.headers["ETag"] == etag
        assert tile(client, viewer, TILE_DURING).status_code in (200, 204)
        assert drills.redraw(client, planner, 180, etag).status_code == 200
    assert drills.west_history(sessions) == [(1, 200.0), *((n + 2, float(x)) for n, x in enumerate(saved)),
                                             (len(saved) + 2, 180.0)]
    with sessions() as s:
        stored = s.execute(text("SELECT id FROM campaign_visits ORDER BY id")).scalars().all()
    assert stored == sorted(v.json()["id"] for v in visits)


def test_an_exhausted_connection_pool_is_a_503_not_a_500_or_a_hang(fresh_db_url, tmp_path):
    from api.app import create_app
    from spatial.settings import Settings

    engine = create_engine(fresh_db_url, pool_size=1,
                           max_overflow=0, pool_timeout=0.5)
    app = create_app(Settings(database_url=fresh_db_url, data_dir=tmp_path), engine=engine)
    with TestClient(app) as client:
        assert client.get("/api/health").status_code == 200
        with engine.connect():  # the pool's only connection is taken
            assert_unavailable("pool exhausted", client.get("/api/health"))
        assert client.get("/api/health").status_code == 200
    engine.dispose()
