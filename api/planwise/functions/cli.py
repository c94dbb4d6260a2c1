"""`planwise functions new NAME | list | serve`, as `supabase functions new | list | serve`.

Exit codes: 0 done; 1 a bad or taken name, or an unreadable supabase/config.toml.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from planwise.config import get_settings
from planwise.functions.catalog import functions_dir, list_functions, new_function

app = typer.Typer(no_args_is_help=True, help="Edge Functions: supabase/functions/NAME/index.ts.")
console = Console()


@app.command()
def new(name: Annotated[str, typer.Argument(help="the function's name (its URL path)")]) -> None:
    """Create supabase/functions/NAME/index.ts (a Deno.serve handler) and its deno.json."""
    function = new_function(get_settings(), name)
    typer.echo(f"Created {function.entrypoint}")
    typer.echo(f"Call it at /functions/v1/{function.name} (planwise serve)")


@app.command("list")
def list_command() -> None:
    """The functions, whether each verifies the caller's JWT, and where it lives."""
    settings = get_settings()
    functions = list_functions(settings)
    if not functions:
        typer.echo(f"No functions in {functions_dir(settings)}")
        return
    table = Table(title=f"Edge Functions in {functions_dir(settings)}")
    for column in ("name", "verify_jwt", "path"):
        table.add_column(column, overflow="fold")
    for function in functions:
        table.add_row(
            function.name, str(function.verify_jwt).lower(), f"/functions/v1/{function.name}"
        )
    console.print(table, soft_wrap=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Serve the functions (and the rest of the API) at http://HOST:PORT/functions/v1/NAME."""
    from planwise.cli import serve as serve_api

    settings = get_settings()
    for function in list_functions(settings):
        typer.echo(f"Serving {function.name} at http://{host}:{port}/functions/v1/{function.name}")
    serve_api(host=host, port=port, workers=1, reload=False)
