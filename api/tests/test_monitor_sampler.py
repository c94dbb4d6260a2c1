"""The sampler the API runs itself: one run per interval however many workers try, old
samples pruned in the same run, failures logged and never in a request's way."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, create_engine, pool, text

from planwise.config import Settings
from planwise.console import routes as console
from planwise.db.engine import sqlalchemy_url
from planwise.ops.monitor import sampler
from tests.support.databases import DatabaseUnderTest, connect
from tests.support.served import free_port, planwise_serve, serve_environment

INTERVAL = 0.5
RETENTION = {"size_retention_days": 90, "sample_retention_days": 14}


@pytest.fixture(scope="module")
def sampled_db(api_db: DatabaseUnderTest) -> DatabaseUnderTest:
    """The API tests' database (made once per run): samples there disturb no other test."""
    return api_db


@pytest.fixture
def admin_connections(sampled_db: DatabaseUnderTest) -> Iterator[list[Connection]]:
    engine = create_engine(sqlalchemy_url(sampled_db.admin_url), poolclass=pool.NullPool)
    opened = [engine.connect(), engine.connect()]
    yield opened
    for connection in opened:
        connection.close()
    engine.dispose()


def test_one_claim_per_interval_and_old_samples_pruned(
    admin_connections: list[Connection],
) -> None:
    first, second = admin_connections
    second.execute(text("SELECT 1"))  # idle in transaction while `first` samples
    ran = sampler.sample(first, interval_seconds=3600, **RETENTION)
    assert ran is not None and ran.slot == int(time.time() // 3600)
    started = time.monotonic()  # the first run's transaction is open: skip, do not wait
    assert sampler.sample(second, interval_seconds=3600, **RETENTION) is None
    assert time.monotonic() - started < 0.5
    second.rollback()
    first.commit()
    assert sampler.sample(second, interval_seconds=3600, **RETENTION) is None  # slot taken
    second.rollback()
    states = dict(second.execute(text(
        "SELECT state, count FROM connection_sample WHERE sampled_at = :at"
    ), {"at": ran.sampled_at}).all())  # fmt: skip
    assert states.get("idle in transaction", 0) >= 1, states  # `second`
    assert "active" not in states, states  # the sampler does not count itself

    first.execute(text(
        "INSERT INTO db_size_sample (relation, bytes, sampled_at) VALUES "
        "('old', 1, now() - interval '91 days'), ('young', 1, now() - interval '89 days');"
        "INSERT INTO statement_sample (sampled_at, queryid, seconds, calls, total_exec_ms, rows)"
        " VALUES (now() - interval '15 days', 1, 1, 1, 1, 1),"
        " (now() - interval '13 days', 2, 1, 1, 1, 1);"
        "INSERT INTO connection_sample (sampled_at, state, count) VALUES"
        " (now() - interval '15 days', 'idle', 1), (now() - interval '13 days', 'idle', 2);"
        "INSERT INTO monitor_sample_run (sampled_at) VALUES (now() - interval '15 days')"
    ))  # fmt: skip
    first.commit()
    by_hand = sampler.sample(first, **RETENTION)  # unscheduled: always runs
    first.commit()
    assert by_hand is not None and by_hand.slot is None
    assert by_hand.rows_pruned == 4
    left = first.execute(text(
        "SELECT (SELECT count(*) FROM db_size_sample WHERE relation IN ('old', 'young')),"
        " (SELECT count(*) FROM statement_sample WHERE queryid IN (1, 2)),"
        " (SELECT count(*) FROM connection_sample WHERE sampled_at < now() - interval '1 day'),"
        " (SELECT count(*) FROM monitor_sample_run WHERE sampled_at < now() - interval '1 day')"
    )).one()  # fmt: skip
    assert tuple(left) == (1, 1, 1, 0)
    recorded = first.execute(text(
        "SELECT rows_written, rows_pruned, duration_ms, archived_count FROM monitor_sample_run"
        " WHERE id = :id"), {"id": by_hand.id}).one()  # fmt: skip
    assert recorded.rows_written == by_hand.rows_written > by_hand.sizes
    assert recorded.rows_pruned == 4 and recorded.duration_ms > 0
    assert recorded.archived_count is None  # archive_mode is off here


def test_a_long_history_is_charted_in_at_most_about_200_steps(
    admin_connections: list[Connection],
) -> None:
    """14 days sampled every 5 minutes (4032 samples) is about 200 points, not 4032."""
    connection = admin_connections[0]
    connection.execute(text(
        "INSERT INTO connection_sample (sampled_at, state, count) SELECT now() - n * "
        "interval '5 minutes', 'charted', n % 7 FROM generate_series(0, 4031) AS n"
    ))  # fmt: skip
    points = [row for row in connection.execute(text(console.CONNECTION_STATES_SQL))
              if row[0] == "charted"]  # fmt: skip
    connection.rollback()
    assert 190 <= len(points) <= 202, len(points)
    assert max(row[2] for row in points) == 6  # the peak of each step


def test_a_failed_run_is_logged_not_raised(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = f"postgresql://postgres:x@127.0.0.1:{free_port()}/planwise"
    scheduled = sampler.ScheduledSampler(settings.model_copy(update={
        "migration_database_url": nowhere, "monitor_sample_interval_seconds": 60.0,
    }))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="planwise.sampler"):
        assert scheduled.run_once() is None
    scheduled.stop()
    assert "sampler: run failed: OperationalError" in caplog.text


def test_two_workers_sample_each_interval_once_without_holding_up_requests(
    sampled_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    """`planwise serve --workers 2`: both workers try the intervals (the claim statement
    ran more often than runs were made), each interval was sampled once; a run blocked by
    a lock fails after its lock timeout, logged, while requests answer at once."""
    env = serve_environment(sampled_db, tmp_path,
                            MONITOR_SAMPLE_INTERVAL_SECONDS=str(INTERVAL))  # fmt: skip
    log = tmp_path / "serve.log"
    with (
        planwise_serve(env, log, "--workers", "2") as (base, _pid),
        connect(sampled_db.admin_url) as conn,
    ):
        conn.autocommit = True
        deadline = time.monotonic() + 20  # until the slower worker tried too
        while claim_attempts(sampled_db) - len(runs_after(sampled_db, 0)) < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(INTERVAL)
        attempted = claim_attempts(sampled_db)
        begun = max((slot for slot, _ in runs_after(sampled_db, 0)), default=0)
        time.sleep(6 * INTERVAL)
        runs = runs_after(sampled_db, begun)
        attempts = claim_attempts(sampled_db) - attempted
        with conn.transaction():  # the sampler's INSERT INTO db_size_sample must wait
            conn.execute("LOCK TABLE db_size_sample IN ACCESS EXCLUSIVE MODE")
            slowest = 0.0
            deadline = time.monotonic() + sampler.LOCK_TIMEOUT_MS / 1000 + 2 * INTERVAL
            while time.monotonic() < deadline:
                asked = time.monotonic()
                assert httpx.get(f"{base}/health").status_code == 200
                slowest = max(slowest, time.monotonic() - asked)
                time.sleep(0.05)
        time.sleep(2 * INTERVAL)
        after_lock = runs_after(sampled_db, max(runs)[0])
    slots = [slot for slot, _ in runs]
    assert len(slots) == len(set(slots)) >= 4, runs  # one run per interval, none twice
    assert len({moment for _, moment in runs}) == len(runs)
    # A lone sampler would win every claim it tries; two lose some (under load a worker
    # may skip an interval whose attempt came late, so not necessarily half).
    assert attempts > len(runs), (attempts, len(runs))
    sizes = sizes_per_run(sampled_db)
    assert all(count == sizes[0] for count in sizes), sizes  # each run sized tables once
    assert slowest < 0.5, slowest
    text = log.read_text()
    assert "sampler: run failed: OperationalError" in text and "lock timeout" in text, text
    assert after_lock, "sampling resumed after the lock"


def runs_after(db: DatabaseUnderTest, slot: int) -> list[tuple[int, object]]:
    with connect(db.admin_url) as conn:
        return [
            (int(slot), moment) for slot, moment in conn.execute(
                "SELECT slot, sampled_at FROM monitor_sample_run "
                "WHERE slot > %s ORDER BY slot", (slot,)
            )
        ]  # fmt: skip


def sizes_per_run(db: DatabaseUnderTest) -> list[int]:
    with connect(db.admin_url) as conn:
        return [int(count) for (count,) in conn.execute(
            "SELECT count(*) FROM db_size_sample s JOIN monitor_sample_run r "
            "ON r.sampled_at = s.sampled_at WHERE r.slot IS NOT NULL GROUP BY s.sampled_at"
        )]  # fmt: skip


def claim_attempts(db: DatabaseUnderTest) -> int:
    with connect(db.admin_url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND query LIKE '%%INSERT INTO monitor_sample_run (sampled_at, slot)%%'"
        ).fetchone()
    assert row is not None
    return int(row[0])
