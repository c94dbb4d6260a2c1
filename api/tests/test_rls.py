"""Row-level security attacked as the application role: nothing of another user leaks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import errors

from tests.support.databases import DatabaseUnderTest, connect

SET_USER = "SELECT set_config('app.user_id', %s, true)"
USER_TABLES = ("user", "review", "preference")


@dataclass(frozen=True)
class Seed:
    alice: int
    bob: int
    admin: int
    alice_review: int
    bob_review: int
    bob_preference: int


@pytest.fixture(scope="module")
def rls_db(create_migrated_database: Callable[[str], DatabaseUnderTest]) -> DatabaseUnderTest:
    return create_migrated_database("planwise_rls")


@pytest.fixture(scope="module")
def seed(rls_db: DatabaseUnderTest) -> Seed:
    """Committed rows for two users and an admin (RLS must be tested across sessions)."""
    with connect(rls_db.admin_url) as conn:

        def user(name: str, role: str = "user") -> int:
            row = conn.execute(
                'INSERT INTO "user" (username, hashed_password, full_name, role) '
                "VALUES (%s, 'hash-of-' || %s, %s, %s) RETURNING id",
                (name, name, name.title(), role),
            ).fetchone()
            assert row is not None
            return int(str(row[0]))

        alice, bob, admin = user("alice"), user("bob"), user("root", "admin")
        conn.execute(
            "INSERT INTO place (id, name, lat, lng, category) VALUES "
            "('p1', 'Louvre', 48.8606, 2.3376, 'museum'), "
            "('p2', 'Le Comptoir', 48.8519, 2.3389, 'restaurant')"
        )
        reviews = conn.execute(
            "INSERT INTO review (user_id, place_id, rating) VALUES (%s, 'p1', 5), (%s, 'p1', 2) "
            "RETURNING id",
            (alice, bob),
        ).fetchall()
        preferences = conn.execute(
            "INSERT INTO preference (user_id, category, rating) VALUES "
            "(%s, 'museum', 0.9), (%s, 'restaurant', 0.4) RETURNING id",
            (alice, bob),
        ).fetchall()
        conn.commit()
    return Seed(
        alice=alice,
        bob=bob,
        admin=admin,
        alice_review=int(str(reviews[0][0])),
        bob_review=int(str(reviews[1][0])),
        bob_preference=int(str(preferences[1][0])),
    )


@pytest.fixture
def app(rls_db: DatabaseUnderTest, seed: Seed) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A real login as app_service, in a transaction rolled back after the test."""
    with connect(rls_db.app_url) as conn:
        yield conn
        conn.rollback()


@pytest.fixture
def reader(
    rls_db: DatabaseUnderTest, seed: Seed
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with connect(rls_db.read_url) as conn:
        yield conn
        conn.rollback()


def count(conn: psycopg.Connection[tuple[object, ...]], table: str, where: str = "true") -> int:
    row = conn.execute(f'SELECT count(*) FROM "{table}" WHERE {where}').fetchone()
    assert row is not None
    return int(str(row[0]))


def owner_count(rls_db: DatabaseUnderTest, table: str, where: str) -> int:
    with connect(rls_db.admin_url) as conn:
        return count(conn, table, where)


@pytest.mark.parametrize("setting", [None, ""])
def test_unset_or_empty_acting_user_sees_no_user_data(
    app: psycopg.Connection[tuple[object, ...]], setting: str | None
) -> None:
    if setting is not None:
        app.execute(SET_USER, (setting,))
    for table in USER_TABLES:
        assert count(app, table) == 0
    assert count(app, "place") == 2, "places are public"


def test_acting_user_sees_only_their_own_rows(
    app: psycopg.Connection[tuple[object, ...]], seed: Seed
) -> None:
    app.execute(SET_USER, (str(seed.alice),))
    assert count(app, "user") == 1
    assert count(app, "review") == 1
    assert count(app, "review", f"user_id = {seed.bob}") == 0
    assert count(app, "preference", f"id = {seed.bob_preference}") == 0


@pytest.mark.parametrize("value", ["abc", "1 OR 1=1", "1.5", "99999999999"])
def test_non_integer_setting_is_an_error_not_a_match(
    app: psycopg.Connection[tuple[object, ...]], value: str
) -> None:
    app.execute(SET_USER, (value,))
    with pytest.raises((errors.InvalidTextRepresentation, errors.NumericValueOutOfRange)):
        count(app, "review")


def test_setting_dies_with_the_transaction(
    app: psycopg.Connection[tuple[object, ...]], seed: Seed
) -> None:
    app.execute(SET_USER, (str(seed.alice),))
    assert count(app, "review") == 1
    app.commit()
    row = app.execute("SELECT current_setting('app.user_id', true)").fetchone()
    assert row is not None and row[0] in ("", None)
    assert count(app, "review") == 0


@pytest.mark.parametrize(
    "statement",
    [
        "SET ROLE postgres",
        "SET ROLE app_read",
        "SET ROLE supabase_admin",
        "SET ROLE planwise_auth",
        "SET SESSION AUTHORIZATION postgres",
    ],
)
def test_role_switching_is_refused(
    app: psycopg.Connection[tuple[object, ...]], statement: str
) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute(statement)


def test_reset_role_changes_nothing(app: psycopg.Connection[tuple[object, ...]]) -> None:
    app.execute("RESET ROLE")
    app.execute("RESET SESSION AUTHORIZATION")
    row = app.execute("SELECT current_user, session_user").fetchone()
    assert row == ("app_service", "app_service")
    assert count(app, "review") == 0


def test_cannot_move_a_row_into_another_users_name(
    app: psycopg.Connection[tuple[object, ...]], seed: Seed
) -> None:
    app.execute(SET_USER, (str(seed.alice),))
    with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
        app.execute("UPDATE review SET user_id = %s WHERE id = %s", (seed.bob, seed.alice_review))


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO review (user_id, place_id, rating) VALUES (%s, 'p2', 1)",
        "INSERT INTO preference (user_id, category, rating) VALUES (%s, 'park', 1)",
    ],
)
def test_cannot_insert_in_another_users_name(
    app: psycopg.Connection[tuple[object, ...]], seed: Seed, statement: str
) -> None:
    app.execute(SET_USER, (str(seed.alice),))
    with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
        app.execute(statement, (seed.bob,))


def test_cannot_update_or_delete_another_users_rows(
    app: psycopg.Connection[tuple[object, ...]], rls_db: DatabaseUnderTest, seed: Seed
) -> None:
    app.execute(SET_USER, (str(seed.alice),))
    assert (
        app.execute("UPDATE review SET rating = 1 WHERE id = %s", (seed.bob_review,)).rowcount == 0
    )
    assert app.execute("DELETE FROM review WHERE user_id = %s", (seed.bob,)).rowcount == 0
    assert app.execute("DELETE FROM preference WHERE id = %s", (seed.bob_preference,)).rowcount == 0
    assert app.execute('DELETE FROM "user" WHERE id = %s', (seed.bob,)).rowcount == 0
    app.commit()
    assert owner_count(rls_db, "review", f"user_id = {seed.bob} AND rating = 2") == 1
    assert owner_count(rls_db, "preference", f"id = {seed.bob_preference}") == 1
    assert owner_count(rls_db, "user", f"id = {seed.bob}") == 1


def test_cannot_promote_oneself(app: psycopg.Connection[tuple[object, ...]], seed: Seed) -> None:
    app.execute(SET_USER, (str(seed.alice),))
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute("UPDATE \"user\" SET role = 'admin' WHERE id = %s", (seed.alice,))


def test_user_can_change_own_profile(
    app: psycopg.Connection[tuple[object, ...]], seed: Seed
) -> None:
    app.execute(SET_USER, (str(seed.alice),))
    assert (
        app.execute(
            "UPDATE \"user\" SET full_name = 'Alice A.' WHERE id = %s", (seed.alice,)
        ).rowcount
        == 1
    )


def test_only_admins_write_places(app: psycopg.Connection[tuple[object, ...]], seed: Seed) -> None:
    insert = "INSERT INTO place (id, name, lat, lng) VALUES (%s, 'New', 0, 0)"
    app.execute(SET_USER, (str(seed.alice),))
    assert app.execute("UPDATE place SET name = 'x' WHERE id = 'p1'").rowcount == 0
    assert app.execute("DELETE FROM place WHERE id = 'p1'").rowcount == 0
    with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
        app.execute(insert, ("p-user",))
    app.rollback()
    app.execute(SET_USER, (str(seed.admin),))
    app.execute(insert, ("p-admin",))
    assert app.execute("UPDATE place SET name = 'Louvre!' WHERE id = 'p1'").rowcount == 1


def test_login_lookup_and_registration_go_through_narrow_functions(
    app: psycopg.Connection[tuple[object, ...]], seed: Seed
) -> None:
    found = app.execute("SELECT * FROM planwise_find_login('bob')").fetchall()
    assert found == [(seed.bob, "hash-of-bob", "user", True)]
    assert app.execute("SELECT * FROM planwise_find_login('nobody')").fetchall() == []
    row = app.execute("SELECT planwise_register_user('carol', 'h', 'Carol')").fetchone()
    assert row is not None and isinstance(row[0], int)
    app.execute(SET_USER, (str(row[0]),))
    assert app.execute('SELECT username, role FROM "user"').fetchall() == [("carol", "user")]
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute(
            'INSERT INTO "user" (username, hashed_password, full_name, role) '
            "VALUES ('mallory', 'h', 'M', 'admin')"
        )


def test_duplicate_registration_is_a_unique_violation(
    app: psycopg.Connection[tuple[object, ...]], seed: Seed
) -> None:
    with pytest.raises(errors.UniqueViolation):
        app.execute("SELECT planwise_register_user('alice', 'h', 'Again')")


def test_app_read_reads_every_row_but_no_password_hash(
    reader: psycopg.Connection[tuple[object, ...]],
) -> None:
    assert count(reader, "user") == 3
    assert count(reader, "review") == 2
    assert count(reader, "preference") == 2
    with pytest.raises(errors.InsufficientPrivilege):
        reader.execute('SELECT hashed_password FROM "user"')


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO place (id, name, lat, lng) VALUES ('r', 'r', 0, 0)",
        "UPDATE review SET rating = 1",
        "DELETE FROM preference",
        "TRUNCATE review",
        "CREATE TABLE public.report (id int)",
    ],
)
def test_app_read_cannot_write(
    reader: psycopg.Connection[tuple[object, ...]], statement: str
) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        reader.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE review",
        "ALTER TABLE place ADD COLUMN hacked int",
        "ALTER TABLE review DISABLE ROW LEVEL SECURITY",
        "DROP POLICY review_user_access ON review",
        "CREATE TABLE public.shadow (id int)",
        "TRUNCATE review",
        "CREATE INDEX shadow_idx ON place (name)",
    ],
)
def test_app_service_has_no_ddl(
    app: psycopg.Connection[tuple[object, ...]], statement: str
) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute(statement)


def test_application_roles_are_neither_owners_nor_bypassers(
    app: psycopg.Connection[tuple[object, ...]],
) -> None:
    flags = app.execute(
        "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
        "WHERE rolname IN ('app_service', 'app_read', 'planwise_auth') ORDER BY rolname"
    ).fetchall()
    assert [row[1:] for row in flags] == [(False, False, False, False)] * 3
    owners = app.execute(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
    ).fetchall()
    assert ("app_service",) not in owners and ("app_read",) not in owners


def test_forced_rls_on_user_data_tables(app: psycopg.Connection[tuple[object, ...]]) -> None:
    rows = app.execute(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE relname IN ('user', 'review', 'preference', 'place') ORDER BY relname"
    ).fetchall()
    assert rows == [
        ("place", True, False),
        ("preference", True, True),
        ("review", True, True),
        ("user", True, True),
    ]
