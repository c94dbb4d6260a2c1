"""Alembic environment: our metadata, our URL, and what autogenerate must not compare."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from planwise.config import get_settings
from planwise.db.engine import sqlalchemy_url
from planwise.db.migrations import include_object
from planwise.models import metadata

config = context.config


def migration_url() -> str:
    """A URL handed in by code (`config.attributes["url"]`) wins over the settings."""
    url = config.attributes.get("url") or get_settings().admin_url
    return sqlalchemy_url(str(url))


def run_migrations_offline() -> None:
    context.configure(
        url=migration_url(),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(
        migration_url(),
        poolclass=pool.NullPool,
        connect_args={"application_name": "planwise-migrate"},
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            include_object=include_object,
            compare_type=True,
            compare_server_default=True,
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
