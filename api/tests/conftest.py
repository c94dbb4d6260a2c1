"""Tests run against real PostgreSQL: the managed cluster, started if needed, holding a
throwaway database built by `alembic upgrade head` for this run. Each test gets a
transaction that is rolled back at its end."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import psycopg.sql
import pytest
from sqlalchemy import Connection, Engine, create_engine, pool
from sqlmodel import Session

from planwise.config import Settings, get_settings
from planwise.db import migrations
from planwise.db.cluster import Cluster, ensure_local_secrets
from planwise.db.engine import sqlalchemy_url
from planwise.db.roles import configured_role_passwords, set_role_passwords
from tests.support.databases import (
    TEST_JWT_SECRET,
    TEST_SUPABASE_JWT_SECRET,
    DatabaseUnderTest,
    on_database,
)
from tests.support.live import LiveServer, serve


@pytest.fixture(scope="session")
def settings() -> Settings:
    if os.environ.get("DATABASE_URL"):
        pytest.exit("tests build their own databases on the managed cluster: unset DATABASE_URL")
    ensure_local_secrets(get_settings())
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
def cluster(settings: Settings) -> Iterator[Cluster]:
    """The managed cluster; stopped again at the end if this run started it."""
    cluster = Cluster(settings)
    was_running = cluster.running
    cluster.up()
    yield cluster
    if not was_running:
        cluster.stop()


def copy_database(cluster: Cluster, name: str, template: str) -> None:
    with cluster.admin_connect() as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                psycopg.sql.Identifier(name), psycopg.sql.Identifier(template)
            )
        )


def close_to_connections(cluster: Cluster, name: str) -> None:
    """Make a database a template nobody connects to: a session there (autovacuum's
    included) would make `CREATE DATABASE … TEMPLATE` fail."""
    with cluster.admin_connect() as conn:
        conn.execute(
            psycopg.sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(
                psycopg.sql.Identifier(name)
            )
        )


@pytest.fixture(scope="session")
def empty_template(cluster: Cluster) -> Iterator[str]:
    """A database with the extensions and nothing else, that empty test databases are
    copied from: a copy takes 0.1 to 0.3 s, CREATE EXTENSION postgis 1 to 2 s."""
    name = f"planwise_empty_{uuid.uuid4().hex[:8]}"
    cluster.prepare_database(name)
    close_to_connections(cluster, name)
    yield name
    cluster.drop_database(name)


@pytest.fixture(scope="session")
def create_database(
    cluster: Cluster, settings: Settings, empty_template: str
) -> Iterator[Callable[..., DatabaseUnderTest]]:
    """Make databases for this run, all dropped at the end: copies of `template`, by
    default of `empty_template` (PostGIS available)."""
    made: list[str] = []

    def create(prefix: str, template: str = empty_template) -> DatabaseUnderTest:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        copy_database(cluster, name, template)
        made.append(name)
        return DatabaseUnderTest(
            name=name,
            admin_url=on_database(settings.admin_url, name),
            app_url=on_database(settings.app_url, name),
            read_url=on_database(
                settings.managed_url("app_read", settings.app_read_password), name
            ),
        )

    yield create
    for name in made:
        cluster.drop_database(name)


@pytest.fixture(scope="session")
def migrated_template(
    cluster: Cluster, create_database: Callable[..., DatabaseUnderTest], settings: Settings
) -> str:
    """A database built by `alembic upgrade head`, its login roles' passwords set, that
    databases at head are copied from (the migrations take 1 to 2 s)."""
    database = create_database("planwise_template")
    migrations.upgrade(database.admin_url)
    set_role_passwords(database.admin_url, configured_role_passwords(settings))
    close_to_connections(cluster, database.name)
    return database.name


@pytest.fixture(scope="session")
def create_migrated_database(
    create_database: Callable[..., DatabaseUnderTest], migrated_template: str
) -> Callable[[str], DatabaseUnderTest]:
    """Make a database at the migration head (a copy of `migrated_template`)."""

    def create(prefix: str) -> DatabaseUnderTest:
        return create_database(prefix, template=migrated_template)

    return create


@pytest.fixture(scope="session")
def test_db(create_migrated_database: Callable[[str], DatabaseUnderTest]) -> DatabaseUnderTest:
    """One database at head for the whole run."""
    return create_migrated_database("planwise_test")


@pytest.fixture(scope="session")
def admin_engine(test_db: DatabaseUnderTest) -> Iterator[Engine]:
    engine = create_engine(sqlalchemy_url(test_db.admin_url), poolclass=pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def admin_connection(admin_engine: Engine) -> Iterator[Connection]:
    """The owner's connection inside a transaction rolled back after the test."""
    with admin_engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@pytest.fixture
def db_session(admin_connection: Connection) -> Iterator[Session]:
    """An ORM session joined to the rolled-back transaction (its commits are savepoints)."""
    with Session(bind=admin_connection, join_transaction_mode="create_savepoint") as session:
        yield session


# -- the HTTP API ---------------------------------------------------------------------
# API requests commit (one transaction per request, as in production), so API tests run
# on a database of their own and tell their data apart by unique usernames.


@pytest.fixture(scope="session")
def api_db(create_migrated_database: Callable[[str], DatabaseUnderTest]) -> DatabaseUnderTest:
    return create_migrated_database("planwise_api")


@pytest.fixture(scope="session")
def api_settings(api_db: DatabaseUnderTest, settings: Settings) -> Settings:
    from pydantic import SecretStr

    return settings.model_copy(
        update={
            "database_url": api_db.app_url,
            "migration_database_url": api_db.admin_url,
            "planwise_env": "test",
            "jwt_secret": SecretStr(TEST_JWT_SECRET),
            "supabase_jwt_secret": SecretStr(TEST_SUPABASE_JWT_SECRET),
        }
    )


@pytest.fixture(scope="session")
def api_app(api_settings: Settings) -> Iterator[Any]:
    from planwise.app import create_app

    app = create_app(api_settings)
    yield app
    app.state.engine.dispose()


@pytest.fixture
def client(api_app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(api_app, base_url="http://testserver/api/v1") as test_client:
        yield test_client


# -- a live server, for the official clients and websockets ---------------------------


@pytest.fixture(scope="module")
def live_settings(api_settings: Settings) -> Settings:
    """The live server's settings; a test module overrides this fixture to change them."""
    return api_settings


@pytest.fixture(scope="module")
def live(live_settings: Settings) -> Iterator[LiveServer]:
    with serve(live_settings) as server:
        yield server


@pytest.fixture(scope="module")
def http(live: LiveServer) -> Iterator[httpx.Client]:
    """The live server's `/api/v1`."""
    with live.http() as client:
        yield client
