"""The design document's five database metrics, read from PostgreSQL's statistics views:
connection pool usage, query performance, database and table growth, index usage and
cache hit ratio; plus WAL archiving and backup freshness for `--check`.

One `collect()` feeds the terminal (rich tables), JSON (`--json`, the admin endpoint) and
Prometheus (`DatabaseCollector`). `problems()` turns a report into alert lines, with
PgHero's default thresholds.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg.errors import QueryCanceled
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from planwise.config import Settings
from planwise.db.cluster import SUPERUSER, Cluster, default_cluster_dir
from planwise.errors import PlanwiseError
from planwise.observability import PoolCollector
from planwise.ops.backup import dumps as backups
from planwise.ops.cluster.patroni import LEADER_ROLES, HACluster, fetch_cluster
from planwise.ops.pgbouncer.pooler import Pool, admin_console
from planwise.ops.pitr.pgbackrest import Pitr

SLOW_LIMIT = 10
QUERY_CHARS = 200

_SECRET_LITERAL = re.compile(
    r"""(?P<keyword>\bPASSWORD\s+)
        (?: E'(?:[^'\\]|''|\\.)*'?          # E'…' (backslash escapes)
          | '(?:[^']|'')*'?                 # '…' (possibly cut off)
          | \$(?P<tag>\w*)\$.*?(?:\$(?P=tag)\$|\Z) )  # $tag$…$tag$
    """,
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)


def redact(query: str | None) -> str | None:
    """Statement text fit to print: password literals masked, whitespace collapsed, cut.

    pg_stat_statements keeps utility statements verbatim, so `ALTER ROLE … PASSWORD '…'`
    (as `planwise db roles` sends it) sits there in clear, and at a few ms (SCRAM hashing)
    it ranks among the slowest statements of a quiet database.
    """
    if query is None:
        return None
    masked = _SECRET_LITERAL.sub(lambda match: f"{match['keyword']}'***'", query)
    return " ".join(masked.split())[:QUERY_CHARS]


@dataclass(frozen=True)
class Thresholds:
    cache_hit_ratio: float = 0.99
    cache_min_reads: int = 1000  # below this a cold, tiny database proves nothing
    slow_mean_ms: float = 20.0
    slow_min_calls: int = 100
    long_query_seconds: float = 60.0
    archive_lag_seconds: float = 300.0
    backup_max_age_hours: float = 26.0
    duplicate_index_min_bytes: int = 1024 * 1024  # smaller ones are listed, not alarmed
    dead_tuple_ratio: float = 0.2
    dead_tuple_min: int = 1000  # below this autovacuum has not been asked to act yet
    wraparound_max_age: int = 1_000_000_000  # of the 2^31 transaction IDs PostgreSQL has
    sequence_max_fraction: float = 0.9
    lock_wait_seconds: float = 10.0
    replica_lag_bytes: int = 16 * 1024**2  # one WAL segment
    replica_lag_seconds: float = 30.0


DEFAULTS = Thresholds()
"""What /metrics applies (ops/prometheus/alerts.yml: the same figures)."""

XID_LIMIT = 2**31 - 1


def _rows(connection: Connection, query: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in connection.execute(text(query), params).mappings()]


def _redacted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["query"] = redact(row["query"])
    return rows


REPORT_BUDGET_SECONDS = 2.5
"""The whole report is read within this (plus connecting): monitoring must answer while
the database is in trouble, e.g. with a table locked ACCESS EXCLUSIVE."""
SECTION_LOCK_TIMEOUT_MS = 250
SECTION_STATEMENT_TIMEOUT_MS = 1000

_NO_ARCHIVER = dict.fromkeys(
    ("archive_mode", "archived_count", "last_archived_wal", "last_archived_time",
     "failed_count", "last_failed_wal", "last_failed_time", "current_wal",
     "wal_segment_bytes"),
)  # fmt: skip

_LOCKED_HARD = (
    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'relation' "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.relation = {relid} AND l.mode = 'AccessExclusiveLock')"
)
"""A relation someone holds or awaits ACCESS EXCLUSIVE on: reading its size would queue
behind that lock, so its size is left out (and said so) instead."""


def unreadable(error: DBAPIError) -> str | None:
    """Why a read failed, when it is one monitoring lives with: a lock or statement
    timeout, or a view the reading role may not read (a hosted server such as Supabase
    grants its API role less than pg_monitor); None for anything else."""
    original = error.orig
    detail = str(original).strip().splitlines()[0] if original else ""
    if isinstance(original, psycopg.errors.LockNotAvailable):
        return f"not read: waited too long for a lock ({detail})"
    if isinstance(original, QueryCanceled):
        return f"not read: took too long ({detail})"
    if isinstance(original, psycopg.errors.InsufficientPrivilege):
        return f"not readable by this role ({detail})"
    return None


class _BoundedReader:
    """Reads each section of the report in a savepoint of its own, under `lock_timeout`
    and `statement_timeout`, within one time budget for the whole report. A section that
    cannot be read in time, or may not be read by this role, gets its empty value, and
    `unavailable` says why."""

    def __init__(self, connection: Connection, budget_seconds: float) -> None:
        self.connection = connection
        self.deadline = time.monotonic() + budget_seconds
        self.unavailable: dict[str, str] = {}
        self._number = 0

    def read(self, name: str, empty: Any, read: Callable[[], Any]) -> Any:
        left_ms = int((self.deadline - time.monotonic()) * 1000)
        if left_ms < 50:
            self.unavailable[name] = "not read: the report's time budget was spent"
            return empty
        self._number += 1
        savepoint = f"planwise_monitor_{self._number}"
        execute = self.connection.exec_driver_sql
        execute(f"SAVEPOINT {savepoint}")
        try:
            self.connection.execute(
                text("SELECT set_config('lock_timeout', :lock, true), "
                     "set_config('statement_timeout', :statement, true)"),
                {"lock": f"{min(SECTION_LOCK_TIMEOUT_MS, left_ms)}ms",
                 "statement": f"{min(SECTION_STATEMENT_TIMEOUT_MS, left_ms)}ms"},
            )  # fmt: skip
            value = read()
        except DBAPIError as error:
            why = unreadable(error)
            if why is None:
                raise
            execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
            self.unavailable[name] = why
            return empty
        execute(f"RELEASE SAVEPOINT {savepoint}")
        return value


def collect(
    connection: Connection,
    *,
    backup_dir: Path | None = None,
    limits: Thresholds | None = None,
    budget_seconds: float = REPORT_BUDGET_SECONDS,
) -> dict[str, Any]:
    """A report of the current database, as plain JSON-able data.

    What a role sees depends on its rights: without pg_read_all_stats (the API's
    app_service), other roles' sessions count as state `hidden` and their statements show
    no text; the figures themselves stay complete. Each part is read under a lock and a
    statement timeout within `budget_seconds` in all; `unavailable` names the parts that
    could not be read (and `tables_not_sized` the tables whose size was not read because
    someone holds or awaits an ACCESS EXCLUSIVE lock on them).
    """
    limits = limits or Thresholds()
    reader = _BoundedReader(connection, budget_seconds)
    read = reader.read

    def rows(query: str, **params: Any) -> Callable[[], list[dict[str, Any]]]:
        return lambda: _rows(connection, query, **params)

    def scalar(query: str, **params: Any) -> Callable[[], Any]:
        return lambda: connection.execute(text(query), params).scalar_one()

    has_statements = bool(
        read("pg_stat_statements", False,
             scalar("SELECT EXISTS (SELECT 1 FROM pg_extension "
                    "WHERE extname = 'pg_stat_statements')"))
    )  # fmt: skip
    statements_sql = """
        SELECT left(query, 4000) AS query, calls,
               round(mean_exec_time::numeric, 3)::float AS mean_ms,
               round(total_exec_time::numeric, 1)::float AS total_ms, rows
        FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        ORDER BY {order} DESC LIMIT :limit
    """
    report: dict[str, Any] = {"collected_at": datetime.now(UTC).isoformat()}
    report["connections"] = read("connections", [], rows(
        "SELECT CASE WHEN state IS NOT NULL THEN state "
        "WHEN backend_type IS NULL THEN 'hidden' ELSE 'background' END AS state, "
        "coalesce(nullif(application_name, ''), '-') AS application, count(*) AS count "
        "FROM pg_stat_activity WHERE datname = current_database() "
        "GROUP BY 1, 2 ORDER BY 3 DESC",
    ))  # fmt: skip
    for key, order in (("slowest_statements", "mean_exec_time"),
                       ("most_time_consuming", "total_exec_time")):  # fmt: skip
        report[key] = _redacted(
            read(key, [], rows(statements_sql.format(order=order), limit=SLOW_LIMIT))
            if has_statements else []
        )  # fmt: skip
    report["slow_statement_count"] = read("slow_statement_count", 0, scalar(
        "SELECT count(*) FROM pg_stat_statements WHERE dbid = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND calls >= :calls AND mean_exec_time > :mean_ms",
        calls=limits.slow_min_calls, mean_ms=limits.slow_mean_ms,
    )) if has_statements else 0  # fmt: skip
    report["long_running"] = _redacted(read("long_running", [], rows(
        "SELECT pid, application_name, state, "
        "round(extract(epoch FROM now() - query_start)::numeric, 1)::float AS seconds, "
        "left(query, 4000) AS query FROM pg_stat_activity "
        "WHERE state <> 'idle' AND pid <> pg_backend_pid() "
        "AND now() - query_start > make_interval(secs => :seconds) ORDER BY 4 DESC",
        seconds=limits.long_query_seconds,
    )))  # fmt: skip
    # A heavyweight lock wait is a pg_locks row not granted; pg_blocking_pids names
    # who holds what it waits for, and `blocking` what those sessions are doing.
    report["lock_waits"] = _redacted(read("lock_waits", [], rows(
        "SELECT w.pid, pg_blocking_pids(w.pid) AS blocked_by, w.wait_event, "
        "round(extract(epoch FROM now() - w.query_start)::numeric, 1)::float AS seconds, "
        "left(w.query, 4000) AS query, coalesce((SELECT json_agg(json_build_object("
        "'pid', b.pid, 'state', b.state, 'application', b.application_name, "
        "'seconds', round(extract(epoch FROM now() - b.xact_start)::numeric, 1), "
        "'query', left(b.query, 4000)) ORDER BY b.pid) FROM pg_stat_activity b "
        "WHERE b.pid = ANY (pg_blocking_pids(w.pid))), '[]') AS blocking "
        "FROM pg_stat_activity w "
        "WHERE w.wait_event_type = 'Lock' AND w.datname = current_database() ORDER BY 4 DESC",
    )))  # fmt: skip
    for wait in report["lock_waits"]:
        _redacted(wait["blocking"])
    report["database_bytes"] = read(
        "database_bytes", None, scalar("SELECT pg_database_size(current_database())")
    )
    report["tables"] = read("tables", [], rows(
        "SELECT relname AS table, CASE WHEN " + _LOCKED_HARD.format(relid="relid")
        + " THEN NULL ELSE pg_total_relation_size(relid) END AS bytes, "
        "n_live_tup AS rows, seq_scan, coalesce(idx_scan, 0) AS idx_scan "
        "FROM pg_stat_user_tables ORDER BY 2 DESC NULLS LAST",
    ))  # fmt: skip
    report["indexes"] = read("indexes", [], rows(
        "SELECT s.relname AS table, s.indexrelname AS index, s.idx_scan AS scans, "
        "CASE WHEN " + _LOCKED_HARD.format(relid="s.indexrelid") + " THEN NULL "
        "ELSE pg_relation_size(s.indexrelid) END AS bytes, i.indisunique AS unique "
        "FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid "
        "ORDER BY s.idx_scan DESC",
    ))  # fmt: skip
    report["cache"] = read("cache", [], rows(
        "SELECT 'heap' AS kind, sum(heap_blks_hit) AS hits, sum(heap_blks_read) AS reads "
        "FROM pg_statio_user_tables UNION ALL "
        "SELECT 'index', sum(idx_blks_hit), sum(idx_blks_read) FROM pg_statio_user_indexes",
    ))  # fmt: skip
    report["cache_by_table"] = read("cache_by_table", [], rows(
        "SELECT relname AS table, heap_blks_hit AS hits, heap_blks_read AS reads, "
        "coalesce(idx_blks_hit, 0) AS index_hits, coalesce(idx_blks_read, 0) AS index_reads "
        "FROM pg_statio_user_tables "
        "ORDER BY heap_blks_read + coalesce(idx_blks_read, 0) DESC",
    ))  # fmt: skip
    archiver = read("archiver", [], rows(
        "SELECT current_setting('archive_mode') AS archive_mode, archived_count, "
        "last_archived_wal, last_archived_time, failed_count, last_failed_wal, "
        "last_failed_time, CASE WHEN pg_is_in_recovery() THEN NULL "
        "ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal, "
        "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') "
        "AS wal_segment_bytes FROM pg_stat_archiver",
    ))  # fmt: skip
    report["archiver"] = archiver[0] if archiver else dict(_NO_ARCHIVER)
    report["growth"] = read("growth", [], lambda: _growth(connection))
    report["stats_reset"] = read("stats_reset", None, scalar(
        "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"
    ))  # fmt: skip
    report["duplicate_indexes"] = read("duplicate_indexes", [], rows(DUPLICATE_INDEXES_SQL))
    report["invalid_indexes"] = read("invalid_indexes", [], rows(INVALID_INDEXES_SQL))
    report["maintenance"] = read("maintenance", [], rows(
        "SELECT s.relname AS table, n_live_tup AS live_tuples, n_dead_tup AS dead_tuples, "
        "CASE WHEN n_live_tup + n_dead_tup > 0 "
        "THEN round(n_dead_tup::numeric / (n_live_tup + n_dead_tup), 4)::float END "
        "AS dead_ratio, last_vacuum, last_autovacuum, last_analyze, last_autoanalyze, "
        "vacuum_count, autovacuum_count, analyze_count, autoanalyze_count, "
        "age(c.relfrozenxid) AS xid_age FROM pg_stat_user_tables s "
        "JOIN pg_class c ON c.oid = s.relid ORDER BY n_dead_tup DESC, s.relname",
    ))  # fmt: skip
    wraparound = read("wraparound", [], rows(
        "SELECT datname AS database, age(datfrozenxid) AS xid_age, "
        "mxid_age(datminmxid) AS multixact_age, "
        "current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age "
        "FROM pg_database WHERE datname = current_database()",
    ))  # fmt: skip
    report["wraparound"] = wraparound[0] if wraparound else None
    if report["wraparound"] is not None:
        report["wraparound"]["fraction_used"] = report["wraparound"]["xid_age"] / XID_LIMIT
    report["sequences"] = read("sequences", [], rows(SEQUENCES_SQL))
    # planwise_replication() comes with migration 8d9e0f1a2b3c: a database not migrated
    # yet gets no replication part rather than no report.
    migrated = read("replication", False, scalar(
        "SELECT to_regprocedure('public.planwise_replication()') IS NOT NULL"
    ))  # fmt: skip
    report["replication"] = read(
        "replication", None, scalar("SELECT public.planwise_replication()")
    ) if migrated else None  # fmt: skip
    report["backups"] = _backup_facts(backup_dir)
    report["tables_not_sized"] = [
        entry["table"] for entry in [*report["tables"], *report["indexes"]]
        if entry["bytes"] is None
    ]  # fmt: skip
    report["unavailable"] = reader.unavailable
    report["read_seconds"] = round(budget_seconds - (reader.deadline - time.monotonic()), 3)
    for entry in [*report["cache"], *report["cache_by_table"]]:
        entry["hits"], entry["reads"] = int(entry["hits"] or 0), int(entry["reads"] or 0)
        entry["ratio"] = _ratio(entry["hits"], entry["reads"])
        if "index_hits" in entry:
            entry["index_ratio"] = _ratio(entry["index_hits"], entry["index_reads"])
    archiver = report["archiver"]
    archiver["segments_waiting"] = _segments_waiting(
        archiver["last_archived_wal"], archiver["current_wal"], archiver["wal_segment_bytes"]
    )
    report["unused_indexes"] = [
        index for index in report["indexes"] if index["scans"] == 0 and not index["unique"]
    ]
    report["mostly_sequential"] = [
        table for table in report["tables"]
        if table["seq_scan"] > table["idx_scan"] and (table["rows"] or 0) > 1000
    ]  # fmt: skip
    jsonable: dict[str, Any] = _jsonable(report)
    return jsonable


DUPLICATE_INDEXES_SQL = """
    SELECT t.relname AS table, ia.relname AS index, ib.relname AS covered_by,
           CASE WHEN locked THEN NULL ELSE pg_get_indexdef(a.indexrelid) END AS definition,
           CASE WHEN locked THEN NULL ELSE pg_get_indexdef(b.indexrelid) END
               AS covered_by_definition,
           CASE WHEN locked THEN NULL ELSE pg_relation_size(a.indexrelid) END AS bytes
    FROM pg_index a
    JOIN pg_index b ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid
    JOIN pg_class ia ON ia.oid = a.indexrelid
    JOIN pg_class ib ON ib.oid = b.indexrelid
    JOIN pg_class t ON t.oid = a.indrelid
    JOIN pg_namespace n ON n.oid = ia.relnamespace
    CROSS JOIN LATERAL (SELECT EXISTS (
        SELECT 1 FROM pg_locks l WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.relation IN (a.indrelid, a.indexrelid, b.indexrelid)) AS locked) held
    WHERE n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast'
      AND a.indisvalid AND b.indisvalid AND ia.relam = ib.relam
      AND (b.indkey::text || ' ') LIKE (a.indkey::text || ' %')
      AND (b.indclass::text || ' ') LIKE (a.indclass::text || ' %')
      AND regexp_replace(coalesce(a.indpred::text, ''), '[:]location -?[0-9]+', '', 'g')
          = regexp_replace(coalesce(b.indpred::text, ''), '[:]location -?[0-9]+', '', 'g')
      AND regexp_replace(coalesce(a.indexprs::text, ''), '[:]location -?[0-9]+', '', 'g')
          = regexp_replace(coalesce(b.indexprs::text, ''), '[:]location -?[0-9]+', '', 'g')
      AND (NOT a.indisunique OR (b.indisunique AND a.indkey::text = b.indkey::text))
      AND NOT (a.indkey::text = b.indkey::text AND a.indisunique = b.indisunique
               AND a.indexrelid < b.indexrelid)
    ORDER BY 1, 2, 3
"""
"""Index `index` is redundant when `covered_by`, on the same table with the same method,
predicate and expressions, has its columns (and operator classes) as a leading prefix and
enforces its uniqueness if it has any (PgHero's rule). Of identical twins the newer is
reported. Predicates and expressions are compared as stored node trees (their source
positions aside): `pg_get_expr` would lock the table, and wait behind an ALTER TABLE."""

INVALID_INDEXES_SQL = """
    SELECT t.relname AS table, i.relname AS index, x.indisready AS ready,
           CASE WHEN EXISTS (
               SELECT 1 FROM pg_locks l WHERE l.locktype = 'relation'
                 AND l.mode = 'AccessExclusiveLock' AND l.relation = x.indrelid
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           ) THEN NULL ELSE pg_get_indexdef(x.indexrelid) END AS definition
    FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = i.relnamespace
    WHERE NOT x.indisvalid AND n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast'
    ORDER BY 1, 2
"""
"""Indexes a failed `CREATE INDEX CONCURRENTLY` (or one still running) left invalid: the
planner ignores them, writes still maintain them. The definition (`pg_get_indexdef` locks
the table) is left out while someone holds or awaits ACCESS EXCLUSIVE on it."""

SEQUENCES_SQL = """
    SELECT s.schemaname AS schema, s.sequencename AS sequence, s.last_value,
           owner.table, owner.column, owner.type,
           least(s.max_value, CASE owner.type WHEN 'integer' THEN 2147483647
                                              WHEN 'smallint' THEN 32767
                                              ELSE s.max_value END) AS max_value,
           round(coalesce(s.last_value, 0)::numeric / least(s.max_value,
                 CASE owner.type WHEN 'integer' THEN 2147483647 WHEN 'smallint' THEN 32767
                                 ELSE s.max_value END), 6)::float AS fraction_used
    FROM pg_sequences s
    LEFT JOIN LATERAL (
        SELECT c.relname AS table, a.attname AS column,
               format_type(a.atttypid, NULL) AS type
        FROM pg_depend d JOIN pg_class c ON c.oid = d.refobjid
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.objid = format('%I.%I', s.schemaname, s.sequencename)::regclass
          AND d.deptype IN ('a', 'i')
        LIMIT 1
    ) owner ON true
    WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema') AND s.increment_by > 0
    ORDER BY fraction_used DESC NULLS LAST, 1, 2
"""
"""How far each ascending sequence is towards its limit: its own maximum, or that of the
column it feeds when that is smaller (a bigint sequence behind an integer column stops at
2^31 - 1). `last_value` is NULL before the first nextval, or when the reading role may not
see it."""


def _ratio(hits: int, reads: int) -> float | None:
    return hits / (hits + reads) if hits + reads else None


def _segments_waiting(archived: str | None, current: str | None, segment_bytes: int) -> int | None:
    """Completed WAL segments not archived yet (the one being written is not due).

    Counting segments rather than the time since the last archive keeps an idle database,
    which fills no segment, from looking behind.
    """
    names = (archived or "")[:24], (current or "")[:24]
    if not all(re.fullmatch(r"[0-9A-F]{24}", name) for name in names):
        return None  # nothing archived yet, a .history file, or a standby
    per_log = 0x1_0000_0000 // segment_bytes
    archived_seg, current_seg = (
        int(name[8:16], 16) * per_log + int(name[16:24], 16) for name in names
    )
    return max(0, current_seg - archived_seg - 1)


def pgbouncer_figures(settings: Settings) -> dict[str, Any] | None:
    """SHOW POOLS and SHOW STATS of our PgBouncer (PGBOUNCER_PORT), or None if it is not up.

    Read as app_read (one of its `stats_users`) when we know that password, else as the
    superuser (an `admin_users` member).
    """
    candidates = (
        ("app_read", settings.app_read_password),
        (SUPERUSER, settings.planwise_pg_superuser_password),
    )
    for user, secret in candidates:
        if secret is None:
            continue
        password = secret.get_secret_value()
        try:
            pools = admin_console(settings.pgbouncer_port, user, password, "SHOW POOLS",
                                  connect_timeout=2)  # fmt: skip
            stats = admin_console(settings.pgbouncer_port, user, password, "SHOW STATS",
                                  connect_timeout=2)  # fmt: skip
        except psycopg.Error:
            continue
        figures: dict[str, Any] = _jsonable({
            "port": settings.pgbouncer_port,
            "pools": [
                {**asdict(pool), "servers": pool.servers}
                for pool in map(Pool.from_row, pools) if pool.database != "pgbouncer"
            ],
            "stats": [row for row in stats if row["database"] != "pgbouncer"],
        })  # fmt: skip
        return figures
    return None


PITR_INFO_TIMEOUT_SECONDS = 3.0
"""`pgbackrest info` reads every repository (repo2 over TLS or S3): bounded, so that a
scrape (Prometheus' default timeout: 10 s) answers with the database figures anyway."""


@functools.cache
def _managed_cluster_directory() -> Path:
    """Where the managed cluster is: found once per process (as root it takes a probe run
    as the cluster's OS user, a subprocess), not on every page or scrape."""
    return default_cluster_dir()


def pitr_state(
    settings: Settings,
    archiver: dict[str, Any] | None = None,
    cluster: Cluster | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """pgBackRest's backups and restore window (what `planwise pitr info` shows) of the
    managed cluster (by default the one PLANWISE_HOME holds) once `planwise pitr setup`
    ran, or in `note` why there are none. `archiver`: pg_stat_archiver as the caller read
    it (the console, as the API's role); `timeout` bounds `pgbackrest info` (/metrics)."""
    if not settings.uses_managed_cluster:
        return {"configured": False, "info": None, "note": "PITR not configured here: "
                "DATABASE_URL points at a server Planwise does not manage, where WAL archiving "
                "is the host's job (on Supabase: the PITR add-on)"}  # fmt: skip
    pitr = Pitr(cluster or Cluster(settings, _managed_cluster_directory()))
    if not pitr.configured:
        return {"configured": False, "info": None,
                "note": "PITR not configured (planwise pitr setup)"}  # fmt: skip
    try:
        info = pitr.info(archiver=archiver, timeout=timeout)
    except (PlanwiseError, OSError, ValueError, psycopg.Error) as error:
        return {"configured": True, "info": None,
                "note": f"pgBackRest could not be read: {error}"}  # fmt: skip
    return {"configured": True, "info": info, "note": None}


def app_pool_figures(engine: Engine) -> dict[str, float]:
    """The API's SQLAlchemy pool, as observability's PoolCollector reads it for /metrics."""
    return {
        family.name.removeprefix("planwise_db_pool_"): family.samples[0].value
        for family in PoolCollector(engine).collect()
    }


LOOPBACK = (None, "127.0.0.1", "::1")
"""Server addresses of a local member (None: connected through the Unix socket)."""


def patroni_urls(settings: Settings, replication: dict[str, Any] | None) -> list[str]:
    """The Patroni REST APIs of the monitored server's cluster: PATRONI_URL, else the local
    `planwise cluster`'s when the server is one of its members (a loopback port of it)."""
    if settings.patroni_url:
        return settings.patroni_url.split(",")
    if replication is None or replication["server_address"] not in LOOPBACK:
        return []
    cluster = HACluster(settings)
    ports = {cluster.pg_port(index) for index in cluster.node_indexes()}
    return cluster.rest_urls() if replication["server_port"] in ports else []


def add_patroni(report: dict[str, Any], settings: Settings) -> None:
    """`replication.patroni`: the cluster as Patroni's `/cluster` has it, when the server is
    known to be in a Patroni cluster (`patroni_urls`); nothing otherwise."""
    replication = report.get("replication")
    urls = patroni_urls(settings, replication)
    if replication is None or not urls:
        return
    data = fetch_cluster(urls)
    members = [
        {
            "name": member.get("name"), "role": member.get("role"),
            "state": member.get("state"), "host": member.get("host"),
            "port": member.get("port"), "timeline": member.get("timeline"),
            "lag_bytes": member["lag"] if isinstance(member.get("lag"), int) else None,
        }
        for member in (data or {}).get("members", [])
    ]  # fmt: skip
    leader = next((m["name"] for m in members
                   if m["role"] in LEADER_ROLES and m["state"] == "running"), None)  # fmt: skip
    replication["patroni"] = {
        "urls": urls, "answered": data is not None, "paused": bool((data or {}).get("pause")),
        "leader": leader, "members": members,
    }  # fmt: skip


SAMPLED_SIZES_SQL = """
    WITH RECURSIVE relations AS (
        (SELECT relation FROM db_size_sample ORDER BY relation LIMIT 1)
        UNION ALL
        SELECT (SELECT s.relation FROM db_size_sample s WHERE s.relation > r.relation
                ORDER BY s.relation LIMIT 1)
        FROM relations r WHERE r.relation IS NOT NULL
    )
    SELECT r.relation, oldest.sampled_at AS oldest_at, oldest.bytes AS oldest_bytes,
           newest.sampled_at AS newest_at, newest.bytes AS newest_bytes
    FROM relations r
    CROSS JOIN LATERAL (SELECT sampled_at, bytes FROM db_size_sample s
                        WHERE s.relation = r.relation ORDER BY relation, sampled_at LIMIT 1
                       ) oldest
    CROSS JOIN LATERAL (SELECT sampled_at, bytes FROM db_size_sample s
                        WHERE s.relation = r.relation
                        ORDER BY relation DESC, sampled_at DESC LIMIT 1) newest
"""
"""Each sampled relation's oldest and newest sample, read from the (relation, sampled_at)
index (a skip scan over the relations; ordered by both columns so that the planner does
not walk the sampled_at index instead): the API's sampler leaves ~670 000 rows in 90
days, which aggregating took 1 s of every report."""

GROWTH_SQL = (
    "SELECT relation, oldest_at AS since, newest_bytes - oldest_bytes AS grown_bytes, "  # noqa: S608
    "extract(epoch FROM newest_at - oldest_at) / 86400 AS days "
    f"FROM ({SAMPLED_SIZES_SQL}) sizes WHERE newest_at > oldest_at"
)


def _growth(connection: Connection) -> list[dict[str, Any]]:
    """Bytes per day for each relation between its oldest and newest sample."""
    return _rows(connection, GROWTH_SQL)


def _backup_facts(directory: Path | None) -> dict[str, Any]:
    """The newest verified backup in BACKUP_DIR; a manifest we cannot read is a note."""
    facts: dict[str, Any] = {
        "directory": str(directory) if directory else None,
        "newest_verified": None,
        "newest_verified_at": None,
        "age_hours": None,
        "note": None,
    }
    try:
        found = backups.list_backups(directory) if directory else []
        verified = [backup for backup in found if backup.verified]
    except (OSError, ValueError, KeyError, TypeError) as error:
        facts["note"] = f"unreadable backup manifest: {error}"
        return facts
    if verified:
        newest = verified[-1]
        facts["newest_verified"] = newest.name
        facts["newest_verified_at"] = newest.taken_at.isoformat()
        facts["age_hours"] = (datetime.now(UTC) - newest.taken_at).total_seconds() / 3600
    return facts


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__float__") and not isinstance(value, bool | int | float):
        return float(value)
    return value


def sample_sizes(connection: Connection) -> int:
    """Record the database's and each table's size now; returns the rows written."""
    written = connection.execute(
        text(
            "INSERT INTO db_size_sample (relation, bytes, rows) "
            "SELECT 'database', pg_database_size(current_database()), NULL "
            "UNION ALL SELECT relname, pg_total_relation_size(relid), n_live_tup "
            "FROM pg_stat_user_tables"
        )
    )
    return int(written.rowcount)


STATEMENT_TOTALS_SQL = """
    SELECT queryid, sum(calls)::bigint AS calls, sum(total_exec_time)::float AS total_exec_ms,
           sum(rows)::bigint AS rows
    FROM pg_stat_statements(false)
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND queryid IS NOT NULL
    GROUP BY queryid
"""
"""This database's statements, one line per queryid (summed over roles and nesting),
without reading their texts."""


TOTAL_COLUMNS = {"queryid": "bigint", "calls": "bigint", "total_exec_ms": "float8",
                 "rows": "bigint"}  # fmt: skip
DELTA_COLUMNS = {**TOTAL_COLUMNS, "seconds": "float8"}


def _insert(
    connection: Connection, table: str, fixed: dict[str, Any], columns: dict[str, str],
    rows: list[Any],
) -> None:  # fmt: skip
    """Many rows in one INSERT: each column sent as one array (`unnest`), `fixed` the same
    in every row. Table and column names are this module's constants."""
    names = ", ".join([*fixed, *columns])
    values = ", ".join([f":{name}" for name in fixed] + list(columns))
    arrays = ", ".join(f"CAST(:{name}_values AS {kind}[])" for name, kind in columns.items())
    connection.execute(
        text(f"INSERT INTO {table} ({names}) SELECT {values} "  # noqa: S608
             f"FROM unnest({arrays}) AS t ({', '.join(columns)})"),
        {**fixed, **{f"{name}_values": [row[name] for row in rows] for name in columns}},
    )  # fmt: skip


def sample_statements(connection: Connection) -> int:
    """Record what each of this database's statements did since the previous sample (from
    pg_stat_statements' totals minus those kept in `statement_counters`); returns the rows
    written. Only statements that ran since are written. A statement seen for the first
    time counts from zero if there was a previous sample, so the first sample of all only
    keeps the totals. A reset (pg_stat_statements_info.stats_reset changed, or one
    statement's counters went down) starts that statement again: its totals become the new
    base and the interval that contains the reset is not written. 0 without the extension."""
    if not connection.execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')"
    )).scalar_one():  # fmt: skip
        return 0
    now, stats_reset = connection.execute(
        text("SELECT now(), (SELECT stats_reset FROM pg_stat_statements_info)")
    ).one()
    previous = {
        row.queryid: row
        for row in connection.execute(text(
            "SELECT queryid, sampled_at, stats_reset, calls, total_exec_ms, rows "
            "FROM statement_counters FOR UPDATE"
        ))
    }  # fmt: skip
    last_sampled = max((row.sampled_at for row in previous.values()), default=None)
    current = list(connection.execute(text(STATEMENT_TOTALS_SQL)).mappings())
    deltas = []
    for row in current:
        base = previous.get(row["queryid"])
        if base is None:
            if last_sampled is None or next(iter(previous.values())).stats_reset != stats_reset:
                continue  # no previous sample, or a reset since: nothing to compare with
            since = last_sampled
            calls, exec_ms, rows = 0, 0.0, 0
        else:
            since = base.sampled_at
            calls, exec_ms, rows = base.calls, base.total_exec_ms, base.rows
            went_down = (row["calls"] < calls or row["total_exec_ms"] < exec_ms
                         or row["rows"] < rows)  # fmt: skip
            if base.stats_reset != stats_reset or went_down:
                continue  # reset since the previous sample: starts again from here
        if row["calls"] > calls:
            deltas.append({
                "queryid": row["queryid"],
                "seconds": (now - since).total_seconds(), "calls": row["calls"] - calls,
                "total_exec_ms": row["total_exec_ms"] - exec_ms, "rows": row["rows"] - rows,
            })  # fmt: skip
    _insert(connection, "statement_sample", {"sampled_at": now}, DELTA_COLUMNS, deltas)
    # The new base is exactly what pg_stat_statements holds now: a statement it evicted
    # and that comes back later counts from zero.
    connection.execute(text("DELETE FROM statement_counters"))
    _insert(connection, "statement_counters", {"sampled_at": now, "stats_reset": stats_reset},
            TOTAL_COLUMNS, current)  # fmt: skip
    return len(deltas)


@dataclass(frozen=True)
class Rule:
    """One `--check` health rule: what it checks, its threshold, and what it found."""

    name: str
    threshold: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def health(report: dict[str, Any], limits: Thresholds) -> list[Rule]:
    """Every `--check` rule with its threshold and findings (PgHero's defaults where
    PgHero has one), in the order the console's overview shows them."""
    unread = [f"{part}: {why}" for part, why in report.get("unavailable", {}).items()]
    if report.get("tables_not_sized"):
        unread.append(
            "size not read (ACCESS EXCLUSIVE lock held or awaited): "
            + ", ".join(report["tables_not_sized"])
        )
    cache = []
    for entry in report["cache"]:
        total = entry["hits"] + entry["reads"]
        if total >= limits.cache_min_reads and entry["ratio"] < limits.cache_hit_ratio:
            cache.append(
                f"{entry['kind']} cache hit ratio {entry['ratio']:.2%} < "
                f"{limits.cache_hit_ratio:.0%}"
            )
    slow = [
        f"statement averaging {statement['mean_ms']:.1f} ms over {statement['calls']} "
        f"calls: {(statement['query'] or '')[:80]}"
        for statement in report["slowest_statements"]
        if statement["calls"] >= limits.slow_min_calls
        and statement["mean_ms"] > limits.slow_mean_ms
    ]
    long_running = [
        f"query running {query['seconds']:.0f} s (pid {query['pid']})"
        for query in report["long_running"]
        if query["seconds"] > limits.long_query_seconds
    ]
    waits = [
        f"pid {wait['pid']} waits {wait['seconds']:.0f} s for a lock held by "
        + ", ".join(
            f"pid {b['pid']} ({b['state']}: {(b['query'] or '-')[:80]})" for b in wait["blocking"]
        )
        for wait in report["lock_waits"]
        if (wait["seconds"] or 0) > limits.lock_wait_seconds
    ]
    duplicates = [
        f"index {entry['index']} on {entry['table']} duplicates {entry['covered_by']} "
        f"({entry['bytes'] / 1024**2:.1f} MiB)"
        for entry in report["duplicate_indexes"]
        if entry["bytes"] is not None and entry["bytes"] >= limits.duplicate_index_min_bytes
    ]
    invalid = [
        f"index {entry['index']} on {entry['table']} is invalid "
        "(a failed CREATE INDEX CONCURRENTLY?): drop it or REINDEX"
        for entry in report["invalid_indexes"]
    ]
    dead = [
        f"table {entry['table']}: {entry['dead_tuples']} dead tuples "
        f"({entry['dead_ratio']:.0%} of its rows)"
        for entry in report["maintenance"]
        if entry["dead_tuples"] >= limits.dead_tuple_min
        and (entry["dead_ratio"] or 0) > limits.dead_tuple_ratio
    ]
    wraparound = report["wraparound"]
    xid = (
        [f"transaction ID age {wraparound['xid_age']} > {limits.wraparound_max_age} "
         f"({wraparound['fraction_used']:.1%} of the way to wraparound)"]
        if wraparound and wraparound["xid_age"] > limits.wraparound_max_age else []
    )  # fmt: skip
    if wraparound and wraparound["multixact_age"] > limits.wraparound_max_age:
        xid.append(f"multixact ID age {wraparound['multixact_age']} > {limits.wraparound_max_age}")
    sequences = [
        f"sequence {entry['sequence']} at {entry['fraction_used']:.1%} of {entry['max_value']}"
        + (f" ({entry['table']}.{entry['column']} is {entry['type']})" if entry["table"] else "")
        for entry in report["sequences"]
        if (entry["fraction_used"] or 0) > limits.sequence_max_fraction
    ]
    return [
        Rule("report read in time", "every part within 2.5 s", unread),
        Rule(
            "cache hit ratio",
            f">= {limits.cache_hit_ratio:.0%} (from {limits.cache_min_reads} block reads)",
            cache,
        ),
        Rule(
            "slow statements",
            f"mean <= {limits.slow_mean_ms:g} ms (from {limits.slow_min_calls} calls)",
            slow,
        ),
        Rule("long-running queries", f"<= {limits.long_query_seconds:g} s", long_running),
        Rule("lock waits", f"<= {limits.lock_wait_seconds:g} s", waits),
        Rule(
            "duplicate indexes",
            f"< {limits.duplicate_index_min_bytes / 1024**2:g} MiB each",
            duplicates,
        ),
        Rule("invalid indexes", "none", invalid),
        Rule(
            "dead tuples",
            f"<= {limits.dead_tuple_ratio:.0%} of a table (from {limits.dead_tuple_min} dead)",
            dead,
        ),
        Rule("transaction ID wraparound", f"age <= {limits.wraparound_max_age}", xid),
        Rule("sequences", f"<= {limits.sequence_max_fraction:.0%} used", sequences),
        Rule(
            "WAL archiving",
            f"not failing, <= {limits.archive_lag_seconds:g} s behind",
            _archiving_problems(report["archiver"], limits),
        ),
        Rule(
            "verified backup",
            f"<= {limits.backup_max_age_hours:g} h old",
            _backup_problems(report["backups"], limits),
        ),
        *_replication_rules(report.get("replication"), limits),
    ]


def _replication_rules(replication: dict[str, Any] | None, limits: Thresholds) -> list[Rule]:
    """Lag, streaming and (when known) Patroni's view: only for a server that replicates
    (a standby, a leader with standbys or slots) or is in a Patroni cluster."""
    if not replication:
        return []
    patroni = replication.get("patroni")
    standbys, standby = replication["standbys"], replication["in_recovery"]
    slots = [] if standby else replication["slots"]  # a standby's slots serve no one yet
    if not (standby or standbys or slots or patroni):
        return []
    max_bytes, max_seconds = limits.replica_lag_bytes, limits.replica_lag_seconds
    lag: list[str] = []
    streaming: list[str] = []
    if standby:
        replay, receiver = replication["replay"], replication["receiver"]
        if replay["lag_bytes"] > max_bytes or (replay["lag_seconds"] or 0) > max_seconds:
            lag.append(
                f"this standby's replay is {replay['lag_bytes']} bytes, "
                f"{replay['lag_seconds'] or 0:.1f} s behind what it received"
                + (" (replay paused)" if replay["paused"] else "")
            )
        if receiver is None or receiver["status"] != "streaming":
            upstream = f" from {receiver['sender_host']}:{receiver['sender_port']}" if (
                receiver and receiver["sender_host"]) else ""  # fmt: skip
            status = receiver["status"] if receiver else "not running"
            streaming.append(f"this standby's WAL receiver is {status}{upstream}")
    for entry in standbys:
        behind, seconds = entry["replay_lag_bytes"] or 0, entry["replay_lag_seconds"] or 0
        if behind > max_bytes or seconds > max_seconds:
            lag.append(f"standby {entry['name']} replays {behind} bytes, {seconds:.1f} s behind")
        if entry["state"] != "streaming":
            streaming.append(f"standby {entry['name']} is in state {entry['state']}, not streaming")
    for slot in slots:
        if not slot["active"]:
            streaming.append(f"no standby streams from replication slot {slot['name']} "
                             f"({slot['retained_bytes']} bytes of WAL kept for it)")  # fmt: skip
            if (slot["retained_bytes"] or 0) > max_bytes:
                lag.append(f"the standby of slot {slot['name']} is gone, "
                           f"{slot['retained_bytes']} bytes behind")  # fmt: skip
    rules = [
        Rule("replication lag", f"<= {max_bytes} bytes and <= {max_seconds:g} s behind", lag),
        Rule("standbys streaming", "every standby and slot streaming", streaming),
    ]
    if patroni:
        rules.append(Rule("Patroni cluster", "a running leader, every member running",
                          _patroni_problems(patroni)))  # fmt: skip
    return rules


def _patroni_problems(patroni: dict[str, Any]) -> list[str]:
    if not patroni["answered"]:
        return [f"no Patroni REST API answers /cluster ({', '.join(patroni['urls'])})"]
    found = [] if patroni["leader"] else [
        "the cluster has no running leader"
        + (" (Patroni is in maintenance mode: nothing fails over)" if patroni["paused"] else "")
    ]  # fmt: skip
    found += [
        f"member {member['name']} ({member['role']}) is {member['state'] or 'in no state'}"
        for member in patroni["members"]
        if member["state"] not in ("running", "streaming")
    ]
    return found


def problems(report: dict[str, Any], limits: Thresholds) -> list[str]:
    """One line per crossed threshold, and one per part of the report that could not be
    read; empty when all is well."""
    return [line for rule in health(report, limits) for line in rule.problems]


def _backup_problems(backup: dict[str, Any], limits: Thresholds) -> list[str]:
    if backup["age_hours"] is None:
        note = f" ({backup['note']})" if backup["note"] else ""
        return [f"no verified backup in {backup['directory']}{note}"]
    if backup["age_hours"] > limits.backup_max_age_hours:
        return [
            f"newest verified backup is {backup['age_hours']:.0f} h old "
            f"(> {limits.backup_max_age_hours:g} h)"
        ]
    return []


def archive_failing(archiver: dict[str, Any]) -> bool:
    """The last archiving attempt failed (none succeeded after it)."""
    failed = _when(archiver["last_failed_time"])
    archived = _when(archiver["last_archived_time"])
    return failed is not None and (archived is None or failed > archived)


def _archiving_problems(archiver: dict[str, Any], limits: Thresholds) -> list[str]:
    """Failing (the last attempt failed) or behind (segments waiting, none archived lately)."""
    if archiver["archive_mode"] == "off":
        return []
    archived = _when(archiver["last_archived_time"])
    if archive_failing(archiver):
        return [
            f"WAL archiving is failing: {archiver['failed_count']} failures, last "
            f"{archiver['last_failed_wal']} at {archiver['last_failed_time']}"
        ]
    waiting = archiver["segments_waiting"]
    if waiting and archived:
        lag = (datetime.now(UTC) - archived).total_seconds()
        if lag > limits.archive_lag_seconds:
            return [f"WAL archiving is {lag / 60:.0f} minutes behind ({waiting} segments waiting)"]
    return []


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class DatabaseCollector(Collector):
    """Database metrics on the API's /metrics, cached so scrapes cannot hammer PostgreSQL.

    Read through the API's own engine (app_service, like the admin endpoint); with
    settings, also our PgBouncer's pools when the API goes through it.
    """

    def __init__(
        self, engine: Engine, settings: Settings | None = None, cache_seconds: float = 15.0
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.cache_seconds = cache_seconds
        self._cached: tuple[float, dict[str, Any] | None] | None = None

    def _report(self) -> dict[str, Any] | None:
        if self._cached and time.monotonic() - self._cached[0] < self.cache_seconds:
            return self._cached[1]
        report: dict[str, Any] | None
        try:
            backup_dir = self.settings.backup_directory if self.settings else None
            with self.engine.connect() as connection:
                report = collect(connection, backup_dir=backup_dir)
        except Exception:  # a scrape must not fail because the database is down
            report = None
        if report is not None and self.settings is not None:
            if self.settings.database_pgbouncer or self.settings.uses_managed_cluster:
                report["pgbouncer"] = pgbouncer_figures(self.settings)
            report["pitr"] = pitr_state(self.settings, timeout=PITR_INFO_TIMEOUT_SECONDS)
        self._cached = (time.monotonic(), report)  # a failure is cached too: no retry storm
        return report

    def collect(self) -> Iterator[Metric]:
        report = self._report()
        up = GaugeMetricFamily("planwise_db_up", "1 when the database answered the last scrape")
        up.add_metric([], 1 if report else 0)
        yield up
        if report is None:
            return
        if report["database_bytes"] is not None:
            yield GaugeMetricFamily(
                "planwise_db_size_bytes", "size of the database", value=report["database_bytes"]
            )
        tables = GaugeMetricFamily(
            "planwise_db_table_size_bytes", "table size with indexes and TOAST", labels=["table"]
        )
        for table in report["tables"]:
            if table["bytes"] is not None:
                tables.add_metric([table["table"]], table["bytes"])
        yield tables
        connections = GaugeMetricFamily(
            "planwise_db_connections", "sessions by state and application",
            labels=["state", "application"],
        )  # fmt: skip
        for entry in report["connections"]:
            connections.add_metric([entry["state"], entry["application"]], entry["count"])
        yield connections
        cache = GaugeMetricFamily(
            "planwise_db_cache_hit_ratio", "buffer cache hit ratio", labels=["kind"]
        )
        for entry in report["cache"]:
            if entry["ratio"] is not None:
                cache.add_metric([entry["kind"]], entry["ratio"])
        yield cache
        counts = {
            "unused_indexes": ("non-unique indexes never scanned", "unused_indexes"),
            "long_running_queries": (
                f"queries running longer than {DEFAULTS.long_query_seconds:g} s",
                "long_running",
            ),
            "lock_waits": ("sessions waiting for a lock", "lock_waits"),
            "report_unread_parts": (
                "parts of the report not read in its time budget (lock or statement timeout)",
                "unavailable",
            ),
            "tables_not_sized": (
                "tables and indexes whose size was not read (ACCESS EXCLUSIVE lock)",
                "tables_not_sized",
            ),
            "mostly_sequential_tables": (
                "tables over 1000 rows read mostly by sequential scans",
                "mostly_sequential",
            ),
        }
        for name, (documentation, key) in counts.items():
            yield GaugeMetricFamily(f"planwise_db_{name}", documentation, value=len(report[key]))
        yield GaugeMetricFamily(
            "planwise_db_slow_statements", f"statements averaging > {DEFAULTS.slow_mean_ms:g} ms "
            f"over >= {DEFAULTS.slow_min_calls} calls",
            value=report["slow_statement_count"],
        )  # fmt: skip
        yield from _maintenance_metrics(report)
        yield from _check_metrics(report)
        yield from _replication_metrics(report["replication"])
        yield from _pitr_metrics(report.get("pitr"))
        yield from _pgbouncer_metrics(report.get("pgbouncer"))


def _check_metrics(report: dict[str, Any]) -> Iterator[Metric]:
    """What the `--check` rules compare with their thresholds, where the figures above
    do not already carry it (ops/prometheus/alerts.yml applies the same thresholds)."""
    yield GaugeMetricFamily(
        "planwise_db_report_read_seconds",
        "time the last report took to read",
        value=report["read_seconds"],
    )
    hits = CounterMetricFamily(
        "planwise_db_cache_blocks_hit", "block reads found in shared buffers", labels=["kind"]
    )
    reads = CounterMetricFamily(
        "planwise_db_cache_blocks_read",
        "block reads that went to the operating system",
        labels=["kind"],
    )
    for entry in report["cache"]:
        hits.add_metric([entry["kind"]], entry["hits"])
        reads.add_metric([entry["kind"]], entry["reads"])
    yield from (hits, reads)
    yield GaugeMetricFamily(
        "planwise_db_long_running_query_max_seconds",
        f"longest running query among those over {DEFAULTS.long_query_seconds:g} s (0 when none)",
        value=max((query["seconds"] for query in report["long_running"]), default=0),
    )
    duplicates = GaugeMetricFamily(
        "planwise_db_duplicate_index_bytes",
        "size of each index another index covers",
        labels=["table", "index"],
    )
    for entry in report["duplicate_indexes"]:
        if entry["bytes"] is not None:
            duplicates.add_metric([entry["table"], entry["index"]], entry["bytes"])
    yield duplicates
    ratio = GaugeMetricFamily(
        "planwise_db_dead_tuple_ratio",
        "dead tuples as a fraction of the table's rows",
        labels=["table"],
    )
    for entry in report["maintenance"]:
        if entry["dead_ratio"] is not None:
            ratio.add_metric([entry["table"]], entry["dead_ratio"])
    yield ratio
    archiver = report["archiver"]
    if archiver["archive_mode"] not in (None, "off"):
        yield GaugeMetricFamily(
            "planwise_db_wal_archive_failing",
            "1 when the last WAL archiving attempt failed",
            value=archive_failing(archiver),
        )


def _replication_metrics(replication: dict[str, Any] | None) -> Iterator[Metric]:
    """Streaming replication as planwise_replication() shows it to the API's role: on a
    leader its standbys, on a standby its own replay (nothing before migration 8d9e0f1a2b3c)."""
    standbys = replication["standbys"] if replication else []
    yield GaugeMetricFamily(
        "planwise_db_replication_members",
        "standbys (and WAL receivers) connected to this server",
        value=len(standbys),
    )
    streaming = GaugeMetricFamily(
        "planwise_db_replication_streaming",
        "1 when the standby streams (0: catching up, starting…)",
        labels=["standby"],
    )
    lag_bytes = GaugeMetricFamily(
        "planwise_db_replication_lag_bytes",
        "WAL written here and not yet replayed by the standby",
        labels=["standby"],
    )
    lag_seconds = GaugeMetricFamily(
        "planwise_db_replication_lag_seconds",
        "replay lag of the standby (0 once an idle standby caught up)",
        labels=["standby"],
    )
    for standby in standbys:
        name = [standby["name"] or "unnamed"]
        streaming.add_metric(name, standby["state"] == "streaming")
        # A WAL receiver that replays nothing (pg_receivewal): what it flushed or wrote.
        behind = {
            unit: next((standby[f"{stage}_lag_{unit}"] for stage in ("replay", "flush", "write")
                        if standby[f"{stage}_lag_{unit}"] is not None), None)
            for unit in ("bytes", "seconds")
        }  # fmt: skip
        if behind["bytes"] is not None:
            lag_bytes.add_metric(name, behind["bytes"])
        # PostgreSQL has no lag time until the standby's first reply after new WAL: 0 then.
        lag_seconds.add_metric(name, behind["seconds"] or 0)
    yield from (streaming, lag_bytes, lag_seconds)
    if replication is None:
        return
    yield GaugeMetricFamily(
        "planwise_db_in_recovery", "1 on a standby, 0 on a primary",
        value=replication["in_recovery"],
    )  # fmt: skip
    yield GaugeMetricFamily(
        "planwise_db_timeline", "the server's WAL timeline", value=replication["timeline"]
    )
    slots = GaugeMetricFamily(
        "planwise_db_replication_slot_active",
        "1 when a standby streams from the physical replication slot",
        labels=["slot"],
    )
    for slot in [] if replication["in_recovery"] else replication["slots"]:
        slots.add_metric([slot["name"]], slot["active"])
    yield slots
    replay = replication.get("replay")
    if replay is not None:
        receiver = replication["receiver"]
        yield GaugeMetricFamily(
            "planwise_db_wal_receiver_streaming", "on a standby: 1 when its WAL receiver streams",
            value=receiver is not None and receiver["status"] == "streaming",
        )  # fmt: skip
        yield GaugeMetricFamily(
            "planwise_db_replay_lag_bytes", "on a standby: WAL received and not replayed yet",
            value=replay["lag_bytes"] or 0,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "planwise_db_replay_lag_seconds",
            "on a standby: since the last replayed transaction, while WAL waits to be replayed",
            value=replay["lag_seconds"] or 0,
        )


def _pitr_metrics(pitr: dict[str, Any] | None) -> Iterator[Metric]:
    if pitr is None:
        return
    yield GaugeMetricFamily(
        "planwise_pitr_configured",
        "1 when pgBackRest archives the managed cluster (`planwise pitr setup`)",
        value=pitr["configured"],
    )
    window = (pitr["info"] or {}).get("restore_window") or {}
    for end in ("earliest", "latest"):
        moment = _when(window.get(end))
        if moment is not None:
            yield GaugeMetricFamily(
                f"planwise_pitr_restore_window_{end}_timestamp_seconds",
                f"{end} moment a point-in-time restore can reach",
                value=moment.timestamp(),
            )


def _maintenance_metrics(report: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    """Duplicate and invalid indexes, dead tuples, wraparound, sequences, lock waits,
    WAL archiving and the newest verified backup."""
    yield GaugeMetricFamily("planwise_db_duplicate_indexes",
                            "indexes another index on the same table covers",
                            value=len(report["duplicate_indexes"]))  # fmt: skip
    yield GaugeMetricFamily("planwise_db_invalid_indexes", "indexes marked invalid",
                            value=len(report["invalid_indexes"]))  # fmt: skip
    dead = GaugeMetricFamily("planwise_db_dead_tuples", "dead tuples by table", labels=["table"])
    for entry in report["maintenance"]:
        dead.add_metric([entry["table"]], entry["dead_tuples"])
    yield dead
    vacuumed = GaugeMetricFamily(
        "planwise_db_last_vacuum_timestamp_seconds",
        "when the table was last vacuumed, by hand or by autovacuum", labels=["table"],
    )  # fmt: skip
    for entry in report["maintenance"]:
        times = [_when(entry[key]) for key in ("last_vacuum", "last_autovacuum")]
        newest = max((moment for moment in times if moment), default=None)
        if newest is not None:
            vacuumed.add_metric([entry["table"]], newest.timestamp())
    yield vacuumed
    if report["wraparound"] is not None:
        wraparound = report["wraparound"]
        yield GaugeMetricFamily("planwise_db_xid_age", "age of the oldest unfrozen "
                                "transaction ID", value=wraparound["xid_age"])  # fmt: skip
        yield GaugeMetricFamily("planwise_db_multixact_age", "age of the oldest multixact ID",
                                value=report["wraparound"]["multixact_age"])  # fmt: skip
    sequences = GaugeMetricFamily(
        "planwise_db_sequence_used_ratio", "how far a sequence is towards its limit",
        labels=["sequence"],
    )  # fmt: skip
    for entry in report["sequences"]:
        if entry["fraction_used"] is not None:
            sequences.add_metric([f"{entry['schema']}.{entry['sequence']}"],
                                 entry["fraction_used"])  # fmt: skip
    yield sequences
    yield GaugeMetricFamily(
        "planwise_db_lock_wait_max_seconds", "longest current wait for a heavyweight lock",
        value=max((wait["seconds"] or 0 for wait in report["lock_waits"]), default=0),
    )  # fmt: skip
    archiver = report["archiver"]
    if archiver["archive_mode"] not in (None, "off"):
        yield GaugeMetricFamily("planwise_db_wal_archive_failed", "WAL segments that failed "
                                "to archive (pg_stat_archiver)",
                                value=archiver["failed_count"] or 0)  # fmt: skip
        if archiver["segments_waiting"] is not None:
            yield GaugeMetricFamily("planwise_db_wal_segments_waiting",
                                    "completed WAL segments not archived yet",
                                    value=archiver["segments_waiting"])  # fmt: skip
        archived = _when(archiver["last_archived_time"])
        if archived is not None:
            lag = (datetime.now(UTC) - archived).total_seconds()
            yield GaugeMetricFamily("planwise_db_wal_archive_age_seconds",
                                    "seconds since a WAL segment was last archived",
                                    value=lag)  # fmt: skip
    age = report["backups"]["age_hours"]
    yield GaugeMetricFamily(
        "planwise_backup_newest_verified_age_seconds",
        "age of the newest verified dump in BACKUP_DIR (+Inf when there is none)",
        value=float("inf") if age is None else age * 3600,
    )  # fmt: skip


def _pgbouncer_metrics(figures: dict[str, Any] | None) -> Iterator[GaugeMetricFamily]:
    if figures is None:
        return
    labels = ["database", "user"]
    clients = GaugeMetricFamily(
        "planwise_pgbouncer_clients", "client connections by state", labels=[*labels, "state"]
    )
    servers = GaugeMetricFamily(
        "planwise_pgbouncer_servers", "server connections by state", labels=[*labels, "state"]
    )
    wait = GaugeMetricFamily(
        "planwise_pgbouncer_max_wait_seconds", "longest wait of a client", labels=labels
    )
    for pool in figures["pools"]:
        key = [pool["database"], pool["user"]]
        clients.add_metric([*key, "active"], pool["client_active"])
        clients.add_metric([*key, "waiting"], pool["client_waiting"])
        servers.add_metric([*key, "active"], pool["server_active"])
        servers.add_metric([*key, "idle"], pool["server_idle"])
        servers.add_metric([*key, "other"], pool["servers"] - pool["server_active"]
                           - pool["server_idle"])  # fmt: skip
        wait.add_metric(key, pool["max_wait_seconds"])
    yield from (clients, servers, wait)
