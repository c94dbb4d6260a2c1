"""PgBouncer in transaction mode: our sessions through it stay isolated per user."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text

from planwise.config import Settings
from planwise.db.cluster import Cluster
from planwise.db.engine import build_engine
from planwise.db.session import unit_of_work
from planwise.ops.pgbouncer import PgBouncer
from tests.conftest import DatabaseUnderTest, connect

TEST_PORT = 54396
REQUESTS = 10_000


@pytest.fixture(scope="module")
def pooled_db(create_migrated_database: Callable[[str], DatabaseUnderTest]) -> DatabaseUnderTest:
    return create_migrated_database("planwise_pool")


@pytest.fixture(scope="module")
def bouncer(settings: Settings, cluster: Cluster) -> Iterator[PgBouncer]:
    """PgBouncer with only 2 server connections per pool, on a port of its own."""
    tight = settings.model_copy(update={"pgbouncer_port": TEST_PORT, "pgbouncer_pool_size": 2})
    pooler = PgBouncer(tight, cluster)
    assert pooler.up()
    assert not pooler.up(), "up again only reloads"
    yield pooler
    assert pooler.down()
    assert not pooler.running


@pytest.fixture(scope="module")
def pooled_engine(
    bouncer: PgBouncer, pooled_db: DatabaseUnderTest, settings: Settings
) -> Iterator[Engine]:
    password = settings.app_service_password
    assert password is not None
    url = bouncer.url("app_service", password.get_secret_value(), pooled_db.name)
    engine = build_engine(
        url,
        settings.model_copy(update={"database_pgbouncer": True, "database_pool_size": 8}),
        application_name="planwise-pool-test",
    )
    yield engine
    engine.dispose()


def test_two_users_alternating_never_see_each_other(
    pooled_engine: Engine, pooled_db: DatabaseUnderTest, bouncer: PgBouncer
) -> None:
    with connect(pooled_db.admin_url) as conn:
        users = []
        for name, categories in (("pool_alice", ("museum", "park")), ("pool_bob", ("zoo",))):
            user_id = conn.execute(
                'INSERT INTO "user" (username, hashed_password, full_name, role) '
                "VALUES (%s, 'h', %s, 'user') RETURNING id",
                (name, name),
            ).fetchone()[0]  # type: ignore[index]
            for category in categories:
                conn.execute(
                    "INSERT INTO preference (user_id, category, rating) VALUES (%s, %s, 0.5)",
                    (user_id, category),
                )
            users.append((int(user_id), len(categories)))
    schedule = itertools.islice(itertools.cycle(users), REQUESTS)
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                job = next(schedule, None)
            if job is None:
                return
            user_id, expected = job
            with unit_of_work(pooled_engine, user_id) as session:
                owners = session.execute(text("SELECT user_id FROM preference")).scalars().all()
            if sorted(set(owners)) != [user_id] or len(owners) != expected:
                failures.append(f"user {user_id} saw owners {owners}")
            with unit_of_work(pooled_engine) as session:
                leaked = session.execute(
                    text("SELECT current_setting('app.user_id', true), count(*) FROM preference")
                ).one()
            if leaked[0] not in ("", None) or leaked[1] != 0:
                failures.append(f"app.user_id survived a transaction: {tuple(leaked)}")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    pools = [p for p in bouncer.pools() if p.database == pooled_db.name]
    assert pools and all(p.server_active + p.server_idle + p.server_used <= 2 for p in pools)


def test_statement_timeout_applies_through_pgbouncer(pooled_engine: Engine) -> None:
    with unit_of_work(pooled_engine) as session:
        timeout = session.execute(text("SHOW statement_timeout")).scalar_one()
    assert timeout != "0"
