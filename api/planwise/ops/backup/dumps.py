"""Verified logical backups (pg_dump custom format) with calendar retention.

A backup is `backup_YYYYMMDD_HHMMSS.dump` plus `backup_YYYYMMDD_HHMMSS.json`, its
manifest: size, sha256, database, server version, Alembic revision, exact row counts,
start and end time, kind, and — once `verify` has restored it into a scratch database
and compared the row counts — when it was verified. The dump is written under a
temporary name and renamed when complete, after its manifest: a failed dump never leaves
a file that looks like a backup.

Files: `BACKUP_DIR` is 0700 and dumps and manifests 0600 (they hold password hashes).
Every file is written to a temporary name in the same directory (`.NAME.PID.tmp`),
fsynced and renamed; on any OSError (a full disk at any step) the temporaries go and the
error is one line. Temporaries a crashed run left (its process is gone) are removed by
the next `create`.

Dumps connect with the admin URL (MIGRATION_DATABASE_URL; on Supabase the `postgres`
role): FORCEd row-level security would hide rows from anyone else. Credentials go to the
child processes through PG* environment variables, never through argv (visible in `ps`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import psycopg
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy.engine import make_url

from planwise.db import migrations
from planwise.db.engine import libpq_url, pg_environment
from planwise.errors import PlanwiseError
from planwise.progress import StepHook, no_progress

PG_BIN = Path("/usr/lib/postgresql/15/bin")
COUNTED_TABLES = ("user", "place", "review", "preference", "alembic_version")
NAME_PATTERN = re.compile(r"^backup_(\d{8}_\d{6})\.dump$")
TEMPORARY_PATTERN = re.compile(
    r"^\.backup_\d{8}_\d{6}\.(?:dump|json)(?:\.(\d+))?\.(?:tmp|partial)$"
)
"""Our temporaries: `.backup_….dump.PID.tmp` and `.backup_….json.PID.tmp` (and the
PID-less `.partial`/`.tmp` names of earlier releases)."""
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
Kind = Literal["daily", "weekly", "monthly", "safety", "pre-migration"]
CALENDAR_KINDS = ("daily", "weekly", "monthly")
"""Scheduled backups, thinned by the calendar; the others (a restore's safety backup,
`migrate apply`'s pre-migration one) are kept for a number of days instead."""
DEFAULT_KEEP_SAFETY_DAYS = 7

# Retention: the design document's "daily for 30 days, weekly for 6 months, monthly for
# 2 years", as grandfather-father-son buckets.
KEEP_DAILY_DAYS = 30
KEEP_WEEKLY_WEEKS = 26
KEEP_MONTHLY_MONTHS = 24


class VerificationFailed(PlanwiseError):
    exit_code = 4


@dataclass(frozen=True)
class Backup:
    path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def taken_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["finished_at"])

    @property
    def verified(self) -> bool:
        return bool(self.manifest.get("verified_at")) and bool(self.manifest.get("verified"))

    @property
    def manifest_path(self) -> Path:
        return self.path.with_suffix(".json")

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind") or "daily")


def _run(command: list[str], url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=pg_environment(url, application_name="planwise-backup"),
        capture_output=True,
        text=True,
        check=False,
    )


def _count_rows(conn: psycopg.Connection[Any]) -> dict[str, int]:
    counts = {}
    for table in COUNTED_TABLES:
        if conn.execute("SELECT to_regclass(%s)", (f'public."{table}"',)).fetchone() == (None,):
            continue
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        counts[table] = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
    return counts


def row_counts(url: str) -> dict[str, int]:
    with psycopg.connect(libpq_url(url), application_name="planwise-backup") as conn:
        return _count_rows(conn)


def _server_facts(url: str) -> tuple[str, str, str | None]:
    """Database name, server version and Alembic revision (None before any migration)."""
    with psycopg.connect(libpq_url(url), application_name="planwise-backup") as conn:
        row = conn.execute("SELECT current_database(), current_setting('server_version')")
        database, version = row.fetchone()  # type: ignore[misc]
        revision = None
        if conn.execute("SELECT to_regclass('public.alembic_version')").fetchone() != (None,):
            found = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = str(found[0]) if found else None
    return str(database), str(version), revision


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _disk_error(error: OSError, directory: Path, what: str) -> PlanwiseError:
    """One line for an OSError while writing in BACKUP_DIR (the temporaries are gone)."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on the device"
    else:
        reason = error.strerror or str(error)
    return PlanwiseError(f"{what}: {reason} in {directory}; nothing left behind, free space")


def prepare_directory(directory: Path) -> list[Path]:
    """BACKUP_DIR exists with mode 0700, its dumps and manifests are 0600, and the
    temporaries of runs that died (their PID is gone, or none is recorded) are removed.
    Returns the removed temporaries."""
    directory.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
    if directory.stat().st_mode & 0o777 != DIRECTORY_MODE:
        directory.chmod(DIRECTORY_MODE)
    removed = []
    for path in directory.iterdir():
        match = TEMPORARY_PATTERN.match(path.name)
        if match and not (match[1] and Path(f"/proc/{match[1]}").exists()):
            path.unlink(missing_ok=True)
            removed.append(path)
        elif path.name.startswith("backup_") and path.stat().st_mode & 0o077:
            path.chmod(FILE_MODE)  # written by an earlier release
    return removed


def _write_private(path: Path, data: bytes) -> None:
    """`data` to `path`, mode 0600: temporary name, fsync, rename; the temporary goes on
    any OSError (which is raised)."""
    temporary = _temporary(path)
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    try:
        _write_private(path, json.dumps(manifest, indent=2, sort_keys=True).encode())
        _fsync_directory(path.parent)
    except OSError as error:
        raise _disk_error(error, path.parent, f"writing the manifest {path.name}") from None


def create_backup(
    url: str,
    directory: Path,
    kind: Kind = "daily",
    lock_wait_timeout_ms: int = 60_000,
    progress: StepHook = no_progress,
) -> Backup:
    """pg_dump to a temporary name; manifest; rename. Nothing complete-looking on failure,
    and no temporary left: on any OSError (a full disk) one line, the temporaries removed.
    Steps (for `progress`): pg_dump, sha256 of the dump, writing the manifest."""
    try:
        prepare_directory(directory)
    except OSError as error:
        raise _disk_error(error, directory, "preparing the backup directory") from None
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%d_%H%M%S")
    final = directory / f"backup_{stamp}.dump"
    while final.exists():  # two backups in one second: keep both
        started += timedelta(seconds=1)
        stamp = started.strftime("%Y%m%d_%H%M%S")
        final = directory / f"backup_{stamp}.dump"
    partial = _temporary(final)
    manifest_path = final.with_suffix(".json")
    database, server_version, revision = _server_facts(url)
    stage = ""

    def begin(name: str) -> AbstractContextManager[None]:
        nonlocal stage
        stage = name
        return progress(name)

    try:
        with begin("pg_dump"):
            # Created 0600 before pg_dump opens it (fopen "wb" keeps the mode).
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE))
            counts = _dump(url, partial, lock_wait_timeout_ms, directory)
        with begin("sha256 of the dump"):
            with partial.open("rb") as handle:
                os.fsync(handle.fileno())
            manifest = {
                "name": final.name,
                "kind": kind,
                "database": database,
                "server_version": server_version,
                "alembic_revision": revision,
                "row_counts": counts,
                "size_bytes": partial.stat().st_size,
                "sha256": sha256_of(partial),
                "started_at": started.isoformat(),
                "finished_at": datetime.now(UTC).isoformat(),
                "verified": None,
                "verified_at": None,
            }
        with begin("writing the manifest"):
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            _write_private(manifest_path, data)
            try:
                partial.replace(final)
            except OSError:
                manifest_path.unlink(missing_ok=True)
                raise
            _fsync_directory(directory)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise _disk_error(error, directory, f"backup ({stage})") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Backup(final, manifest)


def _dump(url: str, partial: Path, lock_wait_timeout_ms: int, directory: Path) -> dict[str, int]:
    """pg_dump into `partial`; the row counts of the very snapshot it dumps (so that
    verification compares like with like even while the application keeps writing)."""
    with psycopg.connect(libpq_url(url), application_name="planwise-backup") as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
        counts = _count_rows(conn)
        result = _run(
            [str(PG_BIN / "pg_dump"), "--format=custom", f"--snapshot={snapshot}",
             f"--lock-wait-timeout={lock_wait_timeout_ms}", "--file", str(partial)],
            url,
        )  # fmt: skip
        conn.rollback()
    if result.returncode != 0:
        if "No space left on device" in result.stderr:
            raise _disk_error(OSError(errno.ENOSPC, "full"), directory, "backup (pg_dump)")
        raise PlanwiseError(f"pg_dump failed: {result.stderr.strip()}")
    return counts


def load(directory: Path, name: str) -> Backup:
    """The backup called `name` (with or without `.dump`)."""
    path = directory / (name if name.endswith(".dump") else f"{name}.dump")
    if not NAME_PATTERN.match(path.name) or not path.is_file():
        raise PlanwiseError(f"no backup {name!r} in {directory} (see `planwise backup list`)")
    manifest_path = path.with_suffix(".json")
    if not manifest_path.is_file():
        raise PlanwiseError(f"{path.name} has no manifest ({manifest_path.name}): not ours")
    return Backup(path, json.loads(manifest_path.read_text()))


def list_backups(directory: Path) -> list[Backup]:
    """Complete backups, oldest first (temporary files are not backups)."""
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob("backup_*.dump")):
        if NAME_PATTERN.match(path.name) and path.with_suffix(".json").is_file():
            found.append(Backup(path, json.loads(path.with_suffix(".json").read_text())))
    return sorted(found, key=lambda backup: backup.taken_at)


def _scratch_url(url: str) -> tuple[str, str, str]:
    """(maintenance URL, scratch URL, scratch name) on the same server."""
    target = make_url(libpq_url(url))
    name = f"planwise_verify_{uuid.uuid4().hex[:8]}"
    maintenance = target.set(database="postgres").render_as_string(hide_password=False)
    return maintenance, target.set(database=name).render_as_string(hide_password=False), name


def verify_backup(backup: Backup, url: str, progress: StepHook = no_progress) -> Backup:
    """Checksum, `pg_restore --list`, and a real restore whose row counts must match.
    Steps (for `progress`): sha256, pg_restore --list, scratch restore and row counts,
    writing the manifest."""
    problems = []
    with progress("sha256"):
        if sha256_of(backup.path) != backup.manifest["sha256"]:
            problems.append("checksum differs from the manifest")
    with progress("pg_restore --list"):
        listing = _run([str(PG_BIN / "pg_restore"), "--list", str(backup.path)], url)
        if listing.returncode != 0:
            problems.append(f"pg_restore --list failed: {listing.stderr.strip()}")
    if not problems:
        with progress("scratch restore and row counts"):
            problems.extend(_scratch_restore(backup, url))
    manifest = {
        **backup.manifest,
        "verified": not problems,
        "verified_at": datetime.now(UTC).isoformat(),
        "verification_problems": problems,
    }
    with progress("writing the manifest"):
        _write_manifest(backup.manifest_path, manifest)
    verified = Backup(backup.path, manifest)
    if problems:
        raise VerificationFailed(f"{backup.name} failed verification: " + "; ".join(problems))
    return verified


def _scratch_restore(backup: Backup, url: str) -> list[str]:
    """Restore into a scratch database on the same server; what went wrong, if anything."""
    maintenance, scratch_url, scratch = _scratch_url(url)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        restored = _run(
            [str(PG_BIN / "pg_restore"), "--exit-on-error", "--no-owner",
             "--dbname", scratch, str(backup.path)],
            scratch_url,
        )  # fmt: skip
        if restored.returncode != 0:
            return [f"restore failed: {restored.stderr.strip()[:500]}"]
        counts = row_counts(scratch_url)
        if counts != backup.manifest["row_counts"]:
            return [
                f"row counts after restore {counts} != manifest {backup.manifest['row_counts']}"
            ]
        return []
    finally:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch))
            )


def trust_problems(backup: Backup) -> list[str]:
    """Why this dump must not be restored: its bytes are not what its manifest says, or
    its last verification failed. Empty when it may be (verified or not verified yet)."""
    problems = []
    actual = sha256_of(backup.path)
    if actual != backup.manifest.get("sha256"):
        problems.append(
            "its checksum differs from the manifest's (the file changed after it was "
            f"written: sha256 {actual[:12]}… != {str(backup.manifest.get('sha256'))[:12]}…)"
        )
    if backup.manifest.get("verified") is False:
        why = "; ".join(backup.manifest.get("verification_problems") or []) or "no reason kept"
        problems.append(
            f"its last verification, at {backup.manifest.get('verified_at')}, failed: {why}"
        )
    return problems


def ensure_trustworthy(backup: Backup, problems: list[str] | None = None) -> None:
    """Refuse (exit 4) a dump that verification refuses or would refuse by its checksum
    (`problems`: `trust_problems(backup)`, when the caller has them already)."""
    problems = trust_problems(backup) if problems is None else problems
    if problems:
        raise VerificationFailed(
            f"refusing to restore {backup.name}: "
            + "; ".join(problems)
            + ". Nothing was changed. Restore another backup (`planwise backup list`), or "
            "pass --force to restore this one anyway."
        )


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    return {revision.revision for revision in script.walk_revisions()}


def ensure_restorable(backup: Backup) -> None:
    """Refuse a dump from a revision this code does not know (made by a newer release)."""
    revision = backup.manifest.get("alembic_revision")
    if revision is not None and revision not in known_revisions():
        raise PlanwiseError(
            f"{backup.name} is at Alembic revision {revision}, which this code does not know "
            "(a newer release made it?): refusing to restore a schema we cannot migrate"
        )


def restore_backup(backup: Backup, url: str, progress: StepHook = no_progress) -> None:
    """pg_restore --clean --if-exists into `url` (the caller took the safety backup)."""
    ensure_restorable(backup)
    with progress("pg_restore"):
        _pg_restore(backup, url)


def _pg_restore(backup: Backup, url: str) -> None:
    result = _run(
        [str(PG_BIN / "pg_restore"), "--clean", "--if-exists", "--exit-on-error",
         "--single-transaction", "--dbname", make_url(libpq_url(url)).database or "",
         str(backup.path)],
        url,
    )  # fmt: skip
    if result.returncode != 0:
        raise PlanwiseError(f"pg_restore failed (nothing changed): {result.stderr.strip()}")


# -- retention --------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    backup: Backup
    keep: bool
    reasons: tuple[str, ...]


def _months_back(day: date, months: int) -> tuple[int, int]:
    index = day.year * 12 + day.month - 1 - months
    return index // 12, index % 12 + 1


def plan_retention(
    backups: Iterable[Backup], now: datetime, keep_safety_days: int = DEFAULT_KEEP_SAFETY_DAYS
) -> list[Decision]:
    """Grandfather-father-son for the scheduled (daily, weekly, monthly) backups: keep the
    newest of each of the last 30 days, of each of the last 26 ISO weeks and of each of
    the last 24 months. Safety and pre-migration backups are kept `keep_safety_days`
    days. Always kept: the newest verified backup, and any backup taken after `now` (it
    is ignored: it neither goes nor takes the place of an older one). Everything else
    may go. Decisions are oldest first."""
    ordered = sorted(backups, key=lambda backup: backup.taken_at)
    today = now.astimezone(UTC).date()
    first_day = today - timedelta(days=KEEP_DAILY_DAYS - 1)
    this_week = today - timedelta(days=today.weekday())
    first_week = this_week - timedelta(weeks=KEEP_WEEKLY_WEEKS - 1)
    first_month = _months_back(today, KEEP_MONTHLY_MONTHS - 1)
    past = [backup for backup in ordered if backup.taken_at <= now]

    newest: dict[str, Backup] = {}  # bucket label → newest backup in it
    for backup in past:  # later ones overwrite: the newest of each bucket remains
        if backup.kind not in CALENDAR_KINDS:
            continue
        day = backup.taken_at.astimezone(UTC).date()
        week = day - timedelta(days=day.weekday())
        if day >= first_day:
            newest[f"day {day}"] = backup
        if week >= first_week:
            newest[f"week {week:%G-W%V}"] = backup
        if (day.year, day.month) >= first_month:
            newest[f"month {day:%Y-%m}"] = backup

    reasons: dict[Path, list[str]] = {}
    for label, backup in newest.items():
        reasons.setdefault(backup.path, []).append(f"newest of {label}")
    for backup in past:
        until = backup.taken_at + timedelta(days=keep_safety_days)
        if backup.kind not in CALENDAR_KINDS and until > now:
            reasons.setdefault(backup.path, []).append(
                f"{backup.kind} backup, kept until {until:%Y-%m-%d %H:%M} UTC"
            )
    verified = [backup for backup in past if backup.verified]
    if verified:
        reasons.setdefault(verified[-1].path, []).append("newest verified backup")
    for backup in ordered:
        if backup.taken_at > now:
            reasons.setdefault(backup.path, []).append("taken after --now: ignored")
    return [
        Decision(backup, backup.path in reasons, tuple(reasons.get(backup.path, ())))
        for backup in ordered
    ]


def delete_backup(backup: Backup) -> None:
    backup.path.unlink(missing_ok=True)
    backup.manifest_path.unlink(missing_ok=True)
