"""The audit log holds against its own writers: the server stamps time, role and database login; neither the
service nor the schema owner can silence its triggers; the hash chain and its anchors outside the database show
a row changed, deleted or slipped in by whoever controls the database (here: the cluster's superuser)."""

from __future__ import annotations

import threading
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError

from gridgov.cli import main
from spatial.store import audit_chain
from spatial.store.audit_chain import Anchor, read_anchors, seal, verify
from spatial.store.engine import make_engine
from spatial.store.privileges import APP_ROLE, login_url

pytestmark = pytest.mark.usefixtures("embedded")


@pytest.fixture
def embedded(pg_server):
    if pg_server.cluster is None:
        pytest.skip("needs the embedded test cluster (its superuser plays the attacker)")


@pytest.fixture
def engines(fresh_db_url, pg_server):
    """(owner, service, superuser) engines on a fresh database, with one user per role."""
    owner = make_engine(fresh_db_url, pool_size=2)
    service = make_engine(login_url(fresh_db_url), pool_size=2)  # as the service logs in
    superuser = make_engine(pg_server.url(make_url(fresh_db_url).database), pool_size=1)
    with owner.begin() as conn:
        conn.execute(text("INSERT INTO users (username, password_hash, role) VALUES "
                          "('worker1', 'x', 'grid_worker'), ('admin1', 'x', 'admin')"))
    yield owner, service, superuser
    for engine in (owner, service, superuser):
        engine.dispose()


def insert(engine, **values) -> int:
    columns = ", ".join(values)
    with engine.begin() as conn:
        return conn.scalar(text(f"INSERT INTO audit_log ({columns}) VALUES ({', '.join(':' + c for c in values)}) "
                                "RETURNING id"), values)


def row(engine, audit_id: int):
    with engine.connect() as conn:
        return conn.execute(text("SELECT * FROM audit_log WHERE id = :i"), {"i": audit_id}).mappings().one()


# -- the server stamps the row -------------------------------------------------------------------------------------
def test_time_role_id_and_writer_are_the_servers(engines):
    owner, service, _ = engines
    with service.connect() as conn:
        before = conn.scalar(text("SELECT clock_timestamp()"))
    forged = insert(service, id=424242, at="2020-01-01T00:00:00Z", username="worker1", role="admin",
                    action="reveal", db_user="admin1")
    got = row(service, forged)
    assert forged != 424242  # the id is the sequence's
    assert got["at"] >= before and got["at"].year > 2020  # the database clock, not the client's
    assert got["role"] == "grid_worker"  # from users, not what the client claimed
    assert got["db_user"] == APP_ROLE  # the database login that wrote it
    assert row(owner, insert(owner, id=forged, action="read"))["db_user"] == "gridgov_owner"  # no id collision


def test_names_that_are_no_account_get_no_role_and_failed_logins_keep_the_name_in_object_id(engines):
    _, service, _ = engines
    shell = row(service, insert(service, username="cli", role="admin", action="export"))
    assert (shell["username"], shell["role"]) == ("cli", None)
    failed = row(service, insert(service, role="admin", action="login", object_type="user", object_id="nobody"))
    assert (failed["username"], failed["role"], failed["object_id"]) == (None, None, "nobody")


# -- nobody but the superuser gets around the triggers -------------------------------------------------------------
@pytest.mark.parametrize("statement", [
    "ALTER TABLE audit_log DISABLE TRIGGER ALL", "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
    "DROP TRIGGER audit_log_stamp ON audit_log", "SET session_replication_role = replica",
    "UPDATE audit_log SET result = 'forged'", "DELETE FROM audit_log", "TRUNCATE audit_log",
    "CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$",
    "UPDATE audit_chain SET hash = hash", "DELETE FROM audit_chain", "ALTER TABLE audit_chain DISABLE TRIGGER ALL",
    "DROP TABLE audit_log",
])
@pytest.mark.parametrize("who", ["owner", "service"])
def test_neither_the_service_nor_the_owner_can_rewrite_or_silence_the_audit(engines, who, statement):
    engine = dict(zip(("owner", "service"), engines))[who]
    kept = insert(engine, action="keep")
    seal(engine)
    with engine.connect() as conn, pytest.raises(DBAPIError, match="permission denied|must be owner|append-only"):
        conn.execute(text(statement))
        conn.execute(text("UPDATE audit_log SET result = 'forged'"))  # after a SET that did pass: still refused
    assert row(engine, kept)["result"] == "ok"


def test_the_owner_is_no_superuser_and_owns_the_schema_but_not_the_audit(engines):
    owner, _, _ = engines
    with owner.connect() as conn:
        assert conn.scalar(text("SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles "
                                "WHERE rolname = current_user")) is False
        owners = dict(conn.execute(text("SELECT relname, relowner::regrole::text FROM pg_class WHERE relname IN "
                                        "('audit_log', 'audit_chain', 'grids', 'users', 'alembic_version')")).all())
    assert owners == {"audit_log": "gridgov_audit", "audit_chain": "gridgov_audit", "grids": "gridgov_owner",
                      "users": "gridgov_owner", "alembic_version": "gridgov_owner"}


# -- the chain -----------------------------------------------------------------------------------------------------
def test_verify_passes_on_an_intact_log_and_anchors(engines, tmp_path):
    owner, service, _ = engines
    anchors = tmp_path / "anchors.txt"
    for n in range(30):
        insert(service, username="worker1", action="read_masked", object_id=str(n))
    first = seal(service, anchors=anchors, batch=7)  # several batches, one anchor line each
    assert first.rows == 30 and first.head.position == 30
    assert len(read_anchors(anchors)) == 5 and read_anchors(anchors)[-1] == first.head
    insert(service, action="later")
    seal(service, anchors=anchors)
    verdict = verify(owner, anchors=read_anchors(anchors))
    assert verdict.ok, list(verdict.lines())
    assert verdict.length == 31 and verdict.anchors_checked == 6 and verdict.unsealed == 0


def test_verify_finds_a_row_the_superuser_changed_and_one_it_deleted(engines, tmp_path):
    owner, service, superuser = engines
    ids = [insert(service, username="worker1", action="read_masked", object_id=str(n)) for n in range(10)]
    head = seal(service).head
    with superuser.begin() as conn:
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER ALL"))
        conn.execute(text("UPDATE audit_log SET username = 'someone else' WHERE id = :i"), {"i": ids[3]})
        conn.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": ids[7]})
        conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER ALL"))
    verdict = verify(owner, anchors=[head])
    assert not verdict.ok and verdict.first_broken == 4
    assert [p for p, _ in verdict.broken] == [4, 8]
    assert "changed" in verdict.broken[0][1] and "deleted" in verdict.broken[1][1]
    assert verdict.anchors_checked == 1 and not verdict.anchor_mismatches  # the chain itself was not rewritten


def test_a_chain_recomputed_inside_the_database_does_not_match_the_anchors_kept_outside(engines, tmp_path):
    owner, service, superuser = engines
    anchors = tmp_path / "anchors.txt"
    ids = [insert(service, action="export", object_id=str(n)) for n in range(5)]
    seal(service, anchors=anchors)
    with superuser.begin() as conn:  # rewrite a row and recompute the whole chain, as a superuser could
        conn.execute(text("SET session_replication_role = replica"))
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER ALL"))
        conn.execute(text("ALTER TABLE audit_chain DISABLE TRIGGER ALL"))
        conn.execute(text("UPDATE audit_log SET object_id = 'nothing to see' WHERE id = :i"), {"i": ids[1]})
        conn.execute(text("DELETE FROM audit_chain"))
        conn.execute(text("INSERT INTO audit_unsealed SELECT id FROM audit_log"))
    seal(superuser)
    inside = verify(owner)
    assert inside.ok  # consistent inside the database ...
    outside = verify(owner, anchors=read_anchors(anchors))
    assert not outside.ok and "rewritten" in outside.anchor_mismatches[0][1]  # ... but not with the anchor


def test_verify_reports_rows_slipped_in_around_the_trigger_and_rows_left_unsealed(engines):
    owner, service, superuser = engines
    insert(service, action="sealed")
    seal(service)
    with superuser.begin() as conn:
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_stamp"))
        slipped = conn.scalar(text("INSERT INTO audit_log (id, at, action) VALUES (nextval('audit_log_id_seq'), "
                                   "now() - interval '1 day', 'backdated') RETURNING id"))
        conn.execute(text("ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_stamp"))
    insert(service, action="just written")
    verdict = verify(owner, max_unsealed_s=3600)
    assert not verdict.ok and verdict.never_queued == [slipped]
    assert verdict.unsealed == 2 and verdict.unsealed_too_long == 1  # the backdated one


def test_a_row_committed_late_is_sealed_later_and_the_request_path_takes_no_lock(engines):
    """A transaction that wrote its row early and commits after a seal neither blocks the seal nor is lost."""
    owner, service, _ = engines
    early = insert(service, action="first")
    held = service.connect()
    transaction = held.begin()
    late = held.scalar(text("INSERT INTO audit_log (action) VALUES ('long transaction') RETURNING id"))
    after = insert(service, action="after")
    done = threading.Event()
    threading.Thread(target=lambda: (seal(owner), done.set()), daemon=True).start()
    assert done.wait(10), "the seal waited for a transaction that wrote an audit row"
    transaction.commit()
    held.close()
    assert seal(owner).rows == 1
    with owner.connect() as conn:
        order = conn.scalars(text("SELECT audit_id FROM audit_chain ORDER BY position")).all()
    assert order == [early, after, late]
    assert verify(owner).ok


def test_the_cli_verifies_and_exits_1_on_a_changed_row(engines, fresh_db_url, tmp_path):
    owner, service, superuser = engines
    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path)}
    audited = insert(service, username="admin1", action="reveal", object_id="7")
    ok = CliRunner().invoke(main, ["audit", "verify"], env=env, catch_exceptions=False)
    assert ok.exit_code == 0 and "OK" in ok.output and "head: 1 " in ok.output, ok.output
    head = ok.output.split("head: ")[1].split()[:2]
    with superuser.begin() as conn:
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER ALL"))
        conn.execute(text("UPDATE audit_log SET object_id = '8' WHERE id = :i"), {"i": audited})
        conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER ALL"))
    broken = CliRunner().invoke(main, ["audit", "verify", "--anchor", ":".join(head), "--no-seal"], env=env,
                                catch_exceptions=False)
    assert broken.exit_code == 1 and "BROKEN at position 1" in broken.output, broken.output
    bad = CliRunner().invoke(main, ["audit", "verify", "--anchor", "x"], env=env, catch_exceptions=False)
    assert bad.exit_code == 2 and "POSITION HASH" in bad.output


def test_the_server_seals_in_the_background(fresh_db_url, tmp_path, embedded):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from spatial.settings import Settings

    engine = make_engine(fresh_db_url, pool_size=2, role=APP_ROLE)
    settings = Settings(database_url=fresh_db_url, data_dir=tmp_path, audit_seal_interval_s=0.2)
    try:
        with TestClient(create_app(settings, engine=engine)):
            insert(engine, action="served")
            deadline = time.monotonic() + 10
            while not read_anchors(settings.anchor_path) and time.monotonic() < deadline:
                time.sleep(0.1)
        assert read_anchors(settings.anchor_path)[-1].position >= 1
        assert (settings.anchor_path.stat().st_mode & 0o777) == 0o600
    finally:
        engine.dispose()


def test_an_anchor_is_parsed_strictly():
    digest = "ab" * 32
    assert Anchor.parse(f"12 {digest}") == Anchor.parse(f"12:{digest}") == Anchor(12, bytes.fromhex(digest))
    for bad in ("", "12", f"0 {digest}", "12 abc", f"x {digest}"):
        with pytest.raises(audit_chain.InvalidInput):
            Anchor.parse(bad)


def test_a_backup_restores_the_chain_and_the_layout(engines, pg_server, tmp_path):
    from spatial.store import backup

    owner, service, _ = engines
    for n in range(5):
        insert(service, username="worker1", action="read_masked", object_id=str(n))
    head = seal(service).head
    insert(service, action="queued, not yet sealed")
    dump = tmp_path / "audit.backup"
    backup.backup_database(str(owner.url.render_as_string(hide_password=False)), dump)  # as the schema owner
    name = "gridgov_restored_" + make_url(str(owner.url)).database[-10:]
    restored_url = pg_server.url(name)
    try:
        backup.restore_database(restored_url, dump)  # as the superuser, like 'gridgov restore' on the embedded one
        restored = make_engine(pg_server.cluster.owner_url(name), pool_size=1)
        try:
            verdict = verify(restored, anchors=[head])
            assert verdict.ok and verdict.length == 5 and verdict.unsealed == 1, list(verdict.lines())
            assert seal(restored).rows == 1 and verify(restored).ok
            with restored.connect() as conn, pytest.raises(DBAPIError, match="must be owner"):
                conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER ALL"))
            with restored.connect() as conn:
                assert conn.scalar(text("SELECT relowner::regrole::text FROM pg_class WHERE relname = 'grids'")) \
                    == "gridgov_owner"
        finally:
            restored.dispose()
    finally:
        pg_server.drop(name)


def test_gridgov_check_says_when_a_superuser_has_touched_the_audit_triggers(engines):
    from sqlalchemy.orm import Session

    from spatial.store.checks import run_checks

    owner, _, superuser = engines

    def result():
        with owner.connect() as conn, Session(bind=conn) as session:
            return {r.name: r for r in run_checks(session)}["audit triggers always on"]

    intact = result()
    assert intact.ok and "owned by gridgov_audit" in intact.detail
    with superuser.begin() as conn:
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER ALL"))
        conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER ALL"))  # back on, but not under replica
    touched = result()
    assert not touched.ok and "audit_log_stamp not ALWAYS (O)" in touched.detail
