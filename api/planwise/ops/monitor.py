"""The design document's five database metrics, read from PostgreSQL's statistics views:
connection pool usage, query performance, database and table growth, index usage and
cache hit ratio; plus WAL archiving and backup freshness for `--check`.

One `collect()` feeds the terminal (rich tables), JSON (`--json`, the admin endpoint) and
Prometheus (`DatabaseCollector`). `problems()` turns a report into alert lines, with
PgHero's default thresholds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, text

from planwise.ops import backup as backups

SLOW_LIMIT = 10


@dataclass(frozen=True)
class Thresholds:
    cache_hit_ratio: float = 0.99
    cache_min_reads: int = 1000  # below this a cold, tiny database proves nothing
    slow_mean_ms: float = 20.0
    slow_min_calls: int = 100
    long_query_seconds: float = 60.0
    archive_lag_seconds: float = 300.0
    backup_max_age_hours: float = 26.0


def _rows(connection: Connection, query: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in connection.execute(text(query), params).mappings()]


def collect(
    connection: Connection, *, backup_dir: Path | None = None, long_query_seconds: float = 60
) -> dict[str, Any]:
    """A report of the current database, as plain JSON-able data."""
    has_statements = bool(
        connection.execute(
            text("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        ).first()
    )
    statements_sql = """
        SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query, calls,
               round(mean_exec_time::numeric, 3)::float AS mean_ms,
               round(total_exec_time::numeric, 1)::float AS total_ms, rows
        FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        ORDER BY {order} DESC LIMIT :limit
    """
    report: dict[str, Any] = {
        "collected_at": datetime.now(UTC).isoformat(),
        "connections": _rows(
            connection,
            "SELECT coalesce(state, 'background') AS state, "
            "coalesce(nullif(application_name, ''), '-') AS application, count(*) AS count "
            "FROM pg_stat_activity WHERE datname = current_database() "
            "GROUP BY 1, 2 ORDER BY 3 DESC",
        ),
        "slowest_statements": _rows(
            connection, statements_sql.format(order="mean_exec_time"), limit=SLOW_LIMIT
        )
        if has_statements
        else [],
        "most_time_consuming": _rows(
            connection, statements_sql.format(order="total_exec_time"), limit=SLOW_LIMIT
        )
        if has_statements
        else [],
        "long_running": _rows(
            connection,
            "SELECT pid, application_name, state, "
            "round(extract(epoch FROM now() - query_start)::numeric, 1)::float AS seconds, "
            "left(query, 200) AS query FROM pg_stat_activity "
            "WHERE state <> 'idle' AND pid <> pg_backend_pid() "
            "AND now() - query_start > make_interval(secs => :seconds) ORDER BY 4 DESC",
            seconds=long_query_seconds,
        ),
        "lock_waits": _rows(
            connection,
            "SELECT pid, pg_blocking_pids(pid) AS blocked_by, wait_event, "
            "left(query, 200) AS query FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()",
        ),
        "database_bytes": connection.execute(
            text("SELECT pg_database_size(current_database())")
        ).scalar_one(),
        "tables": _rows(
            connection,
            "SELECT relname AS table, pg_total_relation_size(relid) AS bytes, "
            "n_live_tup AS rows, seq_scan, coalesce(idx_scan, 0) AS idx_scan "
            "FROM pg_stat_user_tables ORDER BY 2 DESC",
        ),
        "indexes": _rows(
            connection,
            "SELECT s.relname AS table, s.indexrelname AS index, s.idx_scan AS scans, "
            "pg_relation_size(s.indexrelid) AS bytes, i.indisunique AS unique "
            "FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid "
            "ORDER BY s.idx_scan DESC",
        ),
        "cache": _rows(
            connection,
            "SELECT 'heap' AS kind, sum(heap_blks_hit) AS hits, sum(heap_blks_read) AS reads "
            "FROM pg_statio_user_tables UNION ALL "
            "SELECT 'index', sum(idx_blks_hit), sum(idx_blks_read) FROM pg_statio_user_indexes",
        ),
        "cache_by_table": _rows(
            connection,
            "SELECT relname AS table, heap_blks_hit AS hits, heap_blks_read AS reads "
            "FROM pg_statio_user_tables ORDER BY heap_blks_read DESC",
        ),
        "archiver": _rows(
            connection,
            "SELECT current_setting('archive_mode') AS archive_mode, archived_count, "
            "failed_count, last_archived_time, last_failed_time FROM pg_stat_archiver",
        )[0],
        "growth": _growth(connection),
        "backups": _backup_facts(backup_dir),
    }
    for entry in [*report["cache"], *report["cache_by_table"]]:
        hits, reads = int(entry["hits"] or 0), int(entry["reads"] or 0)
        entry["hits"], entry["reads"] = hits, reads
        entry["ratio"] = hits / (hits + reads) if hits + reads else None
    report["unused_indexes"] = [
        index for index in report["indexes"] if index["scans"] == 0 and not index["unique"]
    ]
    report["mostly_sequential"] = [
        table for table in report["tables"]
        if table["seq_scan"] > table["idx_scan"] and (table["rows"] or 0) > 1000
    ]  # fmt: skip
    jsonable: dict[str, Any] = _jsonable(report)
    return jsonable


def _growth(connection: Connection) -> list[dict[str, Any]]:
    """Bytes per day for each relation between its oldest and newest sample."""
    return _rows(
        connection,
        "SELECT relation, min(sampled_at) AS since, "
        "(array_agg(bytes ORDER BY sampled_at DESC))[1] - "
        "(array_agg(bytes ORDER BY sampled_at))[1] AS grown_bytes, "
        "extract(epoch FROM max(sampled_at) - min(sampled_at)) / 86400 AS days "
        "FROM db_size_sample GROUP BY relation HAVING count(*) > 1",
    )


def _backup_facts(directory: Path | None) -> dict[str, Any]:
    verified = [b for b in backups.list_backups(directory) if b.verified] if directory else []
    newest = verified[-1] if verified else None
    return {
        "newest_verified": newest.name if newest else None,
        "newest_verified_at": newest.taken_at.isoformat() if newest else None,
        "age_hours": (datetime.now(UTC) - newest.taken_at).total_seconds() / 3600
        if newest
        else None,
    }


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


def problems(report: dict[str, Any], limits: Thresholds) -> list[str]:
    """One line per crossed threshold (PgHero's defaults); empty when all is well."""
    found = []
    for entry in report["cache"]:
        total = entry["hits"] + entry["reads"]
        if total >= limits.cache_min_reads and entry["ratio"] < limits.cache_hit_ratio:
            found.append(
                f"{entry['kind']} cache hit ratio {entry['ratio']:.2%} < "
                f"{limits.cache_hit_ratio:.0%}"
            )
    for statement in report["slowest_statements"]:
        if statement["calls"] >= limits.slow_min_calls and statement["mean_ms"] > (
            limits.slow_mean_ms
        ):
            found.append(
                f"statement averaging {statement['mean_ms']:.1f} ms over {statement['calls']} "
                f"calls: {statement['query'][:80]}"
            )
    for query in report["long_running"]:
        if query["seconds"] > limits.long_query_seconds:
            found.append(f"query running {query['seconds']:.0f} s (pid {query['pid']})")
    archiver = report["archiver"]
    if archiver["archive_mode"] != "off":
        failed, archived = archiver["last_failed_time"], archiver["last_archived_time"]
        if failed and (not archived or failed > archived):
            found.append(f"WAL archiving is failing (last failure {failed})")
        elif archived:
            lag = (datetime.now(UTC) - datetime.fromisoformat(archived)).total_seconds()
            if lag > limits.archive_lag_seconds:
                found.append(f"WAL archiving is {lag / 60:.0f} minutes behind")
    age = report["backups"]["age_hours"]
    if age is None:
        found.append("no verified backup")
    elif age > limits.backup_max_age_hours:
        found.append(
            f"newest verified backup is {age:.0f} h old (> {limits.backup_max_age_hours:g} h)"
        )
    return found


class DatabaseCollector(Collector):
    """Database metrics on the API's /metrics, cached so scrapes cannot hammer PostgreSQL."""

    def __init__(self, engine: Engine, cache_seconds: float = 15.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cached: tuple[float, dict[str, Any]] | None = None

    def _report(self) -> dict[str, Any] | None:
        if self._cached and time.monotonic() - self._cached[0] < self.cache_seconds:
            return self._cached[1]
        try:
            with self.engine.connect() as connection:
                report = collect(connection)
        except Exception:  # a scrape must not fail because the database is down
            return None
        self._cached = (time.monotonic(), report)
        return report

    def collect(self) -> Iterator[GaugeMetricFamily]:
        report = self._report()
        up = GaugeMetricFamily("planwise_db_up", "1 when the database answered the last scrape")
        up.add_metric([], 1 if report else 0)
        yield up
        if report is None:
            return
        yield GaugeMetricFamily(
            "planwise_db_size_bytes", "size of the database", value=report["database_bytes"]
        )
        tables = GaugeMetricFamily(
            "planwise_db_table_size_bytes", "table size with indexes and TOAST", labels=["table"]
        )
        for table in report["tables"]:
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
        yield GaugeMetricFamily(
            "planwise_db_unused_indexes", "non-unique indexes never scanned",
            value=len(report["unused_indexes"]),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "planwise_db_long_running_queries", "queries running longer than 60 s",
            value=len(report["long_running"]),
        )  # fmt: skip
