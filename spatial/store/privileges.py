"""The application's own database role: what the running service may do in PostgreSQL.

Migrations, backups and the command line connect as the database owner. The web service runs as the role
:data:`APP_ROLE` (``gridgov_app``): it may read and write the tables, but on ``audit_log`` only SELECT and
INSERT — no UPDATE, DELETE or TRUNCATE, so the audit log is append-only for the service by privilege, not
only by trigger.

How the service becomes that role (:func:`service_connection`): it *logs in* as ``gridgov_app`` when the
server lets that role in without a password (the embedded cluster trusts its local socket; peer or
certificate setups can too). A session that logged in as the owner and switched role could switch back
(``SET ROLE <owner>``) — and on a server gridgov does not lay out, the owner may be a superuser — so logging in
is preferred; on a server that asks ``gridgov_app`` for a password the service logs in as the owner and switches
role at connection start, and ``gridgov check`` says which.

Where a superuser lays the schema out (the embedded cluster, :func:`lay_out_schema`; and a restore made by a
superuser where :data:`OWNER_ROLE` exists), the owner is itself no superuser and does not own the audit: the
audit tables and their trigger functions (:data:`AUDIT_TABLES`, :data:`AUDIT_FUNCTIONS`) belong to
:data:`AUDIT_ROLE`, a role nobody logs in as or is a member of. So neither the service nor the owner can
disable or drop the audit's triggers, replace their functions or set ``session_replication_role``; the owner
may read and append (its UPDATE, DELETE and TRUNCATE meet the triggers). A migration that changes the audit
tables runs while :func:`lay_out_schema` has handed them to the owner (``audit_owner=owner``).

Roles are global to a PostgreSQL cluster; the grants live in each database. :func:`grant_app_role` is run
after every migration (it is idempotent) so tables added by any branch are covered. Creating the role needs
the CREATEROLE privilege: on a server where the owner lacks it, an administrator creates the role once
(``CREATE ROLE gridgov_app LOGIN; GRANT gridgov_app TO <owner>``) and gridgov grants the rest; until
then the service runs as the owner and ``gridgov check`` reports it.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Engine, make_url, text

from spatial.store.engine import normalize_url

log = logging.getLogger("gridgov.store")

APP_ROLE = "gridgov_app"
OWNER_ROLE = "gridgov_owner"  # the schema owner of a cluster gridgov lays out itself (no superuser)
AUDIT_ROLE = "gridgov_audit"  # owns the audit tables there; NOLOGIN, no members
AUDIT_TABLES = ("audit_log", "audit_chain")
AUDIT_FUNCTIONS = ("refuse_change", "audit_log_stamp")
APPEND_ONLY_TABLES = AUDIT_TABLES

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


# -- the layout of a database by a superuser ---------------------------------------------------------------
_MISPLACED = """
SELECT o.kind, o.name, o.audit FROM (
    SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind, c.oid::regclass::text AS name,
           c.relowner AS owner, c.oid, 'pg_class'::regclass AS catalog, c.relname = ANY(%(tables)s) AS audit
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      -- a serial sequence follows its table
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
    UNION ALL
    SELECT 'ROUTINE', p.oid::regprocedure::text, p.proowner, p.oid, 'pg_proc'::regclass, p.proname = ANY(%(functions)s)
    FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
    UNION ALL
    SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype::text, t.typowner, t.oid,
           'pg_type'::regclass, false
    FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd')
) o
WHERE NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = o.catalog AND d.objid = o.oid AND d.deptype = 'e')
  AND o.owner <> (CASE WHEN o.audit THEN %(audit_owner)s ELSE %(owner)s END)::regrole
"""


def lay_out_schema(conn: psycopg.Connection, owner: str = OWNER_ROLE, audit_owner: str = AUDIT_ROLE) -> int:
    """As a superuser connected to the database: give the database and every object of schema ``public`` that no
    extension owns to ``owner``, except the audit tables and functions and the schema itself (whose owner could
    drop them), given to ``audit_owner``; then grant the
    owner and :data:`APP_ROLE` what they may do on the audit tables. Idempotent (only misplaced objects are
    altered); upgrades a database made by an older gridgov, whose objects all belong to the superuser. Returns
    the number of objects whose owner changed."""
    if conn.execute("SELECT datdba::regrole::text <> %s FROM pg_database WHERE datname = current_database()",
                    (owner,)).fetchone()[0]:
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            sql.Identifier(conn.info.dbname), sql.Identifier(owner)))
    # The owner of a schema may drop any table in it: public belongs to the audit's owner too, the owner may
    # create in it.
    if conn.execute("SELECT nspowner::regrole::text <> %s FROM pg_namespace WHERE nspname = 'public'",
                    (audit_owner,)).fetchone()[0]:
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(audit_owner)))
    conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(sql.Identifier(owner)))
    misplaced = conn.execute(_MISPLACED, {"tables": list(AUDIT_TABLES), "functions": list(AUDIT_FUNCTIONS),
                                          "owner": owner, "audit_owner": audit_owner}).fetchall()
    for kind, name, audit in misplaced:
        conn.execute(sql.SQL("ALTER {} {} OWNER TO {}").format(
            sql.SQL(kind), sql.SQL(name), sql.Identifier(audit_owner if audit else owner)))
    if audit_owner != owner:
        _grant_audit(conn, owner)
    return len(misplaced)


def _grant_audit(conn: psycopg.Connection, owner: str) -> None:
    tables = [r[0] for r in conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname = ANY(%s) "
        "AND relkind = 'r' ORDER BY relname", (list(AUDIT_TABLES),))]
    if not tables:
        return
    names = sql.SQL(", ").join(sql.Identifier(t) for t in tables)
    app = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone() is not None
    # The owner keeps UPDATE, DELETE and TRUNCATE so that it meets the triggers' own refusal ("append-only"),
    # which it can neither disable nor replace; never TRIGGER (a trigger of its own could rewrite a row).
    conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON {} TO {}").format(
        names, sql.Identifier(owner)))
    if app:
        conn.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(names, sql.Identifier(APP_ROLE)))
    sequence = conn.execute("SELECT pg_get_serial_sequence('public.audit_log', 'id')").fetchone()[0] \
        if "audit_log" in tables else None
    if sequence:
        grantees = sql.SQL(", ").join(sql.Identifier(r) for r in (owner, *([APP_ROLE] if app else [])))
        conn.execute(sql.SQL("GRANT USAGE, SELECT ON SEQUENCE {} TO {}").format(sql.SQL(sequence), grantees))
