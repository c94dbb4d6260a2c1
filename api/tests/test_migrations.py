"""Migrations walk down and up again without losing data the schema still has room for."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from planwise.db import migrations
from tests.support.databases import DatabaseUnderTest, connect
from tests.support.migrations import fill, revision_chain

TABLES = ("user", "place", "review", "preference")
API_DIR = Path(__file__).resolve().parents[1]


LATER_COLUMNS = ("opening_hours", "auth_user_id", "password_changed_at")
"""Columns that revisions after the first add: the data they hold goes with them."""


def snapshot(url: str, drop_columns: tuple[str, ...] = LATER_COLUMNS) -> dict[str, list]:  # type: ignore[type-arg]
    """Every row of every table, minus the columns named (compared as text)."""
    result = {}
    with connect(url) as conn:
        for table in TABLES:
            columns = [
                str(row[0])
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = %s ORDER BY column_name",
                    (table,),
                )
                if row[0] not in drop_columns
            ]
            select = ", ".join(f'"{c}"::text' for c in columns)
            result[table] = conn.execute(f'SELECT {select} FROM "{table}" ORDER BY 1').fetchall()
    return result


def test_round_trip_keeps_data_and_ends_without_drift(
    create_database: Callable[[str], DatabaseUnderTest],
) -> None:
    db = create_database("planwise_roundtrip")
    migrations.upgrade(db.admin_url)
    fill(db.admin_url)
    before = snapshot(db.admin_url)
    assert all(before[table] for table in TABLES), "every table holds data"

    chain = revision_chain()
    for below in chain[1:]:  # one step down at a time, to the first revision
        migrations.downgrade(db.admin_url, "-1")
        assert migrations.current_revision(db.admin_url) == below
        assert snapshot(db.admin_url) == before, f"data lost going down to {below}"

    migrations.upgrade(db.admin_url)
    assert snapshot(db.admin_url) == before
    with connect(db.admin_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM place WHERE opening_hours IS NULL"
        ).fetchone() == (5,)
    assert migrations.schema_drift(db.admin_url) is None

    migrations.downgrade(db.admin_url, "base")
    with connect(db.admin_url) as conn:
        left = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
    assert left == [("alembic_version",), ("spatial_ref_sys",)]
    migrations.upgrade(db.admin_url)
    assert migrations.current_revision(db.admin_url) == migrations.head_revision()
    assert migrations.schema_drift(db.admin_url) is None


def test_alembic_command_line_from_api_as_the_document_says(
    create_database: Callable[[str], DatabaseUnderTest],
) -> None:
    db = create_database("planwise_alembic_cli")
    alembic = str(Path(sys.executable).parent / "alembic")
    env = {**os.environ, "MIGRATION_DATABASE_URL": db.admin_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [alembic, *args], cwd=API_DIR, env=env, capture_output=True, text=True, check=True
        )

    run("upgrade", "head")
    run("check")
    run("downgrade", "-1")
    assert migrations.current_revision(db.admin_url) == revision_chain()[1]
    run("upgrade", "head")
    assert "(head)" in run("current").stdout
