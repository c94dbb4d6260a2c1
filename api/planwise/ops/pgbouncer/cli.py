"""`planwise pgbouncer up|down|status` for the managed cluster, or for the Patroni
cluster (`planwise cluster up`) when one is configured: then PgBouncer points at its
leader, and the leader's Patroni callback re-points it after a failover or switchover.

Exit codes: 0 done / running; 1 failed (or, for `status`, running but not accepting TCP
connections on its port); 3 not running (`status`).
"""

from __future__ import annotations

import typer
from rich.table import Table

from planwise.cli_support import console, managed_cluster_settings
from planwise.db.cluster import Cluster
from planwise.errors import PlanwiseError
from planwise.ops.cluster.patroni import HACluster
from planwise.ops.pgbouncer.pooler import PgBouncer, accepts_tcp

app = typer.Typer(no_args_is_help=True, help="PgBouncer (transaction pooling) in front of it.")


def bouncer() -> PgBouncer:
    settings = managed_cluster_settings(
        "use its own pooler (on Supabase: the transaction-mode pooler URL, with "
        "DATABASE_PGBOUNCER=true)"
    )
    ha = HACluster(settings)
    if ha.node_indexes():
        return ha.pgbouncer()
    return PgBouncer(settings, Cluster(settings))


@app.command()
def up() -> None:
    """Write the config and auth file from settings and start PgBouncer (idempotent)."""
    pooler = bouncer()
    started = pooler.up()
    console.print(
        f"{'started' if started else 'reloaded'} PgBouncer on 127.0.0.1:{pooler.port} "
        f"(transaction pooling, {pooler.settings.pgbouncer_pool_size} server connections per "
        "pool, idle servers closed after 300 s)"
    )
    password = pooler.settings.app_service_password
    url = pooler.url("app_service", password.get_secret_value() if password else None)
    console.print("Use it with:")
    console.print(
        f"DATABASE_URL={url}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    console.print("DATABASE_PGBOUNCER=true", highlight=False)


@app.command()
def down() -> None:
    """Stop PgBouncer after the clients' running transactions."""
    console.print("stopped" if bouncer().down() else "not running")


@app.command()
def status() -> None:
    """Running or not, and SHOW POOLS. Exit code 3 when not running."""
    pooler = bouncer()
    if not pooler.running:
        console.print(f"PgBouncer is not running (port {pooler.port})")
        raise typer.Exit(3)
    if not accepts_tcp(pooler.port):
        raise PlanwiseError(
            f"PgBouncer runs (pid {pooler.pid}) but does not accept connections on port "
            f"{pooler.port}: `planwise pgbouncer down`, then up"
        )
    console.print(f"PgBouncer running, pid {pooler.pid}, 127.0.0.1:{pooler.port}")
    table = Table("database", "user", "clients active", "clients waiting",
                  "servers active", "servers idle", "servers (all)", "max wait s",
                  title="Pools (SHOW POOLS)", title_justify="left")  # fmt: skip
    for pool in pooler.pools():
        table.add_row(pool.database, pool.user, str(pool.client_active),
                      str(pool.client_waiting), str(pool.server_active),
                      str(pool.server_idle), str(pool.servers),
                      f"{pool.max_wait_seconds:.3f}")  # fmt: skip
    console.print(table)
    stats = Table("database", "transactions", "queries", "avg transaction ms",
                  "avg wait ms", title="Traffic (SHOW STATS)", title_justify="left")  # fmt: skip
    for row in pooler.stats():
        stats.add_row(str(row["database"]), str(row["total_xact_count"]),
                      str(row["total_query_count"]), f"{int(row['avg_xact_time']) / 1000:.2f}",
                      f"{int(row['avg_wait_time']) / 1000:.2f}")  # fmt: skip
    console.print(stats)
