"""The benchmark's own database on the managed cluster, and loading it fast.

Benchmarks never touch the user's data: they run in a database of their own
(`planwise_bench` by default), built by the same migrations. Places load through the
importer's COPY path (`import_records`, as `planwise places import` does); the two place
indexes are dropped first and rebuilt afterwards from the very definitions the
migration created (read back from `pg_indexes`), then everything is VACUUM ANALYZEd, so
the schema ends exactly as migrated (`planwise db check` stays clean).

Users and preferences go in by COPY as the owner: the owner is a superuser on the managed
cluster, so FORCEd row-level security does not stop it. All bench users share one
precomputed argon2 hash (hashing 100,000 passwords would take minutes and measure
nothing). Request pairs live in a `bench` schema, which Alembic's autogenerate does not
compare (it looks at the default schema only).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import make_url

from planwise.bench import world
from planwise.config import Settings
from planwise.db import migrations
from planwise.db.cluster import Cluster
from planwise.db.engine import libpq_url
from planwise.db.roles import configured_role_passwords, set_role_passwords
from planwise.errors import PlanwiseError
from planwise.places.importer import SourceRecord, import_records
from planwise.users.security import hash_password

DEFAULT_DATABASE = "planwise_bench"
DENSE_SUFFIX = "dense"
"""The density bench's dense data set lives in `<bench database>_dense`."""
BENCH_PASSWORD = "planwise-bench"  # noqa: S105  (synthetic users of a throwaway database)
DROPPED_INDEXES = ("idx_place_location", "idx_place_category", "ix_place_category_band_location")
"""Rebuilt after the load: building an index once beats maintaining it row by row."""
DEFAULT_USERS = 100_000
DEFAULT_REQUESTS = 10_000
SOURCE = "bench"

CREATE_BENCH_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.meta (key text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS bench.request (
    n integer PRIMARY KEY,
    user_id integer NOT NULL,
    lat double precision NOT NULL,
    lng double precision NOT NULL
);
GRANT USAGE ON SCHEMA bench TO app_service;
GRANT SELECT ON bench.request TO app_service;
"""


@dataclass(frozen=True)
class BenchDatabase:
    name: str
    admin_url: str
    app_url: str
    settings: Settings

    @property
    def port(self) -> int:
        return int(make_url(self.admin_url).port or 5432)


def on_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    return make_url(url).set(database=dbname).render_as_string(hide_password=False)


def bench_database(settings: Settings, name: str = DEFAULT_DATABASE) -> BenchDatabase:
    """The bench database's URLs; refuses servers Planwise does not manage."""
    if not settings.uses_managed_cluster:
        raise PlanwiseError(
            "benchmarks run in a database of their own on the managed cluster: "
            "unset DATABASE_URL (they never touch the configured database)"
        )
    return BenchDatabase(
        name=name,
        admin_url=on_database(settings.admin_url, name),
        app_url=on_database(settings.app_url, name),
        settings=settings,
    )


def running_cluster(settings: Settings) -> Cluster:
    cluster = Cluster(settings)
    if not cluster.running:
        raise PlanwiseError("the managed cluster is not running: `planwise db up` first")
    return cluster


def create_database(db: BenchDatabase, *, fresh: bool) -> None:
    """Create (or re-create) the database and migrate it to head, role passwords set."""
    cluster = running_cluster(db.settings)
    if fresh:
        cluster.drop_database(db.name)
    cluster.prepare_database(db.name)
    migrations.upgrade(db.admin_url)
    set_role_passwords(db.admin_url, configured_role_passwords(db.settings))
    with psycopg.connect(libpq_url(db.admin_url), autocommit=True) as conn:
        conn.execute(CREATE_BENCH_SCHEMA)


def scratch_database(db: BenchDatabase, suffix: str) -> tuple[Cluster, str, str]:
    """A new, empty `<bench database>_<suffix>` (PostGIS ready): (cluster, name, admin URL).
    The caller drops it with `cluster.drop_database(name)` when done."""
    name = f"{db.name}_{suffix}"
    cluster = running_cluster(db.settings)
    cluster.drop_database(name)
    cluster.prepare_database(name)
    return cluster, name, on_database(db.admin_url, name)


def connect_admin(db: BenchDatabase, **kwargs: Any) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(libpq_url(db.admin_url), application_name="planwise-bench", **kwargs)


def loaded_meta(db: BenchDatabase) -> dict[str, Any] | None:
    """What `load` recorded in the database, or None if it holds no complete load."""
    cluster = running_cluster(db.settings)
    with cluster.admin_connect() as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db.name,)).fetchone():
            return None
    with connect_admin(db, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('bench.meta')").fetchone() == (None,):
            return None
        row = conn.execute("SELECT value FROM bench.meta WHERE key = 'load'").fetchone()
    return dict(row[0]) if row else None


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _load_places(
    conn: psycopg.Connection[tuple[Any, ...]], count: int, console: Console, city_stride: int
) -> dict[str, Any]:
    """Places through `import_records` (COPY into staging, merged in pipeline mode)."""
    started = time.perf_counter()
    with _progress(console) as bar:
        task = bar.add_task("places", total=count, rate="")

        def records() -> Iterator[SourceRecord]:
            for n, record in enumerate(world.places(count, city_stride=city_stride), 1):
                if n % 20_000 == 0:
                    elapsed = time.perf_counter() - started
                    bar.update(task, completed=n, rate=f"{n / elapsed:,.0f}/s")
                yield SourceRecord(SOURCE, n, record)
            bar.update(task, completed=count)

        report = import_records(conn, records())
    if report.rejected:
        first = report.rejected[0]
        raise PlanwiseError(f"generated place {first.line} rejected: {first.reason}")
    return {
        "places": report.inserted,
        "seconds": round(report.seconds, 2),
        "rows_per_second": round(report.rate),
    }


def _load_users(conn: psycopg.Connection[tuple[Any, ...]], count: int) -> dict[str, Any]:
    """Users and their preferences by COPY; the id sequence is moved past them."""
    started = time.perf_counter()
    hashed = hash_password(BENCH_PASSWORD)
    preferences = 0
    with conn.cursor() as cursor:
        people = list(world.users(count))
        with cursor.copy(
            'COPY "user" (id, username, hashed_password, full_name, role) FROM STDIN'
        ) as copy:
            for user in people:
                copy.write_row((user.id, user.username, hashed, f"Bench User {user.id}", "user"))
        with cursor.copy("COPY preference (user_id, category, rating) FROM STDIN") as copy:
            for user in people:
                for category, rating in user.preferences.items():
                    copy.write_row((user.id, category, rating))
                    preferences += 1
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('\"user\"', 'id'), %s)", (max(count, 1),)
        )
    return {
        "users": count,
        "preferences": preferences,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _load_requests(
    conn: psycopg.Connection[tuple[Any, ...]], count: int, users: int, city_stride: int
) -> None:
    with conn.cursor() as cursor:
        cursor.execute("TRUNCATE bench.request")
        with cursor.copy("COPY bench.request (n, user_id, lat, lng) FROM STDIN") as copy:
            for request in world.requests(count, users, city_stride=city_stride):
                copy.write_row((request.n, request.user_id, request.lat, request.lng))


def index_definitions(conn: psycopg.Connection[tuple[Any, ...]]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = 'public' AND tablename = 'place' AND indexname = ANY(%s)",
        (list(DROPPED_INDEXES),),
    ).fetchall()
    return {str(name): str(definition) for name, definition in rows}


def load(
    db: BenchDatabase,
    *,
    places: int,
    users: int = DEFAULT_USERS,
    requests: int = DEFAULT_REQUESTS,
    console: Console | None = None,
    city_stride: int = 1,
) -> dict[str, Any]:
    """A fresh database holding `places` places around every `city_stride`-th city,
    `users` users (5 preferences each) and `requests` request pairs; returns what was done
    and how fast."""
    console = console or Console(stderr=True)
    create_database(db, fresh=True)
    started = time.perf_counter()
    with connect_admin(db) as conn:
        definitions = index_definitions(conn)
        if sorted(definitions) != sorted(DROPPED_INDEXES):
            raise PlanwiseError(f"expected indexes {DROPPED_INDEXES} on place, found {definitions}")
        conn.execute("SET LOCAL work_mem = '64MB'")
        for name in DROPPED_INDEXES:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        place_report = _load_places(conn, places, console, city_stride)
        user_report = _load_users(conn, users)
        _load_requests(conn, requests, users, city_stride)
        conn.commit()

        console.print("building indexes …")
        index_started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        for name in DROPPED_INDEXES:
            conn.execute(definitions[name])  # verbatim pg_indexes definition: no user input
        conn.commit()
        index_seconds = time.perf_counter() - index_started
        if index_definitions(conn) != definitions:
            raise PlanwiseError("rebuilt place indexes differ from the migrated ones")

    console.print("VACUUM ANALYZE …")
    analyze_started = time.perf_counter()
    with connect_admin(db, autocommit=True) as conn:
        for table in ("place", "user", "preference", "bench.request"):
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(*table.split("."))))
        sizes = conn.execute(
            "SELECT pg_total_relation_size('place'), pg_relation_size('place'), "
            "pg_database_size(current_database())"
        ).fetchone()
        assert sizes is not None
        report = {
            "places": place_report,
            "users": user_report,
            "requests": requests,
            "index_build_seconds": round(index_seconds, 2),
            "vacuum_analyze_seconds": round(time.perf_counter() - analyze_started, 2),
            "total_seconds": round(time.perf_counter() - started, 2),
            "place_total_bytes": int(sizes[0]),
            "place_heap_bytes": int(sizes[1]),
            "database_bytes": int(sizes[2]),
            "seed": world.SEED,
            "city_stride": city_stride,
        }
        conn.execute(
            "INSERT INTO bench.meta (key, value) VALUES ('load', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (json.dumps(report),),
        )
    return report


def ensure_loaded(
    db: BenchDatabase,
    *,
    places: int,
    users: int = DEFAULT_USERS,
    requests: int = DEFAULT_REQUESTS,
    console: Console | None = None,
    city_stride: int = 1,
) -> tuple[dict[str, Any], bool]:
    """The load report, loading first unless the database already holds exactly this
    data set; the flag says whether it loaded now."""
    meta = loaded_meta(db)
    if (
        meta is not None
        and meta["places"]["places"] == places
        and meta["users"]["users"] == users
        and meta["requests"] == requests
        and meta.get("seed") == world.SEED
        and meta.get("city_stride", 1) == city_stride
    ):
        migrations.upgrade(db.admin_url)  # a data set loaded before a new migration
        return meta, False
    loaded = load(
        db, places=places, users=users, requests=requests, console=console,
        city_stride=city_stride,
    )  # fmt: skip
    return loaded, True


def request_rows(db: BenchDatabase, limit: int) -> list[world.Request]:
    """The first `limit` request pairs (the recall sample, the API's rotation)."""
    with connect_admin(db, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT n, user_id, lat, lng FROM bench.request WHERE n <= %s ORDER BY n", (limit,)
        ).fetchall()
    return [world.Request(int(n), int(user), float(lat), float(lng)) for n, user, lat, lng in rows]
