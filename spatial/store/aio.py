"""The asynchronous read path: one SQL statement per request on the event loop, for the hottest endpoints only
(the phone page's nearby households, and vector tiles not yet cached).

Everything else goes through SQLAlchemy sessions in worker threads (docs/decisions/0001-sync-database-access.md).
The phone page's "households near me" is asked hundreds of times a second; there, a thread hop per request and
SQLAlchemy's per-statement work are most of the cost, so it runs one statement that checks, reads and audits at
once (autocommit: the statement is its own transaction) on an :class:`AsyncPool` of psycopg connections
(docs/decisions/0010-async-nearby.md).

The SQL is the same text the synchronous path runs (``:name`` parameters, turned into psycopg's ``%(name)s`` once
per text), and errors come out as the SQLAlchemy exceptions the synchronous path raises, so
:mod:`api.errors` answers both alike (an outage is a 503, a value PostgreSQL refuses a 422).
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Engine, text
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from spatial.store.engine import connect_args, libpq_url

_DIALECT = psycopg_dialect.dialect()


@functools.lru_cache(maxsize=256)
def psycopg_sql(sql: str) -> str:
    """``sql`` with ``:name`` parameters (as for ``sqlalchemy.text``) in psycopg's ``%(name)s`` style, literal
    ``%`` doubled. Remembered per text: only for SQL whose text takes a bounded number of forms."""
    return str(text(sql).compile(dialect=_DIALECT))


class AsyncPool:
    """At most ``max_size`` autocommit connections, kept idle between requests, as the role of the engine's
    connections (the service's restricted role, :mod:`spatial.store.privileges`).

    A connection is opened when none is idle (failing at once when the server is down, like the synchronous
    pool); waiting longer than ``timeout_s`` for a free one raises ``sqlalchemy.exc.TimeoutError`` (a 503).
    Its statements are short and many run at once, so they get no parallel workers (starting them costs more
    than a nearby query's or a tile's work).
    A connection that comes back broken is dropped with every idle one (a restarted server broke them all).
    """

    def __init__(self, conninfo: str, *, role: str | None = None, max_size: int = 10, timeout_s: float = 10.0) -> None:
        self.conninfo = conninfo
        self.role = role
        self.kwargs = {**connect_args(role, max_parallel_workers_per_gather="0"), "autocommit": True,
                       "row_factory": namedtuple_row}
        self.timeout_s = timeout_s
        self._idle: deque[psycopg.AsyncConnection] = deque()
        self._closed = False
        self._slots = asyncio.Semaphore(max_size)

    @classmethod
    def like(cls, engine: Engine, **options: Any) -> AsyncPool:
        """A pool on ``engine``'s database, as the role its connections take (asked once, blocking)."""
        with engine.connect() as connection:
            session_user, current_user = connection.exec_driver_sql("SELECT session_user, current_user").one()
        return cls(libpq_url(engine), role=None if current_user == session_user else current_user, **options)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        try:
            await asyncio.wait_for(self._slots.acquire(), self.timeout_s)
        except TimeoutError:
            raise PoolTimeout(f"no database connection came free within {self.timeout_s:g} s") from None
        connection = None
        try:
            connection = self._idle.pop() if self._idle else await psycopg.AsyncConnection.connect(
                self.conninfo, **self.kwargs)
            yield connection
        finally:
            if connection is not None:
                if connection.broken:  # the server went away: the idle connections went with it
                    await self._drop_idle()
                if self._closed or connection.broken or connection.closed or \
                        connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    await connection.close()
                else:
                    self._idle.append(connection)
            self._slots.release()

    async def close(self) -> None:
        """Close the idle connections now, and each one in use when its statement is done."""
        self._closed = True
        await self._drop_idle()

    async def _drop_idle(self) -> None:
        while self._idle:
            await self._idle.pop().close()


def as_sqlalchemy(exc: psycopg.Error, sql: str, broken: bool) -> DBAPIError:
    """``exc`` as the SQLAlchemy exception the synchronous path would raise (so api.errors answers alike)."""
    return DBAPIError.instance(sql, None, exc, psycopg.Error, hide_parameters=True, connection_invalidated=broken)


async def fetch_all(pool: AsyncPool, sql: str, params: Mapping[str, Any]) -> list:
    """The rows (named tuples) of one statement, run in a transaction of its own.

    A connection found broken (the server restarted since it was last used) is dropped and the statement is
    run once more on a new one; a statement that writes (an audit row) may then, rarely, have been committed
    twice. psycopg errors are raised as the matching ``sqlalchemy.exc.DBAPIError`` subclass.
    """
    statement = psycopg_sql(sql)
    for attempt in (1, 2):
        try:
            async with pool.connection() as connection:
                try:
                    cursor = await connection.execute(statement, params)
                    return await cursor.fetchall()
                except psycopg.Error as exc:
                    if connection.broken and attempt == 1:
                        continue
                    raise as_sqlalchemy(exc, sql, connection.broken) from exc
        except psycopg.OperationalError as exc:  # could not connect
            raise as_sqlalchemy(exc, sql, True) from exc
    raise AssertionError("unreachable")
