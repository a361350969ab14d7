"""The ``gridgov`` command line, run in-process against a fresh database and a real embedded cluster."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gridgov.cli import main
from spatial.store.engine import make_engine, make_sessionmaker
from tests import factories


def run(env: dict[str, str], *args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


@pytest.fixture
def env(fresh_db_url, tmp_path):
    return {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path)}


@pytest.fixture
def open_folder():
    """A folder every user can reach (pytest's tmp_path is private, and the cluster may run as 'postgres')."""
    folder = Path(tempfile.mkdtemp(prefix="gridgov-cli-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_embedded_cluster_starts_keeps_data_across_restart_and_stops(open_folder, monkeypatch):
    monkeypatch.delenv("GRIDGOV_DATABASE_URL", raising=False)
    env = {"GRIDGOV_DATA_DIR": str(open_folder / "data")}
    assert run(env, "db", "status").exit_code == 3  # not initialised yet
    started = run(env, "migrate")
    assert started.exit_code == 0, started.output
    url = run(env, "db", "url").output.strip()
    engine = make_engine(url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_log (action) VALUES ('kept across restarts')"))
    engine.dispose()
    assert run(env, "db", "stop").exit_code == 0
    assert run(env, "db", "status").exit_code == 3
    assert run(env, "db", "start").exit_code == 0
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'kept across restarts'")).scalar() == 1
    engine.dispose()
    assert run(env, "db", "stop").exit_code == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the postgres user")
def test_a_data_dir_the_postgres_user_cannot_reach_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("GRIDGOV_DATABASE_URL", raising=False)
    result = run({"GRIDGOV_DATA_DIR": str(tmp_path / "data")}, "db", "start")
    assert result.exit_code == 2 and "cannot reach" in result.output and "GRIDGOV_DATA_DIR" in result.output


def test_user_create_reads_the_password_from_stdin_and_refuses_duplicates(env):
    created = run(env, "user", "create", "zhang.wei", "--role", "inspector", "--password", "-",
                  input="a long enough password\n")
    assert created.exit_code == 0, created.output
    again = CliRunner().invoke(main, ["user", "create", "zhang.wei", "--role", "viewer", "--password", "-"],
                               env=env, input="a long enough password\n")
    assert again.exit_code == 2 and "taken" in again.output
    short = CliRunner().invoke(main, ["user", "create", "li.na", "--role", "viewer", "--password", "-"],
                               env=env, input="short\n")
    assert short.exit_code == 2 and "at least 10 characters" in short.output


def test_check_passes_on_clean_data_and_fails_on_a_cut_building(env):
    sessions = make_sessionmaker(make_engine(env["GRIDGOV_DATABASE_URL"], pool_size=1))
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        factories.building(s, west, 20, 20, number=1)
    ok = run(env, "check")
    assert ok.exit_code == 0, ok.output
    with sessions.begin() as s:
        factories.building(s, west, 190, 100, number=2)  # straddles the west/east boundary at x = 200 m
    failed = run(env, "check")
    assert failed.exit_code == 1
    assert "FAIL no building cut by a grid boundary: 1 failing" in failed.output


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".shp"])
def test_export_writes_a_readable_file(env, tmp_path, suffix):
    import pyogrio

    sessions = make_sessionmaker(make_engine(env["GRIDGOV_DATABASE_URL"], pool_size=1))
    with sessions.begin() as s:
        factories.two_grids(s)
    target = tmp_path / f"grids{suffix}"
    result = run(env, "export", "grids", str(target))
    assert result.exit_code == 0, result.output
    info = pyogrio.read_info(target)
    assert info["features"] == 2 and "code" in list(info["fields"])
    if suffix == ".geojson":
        codes = sorted(f["properties"]["code"] for f in json.loads(target.read_text())["features"])
        assert codes == [factories.COMMUNITY + "01", factories.COMMUNITY + "02"]


def test_export_of_an_unknown_format_is_a_clear_error(env, tmp_path):
    result = CliRunner().invoke(main, ["export", "grids", str(tmp_path / "grids.xlsx")], env=env)
    assert result.exit_code == 2 and "cannot tell the format" in result.output
