"""Supabase compatibility: the migration chain on a database prepared the way Supabase
prepares one, JWT identities under RLS, `recommend_places()` over RPC, Supabase tokens."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import errors

from planwise.db import migrations
from tests.support.databases import TEST_SUPABASE_JWT_SECRET, DatabaseUnderTest, connect

# What a Supabase project has before any migration of ours (abridged from supabase/postgres).
SUPABASE_PREPARATION = """
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'supabase_auth_admin') THEN
        CREATE ROLE supabase_auth_admin NOLOGIN NOINHERIT CREATEROLE;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
END
$roles$;
CREATE SCHEMA extensions;
CREATE EXTENSION postgis SCHEMA extensions;
CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
CREATE TABLE auth.users (id uuid PRIMARY KEY, email text);
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
$$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text
$$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb
$$;
ALTER FUNCTION auth.uid() OWNER TO supabase_auth_admin;
ALTER FUNCTION auth.role() OWNER TO supabase_auth_admin;
ALTER FUNCTION auth.jwt() OWNER TO supabase_auth_admin;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role;
"""


@pytest.fixture(scope="module")
def supabase_db(create_database: Callable[[str], DatabaseUnderTest]) -> DatabaseUnderTest:
    """A database shaped like a Supabase project's, then our whole migration chain."""
    database = create_database("planwise_supabase")
    with connect(database.admin_url) as conn:
        conn.execute("DROP EXTENSION postgis")  # the test cluster put it in public
        conn.execute(SUPABASE_PREPARATION)
        conn.execute(
            f'ALTER DATABASE "{database.name}" SET search_path = "$user", public, extensions'
        )
        conn.commit()
    migrations.upgrade(database.admin_url)
    return database


def as_jwt_user(conn: psycopg.Connection[Any], auth_user_id: uuid.UUID) -> None:
    """What PostgREST does for a request with a user's JWT."""
    claims = {"sub": str(auth_user_id), "role": "authenticated", "aud": "authenticated"}
    conn.execute("SET LOCAL ROLE authenticated")
    conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))


@pytest.fixture
def jwt_users(supabase_db: DatabaseUnderTest) -> Iterator[tuple[uuid.UUID, uuid.UUID]]:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    with connect(supabase_db.admin_url) as conn:
        for n, auth_id in enumerate((alice, bob)):
            user_id = conn.execute(
                'INSERT INTO "user" (username, hashed_password, full_name, role, auth_user_id) '
                "VALUES (%s, '!', 'J', 'user', %s) RETURNING id",
                (f"jwt{n}_{auth_id.hex[:8]}", auth_id),
            ).fetchone()[0]  # type: ignore[index]
            conn.execute(
                "INSERT INTO preference (user_id, category, rating) VALUES (%s, 'museum', %s)",
                (user_id, 0.5 + n / 4),
            )
        conn.execute(
            "INSERT INTO place (id, name, lat, lng, category, rating, user_ratings_total) "
            "VALUES ('sb-louvre', 'Louvre', 48.8606, 2.3376, 'museum', 4.7, 300000) "
            "ON CONFLICT (id) DO NOTHING"
        )
    yield alice, bob
    with connect(supabase_db.admin_url) as conn:
        conn.execute('DELETE FROM "user" WHERE auth_user_id IN (%s, %s)', (alice, bob))


def test_migrations_leave_supabase_auth_and_extensions_alone(
    supabase_db: DatabaseUnderTest,
) -> None:
    assert migrations.current_revision(supabase_db.admin_url) == migrations.head_revision()
    assert migrations.schema_drift(supabase_db.admin_url) is None
    with connect(supabase_db.admin_url) as conn:
        owner = conn.execute("SELECT nspowner::regrole::text FROM pg_namespace "
                             "WHERE nspname = 'auth'").fetchone()  # fmt: skip
        assert owner == ("supabase_auth_admin",)
        postgis = conn.execute(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'postgis'"
        ).fetchone()
        assert postgis == ("extensions",)
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_place_location'"
        ).fetchone()
        assert index is not None and "gist" in str(index[0])
        path = conn.execute(
            "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s "
            "JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = 'app_service' "
            "AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
        assert path is not None and "extensions" in str(path[0])


def test_jwt_users_see_and_change_only_their_rows(
    supabase_db: DatabaseUnderTest, jwt_users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, bob = jwt_users
    with connect(supabase_db.admin_url) as conn:
        as_jwt_user(conn, alice)
        assert conn.execute("SELECT rating FROM preference").fetchall() == [(0.5,)]
        assert conn.execute('SELECT count(*) FROM "user"').fetchone() == (1,)
        conn.rollback()  # RLS hides Bob from Alice: look him up as the owner
        bob_id = conn.execute('SELECT id FROM "user" WHERE auth_user_id = %s', (bob,)).fetchone()[0]  # type: ignore[index]
        conn.rollback()
        as_jwt_user(conn, alice)
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO preference (user_id, category, rating) VALUES (%s, 'zoo', 1)",
                (bob_id,),
            )
        conn.rollback()
        as_jwt_user(conn, alice)
        assert conn.execute("DELETE FROM preference WHERE user_id = %s", (bob_id,)).rowcount == 0


def test_recommend_places_over_rpc_uses_the_jwt_identity(
    supabase_db: DatabaseUnderTest, jwt_users: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _bob = jwt_users
    with connect(supabase_db.admin_url) as conn:
        as_jwt_user(conn, alice)
        rows = conn.execute(
            "SELECT id, preference, distance_km "
            "FROM recommend_places(lat => 48.8566, lng => 2.3522, radius_km => 5, "
            "max_results => 20)"
        ).fetchall()
        assert rows == [("sb-louvre", 0.5, pytest.approx(1.157, abs=0.002))]
        conn.rollback()
        conn.execute("SET LOCAL ROLE authenticated")  # a JWT-less call: no acting user
        with pytest.raises(errors.InsufficientPrivilege, match="no acting user"):
            conn.execute("SELECT * FROM recommend_places(48.8566, 2.3522)")
        conn.rollback()
        as_jwt_user(conn, alice)
        with pytest.raises(errors.InvalidParameterValue, match="radius_km"):
            conn.execute("SELECT * FROM recommend_places(48.8566, 2.3522, 80)")


def test_anon_reads_places_only(supabase_db: DatabaseUnderTest) -> None:
    with connect(supabase_db.admin_url) as conn:
        conn.execute("SET LOCAL ROLE anon")
        conn.execute("SELECT count(*) FROM place")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM preference")


def test_downgrade_keeps_supabase_auth(create_database: Callable[[str], DatabaseUnderTest]) -> None:
    database = create_database("planwise_supabase_down")
    with connect(database.admin_url) as conn:
        conn.execute("DROP EXTENSION postgis")
        conn.execute(SUPABASE_PREPARATION)
        conn.execute(
            f'ALTER DATABASE "{database.name}" SET search_path = "$user", public, extensions'
        )
    migrations.upgrade(database.admin_url)
    migrations.downgrade(database.admin_url, "base")
    with connect(database.admin_url) as conn:
        assert conn.execute("SELECT to_regclass('auth.users')").fetchone() == ("auth.users",)
    migrations.upgrade(database.admin_url)
    assert migrations.schema_drift(database.admin_url) is None


def test_local_cluster_gets_a_marked_stand_in_auth_schema(test_db: DatabaseUnderTest) -> None:
    with connect(test_db.admin_url) as conn:
        mark = conn.execute("SELECT obj_description('auth'::regnamespace, 'pg_namespace')")
        assert "planwise" in str(mark.fetchone()[0])  # type: ignore[index]
        conn.execute(
            "SELECT set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": "6f1c0a52-1111-4c6e-9a57-3f4d5e6a7b8c"}),),
        )
        assert conn.execute("SELECT auth.uid()::text").fetchone() == (
            "6f1c0a52-1111-4c6e-9a57-3f4d5e6a7b8c",
        )


def supabase_token(
    sub: uuid.UUID | str, secret: str = TEST_SUPABASE_JWT_SECRET, **claims: Any
) -> str:
    now = int(time.time())
    payload = {"sub": str(sub), "aud": "authenticated", "role": "authenticated", "iat": now,
               "exp": now + 600, "email": "traveller@example.com",
               "user_metadata": {"full_name": "Sam Supabase"}, **claims}  # fmt: skip
    return jwt.encode(payload, secret, algorithm="HS256")


def test_api_accepts_supabase_tokens_and_creates_the_user_once(client: TestClient) -> None:
    sub = uuid.uuid4()
    headers = {"Authorization": f"Bearer {supabase_token(sub)}"}
    first = client.get("/users/me", headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["full_name"] == "Sam Supabase"
    assert first.json()["username"] == f"sb_{sub.hex}"
    again = client.get("/users/me", headers=headers)
    assert again.json()["id"] == first.json()["id"]
    assert client.put("/preferences/park", json={"rating": 0.6}, headers=headers).status_code == 201
    assert [p["category"] for p in client.get("/preferences", headers=headers).json()] == ["park"]


@pytest.mark.parametrize(
    "token",
    [
        supabase_token(uuid.uuid4(), secret="not-the-project-secret-" * 2),
        supabase_token(uuid.uuid4(), aud="anon"),
        supabase_token("not-a-uuid"),
    ],
)
def test_bad_supabase_tokens_are_401(client: TestClient, token: str) -> None:
    assert client.get("/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_supabase_users_cannot_log_in_with_a_password(client: TestClient) -> None:
    sub = uuid.uuid4()
    client.get("/users/me", headers={"Authorization": f"Bearer {supabase_token(sub)}"})
    response = client.post("/auth/token", data={"username": f"sb_{sub.hex}", "password": "!"})
    assert response.status_code == 401
