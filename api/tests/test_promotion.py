"""`planwise migrate …` for real: status, apply with a verified backup and integrity checks,
roll-back on failure, production needing --yes, and drift refusal."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, Table

from planwise.db import migrations
from planwise.models import metadata
from planwise.ops.promotion import promote as promotion
from tests.support.cli import planwise
from tests.support.databases import DatabaseUnderTest, connect
from tests.support.migrations import fill, revision_chain

OBJECTS = (
    "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
    "UNION ALL SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace "
    "AND p.proname LIKE 'planwise%%' OR p.proname = 'recommend_places' ORDER BY 1"
)
"""Our tables, indexes, sequences and functions: what a migration adds or removes."""


@pytest.fixture
def behind(
    create_migrated_database: Callable[[str], DatabaseUnderTest], tmp_path: Path
) -> tuple[DatabaseUnderTest, dict[str, str], str]:
    """A database two revisions behind head, holding data, named "staging"."""
    db = create_migrated_database("planwise_promote")
    fill(db.admin_url)
    older = revision_chain()[2]
    migrations.downgrade(db.admin_url, older)
    env = {
        "BACKUP_DIR": str(tmp_path / "backups"),
        "MIGRATION_ENVIRONMENTS": json.dumps({"staging": db.admin_url, "production": db.admin_url}),
    }
    return db, env, older


def test_status_lists_pending_revisions_and_their_sql(
    behind: tuple[DatabaseUnderTest, dict[str, str], str],
) -> None:
    _db, env, older = behind
    result = planwise("migrate", "status", "--env", "staging", "--sql", **env)
    assert result.returncode == 0, result.stderr
    chain = revision_chain()
    assert f"at {older}" in result.stdout
    assert chain[0] in result.stdout and chain[1] in result.stdout
    assert "CREATE FUNCTION recommend_places" in result.stdout or "CREATE" in result.stdout


def test_apply_backs_up_migrates_and_checks(
    behind: tuple[DatabaseUnderTest, dict[str, str], str],
) -> None:
    db, env, _older = behind
    with connect(db.admin_url) as conn:
        before = conn.execute("SELECT count(*) FROM review").fetchone()
    result = planwise("migrate", "apply", "--env", "staging", "--yes", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "taken and verified" in result.stdout and "integrity checks passed" in result.stdout
    assert migrations.current_revision(db.admin_url) == migrations.head_revision()
    with connect(db.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM review").fetchone() == before
    manifests = [json.loads(p.read_text()) for p in Path(env["BACKUP_DIR"]).glob("*.json")]
    assert [(m["kind"], m["verified"]) for m in manifests] == [("pre-migration", True)]
    again = planwise("migrate", "apply", "--env", "staging", "--yes", **env)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_an_unrestorable_database_is_not_migrated(
    behind: tuple[DatabaseUnderTest, dict[str, str], str],
) -> None:
    """An orphan row (constraints bypassed) makes the backup fail its restore check."""
    db, env, older = behind
    with connect(db.admin_url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "INSERT INTO preference (user_id, category, rating) VALUES (999999, 'zoo', 0.1)"
        )
    result = planwise("migrate", "apply", "--env", "staging", "--yes", **env)
    assert result.returncode == 4 and "failed verification" in result.stderr
    assert migrations.current_revision(db.admin_url) == older


def test_failed_checks_roll_back_to_the_backup(
    behind: tuple[DatabaseUnderTest, dict[str, str], str],
) -> None:
    db, env, older = behind
    with connect(db.admin_url) as conn:  # a constraint someone added without validating it
        conn.execute(
            "ALTER TABLE place ADD CONSTRAINT ck_place_rating_probe CHECK (rating <= 5) NOT VALID"
        )
        objects_before = conn.execute(OBJECTS).fetchall()
    result = planwise("migrate", "apply", "--env", "staging", "--yes", **env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NOT VALID" in result.stdout and "rolled back" in result.stderr
    assert "restored backup_" in result.stdout
    assert migrations.current_revision(db.admin_url) == older
    with connect(db.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM place").fetchone() == (5,)
        assert conn.execute(OBJECTS).fetchall() == objects_before, "new objects were removed"


def test_production_needs_yes(behind: tuple[DatabaseUnderTest, dict[str, str], str]) -> None:
    db, env, older = behind
    result = planwise("migrate", "apply", "--env", "production", **env)
    assert result.returncode == 3 and "--yes" in result.stderr
    assert migrations.current_revision(db.admin_url) == older
    unknown = planwise("migrate", "apply", "--env", "moon", **env)
    assert unknown.returncode == 1 and "unknown environment" in unknown.stderr


@pytest.fixture
def drifting_models() -> Iterator[None]:
    """A model table no migration creates, as if someone forgot `alembic revision`."""
    probe = Table("drift_probe", metadata, Column("id", Integer, primary_key=True))
    yield
    metadata.remove(probe)


def test_drift_between_models_and_migrations_is_refused(
    behind: tuple[DatabaseUnderTest, dict[str, str], str], drifting_models: None, tmp_path: Path
) -> None:
    db, _env, older = behind
    with pytest.raises(promotion.PlanwiseError, match="drift"):
        promotion.apply(db.admin_url, backup_dir=tmp_path, lock_wait_timeout_ms=1000,
                        say=lambda _line: None)  # fmt: skip
    assert migrations.current_revision(db.admin_url) == older
    assert list(tmp_path.iterdir()) == [], "refused before any backup"


def test_apply_on_an_empty_database(
    create_database: Callable[[str], DatabaseUnderTest], tmp_path: Path
) -> None:
    """An empty database migrates to head (its tables have no row counts to compare); one
    on which the first revision fails is put back, with a message and no traceback."""
    empty = create_database("planwise_promote_empty")
    env = {
        "BACKUP_DIR": str(tmp_path / "backups"),
        "MIGRATION_ENVIRONMENTS": json.dumps({"staging": empty.admin_url}),
    }
    result = planwise("migrate", "apply", "--env", "staging", "--yes", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert migrations.current_revision(empty.admin_url) == migrations.head_revision()

    clashing = create_database("planwise_promote_clash")
    with connect(clashing.admin_url) as conn:  # the initial revision's CREATE TABLE fails
        conn.execute("CREATE TABLE place (x integer)")
    env["MIGRATION_ENVIRONMENTS"] = json.dumps({"staging": clashing.admin_url})
    failed = planwise("migrate", "apply", "--env", "staging", "--yes", **env)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert "rolled back" in failed.stderr and "already exists" in failed.stderr
    assert migrations.current_revision(clashing.admin_url) is None
    with connect(clashing.admin_url) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'place'"
        ).fetchall()
    assert columns == [("x",)]
