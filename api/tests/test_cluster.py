"""`planwise cluster`: a real Patroni + etcd cluster of two members in synchronous mode;
`kill -9` of the leader's postmaster, and every acknowledged write survives the failover.

Two members, not the default three, keep it within ~60 s on two cores. Its ports derive
from PLANWISE_PG_PORT (member N on +10+N, Patroni REST +30+N, etcd +50 and +51).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from planwise.config import Settings
from planwise.ops.cluster.patroni import HACluster
from tests.support.cli import planwise

pytestmark = pytest.mark.slow

FAILOVER_LIMIT_SECONDS = 30
MEMBER_FIELDS = {"name", "role", "state", "host", "port", "pid", "timeline",
                 "lag_bytes", "lag_seconds"}  # fmt: skip


@dataclass
class RunningCluster:
    env: dict[str, str]
    root: Path
    ha: HACluster
    output: str = ""
    cleaned: list[bool] = field(default_factory=list)

    def url(self, *args: str) -> str:
        result = planwise("cluster", "url", *args, **self.env)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def members(self) -> list[dict[str, object]]:
        result = planwise("cluster", "status", "--json", **self.env)
        assert result.returncode in (0, 3), result.stderr
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def ha_cluster(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningCluster]:
    home = tmp_path_factory.mktemp("ha-home")
    env = {"PLANWISE_HOME": str(home), "PLANWISE_PG_PORT": str(settings.planwise_pg_port)}
    started = time.monotonic()
    result = planwise("cluster", "up", "--nodes", "2", "--sync", **env)
    match = re.search(r"Cluster directory: (\S+)", result.stdout)
    root = Path(match.group(1)) if match else home / "cluster"
    running = RunningCluster(env, root, HACluster(settings, root), result.stdout)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        print(f"cluster up --nodes 2 --sync: {time.monotonic() - started:.1f} s")
        yield running
    finally:
        if not running.cleaned:
            planwise("cluster", "down", "--delete", "--yes", **env)
            if root.parent.name.startswith("planwise-"):  # the /var/tmp fallback
                planwise("db", "down", **env)


def test_up_gives_the_same_database_as_make_db(ha_cluster: RunningCluster) -> None:
    assert "schema at" in ha_cluster.output
    assert "set the password of app_service" in ha_cluster.output
    app_url = ha_cluster.url("--as", "app")
    assert re.search(r"\?host=127\.0\.0\.1,127\.0\.0\.1&port=\d+,\d+&", app_url)
    assert app_url.endswith("target_session_attrs=read-write")
    with psycopg.connect(app_url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT current_user, pg_is_in_recovery(), "
            "(SELECT array_agg(extname::text ORDER BY extname) FROM pg_extension), "
            "(SELECT count(*) FROM place)"
        ).fetchone()
    assert row is not None
    assert row[0] == "app_service" and row[1] is False
    assert {"pg_stat_statements", "postgis"} <= set(row[2])
    read_url = ha_cluster.url("--as", "read", "--read")
    assert read_url.endswith("target_session_attrs=prefer-standby")
    with psycopg.connect(read_url, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user, pg_is_in_recovery()").fetchone() == (
            "app_read",
            True,
        )


def test_status_json_names_each_member(ha_cluster: RunningCluster) -> None:
    members = ha_cluster.members()
    assert len(members) == 2
    for member in members:
        assert set(member) == MEMBER_FIELDS
        assert member["state"] in ("running", "streaming")
        assert member["host"] == "127.0.0.1"
        assert isinstance(member["pid"], int) and Path(f"/proc/{member['pid']}").exists()
        assert isinstance(member["timeline"], int)
        assert member["lag_bytes"] == 0
    assert sorted(str(m["role"]) for m in members) == ["leader", "sync standby"]
    table = planwise("cluster", "status", **ha_cluster.env)
    assert table.returncode == 0 and "sync standby" in table.stdout


class Writer(threading.Thread):
    """Inserts numbered rows through the read-write URL, reconnecting on any error; keeps
    the numbers the server acknowledged (committed: autocommit)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.acknowledged: list[int] = []
        self.failures = 0
        self.last_ack_at = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.url, connect_timeout=2, autocommit=True) as conn:
                    while not self.stop.is_set():
                        number += 1
                        conn.execute("INSERT INTO ha_probe (n) VALUES (%s)", (number,))
                        self.acknowledged.append(number)
                        self.last_ack_at = time.monotonic()
            except psycopg.Error:
                self.failures += 1
                time.sleep(0.1)


def test_kill_9_of_the_leader_fails_over_without_losing_a_write(
    ha_cluster: RunningCluster,
) -> None:
    admin_url = ha_cluster.url("--as", "admin")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE ha_probe (n integer PRIMARY KEY)")
    old = next(m for m in ha_cluster.members() if m["role"] == "leader")
    writer = Writer(admin_url)
    writer.start()
    time.sleep(1.5)
    before_kill = len(writer.acknowledged)
    assert before_kill > 0, "no write went through before the kill"
    assert isinstance(old["pid"], int)
    os.kill(old["pid"], 9)
    killed_at = time.monotonic()
    new_leader = None
    while time.monotonic() - killed_at < FAILOVER_LIMIT_SECONDS + 5:
        leader = ha_cluster.ha.leader()
        if leader is not None and leader["name"] != old["name"]:
            new_leader = leader
            break
        time.sleep(0.1)
    elected = time.monotonic() - killed_at
    assert new_leader is not None, f"no new leader {elected:.1f} s after the kill"
    while writer.last_ack_at < killed_at + elected and time.monotonic() - killed_at < 60:
        time.sleep(0.1)
    writes_resumed = writer.last_ack_at - killed_at
    time.sleep(1)
    writer.stop.set()
    writer.join(10)
    print(
        f"kill -9 of {old['name']}'s postmaster: {new_leader['name']} leader after "
        f"{elected:.1f} s, writes resumed after {writes_resumed:.1f} s; "
        f"{len(writer.acknowledged)} writes acknowledged ({before_kill} before the kill), "
        f"{writer.failures} connection failures"
    )
    assert elected < FAILOVER_LIMIT_SECONDS
    assert len(writer.acknowledged) > before_kill, "no write acknowledged after the failover"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        assert conn.execute("SHOW port").fetchone() == (str(new_leader["port"]),)
        present = {row[0] for row in conn.execute("SELECT n FROM ha_probe")}
    lost = sorted(set(writer.acknowledged) - present)
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
    rejoined = None
    while time.monotonic() - killed_at < 60:
        members = {str(m["name"]): m for m in ha_cluster.members()}
        if members.get(str(old["name"]), {}).get("role") in ("replica", "sync standby") and all(
            m["state"] in ("running", "streaming") and m["pid"] for m in members.values()
        ):
            rejoined = time.monotonic() - killed_at
            break
        time.sleep(0.5)
    assert rejoined is not None, f"{old['name']} did not rejoin as a standby"
    print(f"{old['name']} back as a standby {rejoined:.1f} s after the kill")
    assert members[str(new_leader["name"])]["timeline"] == int(str(old["timeline"])) + 1


def test_down_stops_everything_and_delete_removes_it(ha_cluster: RunningCluster) -> None:
    pids = [m["pid"] for m in ha_cluster.members()]
    pids += [ha_cluster.ha.etcd_pid(), *(ha_cluster.ha.patroni_pid(i) for i in (1, 2))]
    assert all(isinstance(pid, int) for pid in pids)
    refused = planwise("cluster", "down", "--delete", **ha_cluster.env)
    assert refused.returncode == 3, "deleting asks for --yes"
    result = planwise("cluster", "down", "--delete", "--yes", **ha_cluster.env)
    assert result.returncode == 0, result.stderr
    ha_cluster.cleaned.append(True)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not ha_cluster.root.exists()
    assert planwise("cluster", "status", **ha_cluster.env).returncode == 3
