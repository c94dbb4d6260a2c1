"""`planwise monitor` for real: the five metrics, `--check` thresholds, size history,
and the same figures on /metrics and /api/v1/admin/db."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import psycopg
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import create_engine, pool

from planwise.config import Settings
from planwise.db.engine import sqlalchemy_url
from planwise.ops.monitor import report as monitor
from planwise.ops.monitor.schemas import DatabaseReport
from tests.support.accounts import new_account, new_admin
from tests.support.cli import planwise
from tests.support.databases import DatabaseUnderTest, connect

RELAXED = ["--cache-hit-ratio", "0", "--backup-max-age-hours", "1000", "--dead-tuple-ratio", "1"]
"""Thresholds a test database passes whatever other tests did to it (rolled-back inserts
leave dead tuples)."""


def test_report_has_the_five_metrics(
    create_migrated_database: Callable[[str], DatabaseUnderTest], tmp_path: Path
) -> None:
    db = create_migrated_database("planwise_monitor")
    env = {"MIGRATION_DATABASE_URL": db.admin_url, "BACKUP_DIR": str(tmp_path)}
    assert planwise("monitor", "sample", **env).returncode == 0
    with connect(db.admin_url) as conn:
        conn.execute(
            "INSERT INTO place (id, name, lat, lng) SELECT 'm' || n, 'M', 0, 0 "
            "FROM generate_series(1, 2000) AS n"
        )
    assert planwise("monitor", "sample", **env).returncode == 0
    result = planwise("monitor", "--json", **env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("connections", "slowest_statements", "most_time_consuming", "long_running",
                "lock_waits", "database_bytes", "tables", "growth", "indexes",
                "unused_indexes", "mostly_sequential", "cache", "cache_by_table"):  # fmt: skip
        assert key in report, key
    growth = {row["relation"]: row["grown_bytes"] for row in report["growth"]}
    assert growth["place"] > 0
    assert {index["index"] for index in report["indexes"]} >= {"idx_place_location"}
    assert any(line.startswith("no verified backup") for line in report["problems"])
    assert report["archiver"]["archive_mode"] in ("off", "on", "always")
    assert {"index_ratio", "ratio"} <= set(report["cache_by_table"][0])
    text = planwise("monitor", **env).stdout
    assert "Cache hit ratio" in text and "Index usage" in text


def test_check_exits_1_on_a_long_query_and_0_when_all_is_well(
    test_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    env = {"MIGRATION_DATABASE_URL": test_db.admin_url, "BACKUP_DIR": str(tmp_path)}
    assert planwise("backup", "create", **env).returncode == 0
    name = next(tmp_path.glob("backup_*.dump")).stem
    assert planwise("backup", "verify", name, **env).returncode == 0
    calm = planwise("monitor", "--check", *RELAXED, **env)
    assert calm.returncode == 0, calm.stdout
    with connect(test_db.admin_url) as sleeping, connect(test_db.admin_url) as watcher:
        pid = sleeping.info.backend_pid
        sleeper = threading.Thread(target=lambda: _sleep_until_cancelled(sleeping))
        sleeper.start()
        time.sleep(1.5)
        busy = planwise("monitor", "--check", *RELAXED, "--long-query-seconds", "1", **env)
        watcher.execute("SELECT pg_cancel_backend(%s)", (pid,))
        sleeper.join()
    assert busy.returncode == 1 and "query running" in busy.stdout


def _sleep_until_cancelled(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    with contextlib.suppress(psycopg.errors.QueryCanceled):
        conn.execute("SELECT pg_sleep(60)")


def test_database_metrics_on_the_api(
    client: TestClient, api_db: DatabaseUnderTest, api_settings: Settings
) -> None:
    text = client.get("http://testserver/metrics").text
    for metric in ("planwise_db_up 1.0", "planwise_db_size_bytes", "planwise_db_cache_hit_ratio",
                   'planwise_db_table_size_bytes{table="place"}', "planwise_db_slow_statements",
                   "planwise_db_lock_waits", 'application="planwise-api"',
                   "planwise_db_duplicate_indexes 4.0", "planwise_db_invalid_indexes 0.0",
                   'planwise_db_dead_tuples{table="place"}', "planwise_db_xid_age",
                   'planwise_db_sequence_used_ratio{sequence="public.user_id_seq"}',
                   "planwise_db_lock_wait_max_seconds",
                   "planwise_backup_newest_verified_age_seconds +Inf"):  # fmt: skip
        assert metric in text, metric
    user, admin = new_account(client), new_admin(client, api_db)
    assert client.get("/admin/db", headers=user.headers).status_code == 403
    response = client.get("/admin/db", headers=admin.headers)
    assert response.status_code == 200
    report = response.json()
    assert report["database_bytes"] > 0
    assert report["app_pool"]["checked_out"] >= 1  # this very request's connection
    assert report["app_pool"]["size"] == api_settings.database_pool_size
    assert isinstance(report["problems"], list)
    _validates_against_the_openapi_schema(client, report)


def _validates_against_the_openapi_schema(client: TestClient, report: dict[str, Any]) -> None:
    """The admin report's schema is typed (no free-form object), and the real response
    conforms to it."""
    document = client.get("http://testserver/openapi.json").json()
    operation = document["paths"]["/api/v1/admin/db"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/DatabaseReport"}
    components = document["components"]["schemas"]
    typed = components["DatabaseReport"]
    assert set(report) == set(typed["properties"])
    assert typed["properties"]["tables"]["items"] == {"$ref": "#/components/schemas/DbTable"}
    assert components["DbLockWait"]["properties"]["blocking"]["items"] == {
        "$ref": "#/components/schemas/DbBlocker"
    }
    assert components["DbArchiver"]["properties"]["last_archived_time"]["anyOf"][0] == {
        "type": "string", "format": "date-time"
    }  # fmt: skip
    validator = jsonschema_rs.validator_for({**schema, "components": document["components"]})
    errors = [error.message for error in validator.iter_errors(report)]
    assert errors == []
    assert not validator.is_valid({**report, "tables": [{"table": 1}]})


def test_password_literals_never_reach_the_report(
    create_database: Callable[[str], DatabaseUnderTest],
) -> None:
    """`ALTER ROLE … PASSWORD '…'` sits verbatim in pg_stat_statements; we print it masked."""
    db = create_database("planwise_redact")
    secret = "s3cret-" + uuid.uuid4().hex
    role = "redact_" + uuid.uuid4().hex[:8]
    with connect(db.admin_url) as conn:
        conn.autocommit = True
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
        try:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(secret)
                )
            )
            stored = conn.execute(
                "SELECT query FROM pg_stat_statements WHERE query LIKE %s",
                (f'ALTER ROLE "{role}" PASSWORD%',),
            ).fetchone()
        finally:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert stored is not None and secret in str(stored[0])
    assert monitor.redact(str(stored[0])) == f"ALTER ROLE \"{role}\" PASSWORD '***'"
    for literal in (f"E'{secret}\\'", f"$x${secret}$x$", f"'{secret}"[:12], f"'{secret}''x'"):
        masked = monitor.redact(f"CREATE ROLE r LOGIN ENCRYPTED password {literal} VALID UNTIL")
        assert masked is not None and "s3cret" not in masked, masked


def test_monitoring_answers_within_3_s_while_tables_are_locked(
    client: TestClient, api_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    """`place` and `db_size_sample` locked ACCESS EXCLUSIVE (an ALTER TABLE, a VACUUM
    FULL): the CLI (60 s before) and the admin endpoint (24 s) answer within 3 s, with
    every other figure, and say what they could not read."""
    admin = new_admin(client, api_db)
    env = {"MIGRATION_DATABASE_URL": api_db.admin_url, "BACKUP_DIR": str(tmp_path)}
    with connect(api_db.admin_url) as holder:
        holder.execute("LOCK TABLE place, db_size_sample IN ACCESS EXCLUSIVE MODE")
        result = planwise("monitor", "--json", **env)
        started = time.monotonic()
        response = client.get("/admin/db", headers=admin.headers)
        api_seconds = time.monotonic() - started
        text = planwise("monitor", **env).stdout
        check = planwise("monitor", "--check", *RELAXED, **env)
    assert result.returncode == 0, result.stderr
    cli_seconds = json.loads(result.stdout)["read_seconds"]  # the CLI's own start-up aside
    assert cli_seconds < 3 and api_seconds < 3, (cli_seconds, api_seconds)
    assert response.status_code == 200, response.text
    for report in (json.loads(result.stdout), response.json()):
        assert set(report["unavailable"]) == {"growth"}, report["unavailable"]
        assert "waited too long for a lock" in report["unavailable"]["growth"]
        assert {"place", "db_size_sample"} <= set(report["tables_not_sized"])
        sizes = {table["table"]: table["bytes"] for table in report["tables"]}
        assert sizes["place"] is None and sizes["user"] > 0
        assert report["database_bytes"] > 0 and report["connections"]
        assert any(wait for wait in report["lock_waits"]) or report["lock_waits"] == []
    assert "growth: not read" in text and "sizes not read" in text
    assert check.returncode == 1 and "growth: not read" in check.stdout


def test_the_maintenance_checks_find_what_a_dba_looks_for(
    create_migrated_database: Callable[[str], DatabaseUnderTest], tmp_path: Path
) -> None:
    """Duplicate and invalid indexes, dead tuples, wraparound age, a sequence near the
    limit of its integer column, and the blocking query behind a lock wait: each in the
    report, each a `--check` rule that fires past its threshold."""
    db = create_migrated_database("planwise_maint")
    with connect(db.admin_url) as conn:
        conn.autocommit = True
        conn.execute("CREATE TABLE twin (x int)")
        conn.execute("INSERT INTO twin VALUES (1), (1)")
        with contextlib.suppress(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY twin_x ON twin (x)")
        conn.execute("CREATE TABLE churn (n int) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO churn SELECT generate_series(1, 3000)")
        conn.execute("DELETE FROM churn WHERE n > 500")
        conn.execute("CREATE TABLE counter (id int GENERATED ALWAYS AS IDENTITY)")
        conn.execute("SELECT setval(pg_get_serial_sequence('counter', 'id'), 2000000000)")
        conn.execute("SELECT pg_stat_force_next_flush()")
    engine = create_engine(sqlalchemy_url(db.admin_url), poolclass=pool.NullPool)
    with connect(db.admin_url) as holder, connect(db.admin_url) as waiter:
        holder.execute("LOCK TABLE twin IN ACCESS EXCLUSIVE MODE")
        holder_pid = holder.info.backend_pid
        waiting = threading.Thread(target=lambda: waiter.execute("SELECT count(*) FROM twin"))
        waiting.start()
        time.sleep(0.5)
        with engine.connect() as connection:
            report = monitor.collect(connection, backup_dir=tmp_path)
        holder.rollback()
        waiting.join(10)
    engine.dispose()
    duplicates = {(d["index"], d["covered_by"]) for d in report["duplicate_indexes"]}
    assert ("idx_user_username", "uq_user_username") in duplicates, duplicates
    assert [i["index"] for i in report["invalid_indexes"]] == ["twin_x"]
    churn = next(t for t in report["maintenance"] if t["table"] == "churn")
    assert churn["dead_tuples"] == 2500 and churn["dead_ratio"] > 0.8, churn
    assert report["wraparound"]["xid_age"] > 0
    counter = next(s for s in report["sequences"] if s["table"] == "counter")
    assert counter["type"] == "integer" and counter["max_value"] == 2**31 - 1
    assert 0.93 < counter["fraction_used"] < 0.94
    wait = next(w for w in report["lock_waits"] if "FROM twin" in w["query"])
    assert wait["blocking"][0]["pid"] == holder_pid
    assert wait["blocking"][0]["query"] == "LOCK TABLE twin IN ACCESS EXCLUSIVE MODE"
    assert wait["blocking"][0]["state"] == "idle in transaction"
    typed = DatabaseReport.model_validate({**report, "app_pool": {}, "problems": []})
    assert typed.lock_waits[0].blocking and typed.invalid_indexes  # the endpoint's schema

    rules = {rule.name: rule for rule in monitor.health(report, monitor.Thresholds())}
    assert not rules["duplicate indexes"].problems  # 16 kB: listed, not alarmed
    assert "twin_x on twin is invalid" in rules["invalid indexes"].problems[0]
    assert rules["dead tuples"].problems == ["table churn: 2500 dead tuples (83% of its rows)"]
    assert "counter.id is integer" in rules["sequences"].problems[0]
    assert not rules["transaction ID wraparound"].problems
    strict = monitor.Thresholds(duplicate_index_min_bytes=0, wraparound_max_age=1,
                                lock_wait_seconds=0)  # fmt: skip
    rules = {rule.name: rule for rule in monitor.health(report, strict)}
    assert any(
        "idx_user_username on user duplicates uq_user_username" in line
        for line in rules["duplicate indexes"].problems
    )
    assert rules["transaction ID wraparound"].problems
    assert "LOCK TABLE twin" in rules["lock waits"].problems[0]
    env = {"MIGRATION_DATABASE_URL": db.admin_url, "BACKUP_DIR": str(tmp_path)}
    check = planwise("monitor", "--check", "--wraparound-max-age", "1", **env)
    assert check.returncode == 1
    assert "transaction ID age" in check.stdout and "twin_x" in check.stdout


def test_the_statement_sampler_stores_deltas_and_starts_again_after_a_reset(
    create_migrated_database: Callable[[str], DatabaseUnderTest],
) -> None:
    """Two samples with a statement run between them store what it did in between; a
    reset of this database's statistics in between stores nothing negative, and the next
    interval counts again."""
    db = create_migrated_database("planwise_statement_sampler")
    engine = create_engine(sqlalchemy_url(db.admin_url), poolclass=pool.NullPool)
    marker = f"sampler_{uuid.uuid4().hex[:8]}"

    with connect(db.admin_url) as conn:
        table = sql.Identifier(marker)
        conn.execute(sql.SQL("CREATE TABLE {} (n int)").format(table))
        conn.execute(sql.SQL("INSERT INTO {} SELECT generate_series(1, 10)").format(table))

    def run(times: int, above: int = 0) -> None:  # 10 - above rows each time
        with connect(db.admin_url) as conn:
            for _ in range(times):
                conn.execute(sql.SQL("SELECT n FROM {} WHERE n > %s").format(table), (above,))

    def sample() -> int:
        with engine.connect() as connection:
            written = monitor.sample_statements(connection)
            connection.commit()
            return written

    def history() -> list[tuple[int, int, float]]:
        with connect(db.admin_url) as conn:
            rows = conn.execute(
                "SELECT calls, rows, seconds FROM statement_sample WHERE queryid IN "
                "(SELECT queryid FROM pg_stat_statements WHERE query LIKE %s) ORDER BY id",
                (f"SELECT n FROM %{marker}%",),
            ).fetchall()  # fmt: skip
        return [(int(calls), int(rows), float(seconds)) for calls, rows, seconds in rows]

    run(2)
    assert sample() == 0  # the first sample only keeps the totals
    run(5)
    assert sample() >= 1
    assert [(calls, rows) for calls, rows, _ in history()] == [(5, 50)]
    assert history()[0][2] > 0
    sample()
    assert len(history()) == 1  # it did not run since: no row for it
    with connect(db.admin_url) as conn:  # counters go down: this database's reset
        conn.execute(
            "SELECT pg_stat_statements_reset(0, "
            "(SELECT oid FROM pg_database WHERE datname = current_database()), 0)"
        )
    run(8, above=9)  # more calls than before the reset (7) but fewer rows (8 < 70)
    sample()
    assert [(calls, rows) for calls, rows, _ in history()] == [(5, 50)]  # starts again
    run(3)
    sample()
    assert [(calls, rows) for calls, rows, _ in history()] == [(5, 50), (3, 30)]
    with connect(db.admin_url) as conn:
        negative = conn.execute(
            "SELECT count(*) FROM statement_sample WHERE calls <= 0 OR rows < 0 "
            "OR total_exec_ms < 0"
        ).fetchone()
    assert negative == (0,)
    engine.dispose()
