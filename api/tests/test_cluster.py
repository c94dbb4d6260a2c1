"""`planwise cluster`: a real Patroni + etcd cluster of two members in synchronous mode;
`kill -9` of the leader's postmaster, and every acknowledged write survives the failover.

Two members, not the default three, keep it within ~60 s on two cores. Its ports derive
from PLANWISE_PG_PORT (member N on +10+N, Patroni REST +30+N, etcd +50 and +51).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from planwise.config import Settings
from planwise.db import migrations
from tests.support.accounts import PASSWORD
from tests.support.cli import planwise
from tests.support.cluster import (
    ApiWriter,
    RunningCluster,
    Writer,
    admin_headers,
    cluster_fixture,
    place_events,
)
from tests.support.live import serve

pytestmark = pytest.mark.slow

FAILOVER_LIMIT_SECONDS = 30
MEMBER_FIELDS = {"name", "role", "state", "host", "port", "pid", "timeline",
                 "lag_bytes", "lag_seconds"}  # fmt: skip


ha_cluster = cluster_fixture("ha-home")


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


def test_migrate_status_on_the_cluster_is_at_head_and_the_standby_follows(
    ha_cluster: RunningCluster,
) -> None:
    """`migrate status` against the cluster's read-write URL (the leader) reports the head;
    the standby has the same alembic_version, through replication alone."""
    head = migrations.head_revision()
    environments = json.dumps({"cluster": ha_cluster.url("--as", "admin")})
    result = planwise("migrate", "status", "--env", "cluster",
                      MIGRATION_ENVIRONMENTS=environments, **ha_cluster.env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"at {head}, head {head}" in result.stdout and "nothing pending" in result.stdout
    standby = next(m.as_dict() for m in ha_cluster.ha.members() if m.role != "leader")
    with psycopg.connect(ha_cluster.member_url(standby), autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]


def test_status_json_names_each_member(ha_cluster: RunningCluster) -> None:
    members = ha_cluster.members()
    assert len(members) == 2
    for member in members:
        assert set(member) == MEMBER_FIELDS
        assert member["state"] == ("running" if member["role"] == "leader" else "streaming")
        assert member["host"] == "127.0.0.1"
        assert isinstance(member["pid"], int) and Path(f"/proc/{member['pid']}").exists()
        assert isinstance(member["timeline"], int)
        assert member["lag_bytes"] == 0
    assert sorted(str(m["role"]) for m in members) == ["leader", "sync standby"]
    table = planwise("cluster", "status", **ha_cluster.env)
    assert table.returncode == 0 and "sync standby" in table.stdout


def test_switchover_and_failover_ask_and_report_patronis_refusal(
    ha_cluster: RunningCluster,
) -> None:
    unconfirmed = planwise("cluster", "switchover", **ha_cluster.env)
    assert unconfirmed.returncode == 3 and "--yes" in unconfirmed.stderr
    refused = planwise("cluster", "failover", "--to", "node9", "--yes", **ha_cluster.env)
    assert refused.returncode == 1
    assert "Patroni refused the failover: candidate does not exist" in refused.stderr


@dataclass
class Failover:
    old: dict[str, object]
    new: dict[str, object]
    killed_at: float
    elected_at: float

    @property
    def seconds(self) -> float:
        return self.elected_at - self.killed_at


def kill_the_leader(ha_cluster: RunningCluster) -> Failover:
    """`kill -9` of the leader's postmaster; returns once another member leads (asserted
    within FAILOVER_LIMIT_SECONDS)."""
    old = next(m for m in ha_cluster.members() if m["role"] == "leader")
    assert isinstance(old["pid"], int)
    os.kill(old["pid"], 9)
    killed_at = time.monotonic()
    while time.monotonic() - killed_at < FAILOVER_LIMIT_SECONDS:
        leader = ha_cluster.ha.leader()
        if leader is not None and leader["name"] != old["name"]:
            return Failover(old, leader, killed_at, time.monotonic())
        time.sleep(0.1)
    pytest.fail(f"no new leader within {FAILOVER_LIMIT_SECONDS} s of the kill")


def wait_for_the_old_leader_as_sync_standby(
    ha_cluster: RunningCluster, failover: Failover
) -> dict[str, dict[str, object]]:
    """Patroni restarts the killed member (pg_rewind if needed) as a standby, and the
    new leader makes it its sync standby again."""
    name = str(failover.old["name"])
    while time.monotonic() - failover.killed_at < 60:
        members = {str(m["name"]): m for m in ha_cluster.members()}
        back = members.get(name, {})
        if (
            back.get("role") == "sync standby"
            and back.get("state") == "streaming"
            and all(m["pid"] for m in members.values())
        ):
            print(f"{name} back as sync standby {time.monotonic() - failover.killed_at:.1f} s "
                  "after the kill")  # fmt: skip
            return members
        time.sleep(0.5)
    pytest.fail(f"{name} did not rejoin as a sync standby within 60 s of the kill")


def test_kill_9_of_the_leader_then_a_switchover_under_write_load(
    ha_cluster: RunningCluster, settings: Settings
) -> None:
    """Writes straight through the read-write URL and through the live API (whose
    DATABASE_URL is that URL). `kill -9` of the leader's postmaster: a new leader within
    30 s, the API serving again without a restart (503 only meanwhile), the killed member
    back as the sync standby. Then a planned switchover back to it: errors only during the
    switch. No acknowledged write lost (synchronous mode). A realtime subscriber of the
    API is told of every place the API acknowledged, once."""
    admin_url = ha_cluster.url("--as", "admin")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE ha_probe (n integer PRIMARY KEY)")
    api_settings = ha_cluster.api_settings(
        settings, patroni_url=",".join(ha_cluster.ha.rest_urls())
    )
    with serve(api_settings) as live, live.http() as http:
        subscribing = time.monotonic()
        events = place_events(live, http, admin_url)  # the realtime listener follows too
        print(f"realtime subscriber ready in {time.monotonic() - subscribing:.1f} s")
        api_writer = ApiWriter(http, admin_headers(http, admin_url))
        writer = Writer(admin_url)
        writer.start()
        api_writer.start()
        time.sleep(1.5)
        before_kill = len(writer.acknowledged)
        assert before_kill > 0, "no write went through before the kill"
        assert api_writer.acknowledged(), "no API write went through before the kill"
        failover = kill_the_leader(ha_cluster)
        wait_for_writes_after(failover.elected_at, writer, api_writer)
        members = wait_for_the_old_leader_as_sync_standby(ha_cluster, failover)
        old_timeline = int(str(failover.old["timeline"]))
        assert members[str(failover.new["name"])]["timeline"] == old_timeline + 1
        switch_started = time.monotonic()
        switched = planwise("cluster", "switchover", "--yes", **ha_cluster.env)
        assert switched.returncode == 0, switched.stderr
        assert f'switched over to "{failover.old["name"]}"' in switched.stdout
        switched_at = time.monotonic()
        wait_for_writes_after(switched_at, writer, api_writer)
        replication = replication_once_streaming(http, api_writer.headers)
        overview = console_overview(live.url, f"ha_admin_{os.getpid()}")
        time.sleep(1)
        writer.stop.set()
        api_writer.stop.set()
        writer.join(10)
        api_writer.join(15)
        assert http.get("/health").status_code == 200
        unannounced = events.wait_for(api_writer.acknowledged())
        events.stop.set()
    # A write may still succeed just after the kill or the switchover's start: a window
    # ends with the first success once the new leader was known.
    served_again = api_writer.served_again(failover.elected_at)
    served_after_switch = api_writer.served_again(switched_at)
    assert served_again is not None and served_after_switch is not None
    codes = Counter(code for _, code, _ in api_writer.responses)
    print(
        f"kill -9 of {failover.old['name']}'s postmaster: {failover.new['name']} leader after "
        f"{failover.seconds:.1f} s; direct writes stopped for "
        f"{writer.outage(failover.killed_at, switch_started):.1f} s, the API served writes "
        f"again after {served_again - failover.killed_at:.1f} s. Switchover back: "
        f"{switched_at - switch_started:.1f} s, direct writes stopped for "
        f"{writer.outage(switch_started):.1f} s, API writes for "
        f"{api_writer.outage(switch_started):.1f} s. {len(writer.acknowledged)} direct writes "
        f"({len(writer.failures)} failures), API responses {dict(codes)}"
    )
    assert set(codes) <= {200, 201, 503}, codes
    failed = [at for at, code, _ in api_writer.responses if code not in (200, 201)]
    outside = [
        at for at in failed
        if not failover.killed_at <= at <= served_again
        and not switch_started <= at <= served_after_switch
    ]  # fmt: skip
    assert not outside, f"{len(outside)} API failures outside the failover and the switchover"
    direct_after = [at for at in writer.failures if at > writer.served_again(switched_at)]
    assert not direct_after, f"{len(direct_after)} direct write failures after the switchover"
    # The admin report (read as app_service) knows the new layout: the leader on the new
    # timeline, the old one its streaming sync standby, Patroni's leader the same.
    final = {str(m["name"]): m for m in ha_cluster.members()}
    assert replication["in_recovery"] is False
    assert replication["timeline"] == final[str(failover.old["name"])]["timeline"]
    assert replication["timeline"] == old_timeline + 2
    assert [(s["name"], s["sync_state"]) for s in replication["standbys"]] == [
        (failover.new["name"], "sync")
    ]
    assert replication["patroni"]["leader"] == failover.old["name"]
    # So does the console's Overview: its members with role and timeline, the rules green.
    for name, role in ((failover.old["name"], "leader"), (failover.new["name"], "sync_standby")):
        assert f"<td>{name}</td><td>{role}</td>" in overview
    assert f"the leader, timeline {old_timeline + 2}" in overview
    for rule in ("replication lag", "standbys streaming", "Patroni cluster"):
        assert f'class="rule ok" data-rule="{rule}"' in overview, rule
    with psycopg.connect(admin_url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        assert conn.execute("SHOW port").fetchone() == (str(failover.old["port"]),)
        present = {row[0] for row in conn.execute("SELECT n FROM ha_probe")}
        places = {row[0] for row in conn.execute("SELECT id FROM place WHERE id LIKE 'ha-%'")}
    lost = sorted(set(writer.acknowledged) - present)
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
    lost_places = api_writer.acknowledged() - places
    assert not lost_places, f"{len(lost_places)} acknowledged API writes lost"
    # Every place the API acknowledged reached the realtime subscriber, once, across the
    # kill and the switchover (from NOTIFY, or from the replicated change log on reconnect).
    assert not unannounced, f"{len(unannounced)} places never announced, e.g. {unannounced}"
    repeated = [place for place, times in Counter(events.received).items() if times > 1]
    assert not repeated, f"announced twice: {repeated[:5]}"


def replication_once_streaming(http: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    """`GET /admin/db`'s replication part once the leader has a streaming sync standby and
    Patroni says so too (it records the sync standby, and a member's state, after
    PostgreSQL has them)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = http.get("/admin/db", headers=headers)
        if response.status_code == 200:
            replication: dict[str, Any] = response.json()["replication"]
            standbys = [(s["state"], s["sync_state"]) for s in replication["standbys"]]
            patroni = sorted((m["role"], m["state"]) for m in replication["patroni"]["members"])
            if standbys == [("streaming", "sync")] and patroni == [
                ("leader", "running"),
                ("sync_standby", "running"),
            ]:
                return replication
        time.sleep(0.3)
    pytest.fail("no sync standby streamed to the new leader within 30 s of the switchover")


def console_overview(url: str, username: str) -> str:
    """The console's Overview page, signed in through its form."""
    with httpx.Client(base_url=url, timeout=10) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin/login").text)
        assert token is not None
        signed = client.post("/admin/login", data={
            "username": username, "password": PASSWORD, "csrf": token[1]})  # fmt: skip
        assert signed.status_code == 303, signed.text
        page = client.get("/admin/")
        assert page.status_code == 200, page.text
        return page.text


def wait_for_writes_after(moment: float, writer: Writer, api_writer: ApiWriter) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if writer.last_ack_at > moment and api_writer.served_again(moment) is not None:
            return
        time.sleep(0.1)
    pytest.fail("writes did not resume within 60 s")


def test_down_stops_everything_and_delete_removes_it(ha_cluster: RunningCluster) -> None:
    deadline = time.monotonic() + 30  # a member the test before switched may still restart
    while not all(isinstance(m["pid"], int) for m in ha_cluster.members()):
        assert time.monotonic() < deadline, ha_cluster.members()
        time.sleep(0.5)
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
    if ha_cluster.root.parent.name.startswith("planwise-"):  # the /var/tmp fallback
        assert not ha_cluster.root.parent.exists(), "its empty parent is removed too"
    assert planwise("cluster", "status", **ha_cluster.env).returncode == 3
