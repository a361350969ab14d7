"""Alembic environment: runs on the connection handed in by :func:`spatial.store.migrate.upgrade`."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
