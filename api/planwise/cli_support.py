"""What every `planwise` command module shares: confirmation of destructive operations,
URLs fit to print, and the refusal of commands that only make sense on the managed cluster."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from planwise.config import Settings, get_settings
from planwise.errors import NotConfirmed, PlanwiseError

console = Console()


def masked(url: str) -> str:
    """The URL with its password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def confirm_or_abort(question: str, yes: bool) -> None:
    """Destructive operations say what they will do and need a yes."""
    console.print(question)
    if yes:
        return
    if not os.isatty(0) or not typer.confirm("Proceed?", default=False):
        raise NotConfirmed("not confirmed (pass --yes to proceed without asking)")


def managed_cluster_settings(elsewhere: str) -> Settings:
    """The settings, if they name the managed cluster; else say what to do instead."""
    settings = get_settings()
    if not settings.uses_managed_cluster:
        raise PlanwiseError(
            f"DATABASE_URL points at a server Planwise does not manage: {elsewhere}"
        )
    return settings
