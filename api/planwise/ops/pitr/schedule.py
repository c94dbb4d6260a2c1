"""What `planwise backup schedule` runs besides the logical backup: the PITR backup of the
day (full on PITR_FULL_BACKUP_WEEKDAY, differential otherwise) and `monitor sample`; and
the crontab line that runs it, with the real paths and the environment the job needs."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from planwise.config import PLANWISE_HOME, REPO_ROOT, get_settings
from planwise.db.cluster import Cluster
from planwise.ops.pitr.pgbackrest import Pitr

CRON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""cron's own PATH (/usr/bin:/bin) lacks /usr/sbin, where `runuser` is."""


def todays_backup_type(now: datetime) -> str:
    return "full" if now.weekday() == get_settings().pitr_full_backup_weekday else "diff"


def pitr_backups(now: datetime, say: Callable[[str], None]) -> None:
    """The day's pgBackRest backup into every repository this host backs up into.

    A differential backup with no full one before it is taken as full by pgBackRest. A
    `tls` repo2 is backed up by its repository host (its own cron).
    """
    settings = get_settings()
    if not settings.uses_managed_cluster:
        say("pitr: not the managed cluster (WAL archiving is the host's job): skipped")
        return
    manager = Pitr(Cluster(settings))
    if not manager.configured:
        say("pitr: not set up (`planwise pitr setup`): skipped")
        return
    kind = todays_backup_type(now)
    for repo in manager.repositories:
        if repo == 2 and settings.pitr_repo2_type == "tls":
            say(f"pitr: repo2 is backed up by its repository host {settings.pitr_repo2_host}")
            continue
        made = manager.backup(kind, repo)
        say(f"pitr: {made['type']} backup {made['label']} in repo{repo}")


def scheduled_run(now: datetime, say: Callable[[str], None]) -> None:
    """After the logical backup: PITR backups, then a size sample for growth figures."""
    from planwise.ops.monitor.cli import sample

    try:
        pitr_backups(now, say)
    finally:  # a failed PITR backup still fails the job, after the sample
        sample()


def planwise_executable() -> Path:
    """The console script of this interpreter's environment (the checkout's .venv)."""
    return (Path(sys.executable).parent / "planwise").absolute()


def cron_line(hour: int = 3, minute: int = 15) -> str:
    """A crontab line running `backup schedule --once` daily as this configuration does."""
    settings = get_settings()
    env = {"PATH": CRON_PATH, "PLANWISE_HOME": str(PLANWISE_HOME.absolute()),
           "PLANWISE_PG_PORT": str(settings.planwise_pg_port)}  # fmt: skip
    if settings.backup_dir:
        env["BACKUP_DIR"] = str(settings.backup_dir.absolute())
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    log = PLANWISE_HOME.absolute() / "backup-schedule.log"
    return (
        f"{minute} {hour} * * * cd {shlex.quote(str(REPO_ROOT))} && {assignments} "
        f"{shlex.quote(str(planwise_executable()))} backup schedule --once "
        f">> {shlex.quote(str(log))} 2>&1"
    )
