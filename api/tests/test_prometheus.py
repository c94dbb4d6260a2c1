"""ops/prometheus/alerts.yml and ops/grafana/planwise.json against the real thing: promtool
checks and unit-tests the rules, each `--check` rule has its alert with the same threshold,
and every metric the rules and the dashboard use is in a scrape of a running API."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql
from sqlalchemy import create_engine, pool

from planwise.db.cluster import PG_BIN
from planwise.db.engine import libpq_url, sqlalchemy_url
from planwise.ops.monitor import report as monitor
from tests.support.databases import DatabaseUnderTest, connect
from tests.support.served import planwise_serve, serve_environment

OPS = Path(__file__).resolve().parents[2] / "ops"
ALERTS = OPS / "prometheus" / "alerts.yml"
DASHBOARD = OPS / "grafana" / "planwise.json"

CONDITIONAL = {
    "planwise_db_wal_archive_age_seconds", "planwise_db_wal_segments_waiting",
    "planwise_db_wal_archive_failing", "planwise_pitr_restore_window_earliest_timestamp_seconds",
}  # fmt: skip
"""Only with archive_mode on and `planwise pitr setup` run: the test cluster has neither,
tests/test_pitr.py scrapes them from its archiving cluster."""
STANDBY_ONLY = {
    "planwise_db_replay_lag_bytes", "planwise_db_replay_lag_seconds",
    "planwise_db_wal_receiver_streaming",
}  # fmt: skip
"""Only on a standby: tests/test_cluster_reads.py scrapes them from one."""

LIMITS = monitor.Thresholds()
EXPECTED_COMPARISONS: dict[str, tuple[set[str], set[tuple[str, float]]]] = {
    "PlanwiseReportNotReadInTime": (set(), {(">", 0)}),
    "PlanwiseCacheHitRatioLow": ({"cache_hit_ratio", "cache_min_reads"},
                                 {("<", LIMITS.cache_hit_ratio), (">=", LIMITS.cache_min_reads)}),
    # slow_mean_ms and slow_min_calls are applied when collecting (DEFAULTS in report.py)
    "PlanwiseSlowStatements": ({"slow_mean_ms", "slow_min_calls"}, {(">", 0)}),
    "PlanwiseLongRunningQuery": ({"long_query_seconds"}, {(">", LIMITS.long_query_seconds)}),
    "PlanwiseLockWait": ({"lock_wait_seconds"}, {(">", LIMITS.lock_wait_seconds)}),
    "PlanwiseDuplicateIndex": ({"duplicate_index_min_bytes"},
                               {(">=", LIMITS.duplicate_index_min_bytes)}),
    "PlanwiseInvalidIndex": (set(), {(">", 0)}),
    "PlanwiseDeadTuples": ({"dead_tuple_min", "dead_tuple_ratio"},
                           {(">=", LIMITS.dead_tuple_min), (">", LIMITS.dead_tuple_ratio)}),
    "PlanwiseTransactionIdWraparound": ({"wraparound_max_age"},
                                        {(">", LIMITS.wraparound_max_age)}),
    "PlanwiseSequenceNearOverflow": ({"sequence_max_fraction"},
                                     {(">", LIMITS.sequence_max_fraction)}),
    "PlanwiseWalArchivingFailing": (set(), {("==", 1)}),
    "PlanwiseWalArchivingBehind": ({"archive_lag_seconds"},
                                   {(">", LIMITS.archive_lag_seconds), (">", 0)}),
    "PlanwiseNoRecentVerifiedBackup": ({"backup_max_age_hours"},
                                       {(">", LIMITS.backup_max_age_hours * 3600)}),
    "PlanwiseReplicationLag": ({"replica_lag_bytes", "replica_lag_seconds"},
                               {(">", LIMITS.replica_lag_bytes),
                                (">", LIMITS.replica_lag_seconds)}),
    "PlanwiseStandbyNotStreaming": (set(), {("==", 0)}),
}  # fmt: skip
"""`Patroni cluster` has no alert here: Patroni's own REST API serves /metrics for that."""
"""Each alert's comparisons, from report.py's Thresholds, and the fields they stand for."""


def _alerts() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    return rules


def _panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    return [panel for panel in panels if panel["type"] != "row"]


def _exprs() -> list[str]:
    return [rule["expr"] for rule in _alerts()] + [
        target["expr"] for panel in _panels() for target in panel["targets"]
    ]


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bplanwise_[a-z0-9_]+", expr))


def _promtool(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *arguments], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    checked = _promtool("check", "rules", "alerts.yml", cwd=ALERTS.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in checked.stdout
    tested = _promtool("test", "rules", "alerts.test.yml", cwd=ALERTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_check_rule_has_an_alert_with_the_same_threshold(
    test_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    engine = create_engine(sqlalchemy_url(test_db.app_url), poolclass=pool.NullPool)
    with wal_receiver(test_db, tmp_path / "wal"):  # a standby: the replication rules apply
        deadline = time.monotonic() + 10
        while True:
            with engine.connect() as connection:
                report = monitor.collect(connection, backup_dir=tmp_path)
            if report["replication"]["standbys"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    engine.dispose()
    rules = {rule.name: rule.threshold for rule in monitor.health(report, LIMITS)}
    alerts = [rule for rule in _alerts() if "check" in rule["labels"]]
    assert {alert["labels"]["check"] for alert in alerts} == set(rules)
    for alert in alerts:
        assert alert["annotations"]["threshold"] == rules[alert["labels"]["check"]], alert
    covered = {field for fields, _ in EXPECTED_COMPARISONS.values() for field in fields}
    assert covered == {field.name for field in dataclasses.fields(monitor.Thresholds)}
    assert set(EXPECTED_COMPARISONS) == {alert["alert"] for alert in alerts}
    for alert in alerts:
        found = {
            (operator, float(number))
            for operator, number in re.findall(r"(<=|>=|==|<|>)\s*([0-9.e+]+)", alert["expr"])
        }
        assert found == EXPECTED_COMPARISONS[alert["alert"]][1], alert


def test_the_dashboard_is_a_grafana_dashboard_whose_queries_parse(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    rules = []
    for panel in _panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$instance", ".*")
            rules.append({"record": f"panel_{panel['id']}_{target['refId']}", "expr": expr})
    titles = " ".join(panel["title"] for panel in _panels())
    for figure in ("Connections by state", "Cache hit ratio", "Database size", "WAL archive age",
                   "Newest verified backup age", "Replication lag", "Transaction ID age",
                   "Dead tuples", "Request latency histogram", "PITR restore window"):  # fmt: skip
        assert figure in titles, figure
    # promtool has no expression check of its own: the panels' queries as recording rules
    panels = {"groups": [{"name": "panels", "rules": rules}]}
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(panels))
    checked = _promtool("check", "rules", "panels.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@contextlib.contextmanager
def wal_receiver(db: DatabaseUnderTest, directory: Path, slot: str | None = None) -> Iterator[None]:
    """pg_receivewal streaming from the test cluster: a member of pg_stat_replication
    (streaming from a physical replication `slot` made for it and dropped afterwards)."""
    directory.mkdir()
    receivewal = [str(PG_BIN / "pg_receivewal"), "-D", str(directory)]
    receivewal += ["-d", libpq_url(db.admin_url)]
    if slot is not None:
        receivewal += ["--slot", slot]
        subprocess.run([*receivewal, "--create-slot"], check=True, capture_output=True)
    receiver = subprocess.Popen(
        [*receivewal, "--no-loop"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield
    finally:
        receiver.terminate()
        receiver.wait(10)
        if slot is not None:
            subprocess.run([*receivewal, "--drop-slot"], check=True, capture_output=True)


def _scrape(collector: monitor.DatabaseCollector) -> dict[str, list[Any]]:
    samples: dict[str, list[Any]] = {}
    for family in collector.collect():
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def test_replication_lag_per_standby_as_the_api_role_sees_it(
    api_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    """No standby: 0 members. A WAL receiver connects: one member, streaming, with its lag
    in bytes and seconds, read as app_service (through planwise_replication())."""
    engine = create_engine(sqlalchemy_url(api_db.app_url), poolclass=pool.NullPool)
    collector = monitor.DatabaseCollector(engine, cache_seconds=0)
    assert _scrape(collector)["planwise_db_replication_members"][0].value == 0
    with wal_receiver(api_db, tmp_path / "wal"):
        deadline = time.monotonic() + 10
        while True:
            samples = _scrape(collector)
            streaming = samples.get("planwise_db_replication_streaming", [])
            reported = streaming and samples.get("planwise_db_replication_lag_bytes")
            if (reported and streaming[0].value == 1) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    engine.dispose()
    assert samples["planwise_db_replication_members"][0].value == 1
    assert [s.labels for s in streaming] == [{"standby": "pg_receivewal"}]
    assert streaming[0].value == 1
    assert samples["planwise_db_replication_lag_bytes"][0].value >= 0
    assert samples["planwise_db_replication_lag_seconds"][0].value >= 0
    with connect(api_db.admin_url) as conn:  # the REST roles (and app_read) may not call it
        for role in ("anon", "authenticated", "service_role", "app_read"):
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM planwise_replication()")
            conn.rollback()


def test_metrics_do_not_wait_behind_a_lock(api_db: DatabaseUnderTest) -> None:
    """`place` and `db_size_sample` locked ACCESS EXCLUSIVE: a scrape still answers within
    3 s with everything else, and counts what it could not read."""
    engine = create_engine(sqlalchemy_url(api_db.app_url), poolclass=pool.NullPool)
    collector = monitor.DatabaseCollector(engine, cache_seconds=0)
    with connect(api_db.admin_url) as holder:
        holder.execute("LOCK TABLE place, db_size_sample IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        samples = _scrape(collector)
        seconds = time.monotonic() - started
    engine.dispose()
    assert seconds < 3, seconds
    assert samples["planwise_db_up"][0].value == 1
    assert samples["planwise_db_report_unread_parts"][0].value == 1  # growth
    assert samples["planwise_db_tables_not_sized"][0].value >= 2
    assert samples["planwise_db_size_bytes"][0].value > 0


@pytest.fixture(scope="module")
def scraped(api_db: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One /metrics scrape of `planwise serve`, with a WAL receiver connected."""
    home = tmp_path_factory.mktemp("prometheus")
    env = serve_environment(api_db, home, BACKUP_DIR=str(home / "backups"))
    with connect(api_db.admin_url) as conn:
        conn.autocommit = True
        # Tables with a last vacuum time and live rows (a copied database has no statistics)
        conn.execute("VACUUM (ANALYZE) db_size_sample, spatial_ref_sys")
    receiving = wal_receiver(api_db, home / "wal", slot="planwise_test_scrape")
    with receiving, planwise_serve(env, home / "serve.log") as (base, _):
        httpx.get(f"{base}/health", timeout=10)  # a request: the latency histogram fills
        return httpx.get(f"{base}/metrics", timeout=10).raise_for_status().text


def test_every_metric_of_the_rules_and_the_dashboard_is_scraped_from_the_api(
    scraped: str,
) -> None:
    names = {
        sample.name
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    used = {name for expr in _exprs() for name in _metric_names(expr)}
    assert used - CONDITIONAL - STANDBY_ONLY - names == set()
    assert used >= CONDITIONAL
    assert "planwise_pitr_configured 0.0" in scraped  # DATABASE_URL: not the managed cluster
    assert 'planwise_db_replication_streaming{standby="pg_receivewal"} 1.0' in scraped
    assert "planwise_db_report_unread_parts 0.0" in scraped
    assert 'planwise_db_cache_blocks_hit_total{kind="heap"}' in scraped
