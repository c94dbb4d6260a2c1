"""`planwise monitor [--json] [--check]` and `planwise monitor sample`.

Exit codes: 0 fine; 1 a threshold is crossed (`--check`, one line per problem) or failed.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import create_engine, pool

from planwise.cli_support import console
from planwise.config import get_settings
from planwise.db.engine import sqlalchemy_url
from planwise.ops.monitor import report as monitor
from planwise.ops.monitor import sampler

app = typer.Typer(help="Database metrics: pool, queries, growth, indexes, cache.")


def _connect() -> Any:
    engine = create_engine(
        sqlalchemy_url(get_settings().admin_url),
        poolclass=pool.NullPool,
        connect_args={"application_name": "planwise-monitor", "connect_timeout": 5},
    )
    return engine.connect()


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(*columns, title=title, title_justify="left")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


@app.callback(invoke_without_command=True)
def report(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="exit 1 if a threshold is crossed")
    ] = False,
    cache_hit_ratio: Annotated[float, typer.Option(min=0, max=1)] = 0.99,
    slow_mean_ms: Annotated[float, typer.Option(min=0)] = 20.0,
    slow_min_calls: Annotated[int, typer.Option(min=1)] = 100,
    long_query_seconds: Annotated[float, typer.Option(min=0)] = 60.0,
    archive_lag_seconds: Annotated[float, typer.Option(min=0)] = 300.0,
    backup_max_age_hours: Annotated[float, typer.Option(min=0)] = 26.0,
    duplicate_index_min_bytes: Annotated[int, typer.Option(min=0)] = 1024 * 1024,
    dead_tuple_ratio: Annotated[float, typer.Option(min=0, max=1)] = 0.2,
    wraparound_max_age: Annotated[int, typer.Option(min=0)] = 1_000_000_000,
    sequence_max_fraction: Annotated[float, typer.Option(min=0, max=1)] = 0.9,
    lock_wait_seconds: Annotated[float, typer.Option(min=0)] = 10.0,
    replica_lag_bytes: Annotated[int, typer.Option(min=0)] = 16 * 1024**2,
    replica_lag_seconds: Annotated[float, typer.Option(min=0)] = 30.0,
) -> None:
    """Show the five metrics (or check them against thresholds, for cron)."""
    if ctx.invoked_subcommand is not None:
        return
    limits = monitor.Thresholds(
        cache_hit_ratio=cache_hit_ratio, slow_mean_ms=slow_mean_ms,
        slow_min_calls=slow_min_calls, long_query_seconds=long_query_seconds,
        archive_lag_seconds=archive_lag_seconds, backup_max_age_hours=backup_max_age_hours,
        duplicate_index_min_bytes=duplicate_index_min_bytes, dead_tuple_ratio=dead_tuple_ratio,
        wraparound_max_age=wraparound_max_age, sequence_max_fraction=sequence_max_fraction,
        lock_wait_seconds=lock_wait_seconds, replica_lag_bytes=replica_lag_bytes,
        replica_lag_seconds=replica_lag_seconds,
    )  # fmt: skip
    with _connect() as connection:
        data = monitor.collect(
            connection, backup_dir=get_settings().backup_directory, limits=limits
        )
    settings = get_settings()
    if settings.uses_managed_cluster or settings.database_pgbouncer:
        data["pgbouncer"] = monitor.pgbouncer_figures(settings)
    monitor.add_patroni(data, settings)
    rules = monitor.health(data, limits)
    if as_json:
        found = [line for rule in rules for line in rule.problems]
        console.print_json(json.dumps({**data, "problems": found}))
    elif not check:
        _print_report(data)
    if check:
        for rule in rules:
            for line in rule.problems:
                console.print(f"[red]PROBLEM[/red] {rule.name}: {line}", highlight=False,
                              soft_wrap=True)  # fmt: skip
        if not all(rule.ok for rule in rules):
            raise typer.Exit(1)
        console.print("all checks passed")


def _print_report(data: dict[str, Any]) -> None:
    show = console.print
    for part, why in data["unavailable"].items():
        show(f"[yellow]{part}[/yellow]: {why}", highlight=False)
    if data["tables_not_sized"]:
        show("[yellow]sizes not read[/yellow] (ACCESS EXCLUSIVE lock held or awaited): "
             + ", ".join(data["tables_not_sized"]), highlight=False)  # fmt: skip
    show(_table("Connections", data["connections"], ["state", "application", "count"]))
    bouncer = data.get("pgbouncer")
    if bouncer:
        show(_table(f"PgBouncer pools (port {bouncer['port']})", bouncer["pools"],
                    ["database", "user", "client_active", "client_waiting", "server_active",
                     "server_idle", "servers", "max_wait_seconds"]))  # fmt: skip
        show(_table("PgBouncer traffic (times in µs)", bouncer["stats"],
                    ["database", "total_xact_count", "total_query_count", "avg_xact_time",
                     "avg_wait_time"]))  # fmt: skip
    show(_table("Slowest statements (mean)", data["slowest_statements"],
                ["mean_ms", "calls", "total_ms", "rows", "query"]))  # fmt: skip
    show(_table("Most time-consuming statements", data["most_time_consuming"],
                ["total_ms", "calls", "mean_ms", "rows", "query"]))  # fmt: skip
    show(_table("Long-running queries", data["long_running"],
                ["pid", "seconds", "state", "query"]))  # fmt: skip
    show(_table("Lock waits", [
        {**wait, "blocking": "; ".join(f"{b['pid']} {b['state']}: {b['query']}"
                                       for b in wait["blocking"])}
        for wait in data["lock_waits"]
    ], ["pid", "seconds", "query", "blocking"]))  # fmt: skip
    size = data["database_bytes"]
    show(f"Database size: {'not read' if size is None else f'{size / 1024**2:.1f} MiB'}")
    show(_table("Tables", data["tables"], ["table", "bytes", "rows", "seq_scan", "idx_scan"]))
    show(_table("Growth (sampled by `planwise monitor sample`)", data["growth"],
                ["relation", "since", "grown_bytes", "days"]))  # fmt: skip
    show(_table("Index usage", data["indexes"], ["table", "index", "scans", "bytes"]))
    show(_table("Unused indexes", data["unused_indexes"], ["table", "index", "bytes"]))
    show(_table("Duplicate indexes", data["duplicate_indexes"],
                ["table", "index", "covered_by", "bytes"]))  # fmt: skip
    show(_table("Invalid indexes", data["invalid_indexes"], ["table", "index", "definition"]))
    show(_table("Dead tuples and vacuum", data["maintenance"],
                ["table", "live_tuples", "dead_tuples", "dead_ratio", "last_vacuum",
                 "last_autovacuum", "last_analyze", "last_autoanalyze"]))  # fmt: skip
    wrap = data["wraparound"]
    if wrap is not None:
        show(f"Transaction ID age: {wrap['xid_age']} ({wrap['fraction_used']:.2%} of 2^31), "
             f"multixact age {wrap['multixact_age']}", highlight=False)  # fmt: skip
    show(_table("Sequences", data["sequences"],
                ["sequence", "last_value", "max_value", "fraction_used", "table",
                 "column"]))  # fmt: skip
    show(_table("Tables read mostly sequentially", data["mostly_sequential"],
                ["table", "rows", "seq_scan", "idx_scan"]))  # fmt: skip
    show(_table("Cache hit ratio", data["cache"], ["kind", "hits", "reads", "ratio"]))
    show(_table("Cache hit ratio by table", data["cache_by_table"],
                ["table", "hits", "reads", "ratio", "index_hits", "index_reads",
                 "index_ratio"]))  # fmt: skip
    archiver = data["archiver"]
    show(f"WAL archiving: {archiver['archive_mode']}, {archiver['archived_count']} archived, "
         f"{archiver['failed_count']} failed, last {archiver['last_archived_time'] or '-'}",
         highlight=False)  # fmt: skip
    _print_replication(data["replication"])
    backup = data["backups"]
    show(f"Newest verified backup: {backup['newest_verified'] or 'none'}"
         + (f" ({backup['age_hours']:.1f} h old)" if backup["age_hours"] is not None else ""),
         highlight=False)  # fmt: skip


def _print_replication(replication: dict[str, Any] | None) -> None:
    if replication is None:
        return
    show = console.print
    if replication["in_recovery"]:
        replay, receiver = replication["replay"], replication["receiver"] or {}
        show(f"Replication: a standby on timeline {replication['timeline']}, WAL receiver "
             f"{receiver.get('status', 'not running')} from {receiver.get('sender_host', '-')}:"
             f"{receiver.get('sender_port', '-')}, replay {replay['lag_bytes']} bytes, "
             f"{replay['lag_seconds'] or 0:.1f} s behind"
             + (" (paused)" if replay["paused"] else ""), highlight=False)  # fmt: skip
    else:
        show(f"Replication: a primary on timeline {replication['timeline']}, "
             f"{len(replication['standbys'])} standbys connected", highlight=False)  # fmt: skip
    if replication["standbys"]:
        show(_table("Standbys", replication["standbys"],
                    ["name", "state", "sync_state", "sent_lag_bytes", "write_lag_bytes",
                     "flush_lag_bytes", "replay_lag_bytes", "replay_lag_seconds"]))  # fmt: skip
    if replication["slots"]:
        show(_table("Replication slots", replication["slots"],
                    ["name", "active", "retained_bytes", "wal_status"]))  # fmt: skip
    patroni = replication.get("patroni")
    if patroni:
        columns = ["name", "role", "state", "host", "port", "timeline", "lag_bytes"]
        show(_table(f"Patroni cluster (leader: {patroni['leader'] or 'none'})",
                    patroni["members"], columns))  # fmt: skip


@app.command()
def sample() -> None:
    """Record database and table sizes, what each statement did since the previous sample
    (pg_stat_statements), sessions by state and WAL archiving, now, and delete samples past
    their retention (MONITOR_*_RETENTION_DAYS). The API does this itself every
    MONITOR_SAMPLE_INTERVAL_SECONDS; by hand, or from cron / `backup schedule`, it is
    this command."""
    with _connect() as connection:
        done = sampler.sample_with(get_settings(), connection, scheduled=False)
        connection.commit()
    assert done is not None  # an unscheduled run always runs
    console.print(f"recorded {done.sizes} size samples, {done.statements} statement samples "
                  f"and {done.connections} connection samples, pruned {done.rows_pruned} "
                  f"old samples in {done.duration_ms:.0f} ms")  # fmt: skip
