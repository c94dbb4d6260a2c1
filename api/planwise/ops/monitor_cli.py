"""`planwise monitor [--json] [--check]` and `planwise monitor sample`.

Exit codes: 0 fine; 1 a threshold is crossed (`--check`, one line per problem) or failed.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, pool

from planwise.config import get_settings
from planwise.db.engine import sqlalchemy_url
from planwise.ops import monitor
from planwise.ops.backup_cli import backup_dir

app = typer.Typer(help="Database metrics: pool, queries, growth, indexes, cache.")
console = Console()


def _connect() -> Any:
    engine = create_engine(
        sqlalchemy_url(get_settings().admin_url),
        poolclass=pool.NullPool,
        connect_args={"application_name": "planwise-monitor"},
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
) -> None:
    """Show the five metrics (or check them against thresholds, for cron)."""
    if ctx.invoked_subcommand is not None:
        return
    with _connect() as connection:
        data = monitor.collect(
            connection, backup_dir=backup_dir(), long_query_seconds=long_query_seconds
        )
    limits = monitor.Thresholds(
        cache_hit_ratio=cache_hit_ratio, slow_mean_ms=slow_mean_ms,
        slow_min_calls=slow_min_calls, long_query_seconds=long_query_seconds,
        archive_lag_seconds=archive_lag_seconds, backup_max_age_hours=backup_max_age_hours,
    )  # fmt: skip
    found = monitor.problems(data, limits)
    if as_json:
        console.print_json(json.dumps({**data, "problems": found}))
    elif not check:
        console.print(_table("Connections", data["connections"], ["state", "application", "count"]))
        console.print(_table("Slowest statements (mean)", data["slowest_statements"],
                             ["mean_ms", "calls", "total_ms", "rows", "query"]))  # fmt: skip
        console.print(_table("Most time-consuming statements", data["most_time_consuming"],
                             ["total_ms", "calls", "mean_ms", "rows", "query"]))  # fmt: skip
        console.print(_table("Long-running queries", data["long_running"],
                             ["pid", "seconds", "state", "query"]))  # fmt: skip
        console.print(_table("Lock waits", data["lock_waits"], ["pid", "blocked_by", "query"]))
        console.print(f"Database size: {data['database_bytes'] / 1024**2:.1f} MiB")
        console.print(_table("Tables", data["tables"],
                             ["table", "bytes", "rows", "seq_scan", "idx_scan"]))  # fmt: skip
        console.print(_table("Growth (sampled)", data["growth"],
                             ["relation", "since", "grown_bytes", "days"]))  # fmt: skip
        console.print(_table("Index usage", data["indexes"], ["table", "index", "scans", "bytes"]))
        console.print(_table("Unused indexes", data["unused_indexes"], ["table", "index", "bytes"]))
        console.print(_table("Cache hit ratio", data["cache"], ["kind", "hits", "reads", "ratio"]))
    if check:
        for line in found:
            console.print(f"[red]PROBLEM[/red] {line}")
        if found:
            raise typer.Exit(1)
        console.print("all checks passed")


@app.command()
def sample() -> None:
    """Record database and table sizes now (run daily, e.g. from `backup schedule`)."""
    with _connect() as connection:
        written = monitor.sample_sizes(connection)
        connection.commit()
    console.print(f"recorded {written} size samples")
