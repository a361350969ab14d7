"""The application factory. The lifespan owns the engine; nothing is global."""

from __future__ import annotations

import gc
import importlib
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from api import errors, routers
from api.deps import TOKENS_CHANNEL, callers_changed
from api.headers import SecurityHeaders
from api.limits import BodyLimit
from api.proxies import ForwardedFor
from api.replicas import WriteMarkCookie
from spatial import basemaps
from spatial.settings import Settings
from spatial.store.aio import AsyncPool
from spatial.store.audit_chain import Sealer
from spatial.store.engine import libpq_url, make_sessionmaker
from spatial.store.notify import Listener
from spatial.store.replica import Replicas, track_commits
from tiles import cache as tile_cache

STATIC = Path(__file__).resolve().parent / "static"

DESCRIPTION = """
gridgov: community grid management (网格化服务管理) on PostGIS.

Log in with `POST /api/auth/token` and send `Authorization: Bearer <token>`. GIS clients that can send only
HTTP Basic (QGIS 3.22) use your user name and a personal access token (`POST /api/tokens`, read-only) as the
password, on the read endpoints of `/ogc`, `/tiles` and `/api/export`. Every endpoint that takes or
returns coordinates has a `crs` parameter: `EPSG:4326` (WGS 84, default), `EPSG:4490` (CGCS2000),
`GCJ-02` (Amap, Tencent, WeChat), `BD-09` (Baidu) or any EPSG code. Axis order is (longitude, latitude).
"""


def discover_routers() -> list:
    """The ``router`` of every module in :mod:`api.routers`, in module-name order: a capability adds
    its endpoints by adding a module, without editing this file."""
    modules = sorted(m.name for m in pkgutil.iter_modules(routers.__path__))
    return [importlib.import_module(f"api.routers.{name}").router for name in modules]


def _listen(app: FastAPI) -> Listener:
    """Hear what other processes committed: tiles to drop, tokens revoked (:mod:`spatial.store.notify`); with
    read replicas, the primary's WAL position with each (:mod:`spatial.store.replica`)."""
    def revoked(payload: dict) -> None:  # a token revoked, or accounts changed (users.principals_changed)
        callers_changed(app, payload)

    def missed() -> None:
        tile_cache.clear_all(listener.position)
        callers_changed(app, None)

    replicas = app.state.replicas
    listener = Listener(libpq_url(app.state.engine), {tile_cache.CHANNEL: tile_cache.on_notify,
                                                      TOKENS_CHANNEL: revoked},
                        on_reconnect=missed, on_position=replicas.learned if replicas else None)
    return listener


def _replicas(app: FastAPI, read_engine: Engine | None) -> Replicas | None:
    """Where reads that may lag go when a read URL is configured (docs/decisions/0022-read-replicas.md)."""
    if read_engine is None:
        return None
    track_commits(app.state.engine)
    settings = app.state.settings
    return Replicas(app.state.sessions, make_sessionmaker(read_engine), primary_pool=app.state.reads,
                    replica_pool=AsyncPool(libpq_url(read_engine), role=app.state.reads.role),
                    wait_s=settings.read_wait_ms / 1000)


def create_app(settings: Settings | None = None, engine: Engine | None = None,
               read_engine: Engine | None = None) -> FastAPI:
    """Build the app. With ``engine`` given it is used as is (tests); otherwise one is opened at startup
    from ``settings`` (starting the embedded cluster if no database URL is configured) and disposed at
    shutdown. Likewise ``read_engine``, the read replicas' (else one on ``settings.read_database_url`` if set)."""
    settings = settings or Settings()
    basemaps.from_settings(settings.basemaps, settings.basemap_keys)  # a bad basemap setting stops the start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from spatial.store.database import open_database, open_read_engine

        own = engine is None
        app.state.engine = open_database(settings, service=True) if own else engine
        app.state.sessions = make_sessionmaker(app.state.engine)
        app.state.reads = AsyncPool.like(app.state.engine)
        own_reads = read_engine is None
        reads_engine = open_read_engine(settings, app.state.engine) if own_reads else read_engine
        app.state.replicas = _replicas(app, reads_engine)
        listener = _listen(app).start()
        sealer = Sealer(app.state.engine, interval_s=settings.audit_seal_interval_s, anchors=settings.anchor_path) \
            if settings.audit_seal_interval_s > 0 else None
        if sealer:
            settings.anchor_path.parent.mkdir(parents=True, exist_ok=True)
            sealer.start()
        if own:  # a server process: what startup built lives as long as it, keep it out of later collections
            gc.freeze()
        try:
            yield
        finally:
            listener.stop()
            if sealer:
                sealer.stop()
            await app.state.reads.close()
            if app.state.replicas is not None:
                await app.state.replicas.close()
                if own_reads:
                    reads_engine.dispose()
            if own:
                app.state.engine.dispose()

    app = FastAPI(title="gridgov", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # /docs is api.routers.docs (Swagger UI vendored), ReDoc off
    app.state.settings = settings
    app.state.replicas = None  # set by the lifespan when a read URL is configured
    errors.install(app)
    for router in discover_routers():
        app.include_router(router, responses=errors.RESPONSES)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(WriteMarkCookie)
    app.add_middleware(ForwardedFor)
    return app
