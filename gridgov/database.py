"""Which database gridgov talks to: the configured URL, or the embedded cluster in ``data_dir``."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from gridgov.settings import Settings
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
    return cluster.url(settings.database_name)


def open_database(settings: Settings, *, upgrade: bool = True, service: bool = False) -> Engine:
    """An engine on the configured database, with the schema migrated to the newest revision.

    ``service=True`` (the web service): the engine's connections are the restricted role of
    :mod:`spatial.store.privileges` when it is usable, logged in as it if the server allows (else they stay the
    owner's, with a warning logged).
    """
    url = database_url(settings)
    engine = make_engine(url)
    if upgrade:
        migrate.upgrade(engine)
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
