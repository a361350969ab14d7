"""Engines and sessions. Built by the caller (CLI, app factory, tests) and passed in; none at module level.

Access is synchronous (psycopg 3 through SQLAlchemy 2): see docs/decisions/0001-sync-database-access.md.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, Result, TextClause, create_engine, text
from sqlalchemy.orm import Session, sessionmaker


def normalize_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` URLs and select the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def connect_args(role: str | None = None, **settings: str) -> dict[str, object]:
    """libpq connection options of every connection the service opens (synchronous and :mod:`spatial.store.aio`).

    A server that is down answers at once over the Unix socket; over TCP, a partition must not hang a request:
    connecting gives up after 3 s and a silent peer is dropped after about 10 s (keepalives, TCP user timeout).
    With ``role``, the connection switches to that database role as it starts; ``settings`` are PostgreSQL
    settings of the connection (name=value).
    """
    args: dict[str, object] = {"connect_timeout": 3, "application_name": "gridgov", "keepalives": 1,
                               "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
                               "tcp_user_timeout": 10_000}
    options = ([f"role={role}"] if role else []) + [f"{name}={value}" for name, value in settings.items()]
    if options:
        args["options"] = " ".join(f"-c {option}" for option in options)
    return args


def make_engine(url: str, *, pool_size: int = 10, role: str | None = None) -> Engine:
    """A pooled engine; connections are checked before use so a restarted server is survived.

    With ``role``, every connection switches to that database role as it starts (the service runs as
    :data:`spatial.store.privileges.APP_ROLE`, which may not change the audit log).
    """
    return create_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=10,  # every connection busy for 10 s: 503 (api.errors) rather than a queue without end
        connect_args=connect_args(role),
    )


def libpq_url(engine: Engine) -> str:
    """The engine's database as a libpq URL (``postgresql://…``, password included) for plain psycopg."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def acting_as(session: Session, actor: str, reason: str) -> Iterator[Session]:
    """Record who changes data and why, for the history triggers (transaction-local settings).

    Every versioned table (grids) copies ``gridgov.actor`` and ``gridgov.reason`` into its history rows.
    """
    session.execute(
        text("SELECT set_config('gridgov.actor', :actor, true), set_config('gridgov.reason', :reason, true)"),
        {"actor": actor, "reason": reason},
    )
    yield session


def ping(session: Session) -> None:
    """One round trip to the database (raises as any query would if it is unreachable)."""
    session.execute(text("SELECT 1"))


def server_info(session: Session) -> dict[str, str | None]:
    """Versions of PostGIS and pgRouting and the schema revisions (comma-separated, sorted) of the database."""
    postgis, pgrouting, revision = session.execute(text(
        "SELECT postgis_lib_version(), pgr_version(), "
        "(SELECT string_agg(version_num, ', ' ORDER BY version_num) FROM alembic_version)"
    )).one()
    return {"postgis": postgis, "pgrouting": pgrouting, "schema_revision": revision}


@functools.lru_cache(maxsize=1024)
def cached_text(sql: str) -> TextClause:
    """``sqlalchemy.text(sql)``, remembered per SQL string. Hot paths assemble the same few statements on every
    request (one per kind of caller scope); parsing one again costs tens of microseconds. Only for SQL whose
    text takes a bounded number of forms: values always go in as bound parameters."""
    return text(sql)


def jit_off(session: Session) -> None:
    """No JIT compilation for the rest of the transaction: for reports whose planner costs are high (a spatial join,
    estimates of a year's events) while the work is not, where compiling took longer than running (risk-zone
    figures: half of a one-second statement; case figures of a year: 4.3 s)."""
    session.execute(_JIT_OFF)


_JIT_OFF = text("SELECT set_config('jit', 'off', true)")


def plain_rows(result: Result) -> list[tuple]:
    """The rows of ``result`` as plain named tuples (same names, same order). For hot loops over long pages:
    reading a column by name on SQLAlchemy's ``Row`` costs about a microsecond, on a named tuple some tens of
    nanoseconds (a page of 100 cases read field by field: 4.4 ms against 1.9 ms). Column names must be valid
    Python identifiers not starting with an underscore (label them in SQL)."""
    return list(map(_row_type(tuple(result.keys()))._make, result))


@functools.lru_cache(maxsize=256)
def _row_type(names: tuple[str, ...]) -> type:
    return collections.namedtuple("PlainRow", names)
