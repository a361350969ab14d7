"""The application's own database role: what the running service may do in PostgreSQL.

Migrations, backups and the command line connect as the database owner. The web service connects as the
owner too but switches, at connection start, to the role :data:`APP_ROLE` (``gridgov_app``): it may read and
write the tables, but on ``audit_log`` only SELECT and INSERT — no UPDATE, DELETE or TRUNCATE, so the audit
log is append-only for the service by privilege, not only by trigger.

Roles are global to a PostgreSQL cluster; the grants live in each database. :func:`grant_app_role` is run
after every migration (it is idempotent) so tables added by any branch are covered. Creating the role needs
the CREATEROLE privilege: on a server where the owner lacks it, an administrator creates the role once
(``CREATE ROLE gridgov_app NOLOGIN; GRANT gridgov_app TO <owner>``) and gridgov grants the rest; until
then the service runs as the owner and ``gridgov check`` reports it.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, text

log = logging.getLogger("gridgov.store")

APP_ROLE = "gridgov_app"
APPEND_ONLY_TABLES = ("audit_log",)

_CREATE = f"""
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} NOLOGIN;
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
    if not conn.scalar(text("SELECT pg_has_role(current_user, :r, 'MEMBER')"), {"r": APP_ROLE}):
        conn.execute(text(f"GRANT {APP_ROLE} TO CURRENT_USER"))
    conn.execute(text(_GRANTS))
    return True


def service_role(engine: Engine) -> str | None:
    """:data:`APP_ROLE` if the engine's user may switch to it, else None (the service then runs as the owner)."""
    with engine.connect() as conn:
        usable = app_role_exists(conn) and conn.scalar(
            text("SELECT pg_has_role(current_user, :r, 'MEMBER')"), {"r": APP_ROLE})
    return APP_ROLE if usable else None
