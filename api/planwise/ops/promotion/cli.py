"""`planwise migrate status|apply`: promote migrations safely (see ops/promotion.py).

Exit codes: 0 done (or nothing pending); 1 failed (and rolled back); 3 not confirmed.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from planwise.cli_support import confirm_or_abort, console
from planwise.config import get_settings
from planwise.errors import NotConfirmed, PlanwiseError
from planwise.ops.promotion import promote as promotion

app = typer.Typer(no_args_is_help=True, help="Promote migrations: status, apply.")

EnvOption = Annotated[str | None, typer.Option("--env", help="a name from MIGRATION_ENVIRONMENTS")]


def target_url(env: str | None) -> str:
    settings = get_settings()
    if env is None:
        return settings.admin_url
    try:
        return settings.migration_environments[env]
    except KeyError:
        known = ", ".join(settings.migration_environments) or "none configured"
        raise PlanwiseError(
            f"unknown environment {env!r} (MIGRATION_ENVIRONMENTS has: {known})"
        ) from None


@app.command()
def status(
    env: EnvOption = None,
    show_sql: Annotated[bool, typer.Option("--sql", help="print the SQL they would run")] = False,
) -> None:
    """The current revision and the pending ones."""
    url = target_url(env)
    state = promotion.status(url)
    console.print(
        f"{promotion.describe_target(url)}: at {state.current or 'base'}, head {state.head}"
    )
    table = Table("pending revision", "description", "changes row counts of")
    for item in state.pending:
        table.add_row(item.revision, item.message, ", ".join(item.changes_row_counts) or "-")
    console.print(table if state.pending else "nothing pending")
    if show_sql and state.pending:
        console.print(promotion.pending_sql(url), highlight=False, soft_wrap=True)


@app.command()
def apply(
    env: EnvOption = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="do not ask (required for production)")
    ] = False,
) -> None:
    """Check for drift, back up and verify, migrate, check integrity; roll back on failure."""
    url = target_url(env)
    state = promotion.status(url)
    if not state.pending:
        console.print(f"{promotion.describe_target(url)} is at head ({state.head}): nothing to do")
        return
    if env == promotion.PRODUCTION and not yes:
        raise NotConfirmed("production needs --yes")
    confirm_or_abort(
        f"This migrates {promotion.describe_target(url)} from {state.current or 'base'} to "
        f"{state.head} ({len(state.pending)} revision(s)), after a verified backup.",
        yes,
    )
    settings = get_settings()
    final = promotion.apply(
        url,
        backup_dir=settings.backup_directory,
        lock_wait_timeout_ms=settings.backup_lock_wait_timeout_ms,
        say=console.print,
    )
    console.print(f"done: {promotion.describe_target(url)} is at {final.current}")
