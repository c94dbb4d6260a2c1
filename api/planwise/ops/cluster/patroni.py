"""A local Patroni cluster: N PostgreSQL 15 + PostGIS nodes and the etcd they share.

Everything lives under `cluster/` next to the managed cluster's `pg/` (in `.planwise/`
or the `/var/tmp` fallback, `planwise.db.cluster.default_cluster_dir`), and runs as the
`postgres` OS user like the managed cluster:

    cluster/etcd/            etcd's data; etcd.log, etcd.pid beside it
    cluster/nodeN/           one member: patroni.yml (0600), data/, patroni.log,
                             patroni.pid, the member's admin socket and its Patroni
                             callback (on_role_change.sh)
    cluster/pgbouncer/       `planwise pgbouncer up`'s files, when it runs here

Ports derive from PLANWISE_PG_PORT (P): member N's PostgreSQL listens on P+10+N, its
Patroni REST API on P+30+N; etcd's clients use P+50 and its peer P+51. So at most 9
members, and a cluster beside the single managed one never collides with it.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from planwise.config import LOCAL_ENV_FILE, Settings
from planwise.db.cluster import (
    CLUSTER_OS_USER,
    EXTENSIONS,
    PG_BIN,
    SUPERUSER,
    Cluster,
    as_cluster_user,
    default_cluster_dir,
    running_as_root,
)
from planwise.errors import PlanwiseError
from planwise.ops.pgbouncer.pooler import DATABASES_FILE, PgBouncer, databases_section
from planwise.ops.pitr.conf import STANZA, Layout, PgHost
from planwise.ops.pitr.pgbackrest import ARCHIVE_TIMEOUT_SECONDS, PGBACKREST, Pitr

SCOPE = "planwise"
REPLICATION_USER = "replicator"
MAX_NODES = 9
PATRONI = Path("/usr/bin/patroni")
ETCD = Path("/usr/bin/etcd")
LEADER_ROLES = ("leader", "master", "primary")
# Patroni's timing: a leader that stops renewing its key loses it after TTL seconds;
# members wake every LOOP_WAIT seconds (and at once when the leader key changes).
TTL = 20
LOOP_WAIT = 2
RETRY_TIMEOUT = 5
CALLBACK = "on_role_change.sh"
CALLBACK_SCRIPT = """#!/bin/sh
# Written by `planwise cluster up`. Patroni runs it (as on_role_change and on_start) with
# the action, the member's new role and the scope. On the member that now leads, a
# running PgBouncer's [databases] entry is pointed at this member and PgBouncer reloads.
[ "$2" = master ] || [ "$2" = primary ] || exit 0
dir={directory}
[ -s "$dir/pgbouncer.pid" ] || exit 0
# Patroni calls it right after `pg_ctl promote`: wait (up to 10 s) until writes are taken.
i=0
while [ "$({psql} -h {socket} -p {port} -d postgres -XAtc 'SELECT pg_is_in_recovery()' \\
        2>/dev/null)" != f ] && [ $i -lt 100 ]; do
    sleep 0.1; i=$((i + 1))
done
[ $i -lt 100 ] || exit 1  # never point PgBouncer at a member that does not take writes
printf '%s' {section} > "$dir/{databases}.tmp" && mv "$dir/{databases}.tmp" "$dir/{databases}" \\
    && kill -HUP "$(cat "$dir/pgbouncer.pid")"
"""


@dataclass(frozen=True)
class Member:
    """One row of `planwise cluster status`."""

    name: str
    role: str  # leader, sync standby, replica
    state: str
    host: str
    port: int
    pid: int | None  # the postmaster's
    timeline: int | None
    lag_bytes: int | None
    lag_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cluster_root() -> Path:
    """`cluster/` beside the managed cluster's `pg/`, owned by the cluster's OS user."""
    return default_cluster_dir().parent / "cluster"


def _http(
    url: str, body: dict[str, Any] | None = None, timeout: float = 5, method: str = "POST"
) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - our own loopback URLs
        url, data=data, method=method if data is not None else "GET",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode(errors="replace")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _pid_alive(pid) else None


def fetch_cluster(urls: list[str], timeout: float = 2) -> dict[str, Any] | None:
    """Patroni's `/cluster` from the first of these REST APIs that answers, or None."""
    for url in urls:
        try:
            status, body = _http(f"{url.rstrip('/')}/cluster", timeout=timeout)
        except OSError:
            continue
        if status == 200:
            data: dict[str, Any] = json.loads(body)
            return data
    return None


class HACluster:
    """Start, stop and inspect the Patroni cluster; `up` and `down` are idempotent."""

    def __init__(self, settings: Settings, root: Path | None = None) -> None:
        self.settings = settings
        self.root = root or cluster_root()
        base = settings.planwise_pg_port
        self.etcd_port = base + 50
        self.etcd_peer_port = base + 51
        self.etcd_dir = self.root / "etcd"

    # -- layout -------------------------------------------------------------------------
    def pg_port(self, index: int) -> int:
        return self.settings.planwise_pg_port + 10 + index

    def rest_port(self, index: int) -> int:
        return self.settings.planwise_pg_port + 30 + index

    def node_dir(self, index: int) -> Path:
        return self.root / f"node{index}"

    def node_indexes(self) -> list[int]:
        """The members configured by the last `up` (their patroni.yml exists)."""
        if not self.root.exists():
            return []
        return sorted(
            int(path.parent.name[4:])
            for path in self.root.glob("node*/patroni.yml")
            if path.parent.name[4:].isdigit()
        )

    def node_cluster(self, index: int) -> Cluster:
        """The member as `planwise.db.cluster.Cluster` sees one: its socket and port."""
        node_settings = self.settings.model_copy(update={"planwise_pg_port": self.pg_port(index)})
        return Cluster(node_settings, self.node_dir(index))

    def hosts(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.pg_port(index)) for index in self.node_indexes()]

    def url(self, user: str, password: str | None, *, read: bool = False) -> str:
        """libpq's multi-host URL: the leader (read-write), or a standby if any (read)."""
        hosts = self.hosts()
        if not hosts:
            raise PlanwiseError("no cluster configured: run `planwise cluster up`")
        auth = f"{user}:{quote(password, safe='')}" if password else user
        attrs = "prefer-standby" if read else "read-write"
        return (
            f"postgresql://{auth}@/{self.settings.planwise_pg_database}"
            f"?host={','.join(host for host, _ in hosts)}"
            f"&port={','.join(str(port) for _, port in hosts)}"
            f"&target_session_attrs={attrs}"
        )

    def _make_dir(self, path: Path, mode: int = 0o700) -> None:
        path.mkdir(parents=True, exist_ok=True)
        trusted = {0, os.geteuid(), pwd.getpwnam(CLUSTER_OS_USER).pw_uid}
        for directory in (path, path.parent):  # someone could have made it first (/var/tmp)
            owner = directory.stat().st_uid
            if owner not in trusted:
                raise PlanwiseError(f"{directory} belongs to uid {owner}, not to us: refusing")
        if running_as_root():
            shutil.chown(path, CLUSTER_OS_USER, CLUSTER_OS_USER)
        path.chmod(mode)

    def _write_private(self, path: Path, text: str, mode: int = 0o600) -> None:
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)
        if running_as_root():
            shutil.chown(path, CLUSTER_OS_USER, CLUSTER_OS_USER)

    # -- secrets ------------------------------------------------------------------------
    def replication_password(self) -> str:
        """PLANWISE_CLUSTER_REPLICATION_PASSWORD, else one generated into local.env."""
        configured = self.settings.planwise_cluster_replication_password
        if configured is not None:
            return configured.get_secret_value()
        password = secrets.token_urlsafe(24)
        LOCAL_ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(LOCAL_ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
            handle.write(f"PLANWISE_CLUSTER_REPLICATION_PASSWORD={password}\n")
        return password

    # -- configuration ------------------------------------------------------------------
    def patroni_config(self, index: int, *, sync: bool, replication_password: str) -> str:
        superuser_password = self.settings.planwise_pg_superuser_password
        if superuser_password is None:
            raise PlanwiseError("PLANWISE_PG_SUPERUSER_PASSWORD is not set")
        node = self.node_dir(index)
        config = {
            "scope": SCOPE,
            "name": f"node{index}",
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"127.0.0.1:{self.rest_port(index)}",
                "connect_address": f"127.0.0.1:{self.rest_port(index)}",
            },
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd_port}"]},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL,
                    "loop_wait": LOOP_WAIT,
                    "retry_timeout": RETRY_TIMEOUT,
                    "maximum_lag_on_failover": 1024 * 1024,
                    # A crashed leader fails over at once instead of restarting in place.
                    "primary_start_timeout": 0,
                    "synchronous_mode": sync,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "max_connections": 200,
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "wal_log_hints": "on",
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "wal_keep_size": "128MB",
                            # On from the start, so that `pitr setup` needs no restart and
                            # whichever member leads archives (see archive_command).
                            "archive_mode": "on",
                            "archive_timeout": ARCHIVE_TIMEOUT_SECONDS,
                        },
                    },
                },
                "initdb": [
                    {"encoding": "UTF8"},
                    {"locale": "C.UTF-8"},
                    {"auth-local": "trust"},
                    {"auth-host": "scram-sha-256"},
                ],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.pg_port(index)}",
                "connect_address": f"127.0.0.1:{self.pg_port(index)}",
                "data_dir": str(node / "data"),
                "bin_dir": str(PG_BIN),
                "pgpass": str(node / "pgpass"),
                "use_unix_socket": True,
                "use_unix_socket_repl": False,
                "authentication": {
                    "superuser": {
                        "username": SUPERUSER,
                        "password": superuser_password.get_secret_value(),
                    },
                    "replication": {
                        "username": REPLICATION_USER,
                        "password": replication_password,
                    },
                },
                "callbacks": {
                    "on_role_change": shlex.quote(str(node / CALLBACK)),
                    "on_start": shlex.quote(str(node / CALLBACK)),
                },
                "parameters": {
                    "unix_socket_directories": str(node),
                    "shared_preload_libraries": "pg_stat_statements",
                    "pg_stat_statements.track": "all",
                    "track_io_timing": "on",
                    "shared_buffers": "128MB",
                    "password_encryption": "scram-sha-256",
                    "archive_command": self.archive_command(index),
                },
                # The socket's directory is 0700: OS-level access control, as `db up`.
                "pg_hba": [
                    "local all all trust",
                    f"host replication {REPLICATION_USER} 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                ],
            },
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
        }
        return json.dumps(config, indent=2)  # JSON is YAML, which Patroni reads

    def callback_script(self, index: int) -> str:
        """Patroni's callback for member `index`: PgBouncer follows the leader.

        Patroni calls it on the member it has just promoted (a failover or a switchover),
        so no watcher process is needed; PgBouncer's reload closes its server connections
        to the old leader as they are released and opens new ones to this member."""
        return CALLBACK_SCRIPT.format(
            directory=shlex.quote(str(self.pgbouncer_dir)),
            section=shlex.quote(databases_section(self.pg_port(index))),
            psql=shlex.quote(str(PG_BIN / "psql")),
            socket=shlex.quote(str(self.node_dir(index))),
            port=self.pg_port(index),
            databases=DATABASES_FILE,
        )

    @property
    def pgbackrest_dir(self) -> Path:
        return self.root / "pgbackrest"

    def archive_command(self, index: int) -> str:
        """pgBackRest's archive-push with the cluster's one config (`pitr setup` writes it)
        and this member's own data directory, spool and lock paths; until that config
        exists, segments are let go unarchived (there is no backup to replay them onto)."""
        config = self.pgbackrest_dir / "pgbackrest.conf"
        node = self.node_dir(index)
        push = [
            PGBACKREST, f"--config={config}", f"--stanza={STANZA}",
            f"--pg1-path={node / 'data'}", f"--spool-path={node / 'pgbackrest-spool'}",
            f"--lock-path={node / 'pgbackrest-lock'}", "archive-push",
        ]  # fmt: skip
        return f"test ! -f {shlex.quote(str(config))} || {shlex.join(push)} %p"

    def pitr(self) -> Pitr:
        """pgBackRest for the cluster: pg1..pgN are the members (pgBackRest finds the
        primary itself), the repository and config in `pgbackrest_dir`."""
        indexes = self.node_indexes()
        if not indexes:
            raise PlanwiseError("no cluster configured: run `planwise cluster up`")
        leader = self.leader()
        if leader is None:
            raise PlanwiseError("the cluster has no running leader")
        first, *others = indexes
        layout = Layout(
            directory=self.pgbackrest_dir,
            data_dir=self.node_dir(first) / "data",
            socket_dir=self.node_dir(first),
            pg_port=self.pg_port(first),
            others=tuple(
                PgHost(self.node_dir(i) / "data", self.node_dir(i), self.pg_port(i)) for i in others
            ),
        )
        return Pitr(self.node_cluster(int(leader["name"][4:])), layout)

    @property
    def pgbouncer_dir(self) -> Path:
        return self.root / "pgbouncer"

    def pgbouncer(self) -> PgBouncer:
        """PgBouncer for this cluster: its files in `pgbouncer_dir`, pointed at the leader
        (or, with none, at the first member, for `down` and `status`)."""
        leader = self.leader()
        index = int(leader["name"][4:]) if leader else self.node_indexes()[0]
        return PgBouncer(self.settings, self.node_cluster(index), self.pgbouncer_dir)

    # -- processes ----------------------------------------------------------------------
    def _spawn(self, command: list[str], pid_file: Path, log_file: Path) -> None:
        """Start `command` as the cluster's OS user in the background, its pid in a file
        (the shell execs it: the pid is the program's, not runuser's)."""
        script = 'echo $$ > "$1"; shift; exec "$@" >> "$0" 2>&1'
        subprocess.Popen(
            as_cluster_user(["sh", "-c", script, str(log_file), str(pid_file), *command]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, cwd="/",
        )  # fmt: skip

    def etcd_pid(self) -> int | None:
        return _read_pid(self.root / "etcd.pid")

    def patroni_pid(self, index: int) -> int | None:
        return _read_pid(self.node_dir(index) / "patroni.pid")

    def postmaster_pid(self, index: int) -> int | None:
        return _read_pid(self.node_dir(index) / "data" / "postmaster.pid")

    def etcd_healthy(self) -> bool:
        try:
            status, body = _http(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2)
        except OSError:
            return False
        return status == 200 and '"true"' in body

    def start_etcd(self) -> bool:
        if self.etcd_pid() is not None:
            return False
        if not ETCD.exists():
            raise PlanwiseError("etcd is not installed: run `make install` (etcd-server)")
        self._make_dir(self.etcd_dir)
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        client = f"http://127.0.0.1:{self.etcd_port}"
        self._spawn(
            [
                str(ETCD), "--name", SCOPE, "--data-dir", str(self.etcd_dir),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{SCOPE}={peer}", "--initial-cluster-state", "new",
                "--initial-cluster-token", f"planwise-{self.settings.planwise_pg_port}",
            ],
            self.root / "etcd.pid",
            self.root / "etcd.log",
        )  # fmt: skip
        self._wait(self.etcd_healthy, 30, "etcd did not become healthy", self.root / "etcd.log")
        return True

    def start_node(self, index: int) -> bool:
        if self.patroni_pid(index) is not None:
            return False
        node = self.node_dir(index)
        self._spawn(
            [str(PATRONI), str(node / "patroni.yml")], node / "patroni.pid", node / "patroni.log"
        )
        return True

    def _wait(
        self, ready: Callable[[], bool], seconds: float, message: str, log: Path | None = None
    ) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.3)
        tail = ""
        if log is not None:
            lines = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            tail = f"\nLast lines of {log}:\n" + "\n".join(lines)
        raise PlanwiseError(f"{message} within {seconds:.0f} s{tail}")

    @staticmethod
    def _stop_pid(pid: int | None, seconds: float = 60) -> bool:
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.2)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        return True

    # -- the cluster as Patroni sees it -------------------------------------------------
    def rest_urls(self) -> list[str]:
        """Each configured member's Patroni REST API."""
        return [f"http://127.0.0.1:{self.rest_port(index)}" for index in self.node_indexes()]

    def patroni_cluster(self) -> dict[str, Any] | None:
        """Patroni's `/cluster` from the first member that answers, or None."""
        return fetch_cluster(self.rest_urls())

    def leader(self) -> dict[str, Any] | None:
        """The running leader's `/cluster` entry, or None."""
        data = self.patroni_cluster() or {}
        for member in data.get("members", []):
            if member.get("role") in LEADER_ROLES and member.get("state") == "running":
                return dict(member)
        return None

    def _replication(self, leader_index: int) -> dict[str, tuple[str, int | None, float | None]]:
        """The leader's view of each standby (by Patroni's application_name): walsender
        state, replay lag in bytes and seconds."""
        try:
            with self.node_cluster(leader_index).admin_connect() as conn:
                rows = conn.execute(
                    "SELECT application_name, state, "
                    "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint, "
                    "extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication"
                ).fetchall()
        except psycopg.Error:
            return {}
        return {
            str(name): (
                str(state),
                None if lag_bytes is None else int(str(lag_bytes)),
                None if seconds is None else float(str(seconds)),
            )
            for name, state, lag_bytes, seconds in rows
        }

    def members(self) -> list[Member]:
        """Patroni's `/cluster`, with each standby's state and lag as the leader's
        `pg_stat_replication` has them (Patroni's own lag is from its last loop)."""
        data = self.patroni_cluster()
        if data is None:
            return []
        listed = data.get("members", [])
        leader = next((m for m in listed if m.get("role") in LEADER_ROLES), None)
        replication = self._replication(int(leader["name"][4:])) if leader else {}
        members = []
        for entry in listed:
            name = str(entry["name"])
            index = int(name[4:]) if name[4:].isdigit() else 0
            role = str(entry.get("role", "?"))
            state = str(entry.get("state", "?"))
            is_leader = role in LEADER_ROLES
            lag = entry.get("lag")
            lag_bytes = 0 if is_leader else (lag if isinstance(lag, int) else None)
            seconds = 0.0 if is_leader else None
            if not is_leader and name in replication:
                sender_state, lag_bytes, seconds = replication[name]
                if state == "running" and sender_state == "streaming":
                    state = "streaming"  # as Patroni 3.0.4 and later say it
                if seconds is None and lag_bytes == 0:
                    seconds = 0.0  # replay_lag is NULL once a standby caught up and idles
            members.append(
                Member(
                    name=name,
                    role="leader" if is_leader else role.replace("_", " "),
                    state=state,
                    host=str(entry.get("host", "")),
                    port=int(entry.get("port", 0)),
                    pid=self.postmaster_pid(index) if index else None,
                    timeline=entry.get("timeline"),
                    lag_bytes=lag_bytes,
                    lag_seconds=seconds,
                )
            )
        return members

    # -- operations ---------------------------------------------------------------------
    def up(self, nodes: int, *, sync: bool, timeout: float = 120) -> list[str]:
        """Start etcd and `nodes` members; wait for a leader and (with `sync`) a sync
        standby, then create the database and its extensions on the leader."""
        if not 1 <= nodes <= MAX_NODES:
            raise PlanwiseError(f"--nodes must be between 1 and {MAX_NODES}")
        configured = self.node_indexes()
        if configured and len(configured) != nodes:
            raise PlanwiseError(
                f"the cluster in {self.root} has {len(configured)} members: "
                f"`planwise cluster down --delete` first to change it to {nodes}"
            )
        if not PATRONI.exists():
            raise PlanwiseError("Patroni is not installed: run `make install` (patroni)")
        done = []
        self._make_dir(self.root)
        if self.start_etcd():
            done.append(f"started etcd on 127.0.0.1:{self.etcd_port}")
        password = self.replication_password()
        for index in range(1, nodes + 1):
            node = self.node_dir(index)
            self._make_dir(node)
            self._write_private(
                node / "patroni.yml",
                self.patroni_config(index, sync=sync, replication_password=password),
            )
            self._write_private(node / CALLBACK, self.callback_script(index), 0o700)
        self.set_synchronous_mode(sync)
        for index in range(1, nodes + 1):
            if self.start_node(index):
                done.append(
                    f"started node{index}: PostgreSQL on 127.0.0.1:{self.pg_port(index)}, "
                    f"Patroni REST on 127.0.0.1:{self.rest_port(index)}"
                )
        self._wait(lambda: self.leader() is not None, timeout, "no leader elected",
                   self.node_dir(1) / "patroni.log")  # fmt: skip
        self._wait(lambda: self._all_running(nodes, sync), timeout, "not every member is streaming")
        leader = self.leader()
        assert leader is not None
        done.append(f"leader: {leader['name']} on 127.0.0.1:{leader['port']}")
        if self.node_cluster(int(leader["name"][4:])).prepare_database():
            done.append(
                f"created database {self.settings.planwise_pg_database} with "
                f"{', '.join(EXTENSIONS)}"
            )
        return done

    def _all_running(self, nodes: int, sync: bool) -> bool:
        members = self.members()
        if len(members) != nodes or not all(
            m.state == "running" if m.role == "leader" else m.state == "streaming" for m in members
        ):
            return False
        return not sync or nodes == 1 or any(m.role == "sync standby" for m in members)

    def set_synchronous_mode(self, sync: bool) -> None:
        """`bootstrap.dcs` counts only at the first start: a running cluster's DCS config
        is changed through Patroni's REST API."""
        for index in self.node_indexes():
            try:
                _http(
                    f"http://127.0.0.1:{self.rest_port(index)}/config",
                    {"synchronous_mode": sync},
                    timeout=2,
                    method="PATCH",
                )
            except OSError:
                continue
            return

    def down(self) -> list[str]:
        """Stop the replicas, then the leader (so nothing fails over), then etcd."""
        leader = self.leader()
        leader_name = leader["name"] if leader else None
        order = sorted(self.node_indexes(), key=lambda index: f"node{index}" == leader_name)
        done = []
        for index in order:
            if self._stop_pid(self.patroni_pid(index)):
                done.append(f"stopped node{index}")
        if self._stop_pid(self.etcd_pid()):
            done.append("stopped etcd")
        return done

    def delete(self) -> None:
        """Remove the cluster's files (after `down`)."""
        if any(self.patroni_pid(i) for i in self.node_indexes()) or self.etcd_pid():
            raise PlanwiseError("the cluster is running: `planwise cluster down` first")
        shutil.rmtree(self.root, ignore_errors=True)
        parent = self.root.parent
        if parent.parent == Path("/var/tmp") and not any(parent.iterdir()):  # noqa: S108
            parent.rmdir()  # the fallback directory, now empty

    def switchover(self, candidate: str | None) -> str:
        leader = self.leader()
        if leader is None:
            raise PlanwiseError("the cluster has no running leader: use `failover --to`")
        body: dict[str, Any] = {"leader": leader["name"]}
        if candidate:
            body["candidate"] = candidate
        return self._post_action("switchover", body)

    def failover(self, candidate: str) -> str:
        return self._post_action("failover", {"candidate": candidate})

    def _post_action(self, action: str, body: dict[str, Any]) -> str:
        for index in self.node_indexes():
            try:
                status, text = _http(
                    f"http://127.0.0.1:{self.rest_port(index)}/{action}", body, timeout=60
                )
            except OSError:
                continue
            if status != 200:
                raise PlanwiseError(f"Patroni refused the {action}: {text.strip()}")
            return text.strip()
        raise PlanwiseError("no member's Patroni answers: is the cluster up?")
