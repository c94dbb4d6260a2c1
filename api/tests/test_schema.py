"""The migrated schema is the design document's DDL, column by column."""

from __future__ import annotations

from alembic.autogenerate import produce_migrations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlmodel import Session

from planwise.db.migrations import include_object, schema_drift
from planwise.models import metadata
from tests.support.databases import DatabaseUnderTest
from tests.support.factories import make_place, make_preference, make_user

SERIAL = "nextval('{}_id_seq'::regclass)"
TS = ("timestamp with time zone", None, "YES", "now()")
VARCHAR_NN = "character varying"
DOUBLE = "double precision"

# (data_type, character_maximum_length, is_nullable, column_default)
EXPECTED_COLUMNS = {
    "user": {
        "id": ("integer", None, "NO", SERIAL.format("user")),
        "username": (VARCHAR_NN, 50, "NO", None),
        "hashed_password": (VARCHAR_NN, 100, "NO", None),
        "full_name": (VARCHAR_NN, 100, "NO", None),
        "role": (VARCHAR_NN, 20, "NO", None),
        "is_active": ("boolean", None, "NO", "true"),
        "created_at": TS,
        "auth_user_id": ("uuid", None, "YES", None),  # Supabase Auth link (9b0c1d2e3f4a)
        # tokens issued before are refused (d0e1f2a3b4c5)
        "password_changed_at": ("timestamp with time zone", None, "YES", None),
    },
    "place": {
        "id": (VARCHAR_NN, 100, "NO", None),
        "name": (VARCHAR_NN, 200, "NO", None),
        "lat": (DOUBLE, None, "NO", None),
        "lng": (DOUBLE, None, "NO", None),
        "types": (VARCHAR_NN, 500, "YES", None),
        "category": (VARCHAR_NN, 100, "YES", None),
        "rating": (DOUBLE, None, "YES", None),
        "user_ratings_total": ("integer", None, "YES", None),
        "description": ("text", None, "YES", None),
        "created_at": TS,
        "updated_at": TS,
        "opening_hours": ("json", None, "YES", None),  # the document's migration example
    },
    "review": {
        "id": ("integer", None, "NO", SERIAL.format("review")),
        "user_id": ("integer", None, "NO", None),
        "place_id": (VARCHAR_NN, 100, "NO", None),
        "rating": (DOUBLE, None, "NO", None),
        "comment": ("text", None, "YES", None),
        "created_at": TS,
    },
    "preference": {
        "id": ("integer", None, "NO", SERIAL.format("preference")),
        "user_id": ("integer", None, "NO", None),
        "category": (VARCHAR_NN, 100, "NO", None),
        "rating": (DOUBLE, None, "NO", None),
        "created_at": TS,
        "updated_at": TS,
    },
}

EXPECTED_CONSTRAINTS = {
    ("user", "pk_user"): "PRIMARY KEY (id)",
    ("user", "uq_user_username"): "UNIQUE (username)",
    ("user", "uq_user_auth_user_id"): "UNIQUE (auth_user_id)",
    ("user", "ck_user_internal_username"):  # reserved for Supabase users (d0e1f2a3b4c5)
        "CHECK ((((username)::text !~ '^sb_[0-9a-f]{32}$'::text) OR ((username)::text = "
        "('sb_'::text || replace((auth_user_id)::text, '-'::text, ''::text)))))",
    ("place", "pk_place"): "PRIMARY KEY (id)",
    ("review", "pk_review"): "PRIMARY KEY (id)",
    ("review", "uq_review_user_id_place_id"): "UNIQUE (user_id, place_id)",
    ("review", "fk_review_user_id_user"):
        'FOREIGN KEY (user_id) REFERENCES "user"(id) ON DELETE CASCADE',
    ("review", "fk_review_place_id_place"):
        "FOREIGN KEY (place_id) REFERENCES place(id) ON DELETE CASCADE",
    ("preference", "pk_preference"): "PRIMARY KEY (id)",
    ("preference", "uq_preference_user_id_category"): "UNIQUE (user_id, category)",
    ("preference", "fk_preference_user_id_user"):
        'FOREIGN KEY (user_id) REFERENCES "user"(id) ON DELETE CASCADE',
}  # fmt: skip

EXPECTED_INDEXES = {
    "idx_user_username": 'ON public."user" USING btree (username)',
    "idx_place_location":
        "ON public.place USING gist (st_setsrid(st_makepoint(lng, lat), 4326))",
    "idx_place_category": "ON public.place USING btree (category)",
    "idx_review_user_id": "ON public.review USING btree (user_id)",
    "idx_review_place_id": "ON public.review USING btree (place_id)",
    "idx_preference_user_id": "ON public.preference USING btree (user_id)",
    "idx_preference_category": "ON public.preference USING btree (category)",
}  # fmt: skip


def test_columns_match_the_document(admin_connection: Connection) -> None:
    rows = admin_connection.execute(
        text(
            "SELECT table_name, column_name, data_type, character_maximum_length, "
            "is_nullable, column_default FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = ANY(:tables)"
        ),
        {"tables": list(EXPECTED_COLUMNS)},
    ).all()
    actual: dict[str, dict[str, tuple[object, ...]]] = {}
    for table, column, *shape in rows:
        actual.setdefault(table, {})[column] = tuple(shape)
    assert actual == EXPECTED_COLUMNS


def test_constraints_are_named_and_match_the_document(admin_connection: Connection) -> None:
    rows = admin_connection.execute(
        text(
            "SELECT rel.relname, con.conname, pg_get_constraintdef(con.oid) "
            "FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid "
            "JOIN pg_namespace ns ON ns.oid = rel.relnamespace "
            "WHERE ns.nspname = 'public' AND rel.relname = ANY(:tables)"
        ),
        {"tables": list(EXPECTED_COLUMNS)},
    ).all()
    assert {(table, name): definition for table, name, definition in rows} == (EXPECTED_CONSTRAINTS)


def test_the_seven_indexes_have_the_documents_names(admin_connection: Connection) -> None:
    rows = admin_connection.execute(
        text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'idx\\_%'")
    ).all()
    assert {name: definition.split(f"INDEX {name} ", 1)[1] for name, definition in rows} == (
        EXPECTED_INDEXES
    )


def test_spatial_index_serves_a_proximity_query(admin_connection: Connection) -> None:
    """The document's index serves the document's kind of query. The recommendation's
    GiSTs (a1c2e3f4a5b6) INCLUDE lat and lng, so with `place` analysed empty by earlier
    tests a full index-only scan of one of them can look cheaper than any index search:
    they are dropped for this test's transaction (rolled back after it)."""
    admin_connection.execute(
        text("DROP INDEX ix_place_category_point, ix_place_category_band_point")
    )
    admin_connection.execute(text("SET LOCAL enable_seqscan = off"))
    plan = (
        admin_connection.execute(
            text(
                "EXPLAIN SELECT id FROM place WHERE ST_DWithin("
                "ST_SetSRID(ST_MakePoint(lng, lat), 4326), "
                "ST_SetSRID(ST_MakePoint(2.35, 48.85), 4326), 0.05)"
            )
        )
        .scalars()
        .all()
    )
    assert any("idx_place_location" in line for line in plan), plan


def test_updated_at_is_maintained_by_a_trigger(db_session: Session) -> None:
    user = make_user(db_session)
    rows = {"place": make_place(db_session).id, "preference": make_preference(db_session, user).id}
    for table, key in rows.items():
        select = text(f'SELECT updated_at FROM "{table}" WHERE id = :id')

        def update(assignments: str, table: str = table, key: object = key) -> None:
            db_session.execute(
                text(f'UPDATE "{table}" SET {assignments} WHERE id = :id'), {"id": key}
            )

        # Age the row with triggers off (replica role), so a bump would be visible.
        db_session.execute(text("SET LOCAL session_replication_role = replica"))
        update("updated_at = '2000-01-01T00:00:00Z'")
        db_session.execute(text("SET LOCAL session_replication_role = origin"))
        old = db_session.execute(select, {"id": key}).scalar_one()

        update("rating = rating")
        assert db_session.execute(select, {"id": key}).scalar_one() == old, "no-op update"

        update("rating = rating / 2, updated_at = '1999-01-01T00:00:00Z'")
        now = db_session.execute(text("SELECT now()")).scalar_one()
        assert db_session.execute(select, {"id": key}).scalar_one() == now


def test_no_drift_between_models_and_migrations(test_db: DatabaseUnderTest) -> None:
    assert schema_drift(test_db.admin_url) is None


def test_autogenerate_on_unchanged_models_is_empty(admin_connection: Connection) -> None:
    context = MigrationContext.configure(
        admin_connection,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_object": include_object,
        },
    )
    script = produce_migrations(context, metadata)
    assert script.upgrade_ops is not None and script.upgrade_ops.is_empty()
