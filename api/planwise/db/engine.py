"""Engines: one per URL and purpose, each naming itself and bounding its statements."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from planwise.config import Settings


def sqlalchemy_url(url: str) -> str:
    """The document's `postgresql://` URLs, driven by psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same URL as plain libpq (psycopg.connect, psql, pg_dump) understands it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def build_engine(url: str, settings: Settings, *, application_name: str | None = None) -> Engine:
    """A pooled engine with the document's pool settings.

    `application_name` makes our sessions identifiable in `pg_stat_activity`;
    `statement_timeout` stops a runaway query from holding a pooled connection forever;
    `pool_pre_ping` replaces connections the server dropped (restart, failover).
    """
    connect_args: dict[str, object] = {
        "application_name": application_name or settings.database_application_name,
        "connect_timeout": 10,
    }
    if settings.database_pgbouncer:
        # Transaction pooling: consecutive statements may reach different server
        # connections, so nothing may be prepared server-side; PgBouncer refuses the
        # `options` parameter, and `planwise pgbouncer up` puts the timeout on the role.
        connect_args["prepare_threshold"] = None
    else:
        connect_args["options"] = f"-c statement_timeout={settings.database_statement_timeout_ms}"
    return create_engine(
        sqlalchemy_url(url),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout,
        pool_pre_ping=True,
        connect_args=connect_args,
    )
