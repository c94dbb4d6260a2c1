"""Reads go to replicas: with DATABASE_READ_URL the cluster's prefer-standby URL, the
recommendation statement and place reads run on the standby while writes stay on the
leader, and a user who just wrote reads from the leader (read-your-writes), proven with
the standby's replay paused so that a read there would miss the write. Then, on the same
cluster, what `monitor --check` says of a stopped standby and of a cluster without a
leader, and the standby catching up.

Two members (`cluster up --nodes 2 --sync`), ports derived from PLANWISE_PG_PORT as in
tests/test_cluster.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, pool

from planwise.config import Settings
from planwise.db.cluster import PG_BIN, as_cluster_user
from planwise.db.engine import sqlalchemy_url
from planwise.ops.monitor.report import DatabaseCollector
from tests.support.cli import planwise
from tests.support.cluster import RunningCluster, Writer, account_headers, cluster_fixture
from tests.support.live import serve
from tests.test_monitor import RELAXED
from tests.test_prometheus import STANDBY_ONLY

pytestmark = pytest.mark.slow

WINDOW_SECONDS = 1.5
"""DATABASE_READ_YOUR_WRITES_SECONDS in this test: short, so that its end can be seen."""
NEAR = {"lat": 48.8566, "lng": 2.3522, "radius_km": 5}
RECOMMEND = "%planwise_recommend_for%"
PLACE_READ = "SELECT place.id%FROM place%WHERE place.id = %"


ha_cluster = cluster_fixture("ha-reads-home")


def member_connection(ha_cluster: RunningCluster, role: str) -> psycopg.Connection[Any]:
    """The owner on one member (`leader` or a standby), whatever the URL's attrs say."""
    members = ha_cluster.members()
    member = next(
        m for m in members if (m["role"] == "leader") == (role == "leader")
    )  # fmt: skip
    return psycopg.connect(
        ha_cluster.url("--as", "admin"),
        host=str(member["host"]),
        port=str(member["port"]),
        target_session_attrs="any",
        autocommit=True,
    )


def sessions(conn: psycopg.Connection[Any], application: str, query: str = "%") -> int:
    """Our API's sessions on this member whose (last) statement matches `query`."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = %s AND query LIKE %s",
        (application, query),
    ).fetchone()
    assert row is not None
    return int(row[0])


def recommend_calls(conn: psycopg.Connection[Any], query: str = RECOMMEND) -> int:
    """How often this member ran statements like `query` (pg_stat_statements)."""
    row = conn.execute(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE %s",
        (query,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def caught_up(leader: psycopg.Connection[Any], standby: psycopg.Connection[Any]) -> None:
    lsn = leader.execute("SELECT pg_current_wal_lsn()").fetchone()
    assert lsn is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        replayed = standby.execute(
            "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn[0],)
        ).fetchone()
        if replayed == (True,):
            return
        time.sleep(0.05)
    pytest.fail("the standby did not replay the leader's WAL within 15 s")


def maintenance_mode(ha_cluster: RunningCluster, on: bool) -> None:
    """Patroni's pause: otherwise each member's loop resumes a paused WAL replay."""
    ports = [ha_cluster.ha.rest_port(i) for i in ha_cluster.ha.node_indexes()]
    patched = httpx.patch(f"http://127.0.0.1:{ports[0]}/config", json={"pause": on})
    assert patched.status_code == 200, patched.text
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        states = [httpx.get(f"http://127.0.0.1:{port}/patroni").json() for port in ports]
        if all(bool(state.get("pause")) == on for state in states):
            return
        time.sleep(0.1)
    pytest.fail(f"Patroni's members did not take pause={on} within 15 s")


def recommended(http: httpx.Client, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = http.get("/recommendations", params=NEAR, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_recommendations_read_from_the_standby_and_a_writer_reads_its_own_write(
    ha_cluster: RunningCluster, settings: Settings
) -> None:
    read_url = ha_cluster.url("--as", "app", "--read")
    assert "target_session_attrs=prefer-standby" in read_url
    api_settings = ha_cluster.api_settings(
        settings,
        database_read_url=read_url,
        database_read_your_writes_seconds=WINDOW_SECONDS,
    )
    admin_url = ha_cluster.url("--as", "admin")
    with (
        member_connection(ha_cluster, "leader") as leader,
        member_connection(ha_cluster, "standby") as standby,
        serve(api_settings) as live,
        live.http() as http,
    ):
        assert leader.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        assert standby.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        tag = f"reads{os.getpid()}"
        admin = account_headers(http, admin_url, f"{tag}_admin", admin=True)
        placed = http.put(
            f"/places/{tag}-museum",
            json={"name": "Museum", "lat": 48.857, "lng": 2.352, "types": ["museum"]},
            headers=admin,
        )
        assert placed.status_code == 201, placed.text
        category = placed.json()["category"]
        reader = account_headers(http, admin_url, f"{tag}_reader")
        writer = account_headers(http, admin_url, f"{tag}_writer")
        liked = http.put(f"/preferences/{category}", json={"rating": 1}, headers=reader)
        assert liked.status_code in (200, 201), liked.text
        time.sleep(WINDOW_SECONDS)  # the reader's write is no longer "just now"
        caught_up(leader, standby)
        for conn in (leader, standby):
            conn.execute("SELECT pg_stat_statements_reset()")

        # Reads by a user who has not written lately: on the standby, not the leader.
        assert [item["id"] for item in recommended(http, reader)] == [f"{tag}-museum"]
        assert sessions(standby, "planwise-api-read", RECOMMEND) >= 1
        place_reads = [recommend_calls(conn, PLACE_READ) for conn in (leader, standby)]
        assert http.get(f"/places/{tag}-museum").status_code == 200
        assert recommend_calls(leader, PLACE_READ) == place_reads[0]
        assert recommend_calls(standby, PLACE_READ) == place_reads[1] + 1
        assert sessions(leader, "planwise-api-read") == 0
        assert recommend_calls(standby) >= 1
        assert recommend_calls(leader) == 0
        # Writes (and the whole primary engine) stay on the leader.
        assert sessions(standby, "planwise-api") == 0
        assert sessions(leader, "planwise-api") >= 1

        # The standby stops replaying: a read there would miss any new write.
        maintenance_mode(ha_cluster, True)
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            assert recommended(http, writer) == []
            wrote = http.put(f"/preferences/{category}", json={"rating": 1}, headers=writer)
            assert wrote.status_code in (200, 201), wrote.text
            # On the standby the write is not there yet ...
            missing = standby.execute(
                'SELECT count(*) FROM preference p JOIN "user" u ON u.id = p.user_id'
                " WHERE u.username = %s",
                (f"{tag}_writer",),
            ).fetchone()
            assert missing == (0,)
            # ... yet the writer, right after the write, reads it: from the leader.
            before = recommend_calls(leader)
            assert [item["id"] for item in recommended(http, writer)] == [f"{tag}-museum"]
            assert recommend_calls(leader) == before + 1
            # Others still read from the standby meanwhile.
            standby_calls = recommend_calls(standby)
            assert len(recommended(http, reader)) == 1
            assert recommend_calls(standby) == standby_calls + 1
            # When the window has passed, the writer reads from the standby again
            # (still paused here, so without the write: what the window protects from).
            time.sleep(WINDOW_SECONDS + 0.2)
            standby_calls = recommend_calls(standby)
            assert recommended(http, writer) == []
            assert recommend_calls(standby) == standby_calls + 1
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
            maintenance_mode(ha_cluster, False)
        caught_up(leader, standby)
        assert len(recommended(http, writer)) == 1


PGBOUNCER_RESUME_LIMIT_SECONDS = 10


def test_pgbouncer_follows_the_leader_through_a_switchover(ha_cluster: RunningCluster) -> None:
    """`pgbouncer up` on the cluster points PgBouncer at the leader; after a switchover the
    new leader's Patroni callback re-points it, and a client writing through PgBouncer
    (its connection dropped, it reconnects) writes again within seconds, on the new leader."""
    admin_url = ha_cluster.url("--as", "admin")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ha_probe (n integer PRIMARY KEY)")
        conn.execute("GRANT SELECT, INSERT ON ha_probe TO app_service")
    env = {**ha_cluster.env, "PGBOUNCER_PORT": str(ha_cluster.ha.settings.planwise_pg_port + 60)}
    started = planwise("pgbouncer", "up", **env)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        pooled_url = next(
            line.removeprefix("DATABASE_URL=")
            for line in started.stdout.splitlines()
            if line.startswith("DATABASE_URL=")
        )
        old = leader_port(ha_cluster)
        databases = ha_cluster.ha.pgbouncer_dir / "databases.ini"
        assert f"port={old}" in databases.read_text()
        wait_for_members(ha_cluster, switchable)  # before the load: lag 0 is part of it
        writer = Writer(pooled_url, prepare_threshold=None)
        writer.start()
        time.sleep(1)
        assert writer.acknowledged, "nothing written through PgBouncer before the switchover"
        switch_started = time.monotonic()
        assert "Successfully switched over" in ha_cluster.ha.switchover(None)
        switched_at = time.monotonic()
        deadline = switched_at + PGBOUNCER_RESUME_LIMIT_SECONDS
        while writer.last_ack_at < switched_at and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        writer.stop.set()
        writer.join(10)
        assert writer.last_ack_at > switched_at, (
            f"no write through PgBouncer within {PGBOUNCER_RESUME_LIMIT_SECONDS} s of the "
            "switchover"
        )
        new = leader_port(ha_cluster)
        assert new != old and f"port={new}" in databases.read_text()
        with psycopg.connect(pooled_url, autocommit=True, prepare_threshold=None) as conn:
            assert conn.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone() == (
                new,
                False,
            )
        print(
            f"PgBouncer: switchover {switched_at - switch_started:.1f} s, writes through it "
            f"stopped for {writer.outage(switch_started):.1f} s ({len(writer.failures)} failed "
            "attempts)"
        )
    finally:
        ha_cluster.ha.pgbouncer().down()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        present = {row[0] for row in conn.execute("SELECT n FROM ha_probe")}
    lost = set(writer.acknowledged) - present
    assert not lost, f"{len(lost)} writes acknowledged through PgBouncer lost"


def leader_port(ha_cluster: RunningCluster) -> int:
    leader = ha_cluster.ha.leader()
    assert leader is not None, "no leader"
    return int(leader["port"])


def archiver(ha_cluster: RunningCluster) -> tuple[int, str | None]:
    """The leader's pg_stat_archiver: segments archived, the last one's name."""
    with psycopg.connect(ha_cluster.url("--as", "admin"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT archived_count, last_archived_wal FROM pg_stat_archiver"
        ).fetchone()
    assert row is not None
    return int(row[0]), row[1]


def test_wal_is_archived_from_the_leader_and_after_a_switchover_from_the_new_one(
    ha_cluster: RunningCluster,
) -> None:
    """`pitr setup` on the cluster: one pgBackRest config naming every member (pg1..pgN,
    backup-standby), stanza created, `pgbackrest check` (a WAL switch on the primary,
    waited for in the repository) passes; after a switchover the new leader archives with
    the same config: `check` passes again and its segments, on the new timeline, are there.
    A full backup is then taken from the standby."""
    configured = planwise("pitr", "setup", "--yes", **ha_cluster.env)
    assert configured.returncode == 0, configured.stdout + configured.stderr
    assert "restarted" not in configured.stdout, "archiving was on from `cluster up`"
    config = (ha_cluster.ha.pgbackrest_dir / "pgbackrest.conf").read_text()
    assert "backup-standby=y" in config
    assert all(f"pg{i}-path=" in config for i in ha_cluster.ha.node_indexes())
    before, old_timeline = leader_port(ha_cluster), leader_timeline(ha_cluster)
    count, first_wal = archiver(ha_cluster)
    assert count >= 1 and first_wal is not None, "the leader archived nothing"
    assert archived_on(ha_cluster, old_timeline), "no segment of the leader's timeline archived"
    wait_for_members(ha_cluster, switchable)
    assert "Successfully switched over" in ha_cluster.ha.switchover(None)
    assert leader_port(ha_cluster) != before
    ha_cluster.ha.pitr().check()
    count, new_wal = archiver(ha_cluster)
    assert count >= 1 and new_wal is not None, "the new leader archived nothing"
    new_timeline = leader_timeline(ha_cluster)
    assert new_timeline > old_timeline
    # (The new leader also archives the old timeline's last segment, `.partial`, perhaps
    # after `check`'s segment, so pg_stat_archiver's last one may be that.)
    assert archived_on(ha_cluster, new_timeline), f"nothing of timeline {new_timeline} archived"
    # A backup takes its files from the standby (backup-standby), so pgBackRest waits for
    # the standby to replay up to the backup's start, which it logs.
    wait_for_members(ha_cluster, healthy)  # the old leader streams again as the standby
    made = ha_cluster.ha.pitr().backup("full")
    assert made["type"] == "full" and made["size_bytes"] > 0
    logs = (ha_cluster.ha.pgbackrest_dir / "log").glob("*backup.log")
    assert "wait for replay on the standby" in "".join(path.read_text() for path in logs)


def leader_timeline(ha_cluster: RunningCluster) -> int:
    """The timeline of the leader's current WAL file (the checkpoint's lags behind)."""
    with psycopg.connect(ha_cluster.url("--as", "admin"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
        ).fetchone()
    assert row is not None
    return int(row[0])


def archived_on(ha_cluster: RunningCluster, timeline: int) -> set[str]:
    """The WAL segments of `timeline` in the cluster's pgBackRest repository."""
    repository = ha_cluster.ha.pgbackrest_dir / "repo"
    names = {path.name[:24] for path in repository.glob("archive/*/*/*/*")}
    return {name for name in names if int(name[:8], 16) == timeline}


def monitor_env(ha_cluster: RunningCluster, url: str, backups: Path) -> dict[str, str]:
    """`planwise monitor` against `url` (a member of the cluster), with a backup dir."""
    return {**ha_cluster.env, "MIGRATION_DATABASE_URL": url, "BACKUP_DIR": str(backups)}


def check(env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    return planwise("monitor", "--check", *RELAXED, *options, **env)


def wait_for_members(
    ha_cluster: RunningCluster, ready: Callable[[dict[str, dict[str, object]]], bool]
) -> dict[str, dict[str, object]]:
    """Polls what `cluster status --json` prints, in this process (no CLI start each time)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        members = {m.name: m.as_dict() for m in ha_cluster.ha.members()}
        if ready(members):
            return members
        time.sleep(0.2)
    pytest.fail(f"the cluster did not get there within 60 s: {ha_cluster.ha.members()}")


def healthy(members: dict[str, dict[str, object]]) -> bool:
    return len(members) == 2 and all(
        m["state"] == ("running" if m["role"] == "leader" else "streaming") and m["lag_bytes"] == 0
        for m in members.values()
    )


def switchable(members: dict[str, dict[str, object]]) -> bool:
    """Healthy with a sync standby: Patroni refuses a switchover in synchronous mode until
    the member that last led (a switchover ago) is the sync standby again."""
    return healthy(members) and any(m["role"] == "sync standby" for m in members.values())


def data_dir(ha_cluster: RunningCluster, member: dict[str, object]) -> Path:
    return ha_cluster.ha.node_dir(int(str(member["name"]).removeprefix("node"))) / "data"


def stop_postgres(ha_cluster: RunningCluster, member: dict[str, object]) -> None:
    """Fast shutdown of a member's PostgreSQL (SIGINT to its postmaster, which removes its
    pid file last)."""
    assert isinstance(member["pid"], int)
    os.kill(member["pid"], signal.SIGINT)
    deadline = time.monotonic() + 30
    while (data_dir(ha_cluster, member) / "postmaster.pid").exists():
        assert time.monotonic() < deadline, "PostgreSQL did not stop within 30 s"
        time.sleep(0.1)


def stop_replica(ha_cluster: RunningCluster, member: dict[str, object]) -> None:
    """Stops a replica's PostgreSQL until Patroni reports it stopped. Even in maintenance
    mode Patroni starts a replica again while its pg_rewind check is pending (set when its
    primary_conninfo changes, as when the leader comes back, and on each start; cleared a
    loop later): the check then runs, and stopped once more it stays stopped."""
    name, pid = str(member["name"]), member["pid"]
    for _ in range(3):
        stop_postgres(ha_cluster, {**member, "pid": pid})

        def stopped_or_started_again(
            members: dict[str, dict[str, object]], old: object = pid
        ) -> bool:
            state, now = members[name]["state"], members[name]["pid"]
            return state == "stopped" or (now not in (None, old) and state == "streaming")

        members = wait_for_members(ha_cluster, stopped_or_started_again)
        if members[name]["state"] == "stopped":
            return
        pid = members[name]["pid"]
        print(f"Patroni started {name} again (its pg_rewind check pending): stopping it again")
    pytest.fail(f"Patroni started {name} again after each of 3 stops")


def test_check_flags_a_cluster_without_a_leader_then_a_stopped_replica_that_catches_up(
    ha_cluster: RunningCluster, tmp_path: Path
) -> None:
    """Patroni paused, so nothing fails over (a replica stopped may be started once, see
    `stop_replica`).
    The leader's PostgreSQL stopped: Patroni drops the leader key, and `monitor --check`
    against the standby says the cluster has no leader and the standby's WAL receiver does
    not stream; started again by hand, the leader takes its key back. Then the standby's
    PostgreSQL stopped while the leader takes writes: `cluster status` shows it stopped,
    `--check` names the rules (its slot not streamed from, WAL behind, a member not
    running). Out of maintenance mode Patroni starts the standby, which catches up: the
    rows there, lag 0, no replication rule left in `--check`."""
    members = list(wait_for_members(ha_cluster, healthy).values())  # after earlier switchovers
    leader = next(m for m in members if m["role"] == "leader")
    standby = next(m for m in members if m["role"] != "leader")
    admin_url = ha_cluster.url("--as", "admin")
    env = monitor_env(ha_cluster, admin_url, tmp_path)
    maintenance_mode(ha_cluster, True)
    try:
        stop_postgres(ha_cluster, leader)
        deadline = time.monotonic() + 15
        while ha_cluster.ha.leader() is not None:
            assert time.monotonic() < deadline, "Patroni kept the leader key 15 s"
            time.sleep(0.2)
        expected = (
            "PROBLEM Patroni cluster: the cluster has no running leader (Patroni is in "
            "maintenance mode: nothing fails over)",
            f"PROBLEM Patroni cluster: member {leader['name']} (replica) is stopped",
            "PROBLEM standbys streaming: this standby's WAL receiver is ",
        )
        deadline = time.monotonic() + 20  # Patroni's member state follows within a loop
        while True:
            leaderless = check(monitor_env(ha_cluster, ha_cluster.member_url(standby), tmp_path))
            if all(line in leaderless.stdout for line in expected):
                break
            assert time.monotonic() < deadline, leaderless.stdout
            time.sleep(0.5)
        assert leaderless.returncode == 1, leaderless.stdout
        start_postgres(ha_cluster, leader)
        deadline = time.monotonic() + 20
        while (back := ha_cluster.ha.leader()) is None:
            assert time.monotonic() < deadline, "Patroni did not take the leader key back"
            time.sleep(0.2)
        assert back["name"] == leader["name"]

        stop_replica(ha_cluster, standby)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = local")  # the sync standby is gone
            conn.execute(
                "CREATE TABLE catch_up_probe AS "
                "SELECT n, repeat('x', 200) AS pad FROM generate_series(1, 5000) n"
            )
        name = str(standby["name"])
        status = planwise("cluster", "status", "--json", **ha_cluster.env)
        assert status.returncode == 0  # a leader runs
        stopped = next(m for m in map(json.loads, status.stdout.splitlines()) if m["name"] == name)
        assert stopped["state"] == "stopped" and stopped["pid"] is None
        assert stopped["lag_bytes"] != 0
        flagged = check(env, "--replica-lag-bytes", "65536")
        assert flagged.returncode == 1, flagged.stdout
        lines = flagged.stdout.splitlines()
        for start in (
            f"PROBLEM standbys streaming: no standby streams from replication slot {name} (",
            f"PROBLEM replication lag: the standby of slot {name} is gone, ",
            f"PROBLEM Patroni cluster: member {name} (",  # (replica): no longer the sync one
        ):
            assert any(line.startswith(start) for line in lines), flagged.stdout
        assert any(line.endswith(") is stopped") for line in lines), flagged.stdout
    finally:
        maintenance_mode(ha_cluster, False)  # Patroni starts the standby again
    started = time.monotonic()
    wait_for_members(ha_cluster, healthy)
    print(f"the stopped standby streamed again, caught up, {time.monotonic() - started:.1f} s "
          "after maintenance mode ended")  # fmt: skip
    with psycopg.connect(ha_cluster.member_url(standby)) as conn:
        assert conn.execute("SELECT count(*) FROM catch_up_probe").fetchone() == (5000,)
    assert_green_but_for_the_backup(check(env, "--replica-lag-bytes", "65536"))
    standby_metrics = scrape(ha_cluster.member_url(standby))
    for name in STANDBY_ONLY:
        assert name in standby_metrics, name
    assert standby_metrics["planwise_db_in_recovery"] == 1
    assert standby_metrics["planwise_db_wal_receiver_streaming"] == 1


def scrape(url: str) -> dict[str, float]:
    """/metrics' database figures as the API would export them for `url` (first sample
    of each)."""
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        samples: dict[str, float] = {}
        for family in DatabaseCollector(engine, cache_seconds=0).collect():
            for sample in family.samples:
                samples.setdefault(sample.name, sample.value)
        return samples
    finally:
        engine.dispose()


def start_postgres(ha_cluster: RunningCluster, member: dict[str, object]) -> None:
    """`pg_ctl start` of a member's PostgreSQL, as Patroni configured it."""
    data = data_dir(ha_cluster, member)
    started = subprocess.run(
        as_cluster_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-t", "30",
                         "-l", str(data.parent / "restart.log"), "start"]),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr


def assert_green_but_for_the_backup(result: subprocess.CompletedProcess[str]) -> None:
    """`--check` finds nothing but the missing verified dump (a new cluster has none;
    making and verifying one would double this test's time)."""
    lines = result.stdout.splitlines()
    assert result.returncode == 1 and lines, result.stdout
    assert all(line.startswith("PROBLEM verified backup: ") for line in lines), result.stdout
