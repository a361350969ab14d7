"""Files from others cannot make the server read its own files or fetch URLs, nor cost it more than the limits
(issue 12, items 1, 6 and 14): the probes of the attack, through the HTTP upload as a planner and through the
command line's import functions. See :mod:`spatial.io.safe_files`."""

from __future__ import annotations

import http.server
import io
import json
import sqlite3
import struct
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
from sqlalchemy import select

from spatial.io.grid_files import import_grid_file
from spatial.io import import_buildings, import_osm_pbf, import_streets
from spatial.io import safe_files
from spatial.io.safe_files import ReadLimits
from spatial.errors import InvalidInput, PayloadTooLarge
from spatial.store.models import AuditEntry
from tests import factories
from tests.conftest import login
from tests.test_export_import import PASSWORD, _geojson, _seed, _upload

MARKER = "GRIDGOV-SECRET-MARKER-5d1e"
SQUARE = "POLYGON((114.0725 22.566,114.0735 22.566,114.0735 22.567,114.0725 22.567,114.0725 22.566))"


@pytest.fixture
def planner(app_env):
    client, sessions = app_env
    ids = _seed(sessions)
    return client, sessions, ids, login(client, "planner1", PASSWORD)


@pytest.fixture
def secret(tmp_path_factory) -> Path:
    """A server file outside any upload folder, whose first line is the marker."""
    path = tmp_path_factory.mktemp("server-side") / "credentials.csv"
    path.write_text(f"{MARKER}\nsecond line\n")
    return path


@pytest.fixture
def http_server():
    """An HTTP server on 127.0.0.1 in a thread; yields (base URL, list of requests it received)."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(f"GET {self.path}")
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"field_1\n440304009001\n")

        def do_HEAD(self):  # noqa: N802
            seen.append(f"HEAD {self.path}")
            self.send_response(200)
            self.send_header("Content-Length", "22")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _vrt(source: str, layer: str) -> bytes:
    """The attack of the issue: an OGR VRT whose SQL turns the first column of ``source`` into community codes."""
    return f"""<OGRVRTDataSource><OGRVRTLayer name="grids"><SrcDataSource>CSV:{source}</SrcDataSource>
<OpenOptions><OOI key="HEADERS">NO</OOI></OpenOptions>
<SrcSQL dialect="SQLITE">SELECT field_1 AS community_code, '{SQUARE}' AS wkt FROM "{layer}"</SrcSQL>
<GeometryField encoding="WKT" field="wkt"/></OGRVRTLayer></OGRVRTDataSource>""".encode()


def _import_rows(sessions) -> list[AuditEntry]:
    with sessions() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "import").order_by(AuditEntry.id)))


def _no_leak(response, *secrets: str) -> None:
    for text in (MARKER, "/tmp", tempfile.gettempdir(), "gridgov-import-", "gridgov-unzip-", *secrets):
        assert text not in response.text, text


# -- reading server files ---------------------------------------------------------------------------------------
def test_a_vrt_named_geojson_cannot_read_a_server_file(planner, secret):
    client, sessions, _, headers = planner
    response = _upload(client, headers, "grids", _vrt(str(secret), "credentials"), dry_run="true")
    assert response.status_code == 422, response.text  # before the fix too: "lies in no known community (<marker>)"
    assert "not a GeoJSON file" in response.json()["detail"] and "VRT" in response.json()["detail"]
    _no_leak(response, str(secret.parent))
    rows = _import_rows(sessions)
    assert [(r.username, r.object_type, r.object_id) for r in rows] == [("planner1", "grids", "plan.geojson")]
    assert rows[0].result.startswith("refused 422: upload.geojson: cannot read: the file is not a GeoJSON file")
    assert MARKER not in rows[0].result


def test_a_department_layer_upload_is_vetted_like_the_grid_import(planner, secret):
    """The one network's department grids (issue 16 §2) read files through the same gate: a VRT named .geojson that
    would read a server file is refused by content, the file's path and contents not quoted."""
    from spatial.geometry.codes import credit_check_char

    client, _, _, headers = planner
    department = "91440304MA5F00001" + credit_check_char("91440304MA5F00001")
    response = client.post(f"/api/one-network/departments/{department}/grids", headers=headers,
                           files={"file": ("plan.geojson", _vrt(str(secret), "credentials"))},
                           data={"department_name": "市场监督管理局", "layer_name": "市场监管网格", "reason": "test",
                                 "dry_run": "true"})
    assert response.status_code == 422, response.text
    assert "not a GeoJSON file" in response.json()["detail"], response.text
    _no_leak(response, str(secret.parent))


def test_the_command_line_refuses_a_vrt_whatever_its_name(db, tmp_path, secret):
    for name in ("plan.geojson", "plan.json", "plan.gpkg", "plan.shp"):
        path = tmp_path / name
        path.write_bytes(_vrt(str(secret), "credentials"))
        for run in (lambda p: import_grid_file(db, p, "grids", dry_run=True), lambda p: import_buildings(db, p),
                    lambda p: import_streets(db, p)):
            with pytest.raises(InvalidInput, match=f"{name}: cannot read: the file is not a") as refused:
                run(path)
            assert MARKER not in str(refused.value) and str(secret.parent) not in str(refused.value)
    pbf = tmp_path / "city.osm.pbf"
    pbf.write_bytes(_vrt(str(secret), "credentials"))
    with pytest.raises(InvalidInput, match="not an OSM PBF extract"):
        import_osm_pbf(db, pbf)


def test_a_gdalg_pipeline_is_refused(planner, db, tmp_path, secret):
    client, _, _, headers = planner
    pipeline = json.dumps({"type": "gdal_streamed_alg", "relative_paths_relative_to_this_file": False,
                           "command_line": f"gdal vector pipeline ! read {secret} ! write --of stream x"}).encode()
    response = _upload(client, headers, "grids", pipeline, dry_run="true")
    assert response.status_code == 422 and "GDALG" in response.json()["detail"], response.text
    _no_leak(response, str(secret))
    path = tmp_path / "plan.geojson"
    path.write_bytes(pipeline)
    with pytest.raises(InvalidInput, match="GDALG"):
        import_grid_file(db, path, "grids", dry_run=True)


def test_other_formats_are_refused_by_content(planner, tmp_path):
    client, _, _, headers = planner
    csv = f"community_code,wkt\n{factories.COMMUNITY},\"{SQUARE}\"\n".encode()
    plain = tmp_path / "plain.sqlite"
    with sqlite3.connect(plain) as connection:
        connection.execute("CREATE TABLE grids (community_code TEXT, wkt TEXT)")
    kml = b'<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document/></kml>'
    for name, payload, expected in (("plan.geojson", csv, "not a GeoJSON file"),
                                    ("plan.gpkg", plain.read_bytes(), "without the GeoPackage application id"),
                                    ("plan.gpkg", kml, "not a GeoPackage"),
                                    ("plan.geojson", b'[{"type": "Feature"}]', "JSON of another kind")):
        response = _upload(client, headers, "grids", payload, name=name, dry_run="true")
        assert response.status_code == 422 and expected in response.json()["detail"], (name, response.text)


# -- making requests ---------------------------------------------------------------------------------------------
def test_a_vrt_or_a_crs_link_makes_no_request(planner, http_server):
    client, sessions, _, headers = planner
    base, seen = http_server
    vrt = _upload(client, headers, "grids", _vrt(f"/vsicurl/{base}/codes.csv", "codes"), dry_run="true")
    assert vrt.status_code == 422 and "not a GeoJSON file" in vrt.json()["detail"], vrt.text
    linked = json.loads(_geojson([(factories.metres_box(0, 0, 10, 10), {})]))
    linked["crs"] = {"type": "link", "properties": {"href": f"{base}/crs.wkt", "type": "ogcwkt"}}
    link = _upload(client, headers, "grids", json.dumps(linked).encode(), dry_run="true")
    assert link.status_code == 422 and '"crs" member' in link.json()["detail"], link.text
    time.sleep(0.2)
    assert seen == []
    assert [r.result[:12] for r in _import_rows(sessions)] == ["refused 422:"] * 2


def test_gdal_itself_has_its_network_off(http_server, monkeypatch, tmp_path):
    """The second line of defence: even a path GDAL is handed directly cannot reach the network."""
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    base, seen = http_server
    linked = tmp_path / "linked.geojson"
    linked.write_text(json.dumps({"type": "FeatureCollection", "features": [], "crs": {
        "type": "link", "properties": {"href": f"{base}/crs.wkt", "type": "ogcwkt"}}}))
    vrt = tmp_path / "remote.vrt"
    vrt.write_bytes(_vrt(f"/vsicurl/{base}/codes.csv", "codes"))
    for path in (f"/vsicurl/{base}/codes.csv", f"CSV:/vsicurl_streaming/{base}/codes.csv", str(vrt), str(linked)):
        try:
            pyogrio.raw.read(path)
        except Exception:  # noqa: BLE001  (refused or unreadable: either is fine, no request is the point)
            pass
    assert safe_files.GDAL_LOCKDOWN  # imported above, so set
    time.sleep(0.2)
    assert seen == []


# -- GeoPackages -------------------------------------------------------------------------------------------------
def _gpkg(path: Path, n: int = 1) -> Path:
    boxes = [factories.metres_box(10 * i, 0, 10 * i + 8, 8) for i in range(n)]
    pyogrio.raw.write(path, np.array([b.wkb for b in boxes], dtype=object),
                      [np.array([factories.COMMUNITY] * n, dtype=object)], fields=["community_code"],
                      layer="grids", driver="GPKG", geometry_type="MultiPolygon", crs="EPSG:4326")
    return path


def test_a_geopackage_with_a_view_a_trigger_or_a_virtual_table_is_refused(planner, db, tmp_path):
    client, sessions, _, headers = planner
    slow_view = """CREATE VIEW busy AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n
                   WHERE i < 100000000) SELECT max(i) AS fid, NULL AS geom FROM n"""
    cases = {
        "view": [slow_view, "INSERT INTO gpkg_contents (table_name, data_type, identifier) "
                            "VALUES ('busy', 'attributes', 'busy')"],
        "trigger": ["CREATE TRIGGER note_reads AFTER INSERT ON grids BEGIN SELECT 1; END"],
        "virtual table": ["CREATE VIRTUAL TABLE sneaky USING rtree(id, minx, maxx)"],
        "generated columns": ["ALTER TABLE grids ADD COLUMN slow TEXT GENERATED ALWAYS AS "
                              "(hex(zeroblob(100000000))) VIRTUAL"],
    }
    for what, statements in cases.items():
        path = _gpkg(tmp_path / f"{what.replace(' ', '_')}.gpkg")
        with sqlite3.connect(path) as connection:
            for statement in statements:
                connection.execute(statement)
        started = time.perf_counter()
        response = _upload(client, headers, "grids", path.read_bytes(), name="plan.gpkg", dry_run="true")
        assert response.status_code == 422, (what, response.text)
        assert f"not a GeoPackage: it holds a {what}" in response.json()["detail"] \
            or f"has {what}" in response.json()["detail"], (what, response.text)
        assert time.perf_counter() - started < 2
        with pytest.raises(InvalidInput, match="not a GeoPackage"):
            import_buildings(db, path)
    assert len(_import_rows(sessions)) == len(cases)


def test_a_plain_geopackage_still_imports_and_the_feature_cap_holds(db, tmp_path):
    path = _gpkg(tmp_path / "three.gpkg", n=3)
    report = import_grid_file(db, path, "grids", dry_run=True, limits=ReadLimits(max_features=3))
    assert report.read == 3
    with pytest.raises(PayloadTooLarge, match="more than 2 features"):
        import_grid_file(db, path, "grids", dry_run=True, limits=ReadLimits(max_features=2))


# -- zips ----------------------------------------------------------------------------------------------------
def _lying_zip(path: Path, size: int, declared: int = 1000) -> Path:
    """A zip of ``size`` zero bytes as plan.shp whose local and central headers say ``declared`` bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive, \
            archive.open("plan.shp", "w") as member:
        block = b"\0" * 1_048_576
        for _ in range(size // len(block)):
            member.write(block)
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    assert struct.unpack("<I", data[local + 22:local + 26])[0] in (0, size, 0xFFFFFFFF)
    data[local + 22:local + 26] = struct.pack("<I", declared)
    data[central + 24:central + 28] = struct.pack("<I", declared)
    descriptor = data.find(b"PK\x07\x08")
    if 0 <= descriptor < central:  # written with a data descriptor: its size too
        data[descriptor + 12:descriptor + 16] = struct.pack("<I", declared)
    path.write_bytes(bytes(data))
    assert zipfile.ZipFile(path).infolist()[0].file_size == declared
    return path


def test_a_zip_lying_about_its_size_is_refused_while_unpacking(planner, tmp_path):
    client, sessions, _, headers = planner
    archive = _lying_zip(tmp_path / "liar.zip", 150 * 1_048_576)
    assert archive.stat().st_size < 1_000_000
    before = set(Path(tempfile.gettempdir()).glob("gridgov-unzip-*"))
    response = _upload(client, headers, "grids", archive.read_bytes(), name="plan.zip", dry_run="true")
    assert response.status_code == 413, response.text[:300]
    assert "unpacks to more than 100,000,000 bytes" in response.json()["detail"]
    assert set(Path(tempfile.gettempdir()).glob("gridgov-unzip-*")) == before
    assert _import_rows(sessions)[0].result.startswith("refused 413: the zip unpacks to more than")


def test_unpacking_stops_writing_at_the_cap(tmp_path):
    archive = _lying_zip(tmp_path / "liar.zip", 20 * 1_048_576)
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(PayloadTooLarge):
        safe_files._unzip(archive, "liar.zip", folder, 5_000_000)
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 5_000_000


def _zip(members: dict[str, bytes], symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_zip_members_must_be_plain_shapefile_parts(planner, tmp_path, secret):
    client, _, _, headers = planner
    shp = tmp_path / "grids.shp"
    pyogrio.raw.write(shp, np.array([factories.metres_box(0, 0, 8, 8).wkb], dtype=object), [], fields=[],
                      driver="ESRI Shapefile", geometry_type="MultiPolygon", crs="EPSG:4326")
    parts = {f"grids{s}": shp.with_suffix(s).read_bytes() for s in (".shp", ".shx", ".dbf", ".prj")}
    cases = {
        "traversal": (_zip({**parts, "../../escaped.shp": parts["grids.shp"]}), "plain file names"),
        "folder": (_zip({f"sub/{k}": v for k, v in parts.items()}), "plain file names"),
        "symlink": (_zip(parts, symlink="grids.cpg"), "symbolic link"),
        "other file": (_zip({**parts, "grids.vrt": _vrt(str(secret), "credentials")}), "may hold only"),
        "duplicate": (_zip({**parts, "GRIDS.SHP": parts["grids.shp"]}), "same member twice"),
        "vrt as shp": (_zip({"grids.shp": _vrt(str(secret), "credentials")}), "not a Shapefile: its .shp lacks"),
    }
    for what, (payload, expected) in cases.items():
        response = _upload(client, headers, "grids", payload, name="plan.zip", dry_run="true")
        assert response.status_code == 422 and expected in response.json()["detail"], (what, response.text)
        _no_leak(response, str(secret.parent))
    assert not (Path(tempfile.gettempdir()) / "escaped.shp").exists()
    good = _upload(client, headers, "grids", _zip(parts), name="plan.zip", dry_run="true")
    assert good.status_code in (200, 422) and good.json().get("read", good.json().get("report", {}).get("read")) == 1


# -- messages ------------------------------------------------------------------------------------------------
def test_findings_quote_no_field_values_and_no_paths(planner):
    client, _, _, headers = planner
    long_value = f"{MARKER} and more text from somewhere"
    plan = _geojson([(factories.metres_box(0, 0, 10, 10), {"community_code": long_value}),
                     (factories.metres_box(20, 0, 30, 10), {"community_code": "4403040960"})])
    response = _upload(client, headers, "grids", plan, dry_run="true")
    assert response.status_code == 422, response.text
    messages = [f["message"] for f in response.json()["report"]["findings"]]
    assert messages == [f"lies in no known community ((a value of {len(long_value)} characters))",
                        "lies in no known community (4403040960)"]
    _no_leak(response)
    cut = _upload(client, headers, "grids", _gpkg(Path(tempfile.mkdtemp()) / "x.gpkg").read_bytes()[:20_000],
                  name="plan.gpkg", dry_run="true")
    assert cut.status_code == 422 and "upload.gpkg" in cut.json()["detail"], cut.text
    _no_leak(cut)


def test_every_refused_upload_is_audited(planner):
    client, sessions, ids, headers = planner
    plan = _geojson([(factories.metres_box(0, 0, 150, 200), {"code": ids["west_code"]})])
    assert _upload(client, login(client, "viewer1", PASSWORD), "grids", plan).status_code == 403
    assert _upload(client, headers, "grids", b"not a file", name="plan.xlsx").status_code == 422
    assert _upload(client, headers, "grids", plan, dry_run="true").status_code == 200
    rows = [(r.username, r.result.split(":")[0]) for r in _import_rows(sessions)]
    assert rows == [("viewer1", "refused 403"), ("planner1", "refused 422"), ("planner1", "checked")]


def test_shown_quotes_only_codes_and_words():
    assert safe_files.shown("4403040960") == "4403040960"
    assert safe_files.shown("special") == "special"
    assert safe_files.shown("way/123") == "way/123"
    assert safe_files.shown("root:x:0:0:root:/root:/bin/bash") == "(a value of 31 characters)"
    assert safe_files.shown("1" * 21) == "(a value of 21 characters)"


def test_a_zip_of_several_shapefiles_offers_each_as_a_layer(db, tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    for layer in ("grids", "enclosures"):
        pyogrio.raw.write(folder / f"{layer}.shp", np.array([factories.metres_box(0, 0, 8, 8).wkb], dtype=object),
                          [np.array([factories.COMMUNITY], dtype=object)], fields=["community_code"],
                          driver="ESRI Shapefile", geometry_type="MultiPolygon", crs="EPSG:4326")
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in folder.iterdir():
            z.write(part, part.name)
    assert import_grid_file(db, archive, "grids", layer="grids", dry_run=True).read == 1


def test_geojson_too_big_to_parse_is_scanned_for_crs_links(db, tmp_path, monkeypatch, http_server):
    base, seen = http_server
    monkeypatch.setattr(safe_files, "GEOJSON_PARSE_MAX_BYTES", 100)  # as if the file were over 64 MiB
    plan = json.loads(_geojson([(factories.metres_box(0, 0, 10, 10), {"community_code": factories.COMMUNITY})]))
    fine = tmp_path / "fine.geojson"
    fine.write_text(json.dumps({**plan, "crs": {"type": "name", "properties": {"name": "EPSG:4326"}}}))
    assert import_grid_file(db, fine, "grids", dry_run=True).read == 1
    linked = tmp_path / "linked.geojson"
    linked.write_text(json.dumps({**plan, "crs": {"type": "link", "properties": {"href": f"{base}/crs"}}}))
    with pytest.raises(InvalidInput, match='"crs" member'):
        import_grid_file(db, linked, "grids", dry_run=True)
    gdalg = tmp_path / "pipeline.geojson"
    gdalg.write_text(json.dumps({"type": "gdal_streamed_alg", "command_line": "gdal vector pipeline"}))
    with pytest.raises(InvalidInput, match="GDALG"):
        import_grid_file(db, gdalg, "grids", dry_run=True)
    assert seen == []
