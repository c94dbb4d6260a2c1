"""`planwise backup …`: create, list, verify, restore, prune, schedule.

Exit codes: 0 done; 1 failed; 3 not confirmed; 4 verification failed (or, for `restore`,
the dump is one verification refuses: checksum or last verification failed).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from planwise.cli_support import confirm_or_abort, console, masked
from planwise.config import get_settings
from planwise.errors import PlanwiseError
from planwise.ops.backup import dumps as backups
from planwise.ops.pitr import schedule as pitr_schedule
from planwise.progress import steps

app = typer.Typer(no_args_is_help=True, help="Verified pg_dump backups with retention.")

KindOption = Annotated[str, typer.Option("--kind", help="daily | weekly | monthly")]


def _size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    raise AssertionError("unreachable")


def _age(taken: datetime) -> str:
    seconds = (datetime.now(UTC) - taken).total_seconds()
    for span, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= span:
            return f"{seconds / span:.0f}{unit}"
    return f"{seconds:.0f}s"


def take(kind: str) -> backups.Backup:
    if kind not in ("daily", "weekly", "monthly"):
        raise PlanwiseError(f"unknown kind {kind!r}: daily, weekly or monthly")
    settings = get_settings()
    started = time.perf_counter()
    with steps(console) as step:
        made = backups.create_backup(
            settings.admin_url, settings.backup_directory, kind,  # type: ignore[arg-type]
            settings.backup_lock_wait_timeout_ms, step,
        )  # fmt: skip
    rows = sum(made.manifest["row_counts"].values())
    console.print(
        f"created {made.path} ({_size(made.manifest['size_bytes'])}, {rows} rows, "
        f"revision {made.manifest['alembic_revision']}) in {time.perf_counter() - started:.1f}s"
    )
    return made


@app.command()
def create(kind: KindOption = "daily") -> None:
    """pg_dump --format=custom of the database, with a JSON manifest beside it."""
    take(kind)


@app.command("list")
def list_() -> None:
    """The backups in BACKUP_DIR, oldest first."""
    table = Table("name", "kind", "age", "size", "revision", "verified")
    for item in backups.list_backups(get_settings().backup_directory):
        state = item.manifest.get("verified")
        verified = "-" if state is None else "[green]yes[/green]" if state else "[red]FAILED[/red]"
        table.add_row(
            item.name, item.manifest["kind"], _age(item.taken_at),
            _size(item.manifest["size_bytes"]), str(item.manifest["alembic_revision"]), verified,
        )  # fmt: skip
    console.print(table)


@app.command()
def verify(name: str) -> None:
    """Checksum, pg_restore --list, and a restore into a scratch database (row counts)."""
    started = time.perf_counter()
    chosen = backups.load(get_settings().backup_directory, name)
    with steps(console) as step:
        checked = backups.verify_backup(chosen, get_settings().admin_url, step)
    console.print(
        f"verified {checked.name}: checksum, listing and a scratch restore with matching "
        f"row counts ({time.perf_counter() - started:.1f}s)"
    )


@app.command()
def restore(
    name: str,
    target_url: Annotated[str | None, typer.Option(help="restore there instead")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="restore even a dump whose checksum or last verification failed"
        ),
    ] = False,
) -> None:
    """Replace the target database's contents with a backup (after a safety backup).

    Refuses (exit 4), before anything else, a dump whose checksum differs from its
    manifest or whose last verification failed, unless --force."""
    settings = get_settings()
    chosen = backups.load(settings.backup_directory, name)
    target = target_url or settings.admin_url
    with steps(console) as step, step("sha256 and last verification"):
        problems = backups.trust_problems(chosen)
    if not force:
        backups.ensure_trustworthy(chosen, problems)
    for problem in problems:
        console.print(f"[yellow]--force:[/yellow] restoring although {problem}")
    if chosen.manifest.get("verified") is None:
        console.print(f"note: {chosen.name} has not been verified (`planwise backup verify`)")
    confirm_or_abort(
        f"This replaces everything in {masked(target)} with {chosen.name} "
        f"(revision {chosen.manifest['alembic_revision']}, taken {chosen.taken_at:%Y-%m-%d %H:%M} "
        "UTC), after taking a safety backup of it.",
        yes,
    )
    backups.ensure_restorable(chosen)
    started = time.perf_counter()
    with steps(console) as step:
        safety = backups.create_backup(
            target, settings.backup_directory, "safety", settings.backup_lock_wait_timeout_ms,
            lambda name: step(f"safety backup: {name}"),
        )  # fmt: skip
        console.print(f"safety backup of the target: {safety.name}")
        backups.restore_backup(chosen, target, step)
    console.print(
        f"restored {chosen.name} into {masked(target)} ({time.perf_counter() - started:.1f}s)"
    )


@app.command()
def prune(
    now: Annotated[
        datetime | None, typer.Option(help="pretend it is this time (ISO 8601, UTC)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say what would go")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Keep the newest backup of each of the last 30 days, 26 weeks and 24 months; safety
    and pre-migration backups BACKUP_KEEP_SAFETY_DAYS days; backups after --now."""
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    settings = get_settings()
    decisions = backups.plan_retention(
        backups.list_backups(settings.backup_directory), moment, settings.backup_keep_safety_days
    )
    doomed = [decision for decision in decisions if not decision.keep]
    for decision in decisions:
        verdict = "[green]keep[/green]" if decision.keep else "[red]delete[/red]"
        why = ", ".join(decision.reasons) or "outside every retention window"
        console.print(f"{verdict} {decision.backup.name}: {why}")
    console.print(f"{len(decisions) - len(doomed)} kept, {len(doomed)} to delete")
    if dry_run or not doomed:
        return
    confirm_or_abort(f"Delete {len(doomed)} backup(s) listed above?", yes)
    for decision in doomed:
        backups.delete_backup(decision.backup)
    console.print(f"deleted {len(doomed)} backup(s)")


@app.command()
def schedule(
    once: Annotated[bool, typer.Option("--once", help="one run, then exit")] = False,
    interval_hours: Annotated[float, typer.Option(min=0.01)] = 24,
    print_cron: Annotated[bool, typer.Option("--print-cron", help="print a crontab line")] = False,
) -> None:
    """Daily backup, verification, pruning, PITR backup and size sample in a loop (or a
    cron line to do the same)."""
    if print_cron:
        console.print(pitr_schedule.cron_line(), highlight=False, soft_wrap=True)
        return
    while True:
        console.log("scheduled run: backup, verify, prune, pitr backup, monitor sample")
        made = take("daily")
        backups.verify_backup(made, get_settings().admin_url)
        console.log(f"verified {made.name}")
        prune(now=None, dry_run=False, yes=True)
        pitr_schedule.scheduled_run(datetime.now(UTC), console.log)
        if once:
            return
        time.sleep(interval_hours * 3600)
