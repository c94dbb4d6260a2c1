"""`planwise cluster up|status|switchover|failover|down|url`: a local Patroni cluster.

Exit codes: 0 done / a leader runs; 1 failed; 2 bad configuration; 3 no leader or not
running (`status`), or not confirmed (`failover`, `switchover`, `down --delete`).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from planwise.cli_support import confirm_or_abort, console, managed_cluster_settings
from planwise.config import Settings, get_settings
from planwise.db import migrations
from planwise.db.cluster import SUPERUSER, ensure_local_secrets
from planwise.db.roles import configured_role_passwords, set_role_passwords
from planwise.errors import PlanwiseError
from planwise.ops.cluster.patroni import HACluster

app = typer.Typer(
    no_args_is_help=True, help="A local Patroni cluster: automatic failover, replicas."
)

ROLES = {"admin": SUPERUSER, "app": "app_service", "read": "app_read"}


def _cluster() -> HACluster:
    settings = managed_cluster_settings("`planwise cluster` runs its own local servers")
    return HACluster(settings)


def _role_url(cluster: HACluster, role: str, *, read: bool) -> str:
    settings = cluster.settings
    passwords = {
        "admin": settings.planwise_pg_superuser_password,
        "app": settings.app_service_password,
        "read": settings.app_read_password,
    }
    if role not in ROLES:
        raise PlanwiseError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    secret = passwords[role]
    return cluster.url(ROLES[role], secret.get_secret_value() if secret else None, read=read)


def _fresh_settings() -> Settings:
    get_settings.cache_clear()
    return managed_cluster_settings("`planwise cluster` runs its own local servers")


@app.command()
def up(
    nodes: Annotated[int, typer.Option(min=1, max=9, help="PostgreSQL members")] = 3,
    sync: Annotated[
        bool, typer.Option(help="synchronous replication: a commit waits for a standby")
    ] = False,
) -> None:
    """Start etcd and the members, wait for a leader, then database, migrations, roles."""
    generated = ensure_local_secrets(_fresh_settings())
    if generated:
        console.print(f"Generated {', '.join(generated)} into .planwise/local.env (mode 0600).")
    cluster = HACluster(_fresh_settings())
    for line in cluster.up(nodes, sync=sync):
        console.print(f"- {line}")
    settings = cluster.settings = _fresh_settings()  # the replication password, if generated
    admin_url = _role_url(cluster, "admin", read=False)
    before = migrations.current_revision(admin_url)
    migrations.upgrade(admin_url)
    after = migrations.current_revision(admin_url)
    console.print(f"- schema at {after}" + ("" if before == after else f" (was {before})"))
    for role in set_role_passwords(admin_url, configured_role_passwords(settings)):
        console.print(f"- set the password of {role}")
    console.print(f"Cluster directory: {cluster.root}")
    console.print("Use it with:")
    console.print(
        f"DATABASE_URL={_role_url(cluster, 'app', read=False)}", soft_wrap=True, highlight=False
    )


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per member")] = False,
) -> None:
    """Each member: name, role, state, host, port, postmaster pid, timeline, lag.

    Exit code 3 when no member answers or there is no running leader."""
    cluster = _cluster()
    members = cluster.members()
    if as_json:
        for member in members:
            console.print(json.dumps(member.as_dict()), highlight=False, soft_wrap=True)
    else:
        table = Table("member", "role", "state", "host", "port", "pid", "timeline",
                      "lag bytes", "lag s")  # fmt: skip
        for m in members:
            table.add_row(
                m.name, m.role, m.state, m.host, str(m.port), str(m.pid or "-"),
                str(m.timeline or "-"),
                "-" if m.lag_bytes is None else str(m.lag_bytes),
                "-" if m.lag_seconds is None else f"{m.lag_seconds:.3f}",
            )  # fmt: skip
        console.print(table if members else f"no member answers (cluster in {cluster.root})")
    if not any(m.role == "leader" and m.state == "running" for m in members):
        if not as_json:
            console.print("[yellow]no running leader[/yellow]")
        raise typer.Exit(3)


@app.command()
def url(
    role: Annotated[str, typer.Option("--as", help="admin, app or read")] = "app",
    read: Annotated[
        bool, typer.Option("--read", help="prefer a standby (target_session_attrs)")
    ] = False,
) -> None:
    """The libpq multi-host URL: the leader (read-write), or with --read a standby."""
    console.print(_role_url(_cluster(), role, read=read), soft_wrap=True, highlight=False)


@app.command()
def switchover(
    to: Annotated[str | None, typer.Option(help="the member to promote")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Planned change of leader: the leader stops cleanly, a standby takes over."""
    cluster = _cluster()
    confirm_or_abort(
        f"Switch the leader over to {to or 'a healthy standby'}? Writes pause meanwhile.", yes
    )
    console.print(cluster.switchover(to), highlight=False)


@app.command()
def failover(
    to: Annotated[str, typer.Option(help="the member to promote")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Promote `--to` now, with or without a healthy leader (Patroni's manual failover)."""
    cluster = _cluster()
    confirm_or_abort(f"Fail over to {to}? The current leader is demoted.", yes)
    console.print(cluster.failover(to), highlight=False)


@app.command()
def down(
    delete: Annotated[bool, typer.Option("--delete", help="also remove all its data")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask (with --delete)")] = False,
) -> None:
    """Stop the members (replicas first, so nothing fails over) and etcd."""
    cluster = _cluster()
    if delete:
        confirm_or_abort(f"Stop the cluster and delete {cluster.root} with all its data?", yes)
    for line in cluster.down() or ["not running"]:
        console.print(f"- {line}")
    if delete:
        cluster.delete()
        console.print(f"- deleted {cluster.root}")
