"""Point-in-time recovery for real, on a cluster of its own: back up, write, note the
time, write more and drop a table, restore to the noted time."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.cli import discard_cluster, planwise

PORT = 15493


@pytest.fixture(scope="module")
def pitr_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("pitr") / "home"
    env = {"PLANWISE_HOME": str(home), "PLANWISE_PG_PORT": str(PORT)}
    yield env
    discard_cluster(env)


def admin(env: dict[str, str]) -> psycopg.Connection[tuple[object, ...]]:
    url = planwise("db", "url", "--as", "admin", **env).stdout.strip()
    return psycopg.connect(url, autocommit=True)


@pytest.mark.slow
def test_restore_to_a_moment(pitr_env: dict[str, str]) -> None:
    env = pitr_env
    for step in (("db", "up"), ("db", "migrate"), ("pitr", "setup"), ("pitr", "backup")):
        result = planwise(*step, **env)
        assert result.returncode == 0, (step, result.stdout, result.stderr)
    with admin(env) as conn:
        conn.execute("CREATE TABLE pitr_probe (n int)")
        conn.execute("INSERT INTO pitr_probe SELECT generate_series(1, 100)")
        conn.execute("INSERT INTO place (id, name, lat, lng) VALUES ('kept', 'Kept', 1, 1)")
        time.sleep(1.1)
        moment = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
        time.sleep(1.1)
        conn.execute("INSERT INTO pitr_probe SELECT generate_series(101, 200)")
        conn.execute("INSERT INTO place (id, name, lat, lng) VALUES ('lost', 'Lost', 2, 2)")
        conn.execute("DROP TABLE pitr_probe")
        segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            archived = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
            if archived and archived[0] and archived[0] >= segment:
                break
            time.sleep(0.5)
    info = json.loads(planwise("pitr", "info", "--json", **env).stdout)
    assert len(info["backups"]) == 1 and info["archiver"]["failed_count"] == 0

    refused = planwise("pitr", "restore", "--to", moment.isoformat(), **env)
    assert refused.returncode == 3
    with admin(env) as conn:
        assert conn.execute("SELECT to_regclass('pitr_probe')").fetchone() == (None,)

    restored = planwise("pitr", "restore", "--to", moment.isoformat(), "--yes", **env)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    with admin(env) as conn:
        assert conn.execute("SELECT count(*), max(n) FROM pitr_probe").fetchone() == (100, 100)
        assert conn.execute("SELECT id FROM place ORDER BY id").fetchall() == [("kept",)]
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)


def test_bad_timestamps_are_refused(pitr_env: dict[str, str]) -> None:
    garbage = planwise("pitr", "restore", "--to", "yesterday-ish", "--yes", **pitr_env)
    assert garbage.returncode == 1 and "not a timestamp" in garbage.stderr
    future = planwise("pitr", "restore", "--to", "2999-01-01T00:00:00Z", "--yes", **pitr_env)
    assert future.returncode == 1 and "future" in future.stderr


def test_pitr_refuses_servers_we_do_not_manage() -> None:
    result = planwise("pitr", "info", DATABASE_URL="postgresql://u:p@db.example:5432/x")
    assert result.returncode == 1 and "host's job" in result.stderr
