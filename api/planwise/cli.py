"""The `planwise` command: one Typer app, a sub-app per domain."""

from __future__ import annotations

import errno
import re
import socket
import sys
from typing import Annotated

import alembic.util.exc
import psycopg
import sqlalchemy.exc
import typer
from pydantic_settings import SettingsError
from rich.console import Console

from planwise.bench.cli import app as bench_app
from planwise.config import ConfigError, get_settings
from planwise.demo.cli import app as demo_app
from planwise.errors import PlanwiseError
from planwise.functions.cli import app as functions_app
from planwise.ops.backup.cli import app as backup_app
from planwise.ops.cluster.cli import app as cluster_app
from planwise.ops.database.cli import app as db_app
from planwise.ops.monitor.cli import app as monitor_app
from planwise.ops.pgbouncer.cli import app as pgbouncer_app
from planwise.ops.pitr.cli import app as pitr_app
from planwise.ops.promotion.cli import app as migrate_app
from planwise.places.cli import app as places_app
from planwise.supabase.cli import app as supabase_app
from planwise.users.cli import app as users_app

app = typer.Typer(no_args_is_help=True, help="Planwise data platform.")
app.add_typer(db_app, name="db")
app.add_typer(places_app, name="places")
app.add_typer(demo_app, name="demo")
app.add_typer(backup_app, name="backup")
app.add_typer(migrate_app, name="migrate")
app.add_typer(pgbouncer_app, name="pgbouncer")
app.add_typer(monitor_app, name="monitor")
app.add_typer(pitr_app, name="pitr")
app.add_typer(bench_app, name="bench")
app.add_typer(supabase_app, name="supabase")
app.add_typer(functions_app, name="functions")
app.add_typer(users_app, name="users")
app.add_typer(cluster_app, name="cluster")

err_console = Console(stderr=True, soft_wrap=True)  # one line per message, as cron mails it


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="uvicorn worker processes")] = 1,
    reload: Annotated[bool, typer.Option(help="restart on code changes (development)")] = False,
) -> None:
    """Run the HTTP API (uvicorn). Refuses to start in production with a default secret."""
    import uvicorn

    from planwise.http_limits import server_options

    settings = get_settings()
    settings.check_servable()
    ensure_port_free(host, port)
    try:
        uvicorn.run(
            "planwise.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            proxy_headers=True,
            access_log=False,
            **server_options(settings),
        )
    except SystemExit as stop:  # uvicorn's "startup failed" is 3, our "not confirmed"
        if stop.code == UVICORN_STARTUP_FAILURE:
            raise PlanwiseError("the API did not start (see the lines above)") from None
        raise


UVICORN_STARTUP_FAILURE = 3


def ensure_port_free(host: str, port: int) -> None:
    """Refuse, with a message and exit code 1, a port someone else listens on (uvicorn
    would log a traceback-free error but exit 3, which means "not confirmed" here)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PlanwiseError(
                    f"{host}:{port} is already in use: stop what listens there or pass "
                    "another --port"
                ) from None
            raise PlanwiseError(f"cannot listen on {host}:{port}: {error.strerror}") from None


_SETTINGS_FIELD = re.compile(r'field "(\w+)"')


def describe_settings_error(error: SettingsError) -> str:
    """pydantic-settings' "error parsing value for field …" (a JSON variable that is not
    JSON), named as the user sets it."""
    match = _SETTINGS_FIELD.search(str(error))
    name = match[1].upper() if match else "a setting"
    return f"Invalid configuration:\n  {name}: not valid JSON"


def main() -> None:
    """Run the CLI; known failures become a message and an exit code, not a traceback."""
    try:
        app()
    except ConfigError as error:
        err_console.print(f"[red]{error}[/red]")
        sys.exit(2)
    except SettingsError as error:
        err_console.print(f"[red]{describe_settings_error(error)}[/red]")
        sys.exit(2)
    except alembic.util.exc.CommandError as error:  # e.g. an unknown revision
        err_console.print(f"[red]error:[/red] {error}")
        sys.exit(1)
    except PlanwiseError as error:
        err_console.print(f"[red]error:[/red] {error}")
        sys.exit(error.exit_code)
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as error:
        original = getattr(error, "orig", None) or error
        reason = str(original).strip().splitlines()[0]
        what = (
            "query cancelled" if isinstance(original, psycopg.errors.QueryCanceled)
            else "database unreachable"
        )  # fmt: skip
        err_console.print(f"[red]{what}:[/red] {reason}")
        sys.exit(1)
