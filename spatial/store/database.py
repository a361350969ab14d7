"""Which database gridgov talks to: the configured URL, or the embedded cluster in ``data_dir``."""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from spatial.settings import Settings
from spatial.store import migrate
from spatial.store.cluster import LocalCluster
from spatial.store.engine import make_engine, normalize_url
from spatial.store.privileges import service_connection

log = logging.getLogger("gridgov")


def embedded_cluster(settings: Settings) -> LocalCluster | None:
    """The embedded cluster when no database URL is configured, else None."""
    return None if settings.database_url else LocalCluster(settings.data_dir)


def database_url(settings: Settings) -> str:
    """The URL to use; starts the embedded cluster (and creates its database) when that is the one."""
    cluster = embedded_cluster(settings)
    if cluster is None:
        return normalize_url(settings.database_url or "")
    cluster.start()
    cluster.ensure_database(settings.database_name)
    return cluster.owner_url(settings.database_name)


def migrate_schema(engine: Engine, cluster: LocalCluster | None = None, dbname: str | None = None) -> None:
    """Bring the schema of ``engine``'s database (the owner's) to the newest revision. In the embedded cluster
    the audit tables are the owner's only while revisions are applied (:meth:`LocalCluster.migration_window`)."""
    if cluster is None or dbname is None or not migrate.pending(engine):
        migrate.upgrade(engine)
        return
    with cluster.migration_window(dbname):
        migrate.upgrade(engine)


def open_database(settings: Settings, *, upgrade: bool = True, service: bool = False) -> Engine:
    """An engine on the configured database, with the schema migrated to the newest revision.

    ``service=True`` (the web service): the engine's connections are the restricted role of
    :mod:`spatial.store.privileges` when it is usable, logged in as it if the server allows (else they stay the
    owner's, with a warning logged).
    """
    url = database_url(settings)
    engine = make_engine(url)
    if upgrade:
        migrate_schema(engine, embedded_cluster(settings), settings.database_name)
    if not service:
        return engine
    connection = service_connection(engine, url)
    if connection is None:
        log.warning("the service runs as the database owner: the audit log is protected by trigger only")
        return engine
    engine.dispose()
    service_url, role = connection
    if role is not None:
        log.info("the service logs in as the owner and switches to %s (the server asks %s for a password)",
                 role, role)
    return make_engine(service_url, role=role)


def open_read_engine(settings: Settings, primary: Engine) -> Engine | None:
    """An engine on ``settings.read_database_url`` (None when unset), its connections switching to the role the
    ``primary`` engine's take (the service's restricted role). Nothing is asked of the replica here: one that is
    down when the service starts is skipped until it answers (:mod:`spatial.store.replica`)."""
    if not settings.read_database_url:
        return None
    with primary.connect() as connection:
        current_user = connection.exec_driver_sql("SELECT current_user").scalar()
    url = normalize_url(settings.read_database_url)
    return make_engine(url, role=None if make_url(url).username == current_user else current_user)
