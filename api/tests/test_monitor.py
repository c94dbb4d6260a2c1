"""`planwise monitor` for real: the five metrics, `--check` thresholds, size history,
and the same figures on /metrics and /api/v1/admin/db."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from tests.api_helpers import new_account, new_admin
from tests.conftest import DatabaseUnderTest, connect, planwise

RELAXED = ["--cache-hit-ratio", "0", "--backup-max-age-hours", "1000"]


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
    assert "no verified backup" in report["problems"]
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
    sleeper = threading.Thread(
        target=lambda: connect(test_db.admin_url).execute("SELECT pg_sleep(4)")
    )
    sleeper.start()
    time.sleep(1.5)
    busy = planwise("monitor", "--check", *RELAXED, "--long-query-seconds", "1", **env)
    sleeper.join()
    assert busy.returncode == 1 and "query running" in busy.stdout


def test_database_metrics_on_the_api(client: TestClient, api_db: DatabaseUnderTest) -> None:
    text = client.get("http://testserver/metrics").text
    for metric in ("planwise_db_up 1.0", "planwise_db_size_bytes", "planwise_db_cache_hit_ratio",
                   'planwise_db_table_size_bytes{table="place"}'):  # fmt: skip
        assert metric in text, metric
    user, admin = new_account(client), new_admin(client, api_db)
    assert client.get("/admin/db", headers=user.headers).status_code == 403
    report = client.get("/admin/db", headers=admin.headers)
    assert report.status_code == 200 and report.json()["database_bytes"] > 0
