"""The managed local PostgreSQL 15 + PostGIS cluster (the embedded default).

It lives under `.planwise/pg/` in the checkout, or under `/var/tmp/planwise-<hash>/pg`
when the `postgres` OS user cannot reach the checkout (a clone under `/root`, say;
the hash is of the `.planwise` path, so two checkouts never share a cluster).
PostgreSQL refuses to run as root, so when we are root every server command runs as
`postgres` through `runuser`.

Administration goes through a Unix socket in the cluster directory (mode 0700, so only
the cluster's OS user and root can connect); clients use TCP on 127.0.0.1 with passwords.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from planwise.config import LOCAL_ENV_FILE, PLANWISE_HOME, Settings
from planwise.db.roles import ensure_password
from planwise.errors import PlanwiseError

PG_MAJOR = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
CLUSTER_OS_USER = "postgres"
SUPERUSER = "postgres"
MAX_SOCKET_DIR_LENGTH = 80  # Unix socket paths are limited to 107 bytes.
LOCAL_SECRETS = (
    "PLANWISE_PG_SUPERUSER_PASSWORD",
    "APP_SERVICE_PASSWORD",
    "APP_READ_PASSWORD",
    "SUPABASE_ADMIN_PASSWORD",
    "JWT_SECRET",
    "SUPABASE_JWT_SECRET",
)
LONG_SECRETS = {"JWT_SECRET", "SUPABASE_JWT_SECRET"}
"""HS256 keys: 64 characters (48 random bytes); passwords get 32 characters."""
EXTENSIONS = ("postgis", "pg_stat_statements")


def running_as_root() -> bool:
    return os.geteuid() == 0


def as_cluster_user(command: list[str]) -> list[str]:
    if running_as_root():
        return ["runuser", "-u", CLUSTER_OS_USER, "--", *command]
    return command


def _cluster_user_can_enter(directory: Path) -> bool:
    probe = as_cluster_user(["test", "-x", str(directory), "-a", "-w", str(directory)])
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def default_cluster_dir() -> Path:
    """`.planwise/pg`, unless the cluster's OS user cannot use it or its path is too long."""
    preferred = PLANWISE_HOME / "pg"
    if not running_as_root():
        return preferred
    PLANWISE_HOME.mkdir(parents=True, exist_ok=True)
    if len(str(preferred)) <= MAX_SOCKET_DIR_LENGTH:
        preferred.mkdir(exist_ok=True)
        shutil.chown(preferred, CLUSTER_OS_USER, CLUSTER_OS_USER)
        preferred.chmod(0o700)
        if _cluster_user_can_enter(preferred):
            return preferred
        preferred.rmdir()
    digest = hashlib.sha256(str(PLANWISE_HOME.resolve()).encode()).hexdigest()[:12]
    # A fixed name under a world-writable dir: `Cluster.init` checks who owns it.
    return Path("/var/tmp") / f"planwise-{digest}" / "pg"  # noqa: S108


@dataclass(frozen=True)
class ClusterStatus:
    directory: Path
    initialized: bool
    running: bool
    port: int
    version: str | None
    data_bytes: int
    log_file: Path


def ensure_local_secrets(settings: Settings) -> list[str]:
    """Generate passwords for the managed cluster's roles that nobody configured.

    They go to `.planwise/local.env` (mode 0600, git-ignored), which Settings reads.
    Returns the names generated.
    """
    current = {
        "PLANWISE_PG_SUPERUSER_PASSWORD": settings.planwise_pg_superuser_password,
        "APP_SERVICE_PASSWORD": settings.app_service_password,
        "APP_READ_PASSWORD": settings.app_read_password,
        "SUPABASE_ADMIN_PASSWORD": settings.supabase_admin_password,
        "JWT_SECRET": None if settings.jwt_secret_is_default else settings.jwt_secret,
        # Signs the Supabase API keys and the local Auth's access tokens (`planwise supabase`).
        "SUPABASE_JWT_SECRET": settings.supabase_jwt_secret,
    }
    missing = [name for name in LOCAL_SECRETS if current[name] is None]
    if missing:
        LOCAL_ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(LOCAL_ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
            for name in missing:
                handle.write(
                    f"{name}={secrets.token_urlsafe(48 if name in LONG_SECRETS else 24)}\n"
                )
        LOCAL_ENV_FILE.chmod(0o600)
    return missing


class Cluster:
    """Start, stop and inspect the managed cluster; everything here is idempotent."""

    def __init__(self, settings: Settings, directory: Path | None = None) -> None:
        self.settings = settings
        self.directory = directory or default_cluster_dir()
        self.data_dir = self.directory / "data"
        self.log_file = self.directory / "postgresql.log"

    # -- commands -----------------------------------------------------------------
    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            as_cluster_user(list(command)), capture_output=True, text=True, check=False
        )

    def _require_binaries(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise PlanwiseError(
                f"PostgreSQL {PG_MAJOR} is not installed ({PG_BIN}/initdb missing). "
                "Run `make install` (it installs postgresql-15 and postgresql-15-postgis-3)."
            )

    def _refuse_foreign_owner(self) -> None:
        """Someone else could have made our predictable directory first (in /var/tmp)."""
        trusted = {0, os.geteuid()}
        if running_as_root():
            trusted.add(pwd.getpwnam(CLUSTER_OS_USER).pw_uid)
        for directory in (self.directory, self.directory.parent):
            owner = directory.stat().st_uid
            if owner not in trusted:
                raise PlanwiseError(f"{directory} belongs to uid {owner}, not to us: refusing")

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def running(self) -> bool:
        if not self.initialized:
            return False
        return self._run(str(PG_BIN / "pg_ctl"), "status", "-D", str(self.data_dir)).returncode == 0

    def init(self) -> bool:
        """Create the cluster if absent. Returns True when it was created now."""
        self._require_binaries()
        if self.initialized:
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        self._refuse_foreign_owner()
        if running_as_root():
            shutil.chown(self.directory, CLUSTER_OS_USER, CLUSTER_OS_USER)
        self.directory.chmod(0o700)
        result = self._run(
            str(PG_BIN / "initdb"),
            "--pgdata", str(self.data_dir),
            "--username", SUPERUSER,
            "--auth-local", "trust",  # the socket's directory is 0700: OS-level access control
            "--auth-host", "scram-sha-256",
            "--encoding", "UTF8",
            "--locale", "C.UTF-8",
        )  # fmt: skip
        if result.returncode != 0:
            raise PlanwiseError(f"initdb failed:\n{result.stderr.strip()}")
        return True

    def _include(self, *files: str) -> None:
        """Have postgresql.conf include our files (once: existing clusters get them too)."""
        conf = self.data_dir / "postgresql.conf"
        text = conf.read_text(encoding="utf-8")
        missing = [name for name in files if f"include_if_exists = '{name}'" not in text]
        if missing:
            with conf.open("a", encoding="utf-8") as handle:
                handle.write("\n# Managed by planwise.\n")
                handle.writelines(f"include_if_exists = '{name}'\n" for name in missing)

    def write_config(self) -> None:
        """Settings that follow ours (port, socket) and what Planwise needs preloaded.

        `pitr.conf` (WAL archiving) is written by `planwise pitr setup`.
        """
        self._include("planwise.conf", "pitr.conf")
        lines = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.settings.planwise_pg_port),
            "unix_socket_directories": f"'{self.directory}'",
            "shared_preload_libraries": "'pg_stat_statements'",
            "pg_stat_statements.track": "all",
            "track_io_timing": "on",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "password_encryption": "'scram-sha-256'",
        }
        text = "".join(f"{key} = {value}\n" for key, value in lines.items())
        path = self.data_dir / "planwise.conf"
        path.write_text(text, encoding="utf-8")
        if running_as_root():
            shutil.chown(path, CLUSTER_OS_USER, CLUSTER_OS_USER)

    def start(self) -> bool:
        """Start the server if it is not running. Returns True when it was started now."""
        if self.running:
            return False
        result = self._run(
            str(PG_BIN / "pg_ctl"), "start", "-D", str(self.data_dir),
            "-l", str(self.log_file), "-w", "-t", "60",
        )  # fmt: skip
        if result.returncode != 0:
            raise PlanwiseError(
                f"PostgreSQL did not start on port {self.settings.planwise_pg_port} "
                f"(is the port taken? set PLANWISE_PG_PORT). Last log lines:\n{self.log_tail()}"
            )
        return True

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> bool:
        """Stop the server (fast shutdown). Returns True when it was running."""
        if not self.running:
            return False
        result = self._run(str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast")
        if result.returncode != 0:
            raise PlanwiseError(f"pg_ctl stop failed:\n{result.stderr.strip()}")
        return True

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- SQL administration over the private socket ------------------------------------
    def admin_connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=str(self.directory),
            port=self.settings.planwise_pg_port,
            user=SUPERUSER,
            dbname=dbname,
            autocommit=True,
            application_name="planwise-cli",
        )

    def prepare_database(self, dbname: str | None = None) -> bool:
        """Set the superuser password, create the database and its extensions.

        Returns True when the database was created now.
        """
        dbname = dbname or self.settings.planwise_pg_database
        password = self.settings.planwise_pg_superuser_password
        with self.admin_connect() as conn:
            if password is not None:
                ensure_password(conn, SUPERUSER, password.get_secret_value())
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        with self.admin_connect(dbname) as conn:
            for extension in EXTENSIONS:
                conn.execute(
                    sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension))
                )
        return not exists

    def drop_database(self, dbname: str) -> None:
        with self.admin_connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )

    def up(self) -> list[str]:
        """Initialise, configure, start and prepare; returns what was done, for the user."""
        done = []
        if self.init():
            done.append(f"initialised a PostgreSQL {PG_MAJOR} cluster in {self.data_dir}")
        self.write_config()
        if self.start():
            done.append(f"started it on 127.0.0.1:{self.settings.planwise_pg_port}")
        if self.prepare_database():
            done.append(f"created database {self.settings.planwise_pg_database} with PostGIS")
        return done

    # -- inspection -------------------------------------------------------------------
    def status(self) -> ClusterStatus:
        version = None
        if self.running:
            with self.admin_connect() as conn:
                row = conn.execute("SHOW server_version").fetchone()
                version = str(row[0]) if row else None
        elif self.initialized:
            version = (self.data_dir / "PG_VERSION").read_text().strip()
        return ClusterStatus(
            directory=self.directory,
            initialized=self.initialized,
            running=self.running,
            port=self.settings.planwise_pg_port,
            version=version,
            data_bytes=_directory_size(self.data_dir),
            log_file=self.log_file,
        )


def _directory_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue  # a WAL segment recycled while we walked
    return total
