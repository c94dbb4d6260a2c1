"""Data in every table, and the revision chain, for migration round trips."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from planwise.db import migrations
from tests.support.databases import connect


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
