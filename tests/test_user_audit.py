"""Every change to an account leaves an audit row: creation, role/scope/grid changes, deactivation and passwords,
from the command line (by the OS user) or by a caller; none holds a password."""

from __future__ import annotations

import getpass

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gridgov.cli import main
from spatial.access import Principal
from spatial.errors import InvalidInput, NotAuthenticated, NotFound
from spatial.store import users
from spatial.store.engine import make_engine, make_sessionmaker
from tests import factories

PASSWORD = "a long enough password"


def run(env: dict[str, str], *args: str, input: str | None = None):
    result = CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_every_account_change_from_the_command_line_is_audited_by_the_os_user(fresh_db_url, tmp_path):
    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path)}
    engine = make_engine(fresh_db_url, pool_size=1)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
    run(env, "user", "create", "zhang.wei", "--role", "grid_worker", "--grid", west.code, "--password", "-",
        input=PASSWORD + "\n")
    run(env, "user", "change", "zhang.wei", "--role", "inspector", "--scope", factories.COMMUNITY,
        "--reason", "moved to inspection")
    run(env, "user", "change", "zhang.wei", "--grid", east.code)
    run(env, "user", "change", "zhang.wei", "--role", "inspector")  # nothing changes: no row
    run(env, "user", "password", "zhang.wei", "--password", "-", input="another long password\n")
    run(env, "user", "deactivate", "zhang.wei", "--reason", "left the office")
    run(env, "user", "activate", "zhang.wei")
    with sessions() as s:
        rows = s.execute(text("SELECT username, action, object_type, object_id, fields, purpose, result "
                              "FROM audit_log ORDER BY id")).mappings().all()
    engine.dispose()
    assert {r["username"] for r in rows} == {f"cli:{getpass.getuser()}"}
    assert {(r["object_type"], r["object_id"]) for r in rows} == {("user", "zhang.wei")}
    assert [(r["action"], r["fields"], r["purpose"]) for r in rows] == [
        ("user_create", ["role", "scope_code", "display_name", "grids", "password"], "create user"),
        ("user_change", ["role", "scope_code"], "moved to inspection"),
        ("assign", ["grids"], "change user"),
        ("user_password", ["password"], "set password"),
        ("user_deactivate", ["active"], "left the office"),
        ("user_activate", ["active"], "activate user")]
    assert rows[0]["result"] == f"grid_worker, scope -, grids {west.code}"
    assert rows[1]["result"] == f"role grid_worker → inspector; scope_code - → {factories.COMMUNITY}"
    assert rows[2]["result"] == f"grids {west.code} → {east.code}"
    assert not any("password" in r["result"].replace("password set", "") for r in rows)


def test_deactivating_or_setting_a_password_ends_the_users_tokens(db):
    user = users.create_user(db, "li.na", PASSWORD, "viewer")
    users.create_user(db, "admin1", PASSWORD, "admin")  # the server takes the role from the account (0010)
    admin = Principal(1, "admin1", "admin", client_addr="10.0.0.7")
    for change in ({"password": "a new long password"}, {"active": False}):
        token, _ = users.issue_token(db, user, 3600)
        users.change_user(db, "li.na", who=admin, reason="test", **change)
        with pytest.raises(NotAuthenticated):
            users.principal_for_token(db, token)
    row = db.execute(text("SELECT username, role, client_addr FROM audit_log WHERE action = 'user_deactivate'")).one()
    assert tuple(row) == ("admin1", "admin", "10.0.0.7")
    with pytest.raises(NotAuthenticated):
        users.authenticate(db, "li.na", "a new long password")


def test_account_changes_refuse_unknown_users_roles_and_scopes(db):
    users.create_user(db, "li.na", PASSWORD, "viewer")
    with pytest.raises(NotFound, match="no user nobody"):
        users.change_user(db, "nobody", role="viewer")
    with pytest.raises(InvalidInput, match="unknown role"):
        users.change_user(db, "li.na", role="king")
    with pytest.raises(NotFound, match="no division"):
        users.change_user(db, "li.na", scope_code="440399999999")
