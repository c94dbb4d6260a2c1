"""PgBouncer in front of the managed cluster, as the design document configures it:
transaction pooling, 20 server connections per pool, idle server connections closed
after 300 seconds.

Authentication goes through an `auth_file` of SCRAM verifiers copied from `pg_authid`
(mode 0600, beside the config, owned by the cluster's OS user): no password is written
anywhere, and PgBouncer logs in to PostgreSQL with the client's own SCRAM proof.

Clients behind transaction pooling must not rely on session state; ours does not:
`app.user_id` is transaction-local (see planwise.db.session). What else it takes is in
planwise.db.engine.build_engine: no server-side prepared statements (PgBouncer 1.18
cannot route them) and no `options` startup parameter (PgBouncer refuses it), so the
statement timeout is set on the role instead (`ALTER ROLE … SET statement_timeout`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from planwise.config import Settings
from planwise.db.cluster import (
    CLUSTER_OS_USER,
    SUPERUSER,
    Cluster,
    as_cluster_user,
    running_as_root,
)
from planwise.errors import PlanwiseError

PGBOUNCER = "/usr/sbin/pgbouncer"
POOLED_ROLES = ("app_service", "app_read", SUPERUSER)
"""Roles that may log in through PgBouncer; the superuser also reads SHOW POOLS/STATS."""
DATABASES_FILE = "databases.ini"
"""The [databases] section, `%include`d by pgbouncer.ini: on a Patroni cluster the new
leader's `on_role_change` callback rewrites this file alone and reloads PgBouncer."""


def databases_section(port: int) -> str:
    """Every database on 127.0.0.1:`port` (the managed cluster, or the Patroni leader)."""
    return f"[databases]\n* = host=127.0.0.1 port={port}\n"


def connected_to_itself(connection: socket.socket) -> bool:
    """True for a TCP socket whose two ends are the same address and port.

    Connecting to a port nobody listens on that lies in the ephemeral range (Linux:
    32768-60999) can succeed: when the kernel picks that very port as the source, the SYN
    meets itself (TCP simultaneous open) and the "connection" is to ourselves. A client
    retrying a dead port in that range gets there eventually and holds the port, so the
    server cannot bind it any more."""
    try:
        return bool(connection.getsockname() == connection.getpeername())
    except OSError:
        return False


def accepts_tcp(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Whether a listener on host:port accepts a TCP connection (one to itself does not
    count, and is closed at once so it frees the port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect((host, port))
        except OSError:
            return False
        return not connected_to_itself(probe)


@dataclass(frozen=True)
class Pool:
    """One row of SHOW POOLS: a (database, user) pair and its client and server connections."""

    database: str
    user: str
    client_active: int
    client_waiting: int
    server_active: int
    server_idle: int
    server_used: int
    server_tested: int
    server_login: int
    max_wait_seconds: float

    @property
    def servers(self) -> int:
        """Server connections the pool holds, in any state (≤ the pool size)."""
        return (
            self.server_active + self.server_idle + self.server_used
            + self.server_tested + self.server_login
        )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Pool:
        return cls(
            database=str(row["database"]),
            user=str(row["user"]),
            client_active=int(row["cl_active"]),
            client_waiting=int(row["cl_waiting"]),
            server_active=int(row["sv_active"]),
            server_idle=int(row["sv_idle"]),
            server_used=int(row["sv_used"]),
            server_tested=int(row["sv_tested"]),
            server_login=int(row["sv_login"]),
            max_wait_seconds=int(row["maxwait"]) + int(row.get("maxwait_us") or 0) / 1e6,
        )


def admin_console(
    port: int, user: str, password: str | None, command: str, *, connect_timeout: int = 10
) -> list[dict[str, Any]]:
    """A SHOW command on PgBouncer's admin console (database `pgbouncer`).

    The console speaks only the simple query protocol and has no transactions: autocommit,
    and a client-side-binding cursor, so psycopg never sends Parse/Bind or prepares.
    """
    with psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=user,
        password=password,
        dbname="pgbouncer",
        autocommit=True,
        cursor_factory=psycopg.ClientCursor,
        connect_timeout=connect_timeout,
    ) as conn:
        cursor = conn.execute(command)
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class PgBouncer:
    def __init__(self, settings: Settings, cluster: Cluster, directory: Path | None = None) -> None:
        """Files live in `<cluster dir>/pgbouncer` (the cluster's OS user can read them);
        another `directory` there keeps a second instance (tests) apart from this one."""
        self.settings = settings
        self.cluster = cluster
        self.directory = directory or cluster.directory / "pgbouncer"
        self.config = self.directory / "pgbouncer.ini"
        self.databases = self.directory / DATABASES_FILE
        self.auth_file = self.directory / "userlist.txt"
        self.pid_file = self.directory / "pgbouncer.pid"
        self.log_file = self.directory / "pgbouncer.log"

    @property
    def port(self) -> int:
        return self.settings.pgbouncer_port

    def url(self, user: str, password: str | None, dbname: str | None = None) -> str:
        secret = f":{password}" if password else ""
        database = dbname or self.settings.planwise_pg_database
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    def _own(self, path: Path, mode: int) -> None:
        path.chmod(mode)
        if running_as_root():
            shutil.chown(path, CLUSTER_OS_USER, CLUSTER_OS_USER)

    def write_files(self) -> None:
        """The config from settings, and the SCRAM verifiers of the pooled roles."""
        self.directory.mkdir(exist_ok=True)
        self._own(self.directory, 0o700)
        with self.cluster.admin_connect() as conn:
            verifiers = conn.execute(
                "SELECT rolname, rolpassword FROM pg_authid "
                "WHERE rolname = ANY(%s) AND rolpassword LIKE 'SCRAM-SHA-256$%%'",
                (list(POOLED_ROLES),),
            ).fetchall()
        if not verifiers:
            raise PlanwiseError("no role has a SCRAM password yet: run `planwise db roles` first")
        self.auth_file.write_text("".join(f'"{role}" "{secret}"\n' for role, secret in verifiers))
        self._own(self.auth_file, 0o600)
        settings = self.settings
        self.databases.write_text(databases_section(self.cluster.settings.planwise_pg_port))
        self._own(self.databases, 0o600)
        self.config.write_text(
            f"""; Generated by `planwise pgbouncer up` from settings; rewritten on every up.
%include {self.databases}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir = {self.directory}
auth_type = scram-sha-256
auth_file = {self.auth_file}
admin_users = {SUPERUSER}
stats_users = {SUPERUSER}, app_read
pool_mode = transaction
default_pool_size = {settings.pgbouncer_pool_size}
max_client_conn = {settings.pgbouncer_max_client_conn}
server_idle_timeout = 300
server_login_retry = 1
ignore_startup_parameters = extra_float_digits
logfile = {self.log_file}
pidfile = {self.pid_file}
"""
        )
        self._own(self.config, 0o600)

    def up(self) -> bool:
        """Write the files and start PgBouncer (reloading them if it runs). True if started.

        Success means PgBouncer accepts TCP connections on its port: a port someone else
        listens on is refused before starting, and a PgBouncer whose bind failed (it keeps
        running on its Unix socket) is stopped again and reported with its log."""
        if not self.cluster.running:
            raise PlanwiseError(
                "the database server is not running: `planwise db up` first (or `planwise "
                "cluster up`, for the Patroni cluster configured in this checkout)"
            )
        if shutil.which(PGBOUNCER) is None and not Path(PGBOUNCER).exists():
            raise PlanwiseError("pgbouncer is not installed: run `make install`")
        if not self.running and accepts_tcp(self.port):
            raise PlanwiseError(
                f"port {self.port} already accepts connections, and not from this PgBouncer: "
                "stop what listens there or set PGBOUNCER_PORT to a free port"
            )
        self.write_files()
        self._set_role_statement_timeout()
        if self.running:
            os.kill(self.pid or 0, signal.SIGHUP)  # reload config and auth_file
            if not self._wait_until_accepting(seconds=2):
                raise PlanwiseError(
                    f"PgBouncer (pid {self.pid}) runs but does not accept connections on port "
                    f"{self.port} (a changed port needs a restart: `planwise pgbouncer down`, "
                    f"then up)\n{self._log_tail()}"
                )
            return False
        result = subprocess.run(
            as_cluster_user([PGBOUNCER, "-d", str(self.config)]),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode == 0 and self._wait_until_accepting(seconds=10):
            return True
        self.down()
        raise PlanwiseError(
            f"pgbouncer did not start accepting connections on 127.0.0.1:{self.port} "
            f"(is the port taken? set PGBOUNCER_PORT): {result.stderr.strip()}\n"
            f"{self._log_tail()}"
        )

    def _wait_until_accepting(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.running and accepts_tcp(self.port):
                return True
            time.sleep(0.05)
        return False

    def down(self) -> bool:
        """Stop after the clients' current transactions (SIGINT). True if it was running."""
        pid = self.pid
        if pid is None:
            return False
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 15
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running:
            os.kill(pid, signal.SIGTERM)
        return True

    def _set_role_statement_timeout(self) -> None:
        """`options` cannot pass through PgBouncer; the role carries the timeout instead."""
        timeout = f"{self.settings.database_statement_timeout_ms}ms"
        with self.cluster.admin_connect() as conn:
            conn.execute(
                sql.SQL("ALTER ROLE app_service SET statement_timeout = {}").format(
                    sql.Literal(timeout)
                )
            )

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-10:])
        except OSError:
            return ""

    def console(self, command: str) -> list[dict[str, Any]]:
        """A SHOW command on the admin console, as the superuser (an `admin_users` member)."""
        password = self.settings.planwise_pg_superuser_password
        return admin_console(
            self.port, SUPERUSER, password.get_secret_value() if password else None, command
        )

    def pools(self) -> list[Pool]:
        return [
            Pool.from_row(row)
            for row in self.console("SHOW POOLS")
            if row["database"] != "pgbouncer"
        ]

    def stats(self) -> list[dict[str, Any]]:
        """SHOW STATS per database: transactions, queries, wait times (microseconds)."""
        return [row for row in self.console("SHOW STATS") if row["database"] != "pgbouncer"]
