"""`planwise supabase status`: URLs and keys, named as `supabase status` names them.

Exit codes: 0 printed; 2 bad configuration (no SUPABASE_JWT_SECRET).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from planwise.config import get_settings
from planwise.supabase.keys import api_keys, jwt_secret

app = typer.Typer(no_args_is_help=True, help="The local stack as Supabase's clients see it.")
console = Console()

DEFAULT_API_URL = "http://127.0.0.1:8000"
"""Where `planwise serve` listens by default; pass --api-url when it listens elsewhere."""


class Output(StrEnum):
    pretty = "pretty"
    env = "env"
    json = "json"


def status_values(api_url: str) -> dict[str, str]:
    """The names and values `supabase status -o env` prints, for this stack."""
    settings = get_settings()
    keys = api_keys(settings)
    base = api_url.rstrip("/")
    return {
        "API_URL": base,
        "REST_URL": f"{base}/rest/v1",
        "DB_URL": settings.admin_url,
        "JWT_SECRET": jwt_secret(settings),
        "ANON_KEY": keys.anon,
        "SERVICE_ROLE_KEY": keys.service_role,
    }


@app.command()
def status(
    output: Annotated[
        Output, typer.Option("--output", "-o", help="pretty (a table), env or json")
    ] = Output.pretty,
    api_url: Annotated[
        str, typer.Option(help="the API's public URL (where `planwise serve` listens)")
    ] = DEFAULT_API_URL,
) -> None:
    """Print API_URL, DB_URL, JWT_SECRET, ANON_KEY and SERVICE_ROLE_KEY of the local stack."""
    values = status_values(api_url)
    if output is Output.env:
        for name, value in values.items():
            typer.echo(f"{name}={json.dumps(value)}")
    elif output is Output.json:
        typer.echo(json.dumps(values, indent=2))
    else:
        table = Table(title="Planwise as Supabase", show_header=False)
        table.add_column("name", no_wrap=True)
        table.add_column("value", overflow="fold")
        for name, value in values.items():
            table.add_row(name, value)
        console.print(table, soft_wrap=True)
