"""The formation's URLs and the command line's refusals (fast: no server is started; the drill itself is
tests/test_failover_drill.py, opt-in)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

from gridgov.cli import main
from spatial.store.engine import libpq_url, make_engine
from spatial.store.formation import Formation, multi_host_url


def test_multi_host_url_reaches_libpq_as_lists_through_sqlalchemy_and_the_async_pool(tmp_path: Path):
    url = multi_host_url("gridgov_owner", "gridgov", tmp_path / "run", [5001, 5002])
    connect = make_url(url).get_dialect()().create_connect_args(make_url(url))[1]
    assert connect["host"] == f"{tmp_path}/run,{tmp_path}/run" and connect["port"] == "5001,5002"
    assert connect["target_session_attrs"] == "read-write" and connect["user"] == "gridgov_owner"
    engine = make_engine(url)  # connects lazily: nothing runs here
    try:
        parsed = conninfo_to_dict(libpq_url(engine))  # what AsyncPool and the listener hand to libpq
    finally:
        engine.dispose()
    assert parsed["host"] == connect["host"] and parsed["port"] == "5001,5002"
    assert parsed["target_session_attrs"] == "read-write" and parsed["dbname"] == "gridgov"
    reads = multi_host_url("gridgov_owner", "gridgov", tmp_path / "run", [5001, 5002], "prefer-standby")
    assert "target_session_attrs=prefer-standby" in reads
    with pytest.raises(ValueError):
        multi_host_url("u", "d", tmp_path, [])
    with pytest.raises(ValueError):
        multi_host_url("u", "d", tmp_path, [1], "primary-please")


def test_formation_url_lists_the_nodes_from_its_manifest(tmp_path: Path):
    formation = Formation(tmp_path / "f")
    (tmp_path / "f").mkdir()
    formation.manifest.write_text('{"ports": {"monitor": 7000, "node1": 7001, "node2": 7002}}')
    assert formation.url() == multi_host_url("gridgov_owner", "gridgov", tmp_path / "f" / "run", [7001, 7002])


def test_formation_commands_refuse_a_missing_or_busy_folder(tmp_path: Path):
    runner = CliRunner()
    missing = runner.invoke(main, ["db", "formation", "status", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no formation in" in missing.output and "formation create" in missing.output
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something").write_text("x")
    busy = runner.invoke(main, ["db", "formation", "create", str(tmp_path / "busy")])
    assert busy.exit_code == 2 and "is not empty" in busy.output
