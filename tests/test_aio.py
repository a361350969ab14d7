"""The asynchronous read path (spatial.store.aio) on a real PostgreSQL: the SQL text it runs, the role it runs as,
a server that dropped its connections, a pool with no connection free, and errors as the sync path raises them."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from spatial.store.aio import AsyncPool, fetch_all, psycopg_sql
from spatial.store.engine import make_engine
from spatial.store.privileges import APP_ROLE


def test_sql_text_takes_psycopg_parameters_and_keeps_literal_percent_signs():
    converted = psycopg_sql("SELECT CAST(:ids AS integer[]), x::geography, '50%' WHERE code LIKE :prefix AND :ids")
    assert converted == ("SELECT CAST(%(ids)s AS integer[]), x::geography, '50%%' WHERE code LIKE %(prefix)s "
                         "AND %(ids)s")


@pytest.fixture
def service_engine(fresh_db_url):
    engine = make_engine(fresh_db_url, pool_size=2, role=APP_ROLE)
    yield engine
    engine.dispose()


def test_the_pool_runs_as_the_engine_role_one_transaction_per_statement(service_engine):
    async def work():
        pool = AsyncPool.like(service_engine)
        try:
            role = await fetch_all(pool, "SELECT current_user AS who, CAST(:x AS int) + 1 AS y", {"x": 41})
            with pytest.raises(ProgrammingError, match="permission denied"):
                await fetch_all(pool, "DELETE FROM audit_log", {})
            status = await fetch_all(pool, "SELECT now() = statement_timestamp() AS own", {})
            return role[0], status[0].own
        finally:
            await pool.close()

    (who, y), own_transaction = asyncio.run(work())
    assert (who, y) == (APP_ROLE, 42)
    assert own_transaction  # autocommit: each statement starts its own transaction


def test_connections_the_server_dropped_are_replaced_without_an_error(service_engine, fresh_db_url):
    owner = make_engine(fresh_db_url, pool_size=1)

    async def work():
        pool = AsyncPool.like(service_engine)
        try:
            async def hold():  # three connections at once, all idle in the pool afterwards
                async with pool.connection() as connection:
                    await connection.execute("SELECT pg_sleep(0.05)")
            await asyncio.gather(hold(), hold(), hold())
            assert len(pool._idle) == 3
            with owner.begin() as c:
                killed = c.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                        "WHERE datname = current_database() AND usename = current_user "
                                        "AND application_name = 'gridgov' AND pid <> pg_backend_pid()")).scalar()
            assert killed >= 3
            await asyncio.sleep(0.1)
            first = await fetch_all(pool, "SELECT 1 AS one", {})
            second = await fetch_all(pool, "SELECT 2 AS two", {})
            return first[0].one, second[0].two, len(pool._idle)
        finally:
            await pool.close()

    try:
        assert asyncio.run(work()) == (1, 2, 1)
    finally:
        owner.dispose()


def test_errors_are_the_sqlalchemy_errors_the_sync_path_raises(service_engine):
    async def work():
        pool = AsyncPool.like(service_engine)
        try:
            with pytest.raises(DataError, match="division by zero"):
                await fetch_all(pool, "SELECT 1 / :zero AS x", {"zero": 0})
            with pytest.raises(DataError):
                await fetch_all(pool, "SELECT CAST(:s AS text) AS s", {"s": "nul \x00 byte"})
            return await fetch_all(pool, "SELECT 1 AS still_usable", {})
        finally:
            await pool.close()

    assert asyncio.run(work())[0].still_usable == 1


def test_an_unreachable_server_is_an_outage_and_a_full_pool_a_timeout(service_engine):
    async def unreachable():
        pool = AsyncPool("postgresql://nobody@/gridgov?host=/nonexistent&port=1")
        with pytest.raises(OperationalError) as raised:
            await fetch_all(pool, "SELECT 1", {})
        return raised.value

    error = asyncio.run(unreachable())
    assert error.connection_invalidated  # api.errors.is_outage: 503

    async def full():
        pool = AsyncPool.like(service_engine, max_size=1, timeout_s=0.2)
        try:
            async with pool.connection():
                with pytest.raises(PoolTimeout, match="no database connection came free"):
                    await fetch_all(pool, "SELECT 1", {})
            return await fetch_all(pool, "SELECT 1 AS free_again", {})
        finally:
            await pool.close()

    assert asyncio.run(full())[0].free_again == 1


def test_a_closed_pool_closes_the_connection_still_in_use_when_it_comes_back(service_engine):
    async def work():
        pool = AsyncPool.like(service_engine)
        async with pool.connection() as connection:
            await pool.close()  # as at shutdown, while a request still runs
            await connection.execute("SELECT 1")
        return connection.closed, len(pool._idle)

    assert asyncio.run(work()) == (True, 0)
