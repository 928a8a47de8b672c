"""Alembic environment: runs against DATABASE_URL given by bot.storage.migrate."""

from alembic import context
from sqlalchemy import text

from bot.storage.db import make_engine
from bot.storage.models import Base

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("bot.storage.migrate sets sqlalchemy.url before Alembic runs this")
    engine = make_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch mode copies a table and drops the old one; with foreign keys on, that DROP
            # cascade-deletes every row pointing at it. The pragma is ignored inside a transaction,
            # so it goes straight to the driver before Alembic's BEGIN.
            driver = connection.connection.driver_connection
            assert driver is not None  # a connection just checked out of the pool
            driver.execute("PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=connection.dialect.name == "sqlite"
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Several processes may start at once (gunicorn workers): one migrates, others wait.
                connection.execute(text("SELECT pg_advisory_xact_lock(74657)"))
            context.run_migrations()
    engine.dispose()


run_migrations_online()
