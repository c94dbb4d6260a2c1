"""PgBouncer in transaction mode: our sessions through it stay isolated per user."""

from __future__ import annotations

import itertools
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from planwise.config import Settings
from planwise.db.cluster import Cluster
from planwise.db.engine import build_engine
from planwise.db.session import unit_of_work
from planwise.errors import PlanwiseError
from planwise.ops.monitor import report as monitor
from planwise.ops.pgbouncer.pooler import PgBouncer, accepts_tcp, connected_to_itself
from tests.support.databases import DatabaseUnderTest, connect

pytestmark = pytest.mark.slow

TEST_PORT = 16496
POOL_SIZE = 2
REQUESTS = 10_000
THREADS = 4


@pytest.fixture(scope="module")
def pooled_db(create_migrated_database: Callable[[str], DatabaseUnderTest]) -> DatabaseUnderTest:
    return create_migrated_database("planwise_pool")


@pytest.fixture(scope="module")
def bouncer(
    settings: Settings, cluster: Cluster, pooled_db: DatabaseUnderTest
) -> Iterator[PgBouncer]:
    """PgBouncer with only 2 server connections per pool, on a port and in a directory of
    its own (a developer's `pgbouncer up` keeps running). After `pooled_db`: its migration
    creates the roles `up` configures (on a fresh cluster there are none before)."""
    tight = settings.model_copy(
        update={"pgbouncer_port": TEST_PORT, "pgbouncer_pool_size": POOL_SIZE}
    )
    pooler = PgBouncer(tight, cluster, cluster.directory / "pgbouncer-test")
    try:
        assert pooler.up()
        assert not pooler.up(), "up again only reloads"
        assert pooler.auth_file.stat().st_mode & 0o777 == 0o600
        assert "SCRAM-SHA-256$" in pooler.auth_file.read_text()
        yield pooler
        assert pooler.down()
        assert not pooler.running
    finally:
        pooler.down()
        shutil.rmtree(pooler.directory, ignore_errors=True)


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
    done = threading.Event()
    peak_servers = 0

    def watch_pools() -> None:
        """SHOW POOLS while the load runs: the peak, not just what is left at the end."""
        nonlocal peak_servers
        while not done.is_set():
            for pool in bouncer.pools():
                if pool.database == pooled_db.name:
                    peak_servers = max(peak_servers, pool.servers)
            time.sleep(0.02)

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

    watcher = threading.Thread(target=watch_pools)
    watcher.start()
    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    done.set()
    watcher.join()
    assert failures == []
    pools = [p for p in bouncer.pools() if p.database == pooled_db.name]
    assert pools and all(p.servers <= POOL_SIZE for p in pools)
    assert 0 < peak_servers <= POOL_SIZE
    stats = {row["database"]: row for row in bouncer.stats()}
    assert int(stats[pooled_db.name]["total_xact_count"]) >= 2 * REQUESTS
    print(f"\n{REQUESTS} requests (+ as many user-less checks) from {THREADS} threads through "
          f"PgBouncer in {elapsed:.1f} s; peak server connections {peak_servers}")  # fmt: skip


def test_statement_timeout_applies_through_pgbouncer(
    pooled_engine: Engine, settings: Settings
) -> None:
    """PgBouncer refuses `options`, so the timeout comes from the role (`pgbouncer up`)."""
    with unit_of_work(pooled_engine) as session:
        applies = session.execute(
            text("SELECT current_setting('statement_timeout')::interval = :ms * interval '1ms'"),
            {"ms": settings.database_statement_timeout_ms},
        ).scalar_one()
    assert applies


def test_monitoring_reads_the_pools(bouncer: PgBouncer, pooled_engine: Engine) -> None:
    figures = monitor.pgbouncer_figures(bouncer.settings)
    assert figures is not None and figures["port"] == TEST_PORT
    assert any(pool["user"] == "app_service" for pool in figures["pools"])
    assert all(pool["servers"] <= POOL_SIZE for pool in figures["pools"])
    assert {"total_xact_count", "avg_wait_time"} <= set(figures["stats"][0])


@pytest.fixture
def spare_bouncer(
    settings: Settings, cluster: Cluster, pooled_db: DatabaseUnderTest
) -> Iterator[Callable[[int], PgBouncer]]:
    """A PgBouncer on a given port, in a directory of its own, stopped and removed after
    (after `pooled_db`, whose migration creates the roles)."""
    made: list[PgBouncer] = []

    def make(port: int) -> PgBouncer:
        pooler = PgBouncer(
            settings.model_copy(update={"pgbouncer_port": port}),
            cluster,
            cluster.directory / f"pgbouncer-spare-{len(made)}",
        )
        made.append(pooler)
        return pooler

    yield make
    for pooler in made:
        pooler.down()
        shutil.rmtree(pooler.directory, ignore_errors=True)


def test_up_refuses_a_port_another_program_listens_on(
    spare_bouncer: Callable[[int], PgBouncer],
) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        pooler = spare_bouncer(other.getsockname()[1])
        with pytest.raises(PlanwiseError, match="already accepts connections"):
            pooler.up()
    assert not pooler.running


def test_up_fails_when_pgbouncer_cannot_bind_its_port(
    spare_bouncer: Callable[[int], PgBouncer],
) -> None:
    """The port is bound (not listening): nothing accepts there, so the check before
    starting passes, PgBouncer starts and its bind fails. It used to say "started"."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        pooler = spare_bouncer(holder.getsockname()[1])
        with pytest.raises(PlanwiseError, match="did not start accepting connections"):
            pooler.up()
        assert not pooler.running, "the PgBouncer that could not bind was stopped again"


def test_a_socket_connected_to_itself_is_not_a_listener() -> None:
    """Connect from port P to port P with no listener: TCP simultaneous open connects the
    socket to itself, which is what a client retrying a dead ephemeral port can hit."""
    with socket.socket() as finder:
        finder.bind(("127.0.0.1", 0))
        port = finder.getsockname()[1]
    with socket.socket() as looped:
        looped.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        looped.bind(("127.0.0.1", port))
        looped.connect(("127.0.0.1", port))  # succeeds: to itself
        assert connected_to_itself(looped)
        looped.sendall(b"ping")
        assert looped.recv(4) == b"ping"
        assert not accepts_tcp(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert accepts_tcp(listener.getsockname()[1])


def test_default_ports_are_below_the_ephemeral_range() -> None:
    low, _high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    defaults = Settings.model_fields
    for name in ("planwise_pg_port", "pgbouncer_port"):
        assert defaults[name].default < min(low, 32768), name
    ci = (Path(__file__).parents[2] / ".ci" / "run").read_text()
    assert "PLANWISE_PG_PORT:-15439" in ci
    assert TEST_PORT < 32768
