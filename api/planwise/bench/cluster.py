"""`planwise bench cluster`: the Patroni cluster's figures, measured side by side in one run.

It needs the checkout's cluster running with three members (`planwise cluster up --nodes
3`) and works in a database of its own there (`planwise_bench_cluster`), loaded through
the bench's usual path with a small data set (100,000 places by default: a 1M set takes
minutes to load and replicate on two cores). In order:

- recommendations (pgbench, `planwise.bench.sql`'s script) on the leader alone, then on
  the two replicas at once with the same clients split between them; per member, the CPU
  its postmaster's process tree used, from /proc (on one machine the cores bound the
  ratio: three members share two cores);
- write throughput (pgbench inserts on the leader) in asynchronous and synchronous mode,
  alternating, with the standbys' replay lag sampled from `pg_stat_replication` meanwhile;
- failover: `kill -9` of the leader's postmaster `kills` times, each time the seconds
  until another member leads (Patroni) and until a write through the read-write URL
  succeeds on the new leader (the RTO a client sees), waiting for the killed member to
  stream again before the next kill.

The cluster's synchronous mode is put back as it was before the failovers.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from planwise.bench import data, pgbench, sql
from planwise.bench.machine import load_average
from planwise.db.cluster import SUPERUSER
from planwise.db.engine import libpq_url
from planwise.errors import PlanwiseError
from planwise.ops.cluster.patroni import HACluster

DATABASE = "planwise_bench_cluster"
WRITE_SCRIPT = "INSERT INTO bench.write_probe (payload) VALUES (repeat('x', 100));\n"
CREATE_WRITE_PROBE = (
    "CREATE TABLE IF NOT EXISTS bench.write_probe (id bigserial PRIMARY KEY, "
    "at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL)"
)
REJOIN_SECONDS = 120
Progress = Callable[[str], None]


def _tick() -> int:
    return os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its children (a postmaster's backends, walsenders,
    checkpointer…), from /proc; children that exited are not counted."""
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        process = int(entry.name)
        children.setdefault(int(fields[1]), []).append(process)
        times[process] = int(fields[11]) + int(fields[12])  # utime, stime
    total, stack = 0, [pid]
    while stack:
        process = stack.pop()
        total += times.get(process, 0)
        stack += children.get(process, [])
    return total / _tick()


class CpuMeter:
    """CPU cores used by each member's process tree between `start` and `stop`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.started: dict[str, float] = {}
        self.at = 0.0
        self.result: dict[str, float] = {}

    def start(self) -> None:
        self.at = time.monotonic()
        self.started = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.at
        return {
            name: round((tree_cpu_seconds(pid) - self.started[name]) / wall, 2)
            for name, pid in self.pids.items()
        }


def _on_port(url: str, port: int) -> str:
    return make_url(url).set(port=port).render_as_string(hide_password=False)


class ClusterBench:
    def __init__(self, ha: HACluster, progress: Progress) -> None:
        self.ha = ha
        self.progress = progress
        members = ha.members()
        if len(members) < 3:
            raise PlanwiseError(
                "bench cluster needs a running cluster of three members: "
                "`planwise cluster up --nodes 3` first"
            )
        self.wait_until_streaming()
        leader = ha.leader()
        assert leader is not None
        self.leader_index = int(leader["name"][4:])
        node = ha.node_cluster(self.leader_index)
        self.db = data.BenchDatabase(
            name=DATABASE,
            admin_url=data.on_database(node.settings.admin_url, DATABASE),
            app_url=data.on_database(node.settings.app_url, DATABASE),
            settings=node.settings,
            cluster_dir=node.directory,
        )

    def members(self) -> dict[str, dict[str, Any]]:
        return {m.name: m.as_dict() for m in self.ha.members()}

    def wait_until_streaming(self, seconds: float = REJOIN_SECONDS) -> None:
        """Every member running: the leader, the others streaming from it."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            members = self.ha.members()
            if len(members) >= 3 and all(
                m.state == ("running" if m.role == "leader" else "streaming") and m.pid
                for m in members
            ):
                return
            time.sleep(0.5)
        raise PlanwiseError(f"not every member streams within {seconds:.0f} s")

    def replicas(self) -> dict[str, int]:
        return {m.name: m.port for m in self.ha.members() if m.role != "leader"}

    def postmasters(self) -> dict[str, int]:
        return {m.name: m.pid for m in self.ha.members() if m.pid}

    # -- reads ------------------------------------------------------------------------
    def reads(self, *, clients: int, seconds: float, requests: int) -> dict[str, Any]:
        """The leader alone with `clients`, then both replicas at once, half each."""
        variables = {**sql.VARIABLES, "requests": str(requests)}
        leader_port = self.ha.pg_port(self.leader_index)
        replicas = self.replicas()
        if len(replicas) < 2 or clients < 2:
            raise PlanwiseError("reads on replicas need two replicas and at least 2 clients")
        targets = {
            "leader": {"leader": (leader_port, clients)},
            "replicas": {
                name: (port, clients // 2 + (i < clients % 2))
                for i, (name, port) in enumerate(sorted(replicas.items())[:2])
            },
        }
        warm = {name: (port, 1) for name, port in [("leader", leader_port), *replicas.items()]}
        self._pgbench_at_once(warm, sql.OURS_SCRIPT, min(seconds, 3), variables, log=False)
        results: dict[str, Any] = {}
        for label, target in targets.items():
            self.progress(f"recommendations on the {label}: {clients} clients, {seconds:g} s")
            meter = CpuMeter(self.postmasters())
            before = load_average()
            runs = self._pgbench_at_once(target, sql.OURS_SCRIPT, seconds, variables,
                                         meter=meter)  # fmt: skip
            results[label] = {
                "queries_per_second": round(sum(run["tps"] for run in runs.values()), 1),
                "runs": runs,
                "cpu_cores_per_member": meter.result,
                "load_average": [before, load_average()],
            }
        leader_rate = results["leader"]["queries_per_second"]
        results["ratio"] = (
            round(results["replicas"]["queries_per_second"] / leader_rate, 2)
            if leader_rate
            else None
        )
        results["clients"] = clients
        return results

    def _pgbench_at_once(
        self,
        targets: dict[str, tuple[int, int]],
        script: str,
        seconds: float,
        variables: dict[str, str],
        *,
        log: bool = True,
        meter: CpuMeter | None = None,
        url: str | None = None,
    ) -> dict[str, dict[str, Any]]:
        """pgbench against each (port, clients) target at the same time; the CPU meter
        reads the middle of the run (connections made, none closing yet)."""
        base = url or self.db.app_url
        runs: dict[str, dict[str, Any]] = {}
        errors: list[BaseException] = []

        def one(name: str, port: int, count: int) -> None:
            try:
                runs[name] = pgbench.run(_on_port(base, port), script, clients=count,
                                         seconds=seconds, variables=variables, log=log)  # fmt: skip
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=one, args=(name, port, count))
                   for name, (port, count) in targets.items()]  # fmt: skip
        for thread in threads:
            thread.start()
        if meter is not None:
            time.sleep(min(1.0, seconds / 4))
            meter.start()
            time.sleep(max(0.5, seconds - 2 * min(1.0, seconds / 4)))
            meter.result = meter.stop()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return runs

    # -- writes -----------------------------------------------------------------------
    def writes(self, *, clients: int, seconds: float, rounds: int) -> dict[str, Any]:
        """Inserts on the leader, async and sync alternating, replay lag sampled."""
        with psycopg.connect(libpq_url(self.db.admin_url), autocommit=True) as conn:
            conn.execute(CREATE_WRITE_PROBE)
        leader_port = self.ha.pg_port(self.leader_index)
        results: dict[str, list[dict[str, Any]]] = {"async": [], "sync": []}
        for _ in range(rounds):
            for mode in ("async", "sync"):
                self.set_sync(mode == "sync")
                self.progress(f"inserts on the leader, {mode} mode: {clients} clients, "
                              f"{seconds:g} s")  # fmt: skip
                lag = LagSampler(libpq_url(self.db.admin_url))
                before = load_average()
                lag.start()
                run = self._pgbench_at_once(
                    {"leader": (leader_port, clients)}, WRITE_SCRIPT, seconds, {},
                    url=self.db.admin_url,
                )["leader"]  # fmt: skip
                lag.stop.set()
                lag.join()
                results[mode].append({**run, "replay_lag": lag.summary(),
                                      "load_average": [before, load_average()]})  # fmt: skip
        tps = {mode: statistics.median(r["tps"] for r in runs) for mode, runs in results.items()}
        return {
            **results,
            "clients": clients,
            "median_tps": tps,
            "sync_over_async": round(tps["sync"] / tps["async"], 2) if tps["async"] else None,
        }

    def set_sync(self, sync: bool, seconds: float = 60) -> None:
        """Patroni's synchronous_mode, and wait until the leader has (or has no) sync
        standby in `synchronous_standby_names`."""
        self.ha.set_synchronous_mode(sync)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with psycopg.connect(libpq_url(self.db.admin_url), autocommit=True) as conn:
                row = conn.execute("SHOW synchronous_standby_names").fetchone()
            if bool(row and row[0]) == sync:
                return
            time.sleep(0.3)
        raise PlanwiseError(f"synchronous mode {sync} not in effect within {seconds:.0f} s")

    # -- failover ---------------------------------------------------------------------
    def failovers(self, kills: int) -> dict[str, Any]:
        password = self.ha.settings.planwise_pg_superuser_password
        url = data.on_database(
            self.ha.url(SUPERUSER, password.get_secret_value() if password else None), DATABASE
        )
        runs = []
        for number in range(1, kills + 1):
            self.wait_until_streaming()
            writer = Acknowledged(libpq_url(url))
            writer.start()
            try:
                time.sleep(1)
                runs.append(self._kill_the_leader())
                deadline = time.monotonic() + 60
                new_port = self.ha.pg_port(int(runs[-1]["new"][4:]))
                while (
                    writer.first_after(runs[-1]["killed_at"], new_port) is None
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.05)
            finally:
                writer.stop.set()
                writer.join(10)
            run = runs[-1]
            first = writer.first_after(run.pop("killed_at"), new_port)
            run["writes_again_seconds"] = None if first is None else round(first, 2)
            self.progress(f"kill -9 {number}/{kills}: {run['old']} → {run['new']} leader after "
                          f"{run['leader_seconds']:.1f} s, writes after "
                          f"{run['writes_again_seconds']} s")  # fmt: skip
        self.wait_until_streaming()
        leader_times = [r["leader_seconds"] for r in runs]
        write_times = [r["writes_again_seconds"] for r in runs if r["writes_again_seconds"]]
        return {
            "kills": runs,
            "leader_seconds": {"median": round(statistics.median(leader_times), 2),
                               "max": round(max(leader_times), 2)},
            "writes_again_seconds": {
                "median": round(statistics.median(write_times), 2) if write_times else None,
                "max": round(max(write_times), 2) if write_times else None,
            },
        }  # fmt: skip

    def _kill_the_leader(self) -> dict[str, Any]:
        old = self.ha.leader()
        assert old is not None
        pid = self.ha.postmaster_pid(int(old["name"][4:]))
        if pid is None:
            raise PlanwiseError(f"no postmaster pid for {old['name']}")
        before = load_average()
        os.kill(pid, 9)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < 60:
            leader = self.ha.leader()
            if leader is not None and leader["name"] != old["name"]:
                return {"old": old["name"], "new": leader["name"], "killed_at": killed_at,
                        "leader_seconds": round(time.monotonic() - killed_at, 2),
                        "load_average": before}  # fmt: skip
            time.sleep(0.05)
        raise PlanwiseError("no new leader within 60 s of the kill")


class LagSampler(threading.Thread):
    """The leader's `pg_stat_replication` every 0.25 s: replay lag in bytes and seconds."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.bytes: list[int] = []
        self.seconds: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.wait(0.25):
                for lag_bytes, lag_seconds in conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint, "
                    "coalesce(extract(epoch FROM replay_lag), 0)::float8 "
                    "FROM pg_stat_replication"
                ):
                    self.bytes.append(int(lag_bytes or 0))
                    self.seconds.append(float(lag_seconds))

    def summary(self) -> dict[str, Any]:
        if not self.seconds:
            return {"samples": 0}
        return {
            "samples": len(self.seconds),
            "median_ms": round(statistics.median(self.seconds) * 1000, 2),
            "max_ms": round(max(self.seconds) * 1000, 2),
            "median_bytes": int(statistics.median(self.bytes)),
            "max_bytes": max(self.bytes),
        }


class Acknowledged(threading.Thread):
    """Autocommit inserts through the read-write URL, reconnecting; when each was
    acknowledged and by which member (port). After a `kill -9` of the postmaster its
    backends live on for a moment and may still acknowledge: only the new leader's
    acknowledgements count as writes again."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.acks: list[tuple[float, int]] = []
        self.last_at = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.url, connect_timeout=2, autocommit=True) as conn:
                    port = int(conn.info.port)
                    while not self.stop.is_set():
                        conn.execute("INSERT INTO bench.write_probe (payload) VALUES ('failover')")
                        self.last_at = time.monotonic()
                        self.acks.append((self.last_at, port))
            except psycopg.Error:
                time.sleep(0.05)

    def first_after(self, moment: float, port: int) -> float | None:
        """Seconds from `moment` to the first acknowledgement by the member on `port`."""
        later = [at for at, by in self.acks if at > moment and by == port]
        return later[0] - moment if later else None


def run(
    ha: HACluster,
    *,
    places: int,
    users: int,
    requests: int,
    seconds: float,
    clients: int,
    write_rounds: int,
    kills: int,
    progress: Progress = print,
) -> dict[str, Any]:
    bench = ClusterBench(ha, progress)
    progress(f"data: {places:,} places, {users:,} users in {DATABASE} on the leader")
    loaded, _ = data.ensure_loaded(bench.db, places=places, users=users, requests=requests)
    with psycopg.connect(libpq_url(bench.db.admin_url), autocommit=True) as conn:
        conn.execute(CREATE_WRITE_PROBE)
    bench.wait_until_streaming()
    was_sync = any(m.role == "sync standby" for m in ha.members())
    results: dict[str, Any] = {
        "places": places,
        "users": users,
        "members": len(ha.members()),
        "data": {key: loaded[key] for key in ("places", "database_bytes")},
    }
    results["reads"] = bench.reads(clients=clients, seconds=seconds, requests=requests)
    results["writes"] = bench.writes(clients=clients, seconds=seconds, rounds=write_rounds)
    bench.set_sync(was_sync)
    results["synchronous_mode_during_failovers"] = was_sync
    results["failover"] = bench.failovers(kills)
    return results
