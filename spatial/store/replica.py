"""Read replicas with honest freshness (docs/decisions/0022-read-replicas.md).

Reads that may lag (uncached tiles, OGC API, layer exports, reports and figures) go to a hot standby when one is
configured (``Settings.read_database_url``); everything else stays on the primary. Three rules keep them honest:

* **Read your writes.** After a caller's write commits, its *commit position* (an LSN: a byte offset in the WAL,
  an ``int`` here) is known (:func:`commit_lsn`); that caller's reads on a replica first wait until the replica
  has replayed it (``pg_last_wal_replay_lsn()``, polled every ``poll_s`` for at most ``wait_s``), else run on the
  primary. A position beyond anything this process knows the primary reached (:attr:`Replicas.primary_lsn`) is
  not waited for: the read goes to the primary at once, so a forged or foreign position costs nobody a wait.
* **Nothing stale is cached.** A replica read reports the replay position it saw *before* it ran (replay only
  moves forward, so the read saw at least that); the tile cache stores such a tile only if no invalidation
  touching it is newer (``tiles.cache``).
* **A replica that fails is skipped.** Connecting to it failing (or a read cancelled by a conflict with recovery)
  sends the read to the primary; after a connection failure the replica is not tried for ``retry_s`` seconds.

**Audit rows are never written on a replica**: a replica session carries its primary (:func:`primary_of`), where
:mod:`spatial.store.audit` writes (in a transaction committed with the request, before the answer leaves).

Positions are read as byte offsets (``(pg_lsn - '0/0')::bigint``). The write position taken after a commit is
``pg_current_wal_insert_lsn()``: at or past the commit record even with ``synchronous_commit = off`` (the
audit's own rows); rarely (a commit ending exactly on a WAL page boundary) it is a page header past the record,
and a waiting read then times out onto the primary — slower, never stale.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from spatial.store import aio

INSERT_LSN = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint"
REPLAY = "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint"
"""On a standby: true and the position replayed; on a primary (a multi-host URL may land there): false, NULL."""

_TRACKED: weakref.WeakSet[Engine] = weakref.WeakSet()
_hooks = threading.Lock()
_hooked = False


# -- the positions of commits -------------------------------------------------------------------------------------
def track_commits(engine: Engine) -> None:
    """Make every session on ``engine`` that writes know its commit position afterwards (:func:`commit_lsn`).

    Costs, on that engine only, one round trip before a commit (``pg_current_xact_id_if_assigned()``: did the
    transaction write?) and one after the commit of a transaction that wrote."""
    global _hooked
    _TRACKED.add(engine)
    with _hooks:
        if not _hooked:
            event.listen(Session, "after_begin", _began)
            event.listen(Session, "before_commit", _before_commit)
            event.listen(Session, "after_commit", commit_lsn)
            event.listen(Session, "after_rollback", _forget)
            _hooked = True


def _began(session: Session, transaction: Any, connection: Any) -> None:
    session.info.pop("commit_lsn", None)
    if connection.engine in _TRACKED:
        session.info["_tracked_connection"] = connection


def _before_commit(session: Session) -> None:
    connection = session.info.pop("_tracked_connection", None)
    if connection is None or connection.closed:
        return
    session.flush()
    if connection.exec_driver_sql("SELECT pg_current_xact_id_if_assigned() IS NOT NULL").scalar():
        session.info["_lsn_after_commit"] = connection.connection.dbapi_connection


def _forget(session: Session) -> None:
    for key in ("_tracked_connection", "_lsn_after_commit"):
        session.info.pop(key, None)


def commit_lsn(session: Session) -> int | None:
    """The WAL position at or past the commit of ``session``'s last transaction if it wrote on a tracked engine
    (:func:`track_commits`), else None. Computed once, right after the commit (a Session may not run SQL then,
    so it asks on the same database connection, before the connection goes back to the pool)."""
    if "commit_lsn" in session.info:
        return session.info["commit_lsn"]
    raw = session.info.pop("_lsn_after_commit", None)
    if raw is None:
        return None
    with raw.cursor() as cursor:
        lsn = int(cursor.execute(INSERT_LSN).fetchone()[0])
    raw.rollback()  # the SELECT began a transaction of the driver's; end it before the pool sees the connection
    session.info["commit_lsn"] = lsn
    return lsn


# -- where a read goes ----------------------------------------------------------------------------------------
class _Behind(Exception):
    """The replica did not replay the position within the wait."""


def primary_of(session: Session) -> Session:
    """The session that writes for ``session``: itself, or for a replica session (:meth:`Replicas.session`) a
    session on the primary, opened on first use and committed with the request (audit rows)."""
    opener = session.info.get("primary")
    if opener is None:
        return session
    companion = session.info.get("primary_session")
    if companion is None:
        companion = session.info["primary_session"] = opener()
    return companion


def on_replica(session: Session) -> bool:
    """Whether ``session`` reads from a standby."""
    return bool(session.info.get("replica"))


class Replicas:
    """Where this process sends reads that may lag: ``replica`` (a sessionmaker and an :class:`~spatial.store.aio
    .AsyncPool` on the read URL) or, when it is behind, down or not configured, the primary's.

    ``wait_s``: longest wait for a replica to replay a caller's write (seconds); ``poll_s``: how often it is
    asked meanwhile; ``retry_s``: how long a replica that could not be reached is left alone. The counters
    (``replica_reads``, ``primary_reads``, ``fallbacks``) are for tests and status pages."""

    def __init__(self, primary: sessionmaker[Session], replica: sessionmaker[Session], *,
                 primary_pool: aio.AsyncPool | None = None, replica_pool: aio.AsyncPool | None = None,
                 wait_s: float = 0.2, poll_s: float = 0.005, retry_s: float = 5.0) -> None:
        self.primary, self.replica = primary, replica
        self.primary_pool, self.replica_pool = primary_pool, replica_pool
        self.wait_s, self.poll_s, self.retry_s = wait_s, poll_s, retry_s
        self.primary_lsn = 0
        self.marks = WriteMarks()
        self._down_until = 0.0
        self.replica_reads = self.primary_reads = self.fallbacks = 0

    def learned(self, lsn: int | None) -> None:
        """The primary has reached ``lsn`` (a commit of this process, or a notification heard)."""
        if lsn is not None and lsn > self.primary_lsn:
            self.primary_lsn = lsn

    def _worth_trying(self, min_lsn: int | None) -> bool:
        return time.monotonic() >= self._down_until and (min_lsn is None or min_lsn <= self.primary_lsn)

    def _down(self) -> None:
        self._down_until = time.monotonic() + self.retry_s
        self.fallbacks += 1

    def _on_primary(self) -> Session:
        self.primary_reads += 1
        return self.primary()

    # -- synchronous (sessions) --------------------------------------------------------------------------------
    def session(self, min_lsn: int | None = None) -> Session:
        """A session for a read that may lag, on a replica that has replayed ``min_lsn`` (the caller's last write;
        None: any) or else on the primary. Blocking (it may wait up to ``wait_s``): call it in a worker thread.
        A replica session's ``info`` has ``replica=True`` and the primary's sessionmaker (:func:`primary_of`)."""
        if not self._worth_trying(min_lsn):
            return self._on_primary()
        session = self.replica()
        try:
            if min_lsn is not None:
                self._wait_sync(session, min_lsn)
            else:
                session.connection()  # connect now, so an unreachable replica falls back here
        except _Behind:
            session.close()
            self.fallbacks += 1
            return self._on_primary()
        except DBAPIError as exc:
            session.close()
            if not exc.connection_invalidated and not isinstance(exc.orig, psycopg.OperationalError):
                raise
            self._down()
            return self._on_primary()
        session.info.update(replica=True, primary=self.primary)
        self.replica_reads += 1
        return session

    def _wait_sync(self, session: Session, min_lsn: int) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            standby, replayed = session.connection().exec_driver_sql(REPLAY).one()
            if not standby or (replayed or 0) >= min_lsn:
                return
            if time.monotonic() >= deadline:
                raise _Behind
            time.sleep(self.poll_s)

    # -- asynchronous (one statement) ---------------------------------------------------------------------------
    async def fetch_all(self, sql: str, params: Mapping[str, Any], min_lsn: int | None = None
                        ) -> tuple[list, int | None]:
        """The rows of one statement (as :func:`spatial.store.aio.fetch_all`) and the replay position the replica
        had reached before it ran (None: it ran on a primary, so it is current)."""
        if self.replica_pool is not None and self._worth_trying(min_lsn):
            try:
                async with self.replica_pool.connection() as connection:
                    try:
                        seen = await self._wait_async(connection, min_lsn)
                        cursor = await connection.execute(aio.psycopg_sql(sql), params)
                        rows = await cursor.fetchall()
                    except (_Behind, psycopg.errors.SerializationFailure):  # behind, or cancelled by recovery
                        self.fallbacks += 1
                    except psycopg.Error as exc:
                        if not connection.broken:
                            raise aio.as_sqlalchemy(exc, sql, False) from exc
                        self._down()
                    else:
                        self.replica_reads += 1
                        return rows, seen
            except psycopg.OperationalError:  # could not connect
                self._down()
        if self.primary_pool is None:
            raise RuntimeError("Replicas.fetch_all needs primary_pool")
        self.primary_reads += 1
        return await aio.fetch_all(self.primary_pool, sql, params), None

    async def _wait_async(self, connection: psycopg.AsyncConnection, min_lsn: int | None) -> int | None:
        deadline = time.monotonic() + self.wait_s
        while True:
            standby, replayed = await (await connection.execute(REPLAY)).fetchone()
            if not standby:
                return None
            if min_lsn is None or (replayed or 0) >= min_lsn:
                return int(replayed or 0)
            if time.monotonic() >= deadline:
                raise _Behind
            await asyncio.sleep(self.poll_s)

    async def close(self) -> None:
        if self.replica_pool is not None:
            await self.replica_pool.close()


@dataclass(frozen=True)
class FreshReads:
    """:meth:`Replicas.fetch_all` for one caller (their last write's position): what tile rendering is given."""

    replicas: Replicas
    min_lsn: int | None = None

    async def fetch_all(self, sql: str, params: Mapping[str, Any]) -> tuple[list, int | None]:
        return await self.replicas.fetch_all(sql, params, self.min_lsn)


class WriteMarks:
    """caller key → the position of their last write, for ``ttl_s`` seconds (the cookie of :mod:`api.replicas`
    carries it too); a replica still behind a write that old is no longer waited for on its account."""

    def __init__(self, ttl_s: float = 600.0, max_entries: int = 10_000) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._marks: dict[bytes, tuple[int, float]] = {}

    def get(self, key: bytes | None) -> int | None:
        hit = self._marks.get(key) if key is not None else None
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def put(self, key: bytes | None, lsn: int) -> None:
        if key is None:
            return
        if len(self._marks) >= self.max_entries:
            self._marks.clear()
        old = self.get(key)
        self._marks[key] = (max(lsn, old or 0), time.monotonic() + self.ttl_s)
