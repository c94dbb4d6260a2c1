"""`planwise users promote|demote|deactivate|activate NAME`: administer accounts without SQL.

Run with the admin URL (MIGRATION_DATABASE_URL, else the managed cluster's superuser): the
API's own role may not change anyone's `role` or `is_active` (column grants). A deactivated
user's tokens stop working at once, since every request reads the user's row.

Exit codes: 0 done (or already so); 1 no such user, or the database refused.
"""

from __future__ import annotations

from typing import Annotated

import psycopg
import typer

from planwise.cli_support import console
from planwise.config import get_settings
from planwise.db.engine import libpq_url
from planwise.errors import PlanwiseError

app = typer.Typer(no_args_is_help=True, help="Accounts: make admins, demote, deactivate.")

NameArgument = Annotated[str, typer.Argument(help="the username", show_default=False)]


def _set(username: str, column: str, value: object) -> bool:
    """Set one column of the user's row; False if it had that value already."""
    assert column in ("role", "is_active")
    with psycopg.connect(
        libpq_url(get_settings().admin_url), application_name="planwise-users"
    ) as conn:
        row = conn.execute(
            f'SELECT {column} FROM "user" WHERE username = %s FOR UPDATE',  # noqa: S608
            (username,),
        ).fetchone()
        if row is None:
            raise PlanwiseError(
                f"no user {username!r} (or the admin URL's role cannot see it: FORCEd "
                "row-level security hides rows from a non-superuser owner)"
            )
        if row[0] == value:
            return False
        conn.execute(
            f'UPDATE "user" SET {column} = %s WHERE username = %s',  # noqa: S608
            (value, username),
        )
    return True


def _report(username: str, what: str, changed: bool) -> None:
    console.print(f"{username} {'is now' if changed else 'was already'} {what}")


@app.command()
def promote(username: NameArgument) -> None:
    """Make USERNAME an admin (may write places, read `GET /api/v1/admin/db`)."""
    changed = _set(username, "role", "admin")
    _report(username, "an admin", changed)


@app.command()
def demote(username: NameArgument) -> None:
    """Make USERNAME a plain user again."""
    changed = _set(username, "role", "user")
    _report(username, "a plain user", changed)


@app.command()
def deactivate(username: NameArgument) -> None:
    """Refuse USERNAME's sign-ins and tokens from now on (their data stays)."""
    changed = _set(username, "is_active", False)
    _report(username, "deactivated", changed)


@app.command()
def activate(username: NameArgument) -> None:
    """Let a deactivated USERNAME sign in again."""
    changed = _set(username, "is_active", True)
    _report(username, "active", changed)
