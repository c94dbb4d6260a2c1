"""Promotion of migrations from development to production, as the design document lists it:
test, back up, apply, verify, and be able to revert.

`apply` refuses when the models drift from the migrations, takes and verifies a backup,
applies the pending revisions, runs integrity checks, and on any failure restores the
backup. Every step says what it did.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from alembic import command
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy.engine import make_url

from planwise.db import migrations
from planwise.db.engine import libpq_url
from planwise.errors import PlanwiseError
from planwise.ops.backup import dumps as backups

TABLES = ("user", "place", "review", "preference")

ORPHAN_CHECKS = {
    "review.user_id → user": (
        "SELECT count(*) FROM review r "
        'WHERE NOT EXISTS (SELECT 1 FROM "user" u WHERE u.id = r.user_id)'
    ),
    "review.place_id → place": (
        "SELECT count(*) FROM review r "
        "WHERE NOT EXISTS (SELECT 1 FROM place p WHERE p.id = r.place_id)"
    ),
    "preference.user_id → user": (
        "SELECT count(*) FROM preference r "
        'WHERE NOT EXISTS (SELECT 1 FROM "user" u WHERE u.id = r.user_id)'
    ),
}
"""Rows whose owner is gone: impossible through the foreign keys, unless they were
disabled (replication role, NOT VALID constraints) by a migration or by hand."""

ROW_COUNT_CHANGES_ATTRIBUTE = "changes_row_counts"
"""A revision module may list tables whose row counts it changes on purpose."""


@dataclass
class PendingRevision:
    revision: str
    message: str
    changes_row_counts: tuple[str, ...]


@dataclass
class MigrationStatus:
    current: str | None
    head: str
    pending: list[PendingRevision] = field(default_factory=list)


class IntegrityFailure(PlanwiseError):
    """A check after the migration failed; the backup has been restored."""


def describe_target(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def status(url: str) -> MigrationStatus:
    """Current revision and the revisions `upgrade head` would apply, oldest first."""
    script = ScriptDirectory.from_config(migrations.alembic_config())
    current = migrations.current_revision(url)
    head = migrations.head_revision()
    pending = [
        PendingRevision(
            revision.revision,
            (revision.doc or "").strip().splitlines()[0] if revision.doc else "",
            tuple(getattr(revision.module, ROW_COUNT_CHANGES_ATTRIBUTE, ())),
        )
        for revision in script.iterate_revisions(head, current or "base")
    ]
    pending.reverse()
    return MigrationStatus(current=current, head=head, pending=pending)


def pending_sql(url: str) -> str:
    """The SQL `upgrade head` would run from the current revision (Alembic offline mode)."""
    current = migrations.current_revision(url) or "base"
    config = migrations.alembic_config(url)
    buffer = io.StringIO()
    config.output_buffer = buffer
    with redirect_stdout(buffer):
        command.upgrade(config, f"{current}:head", sql=True)
    return buffer.getvalue()


def row_counts(url: str) -> dict[str, int]:
    """Rows of each of our tables that exists (none on an empty database)."""
    with psycopg.connect(libpq_url(url), application_name="planwise-migrate") as conn:
        return {
            table: int(
                conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                ).fetchone()[0]  # type: ignore[index]
            )
            for table in TABLES
            if conn.execute("SELECT to_regclass(%s)", (f'public."{table}"',)).fetchone() != (None,)
        }


def integrity_problems(url: str) -> list[str]:
    """Orphans and unvalidated constraints; an empty list when all is well."""
    problems = []
    with psycopg.connect(libpq_url(url), application_name="planwise-migrate") as conn:
        for name, query in ORPHAN_CHECKS.items():
            orphans = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
            if orphans:
                problems.append(f"{orphans} orphan row(s): {name}")
        for table, constraint in conn.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint "
            "WHERE NOT convalidated AND connamespace = 'public'::regnamespace"
        ):
            problems.append(f"constraint {constraint} on {table} is NOT VALID")
    return problems


def drift_against_scratch(url: str) -> str | None:
    """Build a scratch database from the migrations on the target's server and compare
    the models with it: drift means the code's models and its migrations disagree."""
    scratch = f"planwise_driftcheck_{uuid.uuid4().hex[:8]}"
    target = make_url(libpq_url(url))
    admin = target.set(database="postgres").render_as_string(hide_password=False)
    scratch_url = target.set(database=scratch).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        migrations.upgrade(scratch_url)
        return migrations.schema_drift(scratch_url)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch))
            )


def check_row_counts(before: dict[str, int], after: dict[str, int], allowed: set[str]) -> list[str]:
    """Tables whose rows changed, or that disappeared; a table the migration created (on
    an empty database: all of them) has nothing to compare with."""
    return [
        f"row count of {table} changed from {before[table]} to {after.get(table, 'no table')}"
        for table in TABLES
        if table not in allowed and table in before and before[table] != after.get(table)
    ]


Say = Callable[[str], None]

PRODUCTION = "production"


def apply(
    url: str,
    *,
    backup_dir: Path,
    lock_wait_timeout_ms: int,
    say: Say,
) -> MigrationStatus:
    """Back up, migrate, check; on any failure put the database back and raise."""
    before = status(url)
    drift = drift_against_scratch(url)
    if drift:
        raise PlanwiseError(
            "the models drift from the migrations (a model changed without a revision): "
            f"refusing. Run `alembic revision --autogenerate`.\n{drift}"
        )
    say("models match the migrations (checked on a scratch database)")
    safety = backups.create_backup(url, backup_dir, "pre-migration", lock_wait_timeout_ms)
    backups.verify_backup(safety, url)
    say(f"backup {safety.name} taken and verified")
    counts_before = row_counts(url)
    allowed = {table for item in before.pending for table in item.changes_row_counts}
    try:
        migrations.upgrade(url)
        say(f"applied {', '.join(item.revision for item in before.pending)}")
        problems = integrity_problems(url)
        problems += check_row_counts(counts_before, row_counts(url), allowed)
        if (after_drift := migrations.schema_drift(url)) is not None:
            problems.append(f"alembic check: {after_drift}")
        if problems:
            raise IntegrityFailure("; ".join(problems))
    except Exception as error:
        say(f"FAILED: {error}")
        _put_back(url, before.current, safety, say)
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise PlanwiseError(
            f"migration failed and was rolled back: {reason}. The database is back at "
            f"revision {before.current or 'base'} with the data of {safety.name}."
        ) from None
    say("integrity checks passed: no orphans, constraints valid, row counts unchanged")
    return status(url)


def _put_back(url: str, revision: str | None, safety: backups.Backup, say: Say) -> None:
    """Undo the schema (downgrade), then the data (restore the verified backup)."""
    try:
        migrations.downgrade(url, revision or "base")
        say(f"downgraded to {revision or 'base'}")
    except Exception as error:  # the restore below still puts the dumped objects back
        say(f"downgrade failed ({error}); restoring regardless")
    backups.restore_backup(safety, url)
    say(f"restored {safety.name}")
