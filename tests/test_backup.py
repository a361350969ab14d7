"""``gridgov backup`` / ``gridgov restore`` round-trip a database exactly, refuse to overwrite data, and report a
missing or damaged file without changing anything.

The source is a fresh database with the demo neighbourhood, its users, a grid redraw (two new grid versions), a
screening campaign with a visit and audit rows. "Exactly" is checked table by table, listed from the catalog:
row count and md5 of the rows ordered by primary key (geometries as EWKB), sequences' last values, and the
privileges (ACL) of every table.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gridgov.cli import _demo_users, main
from spatial.access import Principal
from spatial.geometry.crs import transform_geom
from spatial.store import audit, backup, campaigns
from spatial.store import grids as grid_store
from spatial.store.engine import acting_as, make_engine, make_sessionmaker
from spatial.store.privileges import APP_ROLE, service_role

ADMIN = Principal(user_id=0, username="tester", role="admin", client_addr="test")


def run(url: str, tmp_path: Path, *args: str):
    env = {"GRIDGOV_DATABASE_URL": url, "GRIDGOV_DATA_DIR": str(tmp_path)}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def snapshot(url: str) -> dict:
    """Everything compared between two databases."""
    with backup._connect(url) as conn:
        acl = dict(conn.execute(
            "SELECT c.oid::regclass::text, coalesce(c.relacl::text, '') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v')"
        ).fetchall())
        return {"tables": backup.table_fingerprints(conn), "sequences": backup.sequence_values(conn), "acl": acl}


def edit_demo(url: str, tmp_path: Path) -> None:
    """The demo, its users, a redraw (moving a shared boundary), a campaign with one visit, audit rows."""
    from fixtures.demo import load_demo

    engine = make_engine(url, pool_size=1)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s, acting_as(s, "tester", "demo"):
        load_demo(s)
        _demo_users(s, tmp_path / "credentials.txt")
    with sessions.begin() as s, acting_as(s, "tester", "shrink by 3 m"):
        code = s.execute(text("SELECT min(code) FROM grids")).scalar_one()
        row = grid_store.grid_row(s, code)
        smaller = transform_geom(transform_geom(row["boundary"], 4326, 4547).buffer(-3), 4547, 4326)
        result = grid_store.redraw_grid(s, code, smaller, grid_store.Edit("tester", "shrink by 3 m", {code: 1}),
                                        move_shared_boundary=True)
        assert result.report.ok and result.grids[0]["version"] == 2
    with sessions.begin() as s:
        campaign = campaigns.open_campaign(s, ADMIN, "备份演练", grid_codes=[code])
        household, lon, lat = s.execute(text(
            "SELECT h.id, ST_X(ST_PointOnSurface(b.footprint)), ST_Y(ST_PointOnSurface(b.footprint)) "
            "FROM households h JOIN buildings b ON b.id = h.building_id JOIN grids g ON g.id = b.grid_id "
            "WHERE g.code = :c ORDER BY h.id LIMIT 1"), {"c": code}).one()
        campaigns.record_visit(s, ADMIN, campaign.id, household, result="normal", lon=lon, lat=lat, note="备份前")
        audit.record(s, ADMIN, "backup drill", object_type="grid", object_id=code, purpose="test")
    with sessions() as s:
        assert s.execute(text("SELECT count(*) FROM audit_log")).scalar_one() >= 1
        assert s.execute(text("SELECT count(*) FROM campaign_visits")).scalar_one() == 1
    engine.dispose()


@pytest.fixture
def source(fresh_db_url, tmp_path):
    edit_demo(fresh_db_url, tmp_path)
    return fresh_db_url


@pytest.fixture
def other_database(pg_server):
    """The URL of a database that does not exist yet (dropped afterwards)."""
    name = "gridgov_restored_" + uuid.uuid4().hex[:8]
    yield pg_server.url(name)
    pg_server.drop(name)


def test_backup_and_restore_round_trip_every_table_exactly(source, other_database, tmp_path):
    dump = tmp_path / "gridgov.backup"
    made = run(source, tmp_path, "backup", str(dump))
    assert made.exit_code == 0, made.output
    assert "backed up" in made.output and "rows" in made.output and dump.stat().st_size > 0
    restored = run(other_database, tmp_path, "restore", str(dump))
    assert restored.exit_code == 0, restored.output
    before, after = snapshot(source), snapshot(other_database)
    assert len(before["tables"]) >= 20 and before["tables"]["grid_versions"][0] > before["tables"]["grids"][0]
    for table, fingerprint in before["tables"].items():
        assert after["tables"].get(table) == fingerprint, table
    assert after["tables"].keys() == before["tables"].keys()
    assert after["sequences"] == before["sequences"] and before["sequences"]["audit_log_id_seq"][1]
    assert after["acl"] == before["acl"]
    engine = make_engine(other_database, pool_size=1)
    assert service_role(engine) == APP_ROLE  # the service can take its restricted role on the restored database
    engine.dispose()


def test_restore_over_a_non_empty_database_is_refused_without_force(source, fresh_db_url, other_database, tmp_path):
    dump = tmp_path / "gridgov.backup"
    backup.backup_database(source, dump)
    target = other_database
    backup.restore_database(target, dump)
    engine = make_engine(target, pool_size=1)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_log (action) VALUES ('written after the restore')"))
    engine.dispose()
    kept = snapshot(target)
    refused = run(target, tmp_path, "restore", str(dump))
    assert refused.exit_code == 2 and "not empty" in refused.output and "--force" in refused.output
    assert snapshot(target) == kept
    forced = run(target, tmp_path, "restore", "--force", str(dump))
    assert forced.exit_code == 0, forced.output
    assert snapshot(target)["tables"] == snapshot(source)["tables"] != kept["tables"]
    with backup._connect(target, "postgres") as conn:  # the side database it was restored into took the name
        assert not conn.execute("SELECT datname FROM pg_database WHERE datname LIKE '%restoring'").fetchall()


def test_a_missing_or_damaged_file_is_a_clear_error_and_changes_nothing(source, tmp_path):
    kept = snapshot(source)
    missing = run(source, tmp_path, "restore", "--force", str(tmp_path / "nowhere.backup"))
    assert missing.exit_code == 2 and "no backup file" in missing.output
    garbage = tmp_path / "garbage.backup"
    garbage.write_bytes(b"PGDMP this is not a dump" * 10)
    refused = run(source, tmp_path, "restore", "--force", str(garbage))
    assert refused.exit_code == 2 and "not a gridgov backup" in refused.output
    dump = tmp_path / "gridgov.backup"
    backup.backup_database(source, dump)
    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    damaged = run(source, tmp_path, "restore", "--force", str(truncated))
    assert damaged.exit_code == 2 and "damaged" in damaged.output
    assert snapshot(source) == kept


def test_restore_creates_the_roles_its_grants_name(source, other_database, tmp_path, pg_server):
    role = "gridgov_reader_" + uuid.uuid4().hex[:6]
    administrator = pg_server.url(backup._params(source)["dbname"])  # the schema owner may not create roles
    with backup._connect(administrator) as conn:
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
        conn.execute(f"GRANT SELECT ON grids TO {role}")
    dump = tmp_path / "gridgov.backup"
    backup.backup_database(source, dump)
    with backup._connect(administrator) as conn:  # the role disappears from the cluster before the restore
        conn.execute(f"REVOKE SELECT ON grids FROM {role}")
        conn.execute(f"DROP ROLE {role}")
    try:
        summary = backup.restore_database(other_database, dump)
        assert role in summary.roles_created
        with backup._connect(other_database) as conn:
            assert conn.execute("SELECT has_table_privilege(%s, 'grids', 'SELECT')", (role,)).fetchone()[0]
            assert not conn.execute("SELECT has_table_privilege(%s, 'grids', 'UPDATE')", (role,)).fetchone()[0]
    finally:
        with backup._connect(other_database, "postgres") as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {backup._params(other_database)['dbname']} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_backing_up_an_unreachable_database_is_a_clear_error_and_leaves_no_file(tmp_path, pg_server):
    dump = tmp_path / "never.backup"
    failed = run(pg_server.url("gridgov_no_such_database"), tmp_path, "backup", str(dump))
    assert failed.exit_code == 2 and "cannot connect to database gridgov_no_such_database" in failed.output
    assert not dump.exists() and not list(tmp_path.glob("*.backup*"))


# -- backups hold personal data: private, and encrypted on request ----------------------------------------------

def _household(url: str) -> tuple[str, str]:
    with backup._connect(url) as conn:
        return conn.execute("SELECT head_name, head_id_number FROM households WHERE head_id_number IS NOT NULL "
                            "ORDER BY id LIMIT 1").fetchone()


def test_backups_and_their_partial_files_are_readable_by_their_owner_only(source, tmp_path):
    dump = tmp_path / "gridgov.backup"
    dump.write_text("an older backup, world-readable")
    dump.chmod(0o644)
    seen = []

    def progress(done, total):
        partial = tmp_path / ".gridgov.backup.partial"
        if partial.exists():
            seen.append(partial.stat().st_mode & 0o777)

    old_umask = os.umask(0o022)  # the usual umask: files were -rw-r--r--
    try:
        backup.backup_database(source, dump, progress=progress)
    finally:
        os.umask(old_umask)
    assert dump.stat().st_mode & 0o777 == 0o600
    assert seen and set(seen) == {0o600}


def test_an_encrypted_backup_hides_personal_data_and_restores_exactly(source, other_database, tmp_path):
    key = tmp_path / "backup.key"
    key.write_bytes(os.urandom(32))
    dump = tmp_path / "sealed.backup"
    made = run(source, tmp_path, "backup", str(dump), "--encrypt", "--key-file", str(key))
    assert made.exit_code == 0 and "encrypted" in made.output, made.output
    assert dump.stat().st_mode & 0o777 == 0o600
    content = dump.read_bytes()
    name, id_number = _household(source)
    assert not content.startswith(b"PGDMP") and name.encode() not in content and id_number.encode() not in content
    restored = run(other_database, tmp_path, "restore", str(dump), "--key-file", str(key))
    assert restored.exit_code == 0, restored.output
    assert snapshot(other_database)["tables"] == snapshot(source)["tables"]


def test_an_encrypted_backup_with_a_wrong_key_or_changed_is_refused_and_changes_nothing(source, tmp_path):
    env = {"GRIDGOV_DATABASE_URL": source, "GRIDGOV_DATA_DIR": str(tmp_path),
           "GRIDGOV_BACKUP_PASSPHRASE": "the right passphrase"}
    dump = tmp_path / "sealed.backup"
    made = CliRunner().invoke(main, ["backup", str(dump)], env=env)  # a configured secret: encrypted by default
    assert made.exit_code == 0 and "encrypted" in made.output, made.output
    kept = snapshot(source)
    wrong = CliRunner().invoke(main, ["restore", "--force", str(dump)],
                               env={**env, "GRIDGOV_BACKUP_PASSPHRASE": "a wrong passphrase"})
    assert wrong.exit_code == 2 and "wrong backup key or passphrase" in wrong.output, wrong.output
    no_key = run(source, tmp_path, "restore", "--force", str(dump))
    assert no_key.exit_code == 2 and "encrypted backup: give its key" in no_key.output
    for name, change in (("flipped", lambda b: b[:-100] + bytes([b[-100] ^ 1]) + b[-99:]),
                         ("cut", lambda b: b[:-1])):
        changed = tmp_path / f"{name}.backup"
        changed.write_bytes(change(dump.read_bytes()))
        refused = CliRunner().invoke(main, ["restore", "--force", str(changed)], env=env)
        assert refused.exit_code == 2 and ("changed" in refused.output or "truncated" in refused.output), (
            name, refused.output)
    assert snapshot(source) == kept


def test_the_demo_prints_where_its_password_is_kept_not_the_password(fresh_db_url, tmp_path):
    made = run(fresh_db_url, tmp_path, "demo", "--no-serve")
    assert made.exit_code == 0, made.output
    credentials = tmp_path / "demo-credentials.txt"
    password = credentials.read_text().strip()
    assert password not in made.output and str(credentials) in made.output
    assert credentials.stat().st_mode & 0o777 == 0o600
