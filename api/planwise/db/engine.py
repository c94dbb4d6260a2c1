"""Engines: one per URL and purpose, each naming itself and bounding its statements."""

from __future__ import annotations

import os
import select
import threading
import time
from typing import Any

import psycopg
import psycopg.conninfo
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from planwise.config import Settings
from planwise.db.waits import BudgetedQueuePool, with_read_timeout
from planwise.errors import PlanwiseError


def sqlalchemy_url(url: str) -> str:
    """The document's `postgresql://` URLs, driven by psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same URL as plain libpq (psycopg.connect, psql, pg_dump) understands it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


LIBPQ_ENVIRONMENT = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE",
    "user": "PGUSER", "password": "PGPASSWORD", "passfile": "PGPASSFILE",
    "channel_binding": "PGCHANNELBINDING", "service": "PGSERVICE", "options": "PGOPTIONS",
    "sslmode": "PGSSLMODE", "sslcompression": "PGSSLCOMPRESSION", "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY", "sslrootcert": "PGSSLROOTCERT", "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR", "sslsni": "PGSSLSNI", "requirepeer": "PGREQUIREPEER",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION", "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME", "gsslib": "PGGSSLIB", "connect_timeout": "PGCONNECT_TIMEOUT",
    "client_encoding": "PGCLIENTENCODING", "target_session_attrs": "PGTARGETSESSIONATTRS",
    "application_name": "PGAPPNAME",
}  # fmt: skip
"""libpq 15's connection keywords that have an environment variable (its manual, 34.15)."""


def pg_environment(url: str, *, application_name: str = "planwise") -> dict[str, str]:
    """This process's environment plus libpq's PG* variables for `url`, for a child
    process (psql, pg_dump): no password appears on a command line, which `ps` shows.
    Every keyword of the URL goes over, so a multi-host URL (a Patroni cluster's
    `host=a,b&port=…&target_session_attrs=read-write`) reaches the same server as here."""
    keywords = psycopg.conninfo.conninfo_to_dict(libpq_url(url))
    unknown = sorted(set(keywords) - set(LIBPQ_ENVIRONMENT))
    if unknown:
        raise PlanwiseError(
            f"the database URL's {', '.join(unknown)} cannot be handed to pg_dump or psql "
            "(libpq has no environment variable for it, and a command line would show the "
            "password): leave it out of the URL for this command"
        )
    variables = {LIBPQ_ENVIRONMENT[key]: str(value) for key, value in keywords.items()
                 if value is not None}  # fmt: skip
    return {**os.environ, **variables, "PGAPPNAME": application_name}  # ours, not the URL's


def build_engine(url: str, settings: Settings, *, application_name: str | None = None) -> Engine:
    """A pooled engine with the document's pool settings.

    `application_name` makes our sessions identifiable in `pg_stat_activity`;
    `statement_timeout` stops a runaway query from holding a pooled connection forever;
    TCP keepalives, `tcp_user_timeout` and a read timeout (planwise.db.waits) stop a
    frozen or vanished server from holding a request forever;
    connections the server dropped (restart, failover, terminated backends) are replaced
    at checkout (`discard_if_dropped`), which costs a system call where a pre-ping
    (`SELECT 1`) costs a round trip.
    """
    read_timeout = settings.database_read_timeout_seconds
    connect_args: dict[str, object] = {
        "application_name": application_name or settings.database_application_name,
        "connect_timeout": 10,
        # A peer that vanished (host down, network cut) is noticed by the kernel: idle
        # connections by keepalive probes (5 s idle, then 3 probes 2 s apart), a request
        # whose bytes are not acknowledged by `tcp_user_timeout`. A server that is there
        # but frozen still acknowledges: ReadTimeoutConnection's read timeout covers it.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
    }
    if read_timeout is not None:
        connect_args["tcp_user_timeout"] = int(read_timeout * 1000)
    if settings.database_pgbouncer:
        # Transaction pooling: consecutive statements may reach different server
        # connections, so nothing may be prepared server-side; PgBouncer refuses the
        # `options` parameter, and `planwise pgbouncer up` puts the timeout on the role.
        connect_args["prepare_threshold"] = None
    else:
        connect_args["options"] = f"-c statement_timeout={settings.database_statement_timeout_ms}"
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout,
        poolclass=BudgetedQueuePool,  # what thread waits left of pool_timeout
        connect_args=connect_args,
    )
    event.listen(engine, "checkout", discard_if_dropped)
    if read_timeout is not None:
        connection_class = with_read_timeout(read_timeout)

        @event.listens_for(engine, "do_connect")
        def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            return connection_class.connect(*cargs, **cparams)

    return engine


def discard_if_dropped(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection is idle: the server has nothing to say on it unless it is going
    away (the FATAL of a terminated backend, then end of file). So a socket with something
    to read, or a closed connection, is discarded, and the pool checks out another
    (SQLAlchemy's answer to `DisconnectionError`). Whatever else could arrive (a NOTICE,
    a changed parameter) only costs a reconnect. A peer that vanished without a word is
    not seen here; its first statement fails, and the pool is invalidated at once."""
    connection: psycopg.Connection[Any] = dbapi_connection
    if connection.closed:
        raise DisconnectionError("connection closed")
    readable, _, _ = select.select([connection.pgconn.socket], [], [], 0)
    if readable:
        raise DisconnectionError("the server closed or is closing this connection")


class ReadRouting:
    """Which engine serves a read-only request: the read engine (DATABASE_READ_URL, a
    standby when libpq finds one, else the leader), except for a reader who wrote within
    the last `window` seconds, who reads from the primary engine and so sees their own
    write (read-your-writes). The writers are remembered in this process only: with
    several API workers, a write and the next read must reach the same worker for the
    guarantee. Without a read engine every read uses the primary engine."""

    MAX_REMEMBERED = 100_000

    def __init__(self, primary: Engine, replica: Engine | None, window: float) -> None:
        self.primary = primary
        self.replica = replica
        self.window = window
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def wrote(self, *readers: str) -> None:
        """`readers` (keys naming one user) just committed a write."""
        if self.replica is None or not readers:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._until) >= self.MAX_REMEMBERED:
                self._until = {key: t for key, t in self._until.items() if t > now}
            for reader in readers:
                self._until[reader] = now + self.window

    def engine_for(self, reader: str | None) -> Engine:
        if self.replica is None:
            return self.primary
        if reader is not None:
            with self._lock:
                until = self._until.get(reader)
                if until is not None:
                    if until > time.monotonic():
                        return self.primary
                    del self._until[reader]
        return self.replica

    def dispose(self) -> None:
        if self.replica is not None:
            self.replica.dispose()


def build_read_routing(primary: Engine, settings: Settings) -> ReadRouting:
    """The read engine of DATABASE_READ_URL, built like the primary one, if set."""
    replica = None
    if settings.database_read_url:
        replica = build_engine(
            settings.database_read_url, settings, application_name="planwise-api-read"
        )
    return ReadRouting(primary, replica, settings.database_read_your_writes_seconds)
