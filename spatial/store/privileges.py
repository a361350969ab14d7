"""The application's own database role: what the running service may do in PostgreSQL.

Migrations, backups and the command line connect as the database owner. The web service runs as the role
:data:`APP_ROLE` (``gridgov_app``): it may read and write the tables, but on ``audit_log`` only SELECT and
INSERT — no UPDATE, DELETE or TRUNCATE, so the audit log is append-only for the service by privilege, not
only by trigger.

How the service becomes that role (:func:`service_connection`): it *logs in* as ``gridgov_app`` when the
server lets that role in without a password (the embedded cluster trusts its local socket; peer or
certificate setups can too). A session that logged in as the owner and switched role could switch back
(``SET ROLE <owner>``) — and the embedded cluster's owner is a superuser — so logging in is preferred; on a
server that asks ``gridgov_app`` for a password the service logs in as the owner and switches role at
connection start, and ``gridgov check`` says which.

Roles are global to a PostgreSQL cluster; the grants live in each database. :func:`grant_app_role` is run
after every migration (it is idempotent) so tables added by any branch are covered. Creating the role needs
the CREATEROLE privilege: on a server where the owner lacks it, an administrator creates the role once
(``CREATE ROLE gridgov_app LOGIN; GRANT gridgov_app TO <owner>``) and gridgov grants the rest; until
then the service runs as the owner and ``gridgov check`` reports it.
"""

from __future__ import annotations

import logging

import psycopg
from sqlalchemy import Connection, Engine, make_url, text

from spatial.store.engine import normalize_url

log = logging.getLogger("gridgov.store")

APP_ROLE = "gridgov_app"
APPEND_ONLY_TABLES = ("audit_log",)

_CREATE = f"""
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} LOGIN;
    END IF;
END $$
"""
_GRANTS = f"""
GRANT USAGE ON SCHEMA public TO {APP_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE};
REVOKE UPDATE, DELETE, TRUNCATE ON {", ".join(APPEND_ONLY_TABLES)} FROM {APP_ROLE};
"""


def app_role_exists(conn: Connection) -> bool:
    return bool(conn.scalar(text("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = :r)"), {"r": APP_ROLE}))


def grant_app_role(conn: Connection) -> bool:
    """Create :data:`APP_ROLE` if missing, make the connecting user a member and grant it the tables.

    Returns False (and logs why) when the role does not exist and cannot be created here.
    """
    if not app_role_exists(conn):
        may_create = conn.scalar(text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"))
        if not may_create:
            log.warning("role %s is missing and %s may not create roles: the service will run as the owner",
                        APP_ROLE, conn.scalar(text("SELECT current_user")))
            return False
        conn.execute(text(_CREATE))
    elif conn.scalar(text("SELECT NOT rolcanlogin AND (SELECT rolsuper OR rolcreaterole FROM pg_roles "
                          "WHERE rolname = current_user) FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}):
        conn.execute(text(f"ALTER ROLE {APP_ROLE} LOGIN"))  # made NOLOGIN by an older gridgov
    if not conn.scalar(text("SELECT pg_has_role(current_user, :r, 'MEMBER')"), {"r": APP_ROLE}):
        conn.execute(text(f"GRANT {APP_ROLE} TO CURRENT_USER"))
    conn.execute(text(_GRANTS))
    return True


def login_url(url: str) -> str | None:
    """``url`` (an owner's) as :data:`APP_ROLE` without a password, if the server lets that role log in so
    (one test connection); None otherwise."""
    candidate = make_url(normalize_url(url)).set(username=APP_ROLE, password=None)
    try:
        psycopg.connect(candidate.set(drivername="postgresql").render_as_string(hide_password=False),
                        connect_timeout=3).close()
    except psycopg.Error:
        return None
    return candidate.render_as_string(hide_password=False)


def service_connection(engine: Engine, url: str) -> tuple[str, str | None] | None:
    """How the service connects to the database of ``url`` (whose owner ``engine`` connects as): (URL, role to
    switch to at connection start, or None when the URL logs in as :data:`APP_ROLE` itself); None when the
    role is not usable and the service must run as the owner."""
    if service_role(engine) is None:
        return None
    direct = login_url(url)
    return (direct, None) if direct else (url, APP_ROLE)


def service_role(engine: Engine) -> str | None:
    """:data:`APP_ROLE` if the engine's user may switch to it, else None (the service then runs as the owner)."""
    with engine.connect() as conn:
        usable = app_role_exists(conn) and conn.scalar(
            text("SELECT pg_has_role(current_user, :r, 'MEMBER')"), {"r": APP_ROLE})
    return APP_ROLE if usable else None
