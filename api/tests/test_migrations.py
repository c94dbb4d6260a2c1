"""Migrations walk down and up again without losing data the schema still has room for."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from alembic.script import ScriptDirectory

from planwise.db import migrations
from tests.conftest import DatabaseUnderTest, connect

TABLES = ("user", "place", "review", "preference")
API_DIR = Path(__file__).resolve().parents[1]


LATER_COLUMNS = ("opening_hours", "auth_user_id")
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


def fill(url: str) -> None:
    with connect(url) as conn:
        users = [
            conn.execute(
                'INSERT INTO "user" (username, hashed_password, full_name, role, is_active) '
                "VALUES (%s, 'h', %s, %s, %s) RETURNING id",
                (f"u{i}", f"User {i}", "admin" if i == 0 else "user", i != 2),
            ).fetchone()[0]  # type: ignore[index]
            for i in range(3)
        ]
        for i in range(5):
            conn.execute(
                "INSERT INTO place (id, name, lat, lng, types, category, rating, "
                "user_ratings_total, description, opening_hours) "
                "VALUES (%s, %s, %s, %s, 'museum,point_of_interest', 'museum', %s, %s, 'd', "
                "'{\"periods\": []}')",
                (f"place{i}", f"Place {i}", 40 + i / 10, -3 - i / 10, 3.5 + i / 10, 10 * i),
            )
        for user_id in users:
            conn.execute(
                "INSERT INTO review (user_id, place_id, rating, comment) "
                "VALUES (%s, 'place1', 4.5, 'ok')",
                (user_id,),
            )
            conn.execute(
                "INSERT INTO preference (user_id, category, rating) VALUES (%s, 'museum', 0.7)",
                (user_id,),
            )


def revision_chain() -> list[str]:
    """Revisions from head down to the first, as `alembic history` lists them."""
    script = ScriptDirectory.from_config(migrations.alembic_config())
    return [revision.revision for revision in script.walk_revisions()]


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
