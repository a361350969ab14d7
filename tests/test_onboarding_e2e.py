"""Onboarding through the HTTP API, as an admin does it on /onboarding: from an empty database, a synthetic
subdistrict and its communities (built here), buildings and streets of Shatou as plain layers (written to a
temporary folder from ``../shared/data/futian_shatou.gpkg``, clipped to a small box), the household estimate,
balanced grids (one community adopts the proposal, the other imports it as drawn grids), and a generated residents'
ledger with bad rows (reported by line and column, then imported skipping them). Then the field work runs on it:
nearby shows the households, a campaign counts households and persons, a balanced plan is proposed.
Every upload is checked first and imported with the check's basis as If-Match."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
from sqlalchemy import text

from spatial.personal_keys import PersonalKeys
from spatial.store import users
from tests.conftest import login
from tests.test_onboarding import EAST, SHATOU, SUB, WEST, X0, X1, Y0, Y1, write_divisions, write_ledger, \
    write_streets

PASSWORD = "a long enough password"


def write_buildings(source: Path, path: Path) -> Path:
    """The file's buildings in the box as a plain polygon layer (building, name, levels, height): what a
    surveying office hands over, no OSM ids."""
    frame = gpd.read_file(source, layer="buildings", bbox=(X0, Y0, X1, Y1))
    keep = [c for c in ("building", "name", "levels", "height") if c in frame.columns]
    gpd.GeoDataFrame(frame[keep], geometry=frame.geometry, crs=frame.crs).to_file(path, layer="buildings")
    return path


def upload(client, headers, url: str, path: Path, fields: dict, *, expect: int = 200, mime="application/octet-stream"):
    """Check ``path`` (dry run), then import it with the check's basis as If-Match; both answers."""
    with path.open("rb") as f:
        checked = client.post(url, headers=headers, files={"file": (path.name, f, mime)},
                              data={**fields, "dry_run": "true"})
    assert checked.status_code == expect, checked.text
    if expect != 200:
        return checked, None
    basis = checked.json()["basis"]
    assert checked.headers["ETag"] == basis and checked.json()["dry_run"] is True
    with path.open("rb") as f:
        done = client.post(url, headers={**headers, "If-Match": basis}, files={"file": (path.name, f, mime)},
                           data={**fields, "dry_run": "false"})
    assert done.status_code == 200, done.text
    return checked.json(), done.json()


def count(sessions, sql: str, **params) -> int:
    with sessions() as s:
        return s.execute(text(sql), params).scalar_one()


def test_a_new_subdistrict_onboards_through_the_api(app_env, tmp_path, shared_data):
    source = shared_data / SHATOU
    if not source.is_file():
        pytest.skip(f"{source} is absent")
    client, sessions = app_env
    with sessions.begin() as s:
        users.create_user(s, "onboard.admin", PASSWORD, "admin")
    admin = login(client, "onboard.admin", PASSWORD)

    # 1. the subdistrict and its two communities
    _, done = upload(client, admin, "/api/divisions/import", write_divisions(tmp_path / "街道.geojson"),
                     {"reason": "新街道上线", "district_name": "福田区"})
    assert done["inserted"] == 4 and done["written"]

    # 2. buildings, a plain polygon layer: the check writes nothing, the import writes what it reported
    checked, done = upload(client, admin, "/api/import/buildings", write_buildings(source, tmp_path / "楼栋.gpkg"),
                           {"reason": "新街道上线"})
    assert checked["tallies"]["buildings"]["inserted"] == done["inserted"] > 300 and not checked["written"]
    assert (done["file"], done["origin"]) == ("楼栋.gpkg", "楼栋:buildings")
    stored = count(sessions, "SELECT count(*) FROM buildings")
    assert stored == done["inserted"]
    # the same file again inserts nothing; a stale basis is refused
    _, again = upload(client, admin, "/api/import/buildings", tmp_path / "楼栋.gpkg", {"reason": "again"})
    assert (again["inserted"], again["already_present"]) == (0, stored)
    with (tmp_path / "楼栋.gpkg").open("rb") as f:
        stale = client.post("/api/import/buildings", headers={**admin, "If-Match": checked["basis"]},
                            files={"file": ("楼栋.gpkg", f)}, data={"reason": "stale"})
    assert stale.status_code == 412 and stale.json()["code"] == "import.stale", stale.text
    with (tmp_path / "楼栋.gpkg").open("rb") as f:
        assert client.post("/api/import/buildings", headers=admin, files={"file": ("楼栋.gpkg", f)},
                           data={"reason": "no basis"}).status_code == 428

    # 3. streets, a plain line layer (no u/v, no nodes layer): noded, its connected pieces reported
    checked, done = upload(client, admin, "/api/import/streets", write_streets(source, tmp_path / "道路.gpkg"),
                           {"reason": "新街道上线"})
    assert checked["connectivity"]["largest_share"] >= 0.8 and done["tallies"]["street_edges"]["inserted"] > 100
    assert count(sessions, "SELECT count(*) FROM street_edges") == done["tallies"]["street_edges"]["inserted"]

    # 4. households estimated, then grids: west adopts the balanced proposal, east imports it as drawn grids
    estimated = client.post("/api/buildings/estimate", headers=admin)
    assert estimated.status_code == 200 and estimated.json()["estimated"] == stored
    proposal = client.post("/api/plans/propose", headers=admin, json={"community_code": WEST})
    assert proposal.status_code == 200 and proposal.json()["stats"]["share_in_range"] >= 0.8, proposal.text
    adopted = client.post("/api/plans/adopt", headers={**admin, "If-Match": proposal.json()["basis"]},
                          json={"community_code": WEST, "reason": "首次划分网格"})
    assert adopted.status_code == 200, adopted.text
    proposal = client.post("/api/plans/propose", headers=admin, json={"community_code": EAST}).json()
    drawn = tmp_path / "网格.geojson"
    collection = {"type": "FeatureCollection", "features": proposal["grids"]["features"]}  # lon/lat, as asked
    drawn.write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")
    _, done = upload(client, admin, "/api/import/grids", drawn, {"reason": "首次划分网格", "community": EAST})
    assert done["inserted"] == len(proposal["grids"]["features"])

    # 5. a grid worker, the key file, the ledger: refused with every bad row listed, then imported skipping them
    first_grid = count(sessions, "SELECT min(code) FROM grids WHERE community_code = :c AND retired_at IS NULL",
                       c=WEST)
    with sessions.begin() as s:
        users.create_user(s, "li.ming", PASSWORD, "grid_worker", grid_codes=(first_grid,))
        codes = s.execute(text("SELECT b.code FROM buildings b JOIN grids g ON g.id = b.grid_id WHERE g.code = :g "
                               "ORDER BY b.code LIMIT 6"), {"g": first_grid}).scalars().all()
    PersonalKeys.load_or_create(client.app.state.settings.personal_key_path, create=True)
    ledger, sizes, bad_lines = write_ledger(tmp_path / "实有人口.xlsx", codes)
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    refused, _ = upload(client, admin, "/api/import/residents", ledger, {"reason": "实有人口"}, expect=422, mime=xlsx)
    assert (refused.json()["code"], refused.json()["count"]) == ("import.rows_rejected", 3)
    report = refused.json()["report"]
    assert report["rejected_count"] == 3 and not report["written"] and report["counts"] is None
    assert [(r["line"], r["column"]) for r in report["rejected"]] == list(zip(bad_lines, ("身份证号", "联系电话",
                                                                                        "楼栋编码")))
    assert "check digit" in report["rejected"][0]["reason"] and "*" in report["rejected"][0]["reason"]
    assert count(sessions, "SELECT count(*) FROM persons") == 0
    checked, done = upload(client, admin, "/api/import/residents", ledger,
                           {"reason": "实有人口", "skip_errors": "true"}, mime=xlsx)
    persons_written = sum(sizes.values())
    assert checked["counts"]["persons_inserted"] == persons_written and not checked["written"]
    assert done["written"] and done["counts"]["persons_inserted"] == persons_written and done["rejected_count"] == 3
    assert count(sessions, "SELECT count(*) FROM persons WHERE moved_out IS NULL") == persons_written
    with sessions() as s:
        audited = s.execute(text("SELECT result FROM audit_log WHERE action = 'import' AND object_type = 'residents' "
                                 "ORDER BY id")).scalars().all()
    assert audited[0].startswith("refused 422") and audited[1:] == ["checked", f"{persons_written} persons new, "
                                                                                "3 rows rejected"]
    worker = login(client, "li.ming", PASSWORD)

    # 6. nearby: the worker sees the ledger's households, masked
    with sessions() as s:
        lon, lat = s.execute(text("SELECT ST_X(c), ST_Y(c) FROM buildings, ST_Centroid(footprint) c WHERE code = :c"),
                             {"c": codes[0]}).one()
    near = client.get("/api/field/nearby", headers=worker, params={"lon": lon, "lat": lat, "radius": 300,
                                                                   "limit": 100})
    assert near.status_code == 200, near.text
    households = near.json()["households"]
    assert len(households) == len(sizes) and {h["building_code"] for h in households} == set(codes)
    assert all("*" in h["head_id_number"] and "****" in h["head_phone"] for h in households)

    # 7. a campaign over the west community: its coverage in households and persons
    opened = client.post("/api/field/campaigns", headers=admin, json={"name": "入户核查", "division_code": WEST})
    assert opened.status_code == 201, opened.text
    campaign = opened.json()["id"]
    visited = households[:3]
    for h in visited:
        x, y = h["location"]
        answer = client.post(f"/api/field/campaigns/{campaign}/visits", headers=worker,
                             json={"household_id": h["id"], "result": "normal", "lon": x, "lat": y})
        assert answer.status_code == 201, answer.text
    total = client.get(f"/api/field/campaigns/{campaign}/coverage", headers=admin).json()["total"]
    assert (total["targeted"], total["screened"]) == (len(sizes), 3)
    assert total["persons_targeted"] == persons_written
    assert total["persons_screened"] == sum(h["residents"] for h in visited) > 0

    # 8. a balanced plan can still be proposed, with its grids in range
    again = client.post("/api/plans/propose", headers=admin, json={"community_code": WEST})
    assert again.status_code == 200 and again.json()["stats"]["share_in_range"] >= 0.8, again.text
    assert count(sessions, f"SELECT count(*) FROM divisions WHERE code LIKE '{SUB[:9]}%'") == 3
