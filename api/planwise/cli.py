"""The `planwise` command: one Typer app, a sub-app per domain."""

from __future__ import annotations

import sys

import psycopg
import typer
from rich.console import Console

from planwise.config import ConfigError
from planwise.db.cli import app as db_app
from planwise.errors import PlanwiseError

app = typer.Typer(no_args_is_help=True, help="Planwise data platform.")
app.add_typer(db_app, name="db")

err_console = Console(stderr=True)


def main() -> None:
    """Run the CLI; known failures become a message and an exit code, not a traceback."""
    try:
        app()
    except ConfigError as error:
        err_console.print(f"[red]{error}[/red]")
        sys.exit(2)
    except PlanwiseError as error:
        err_console.print(f"[red]error:[/red] {error}")
        sys.exit(error.exit_code)
    except psycopg.OperationalError as error:
        err_console.print(f"[red]database unreachable:[/red] {str(error).strip()}")
        sys.exit(1)
