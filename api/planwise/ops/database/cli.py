"""`planwise db …`: the managed cluster, migrations and role passwords.

Exit codes: 0 done; 1 failed; 2 bad configuration; 3 not running (`status`) or not
confirmed (destructive commands).
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Annotated

import psycopg
import typer
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from rich.table import Table

from planwise.cli_support import confirm_or_abort, console, managed_cluster_settings, masked
from planwise.config import Settings, get_settings
from planwise.db import migrations
from planwise.db.cluster import Cluster, ensure_local_secrets
from planwise.db.engine import libpq_url, pg_environment
from planwise.db.roles import configured_role_passwords, set_role_passwords
from planwise.errors import PlanwiseError

app = typer.Typer(no_args_is_help=True, help="The database: local cluster, migrations, roles.")

ROLE_URLS = ("admin", "app", "read")


def _fresh_settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


def role_url(settings: Settings, role: str) -> str:
    if role == "admin":
        return settings.admin_url
    if role == "app":
        return settings.app_url
    if role == "read":
        if not settings.uses_managed_cluster:
            raise PlanwiseError("`--as read` is only known for the managed cluster")
        return settings.managed_url("app_read", settings.app_read_password)
    raise PlanwiseError(f"unknown role {role!r}: choose one of {', '.join(ROLE_URLS)}")


@app.command()
def up() -> None:
    """Create and start the local cluster and database (idempotent); print DATABASE_URL."""
    settings = get_settings()
    if not settings.uses_managed_cluster:
        console.print(
            f"DATABASE_URL is set ({masked(settings.app_url)}): using that server, "
            "no local cluster started."
        )
        with psycopg.connect(libpq_url(settings.admin_url), connect_timeout=10) as conn:
            conn.execute("SELECT 1")
        console.print("It is reachable.")
        return
    generated = ensure_local_secrets(settings)
    if generated:
        console.print(f"Generated {', '.join(generated)} into .planwise/local.env (mode 0600).")
    settings = _fresh_settings()
    cluster = Cluster(settings)
    for line in cluster.up() or ["cluster already running; nothing to do"]:
        console.print(f"- {line}")
    console.print(f"Cluster directory: {cluster.directory}")
    console.print("Use it with:")
    console.print(f"DATABASE_URL={settings.app_url}", soft_wrap=True, highlight=False)


@app.command()
def down() -> None:
    """Stop the local cluster (fast shutdown: open transactions are rolled back)."""
    settings = managed_cluster_settings("it is not ours to stop")
    cluster = Cluster(settings)
    console.print("stopped" if cluster.stop() else "not running")


@app.command()
def status() -> None:
    """Running or stopped, where, port, version, data size. Exit code 3 when stopped."""
    settings = get_settings()
    table = Table(show_header=False)
    if not settings.uses_managed_cluster:
        table.add_row("server", "external (DATABASE_URL)")
        table.add_row("url", masked(settings.app_url))
        try:
            with psycopg.connect(libpq_url(settings.admin_url), connect_timeout=10) as conn:
                row = conn.execute(
                    "SELECT current_setting('server_version'), "
                    "pg_size_pretty(pg_database_size(current_database()))"
                ).fetchone()
        except psycopg.OperationalError as error:
            table.add_row("state", f"[red]unreachable[/red]: {str(error).strip()}")
            console.print(table)
            raise typer.Exit(3) from None
        assert row is not None
        table.add_row("state", "[green]reachable[/green]")
        table.add_row("version", str(row[0]))
        table.add_row("database size", str(row[1]))
        console.print(table)
        return
    cluster = Cluster(settings)
    state = cluster.status()
    running = "[green]running[/green]" if state.running else "[yellow]stopped[/yellow]"
    table.add_row("state", running if state.initialized else "[yellow]not created[/yellow]")
    table.add_row("directory", str(state.directory))
    table.add_row("port", str(state.port))
    table.add_row("version", state.version or "-")
    table.add_row("data size", f"{state.data_bytes / 1024**2:.1f} MiB")
    table.add_row("database", settings.planwise_pg_database)
    table.add_row("log", str(state.log_file))
    table.add_row("url", masked(settings.app_url))
    console.print(table)
    if not state.running:
        raise typer.Exit(3)


@app.command()
def url(
    role: Annotated[str, typer.Option("--as", help="admin | app | read")] = "app",
) -> None:
    """Print the connection URL (with password) for a role."""
    console.print(role_url(get_settings(), role), soft_wrap=True, highlight=False)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def psql(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--as", help="admin | app | read")] = "admin",
) -> None:
    """Open psql on the database (as the owner/admin by default). Other arguments go to
    psql: `planwise db psql -c 'select 1'`, `-f file.sql`, `-- --help`."""
    binary = shutil.which("psql")
    if binary is None:
        raise PlanwiseError("psql not found: run `make install`")
    target = role_url(get_settings(), role)
    # The password reaches psql through its environment (PGPASSWORD), never argv: the
    # command line of every process is readable by every user in `ps`.
    environment = pg_environment(target, application_name="planwise-psql")
    os.execve(binary, [binary, *ctx.args], environment)  # noqa: S606  (like `exec psql`)


@app.command()
def migrate(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (`alembic upgrade`), as the migration role."""
    settings = get_settings()
    before = migrations.current_revision(settings.admin_url)
    migrations.upgrade(settings.admin_url, revision)
    after = migrations.current_revision(settings.admin_url)
    console.print(f"schema at {after} (was {before or 'empty'})")


@app.command(context_settings={"ignore_unknown_options": True})  # `-1` is a revision
def downgrade(
    revision: Annotated[str, typer.Argument(help="target, e.g. -1 or base")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Revert migrations down to REVISION; data in dropped columns/tables is lost."""
    settings = get_settings()
    current = migrations.current_revision(settings.admin_url)
    target = downgrade_target(current, revision)
    confirm_or_abort(
        f"This downgrades {masked(settings.admin_url)} from {current or 'base'} to {target}; "
        "tables and columns those revisions added are dropped with their data.",
        yes,
    )
    migrations.downgrade(settings.admin_url, revision)
    console.print(f"schema at {migrations.current_revision(settings.admin_url) or 'base'}")


def downgrade_target(current: str | None, revision: str) -> str:
    """The revision `alembic downgrade REVISION` would leave the database at, or a
    PlanwiseError naming what is wrong (an unknown revision, a step past base)."""
    script = ScriptDirectory.from_config(migrations.alembic_config())
    if revision == "base":
        return "base"
    if re.fullmatch(r"-\d+", revision):
        target = current
        for _ in range(int(revision[1:])):
            if target is None:
                raise PlanwiseError(f"cannot go {revision} from {current or 'base'}: past base")
            down = script.get_revision(target).down_revision
            target = down if isinstance(down, str) or down is None else None
        return target or "base"
    try:
        found = script.get_revision(revision)
    except (RevisionError, CommandError):
        found = None
    if found is None:
        raise PlanwiseError(
            f"unknown revision {revision!r}: give a revision id, -N or base "
            "(`alembic history` lists them)"
        )
    return found.revision


@app.command()
def check() -> None:
    """Compare the models with the migrated database (`alembic check`). Exit 1 on drift."""
    drift = migrations.schema_drift(get_settings().admin_url)
    if drift:
        raise PlanwiseError(f"models and database differ:\n{drift}")
    console.print("no drift: models match the migrated schema")


@app.command()
def roles() -> None:
    """Set login passwords of app_service, app_read, supabase_admin from the environment."""
    settings = get_settings()
    passwords = configured_role_passwords(settings)
    if not passwords:
        raise PlanwiseError(
            "no password configured: set APP_SERVICE_PASSWORD (and APP_READ_PASSWORD, "
            "SUPABASE_ADMIN_PASSWORD) in the environment or .env"
        )
    changed = set_role_passwords(settings.admin_url, passwords)
    missing = sorted(set(passwords) - set(changed))
    for role in changed:
        console.print(f"- set the password of {role}")
    if missing:
        raise PlanwiseError(
            f"roles {', '.join(missing)} do not exist yet: run `planwise db migrate` first"
        )
