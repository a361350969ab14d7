"""Real GIS clients with a personal access token as the password of HTTP Basic (decision 0011): headless QGIS
3.22 (Debian's python3-qgis, the version district offices run) loads every OGC API collection and a vector tile
layer through a Basic auth config and reads every feature; GDAL's ogrinfo does the same with
GDAL_HTTP_AUTH=BASIC. Both fail with the user's login password."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from spatial.store import tokens, users
from spatial.store.layers import LAYERS
from tiles.grid import tile_range

PASSWORD = "correct horse battery"
SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("qgis_client.py")


def _qgis_importable() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True,
                           env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, timeout=60)
    return probe.returncode == 0


needs_qgis = pytest.mark.skipif(not _qgis_importable(), reason="QGIS's Python bindings are not importable by "
                                "/usr/bin/python3: apt-get install python3-qgis (./dev.sh test installs it)")
needs_gdal = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="gdal-bin is not installed")


@pytest.fixture
def demo_server(live_server):
    """The live server with the demo neighbourhood, a planner of its subdistrict and the planner's token."""
    from fixtures.demo import SUBDISTRICT
    from fixtures.demo_load import load_demo

    base, sessions = live_server
    with sessions.begin() as s:
        load_demo(s)
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=SUBDISTRICT[0])
        _, secret = tokens.create_token(s, "planner1", "QGIS office PC", actor="test")
    return base, sessions, secret


def matched(base: str, auth: tuple[str, str], name: str) -> int:
    """How many features the server says collection ``name`` has for this caller."""
    page = httpx.get(f"{base}/ogc/collections/{name}/items", params={"limit": 1}, auth=auth, timeout=30)
    assert page.status_code == 200, page.text
    return page.json()["numberMatched"]


def run_qgis(job: dict, home: Path, timeout_s: float = 300) -> dict:
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(home), "QGIS_AUTH_DB_DIR_PATH": str(home),
           "XDG_RUNTIME_DIR": str(home)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([SYSTEM_PYTHON, str(SCRIPT)], input=json.dumps(job), capture_output=True, text=True,
                          env=env, timeout=timeout_s, cwd=home)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def demo_tile(base: str, auth: tuple[str, str], z: int) -> tuple[int, int, int]:
    """The tile at zoom ``z`` holding the middle of the demo's grids."""
    extent = httpx.get(f"{base}/ogc/collections/grids", auth=auth).json()["extent"]["spatial"]["bbox"][0]
    lon, lat = (extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2
    x, y, _, _ = tile_range((lon, lat, lon, lat), z)
    return z, x, y


@needs_qgis
def test_qgis_3_22_loads_every_collection_and_the_tiles_with_basic_auth(demo_server, tmp_path):
    base, _, secret = demo_server
    auth = ("planner1", secret)
    expected = {name: matched(base, auth, name) for name in LAYERS}
    assert expected["grids"] > 5 and expected["buildings"] > 50
    z, x, y = demo_tile(base, auth, 15)
    tile = httpx.get(f"{base}/tiles/{z}/{x}/{y}.mvt", auth=auth)
    assert tile.status_code == 200, tile.text
    import mapbox_vector_tile

    served = {name: len(layer["features"]) for name, layer in mapbox_vector_tile.decode(tile.content).items()}
    assert served.get("buildings", 0) > 0

    tile_layers = [v["id"] for v in httpx.get(f"{base}/tiles/tiles.json").json()["vector_layers"]]
    job = {"base": base, "username": "planner1", "password": secret, "collections": list(LAYERS),
           "tile": {"z": z, "x": x, "y": y, "layers": tile_layers}}
    loaded = run_qgis(job, tmp_path)
    assert loaded["version"].startswith("3."), loaded
    assert {name: c["features"] for name, c in loaded["collections"].items()} == expected, loaded
    assert loaded["tile_layer_valid"], loaded
    assert loaded["tiles"] == served, loaded

    refused = run_qgis({**job, "password": PASSWORD, "collections": ["grids"]}, tmp_path / "password", 90)
    grids = refused["collections"]["grids"]
    assert not grids["valid"] or grids["features"] == 0, refused
    assert refused["tiles"] == {}, refused


def _ogrinfo(*args: str, userpwd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GDAL_HTTP_USERPWD": userpwd, "GDAL_HTTP_AUTH": "BASIC", "GDAL_HTTP_TIMEOUT": "30"}
    return subprocess.run(["ogrinfo", "-ro", *args], env=env, capture_output=True, text=True, timeout=120)


@needs_gdal
def test_ogrinfo_reads_every_collection_with_basic_auth(demo_server):
    base, _, secret = demo_server
    auth = ("planner1", secret)
    listing = _ogrinfo("-q", f"OAPIF:{base}/ogc", userpwd=f"planner1:{secret}")
    assert listing.returncode == 0, listing.stderr
    for name in LAYERS:
        assert name in listing.stdout
        count = _ogrinfo("-q", "-al", f"OAPIF:{base}/ogc", name, "-oo", "PAGE_SIZE=1000",
                         userpwd=f"planner1:{secret}").stdout.count(f"OGRFeature({name})")
        assert count == matched(base, auth, name), name
    refused = _ogrinfo("-q", f"OAPIF:{base}/ogc", "grids", userpwd=f"planner1:{PASSWORD}")
    assert refused.returncode != 0 and "401" in refused.stderr
