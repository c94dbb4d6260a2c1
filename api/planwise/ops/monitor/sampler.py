"""The sampler: sizes, statements, connections by state and WAL archiving recorded in one
transaction, and samples past their retention deleted in the same run.

`planwise monitor sample` runs it once; every API worker runs `ScheduledSampler`, which
wakes at each multiple of MONITOR_SAMPLE_INTERVAL_SECONDS on the wall clock and first
claims that interval (its `slot`) in one statement: the unique slot and a non-blocking
advisory lock let exactly one worker of all (on every host) sample it, the others skip.
A run holds its own connection (MIGRATION_DATABASE_URL's role, which sees every role's
statements) on a thread of its own, under lock and statement timeouts, so requests never
wait for it; a failure is logged and the next interval tries again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, create_engine, pool, text

from planwise.config import Settings
from planwise.db.engine import sqlalchemy_url
from planwise.ops.monitor import report as monitor

logger = logging.getLogger("planwise.sampler")

ADVISORY_LOCK_KEY = 0x706C_616E_7361_6D70  # "plansamp"
LOCK_TIMEOUT_MS = 1000
STATEMENT_TIMEOUT_MS = 5000
MAX_JITTER_SECONDS = 0.5
"""Workers wake up to this long after the interval's start, so they rarely contend."""


@dataclass(frozen=True)
class Run:
    """What one run did: its row in `monitor_sample_run`, rows written (all sample tables,
    the run's own row included) and deleted, and how long it took."""

    id: int
    sampled_at: datetime
    slot: int | None
    sizes: int
    statements: int
    connections: int
    rows_pruned: int
    duration_ms: float

    @property
    def rows_written(self) -> int:
        return self.sizes + self.statements + self.connections + 1


CLAIM_SQL = """
    INSERT INTO monitor_sample_run (sampled_at, slot)
    SELECT now(), floor(extract(epoch FROM now()) / :interval)::bigint
    WHERE pg_try_advisory_xact_lock(:key)
    ON CONFLICT (slot) DO NOTHING
    RETURNING id, sampled_at, slot
"""
"""The interval now is in, claimed unless another run holds the lock (it is sampling) or
already took it: no row back means skip. Its transaction holds the lock to the end."""

CONNECTIONS_SQL = """
    INSERT INTO connection_sample (sampled_at, state, count)
    SELECT :sampled_at, CASE WHEN state IS NOT NULL THEN state
                             WHEN backend_type IS NULL THEN 'hidden' ELSE 'background' END,
           count(*)
    FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
    GROUP BY 2
"""

ARCHIVER_SQL = """
    SELECT current_setting('archive_mode') AS archive_mode, archived_count, failed_count,
           extract(epoch FROM now() - last_archived_time)::float AS age_seconds,
           last_archived_wal,
           CASE WHEN pg_is_in_recovery() THEN NULL
                ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal,
           (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')
               AS segment_bytes
    FROM pg_stat_archiver
"""

PRUNE_SQL = """
    WITH sizes AS (
        DELETE FROM db_size_sample WHERE sampled_at < now() - make_interval(secs => :sizes)
        RETURNING 1
    ), statements AS (
        DELETE FROM statement_sample WHERE sampled_at < now() - make_interval(secs => :others)
        RETURNING 1
    ), connections AS (
        DELETE FROM connection_sample WHERE sampled_at < now() - make_interval(secs => :others)
        RETURNING 1
    ), runs AS (
        DELETE FROM monitor_sample_run
        WHERE sampled_at < now() - make_interval(secs => :others) RETURNING 1
    )
    SELECT (SELECT count(*) FROM sizes) + (SELECT count(*) FROM statements)
         + (SELECT count(*) FROM connections) + (SELECT count(*) FROM runs)
"""

FINISH_SQL = """
    UPDATE monitor_sample_run SET duration_ms = :duration_ms, rows_written = :rows_written,
        rows_pruned = :rows_pruned, archived_count = :archived_count,
        archive_failed_count = :failed_count, archive_age_seconds = :age_seconds,
        archive_segments_waiting = :segments_waiting
    WHERE id = :id
"""


def _archiver(connection: Connection) -> dict[str, Any]:
    """pg_stat_archiver's figures, all None while archive_mode is off."""
    row = connection.execute(text(ARCHIVER_SQL)).mappings().one()
    if row["archive_mode"] == "off":
        return dict.fromkeys(("archived_count", "failed_count", "age_seconds",
                              "segments_waiting"))  # fmt: skip
    return {
        "archived_count": row["archived_count"], "failed_count": row["failed_count"],
        "age_seconds": row["age_seconds"],
        "segments_waiting": monitor._segments_waiting(
            row["last_archived_wal"], row["current_wal"], row["segment_bytes"]),
    }  # fmt: skip


def sample(
    connection: Connection,
    *,
    size_retention_days: float,
    sample_retention_days: float,
    interval_seconds: float | None = None,
) -> Run | None:
    """One run in the connection's transaction (the caller commits). With
    `interval_seconds`, only if the current interval was not claimed yet (None: skipped)."""
    started = time.perf_counter()
    connection.execute(
        text("SELECT set_config('lock_timeout', :lock, true), "
             "set_config('statement_timeout', :statement, true)"),
        {"lock": f"{LOCK_TIMEOUT_MS}ms", "statement": f"{STATEMENT_TIMEOUT_MS}ms"},
    )  # fmt: skip
    if interval_seconds:
        claimed = connection.execute(
            text(CLAIM_SQL), {"interval": interval_seconds, "key": ADVISORY_LOCK_KEY}
        ).first()
        if claimed is None:
            return None
    else:
        claimed = connection.execute(text(
            "INSERT INTO monitor_sample_run (sampled_at) VALUES (now()) "
            "RETURNING id, sampled_at, slot"
        )).one()  # fmt: skip
    run_id, sampled_at, slot = claimed
    sizes = monitor.sample_sizes(connection)
    statements = monitor.sample_statements(connection)
    connections = connection.execute(text(CONNECTIONS_SQL), {"sampled_at": sampled_at}).rowcount
    archiver = _archiver(connection)
    pruned = int(connection.execute(text(PRUNE_SQL), {
        "sizes": size_retention_days * 86_400, "others": sample_retention_days * 86_400,
    }).scalar_one())  # fmt: skip
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    done = Run(run_id, sampled_at, slot, sizes, statements, int(connections), pruned, duration_ms)
    connection.execute(text(FINISH_SQL), {
        "id": run_id, "duration_ms": duration_ms, "rows_written": done.rows_written,
        "rows_pruned": pruned, **archiver,
    })  # fmt: skip
    return done


def sample_with(settings: Settings, connection: Connection, *, scheduled: bool) -> Run | None:
    """`sample` with the retention (and, when scheduled, the interval) of `settings`."""
    return sample(
        connection,
        size_retention_days=settings.monitor_size_retention_days,
        sample_retention_days=settings.monitor_sample_retention_days,
        interval_seconds=settings.sample_interval_seconds if scheduled else None,
    )


class ScheduledSampler:
    """Each API worker's sampler thread (nothing when the interval is 0)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.interval = settings.sample_interval_seconds
        self.engine = create_engine(
            sqlalchemy_url(settings.admin_url),
            poolclass=pool.NullPool,
            connect_args={"application_name": "planwise-sampler", "connect_timeout": 5},
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval <= 0:
            return
        logger.info("sampler: every %g s", self.interval)
        self._thread = threading.Thread(target=self._loop, name="planwise-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop waiting; a run under way ends within its statement timeout."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STATEMENT_TIMEOUT_MS / 1000 + 1)
        self.engine.dispose()

    def _delay(self) -> float:
        """Seconds to the next multiple of the interval on the wall clock, plus jitter."""
        return (
            self.interval
            - time.time() % self.interval
            + random.uniform(  # noqa: S311
                0.01, min(MAX_JITTER_SECONDS, self.interval / 10)
            )
        )

    def _loop(self) -> None:
        while not self._stop.wait(self._delay()):
            self.run_once()

    def run_once(self) -> Run | None:
        """One scheduled run; any failure is logged (one line), never raised."""
        try:
            with self.engine.connect() as connection:
                done = sample_with(self.settings, connection, scheduled=True)
                connection.commit()
        except Exception as error:  # the worker must go on serving
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            logger.warning("sampler: run failed: %s: %s", type(error).__name__, reason)
            return None
        if done is not None:
            logger.info("sampler: slot %s sampled in %.1f ms, %d rows written, %d pruned",
                        done.slot, done.duration_ms, done.rows_written,
                        done.rows_pruned)  # fmt: skip
        return done
