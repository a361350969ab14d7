"""Schema migrations (Alembic, revisions in ``migrations/versions``), run programmatically.

The DDL is written as SQL in the revisions: the database is the authority on constraints and triggers,
and :mod:`spatial.store.models` maps onto it (a test checks that the two agree).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from spatial.store.privileges import grant_app_role

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x67726964  # "grid": the advisory lock key held while migrating


def _config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revisions() -> tuple[str, ...]:
    """The newest revision of every branch (capabilities may add their tables on branches of their own)."""
    return tuple(sorted(ScriptDirectory.from_config(_config()).get_heads()))


def current_revisions(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as conn:
        return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))


def pending(engine: Engine) -> bool:
    """True if the database is not at the newest revision of every branch."""
    return current_revisions(engine) != head_revisions()


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to ``revision`` (default: the newest of every branch), then grant the service's
    role (:mod:`spatial.store.privileges`) the tables as they now are. Safe to run again, and from several
    processes at once (web server workers starting together): an advisory lock lets one migrate at a time."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        command.upgrade(_config(conn), revision)
        grant_app_role(conn)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        command.downgrade(_config(conn), revision)
