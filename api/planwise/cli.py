"""The `planwise` command: one Typer app, a sub-app per domain."""

from __future__ import annotations

import errno
import importlib
import re
import socket
import sys
from typing import Annotated

import typer
import typer.core
import typer.main
from pydantic_settings import SettingsError
from rich.console import Console
from typer._click import Command, Context  # Typer vendors Click; its groups take these

from planwise.config import ConfigError, get_settings
from planwise.errors import PlanwiseError

SUB_APPS = {
    "db": "planwise.ops.database.cli",
    "places": "planwise.places.cli",
    "demo": "planwise.demo.cli",
    "backup": "planwise.ops.backup.cli",
    "migrate": "planwise.ops.promotion.cli",
    "pgbouncer": "planwise.ops.pgbouncer.cli",
    "monitor": "planwise.ops.monitor.cli",
    "pitr": "planwise.ops.pitr.cli",
    "bench": "planwise.bench.cli",
    "supabase": "planwise.supabase.cli",
    "functions": "planwise.functions.cli",
    "users": "planwise.users.cli",
    "cluster": "planwise.ops.cluster.cli",
}


class LazySubApps(typer.core.TyperGroup):
    """Imports a sub-app's module only when that sub-app runs (or for `--help`): together
    they pull in SQLAlchemy, Alembic, FastAPI and the bench, a second per invocation."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *SUB_APPS]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in SUB_APPS:
            return super().get_command(ctx, cmd_name)
        command = typer.main.get_group(importlib.import_module(SUB_APPS[cmd_name]).app)
        command.name = cmd_name
        return command


app = typer.Typer(cls=LazySubApps, no_args_is_help=True)


@app.callback()
def planwise() -> None:
    """Planwise data platform."""


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
    except PlanwiseError as error:
        err_console.print(f"[red]error:[/red] {error}")
        sys.exit(error.exit_code)
    except Exception as error:
        known = describe_library_error(error)
        if known is None:
            raise
        err_console.print(known)
        sys.exit(1)


def describe_library_error(error: Exception) -> str | None:
    """One line for Alembic's and the drivers' expected failures (an unknown revision, a
    database that does not answer). Their modules are looked up, not imported: an error
    class whose module no command loaded cannot have been raised."""
    alembic_exc = sys.modules.get("alembic.util.exc")
    if alembic_exc is not None and isinstance(error, alembic_exc.CommandError):
        return f"[red]error:[/red] {error}"
    psycopg = sys.modules.get("psycopg")
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    operational = tuple(
        module.OperationalError for module in (psycopg, sqlalchemy_exc) if module is not None
    )
    if not operational or not isinstance(error, operational):
        return None
    original = getattr(error, "orig", None) or error
    reason = str(original).strip().splitlines()[0]
    cancelled = psycopg is not None and isinstance(original, psycopg.errors.QueryCanceled)
    return f"[red]{'query cancelled' if cancelled else 'database unreachable'}:[/red] {reason}"
