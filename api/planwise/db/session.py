"""One transaction per unit of work, with the acting user set for row-level security.

`set_config('app.user_id', …, true)` is transaction-local: the setting disappears at
COMMIT or ROLLBACK, so it cannot leak to the next user of a pooled connection, even
through PgBouncer in transaction mode where consecutive transactions of one client may
run on different server connections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

T = TypeVar("T")

SET_ACTING_USER = text("select set_config('app.user_id', :user_id, true)")


def set_acting_user(session: Session, user_id: int) -> None:
    """Make RLS policies see `user_id` for the rest of the current transaction."""
    session.execute(SET_ACTING_USER, {"user_id": str(int(user_id))})


@contextmanager
def unit_of_work(engine: Engine, user_id: int | None = None) -> Iterator[Session]:
    """Open a session and a transaction; commit when the block succeeds, else roll back.

    Services take the yielded session and never commit themselves.
    """
    with Session(engine, expire_on_commit=False) as session, session.begin():
        if user_id is not None:
            set_acting_user(session, user_id)
        yield session


def read_in_autocommit(engine: Engine, read: Callable[[Connection], T]) -> T:
    """Run `read` on an autocommit connection, each statement its own transaction (no
    BEGIN, no COMMIT: one round trip per statement). A read whose connection turns out to
    be dead is run once more on a fresh one (the first failure invalidates the pool): it
    wrote nothing, so running it again is safe."""
    return _retried_once_if_dead(lambda: _autocommit(engine, read))


def _retried_once_if_dead(attempt: Callable[[], T]) -> T:
    try:
        return attempt()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    return attempt()


def _autocommit(engine: Engine, read: Callable[[Connection], T]) -> T:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return read(connection)


def read_driver_in_autocommit(engine: Engine, read: Callable[[psycopg.Connection[Any]], T]) -> T:
    """As `read_in_autocommit`, with `read` given psycopg's own connection, checked out of
    the engine's pool: the pool's checkout check (`discard_if_dropped`), its bounded wait
    and its metrics stay, SQLAlchemy's per-statement layer (compiling, result rows) goes;
    for a hot read it costs more than the statement (README Performance). psycopg's errors
    are raised as SQLAlchemy raises them (`DBAPIError`), so they answer the same, and a
    dead connection is retried once, as there."""
    return _retried_once_if_dead(lambda: _driver_autocommit(engine, read))


def _driver_autocommit(engine: Engine, read: Callable[[psycopg.Connection[Any]], T]) -> T:
    try:
        pooled = engine.raw_connection()
    except psycopg.Error as error:  # no connection could be made
        raise _wrapped(engine, error, None) from error
    driver = cast(psycopg.Connection[Any], pooled.driver_connection)
    try:
        driver.autocommit = True
        try:
            return read(driver)
        finally:
            if not driver.closed:
                driver.autocommit = False  # as the pool's other users expect it
    except psycopg.Error as error:
        wrapped = _wrapped(engine, error, driver)
        if wrapped.connection_invalidated:
            # What SQLAlchemy's Connection does on a disconnect: drop this connection and
            # every one pooled before it (they likely died together); no public API.
            engine.pool._invalidate(pooled, error)
        raise wrapped from error
    finally:
        pooled.close()


def _wrapped(
    engine: Engine, error: psycopg.Error, connection: psycopg.Connection[Any] | None
) -> DBAPIError:
    invalidated = engine.dialect.is_disconnect(cast(Any, error), cast(Any, connection), None)
    wrapped = DBAPIError.instance(
        None, None, error, psycopg.Error, dialect=engine.dialect, connection_invalidated=invalidated
    )
    assert isinstance(wrapped, DBAPIError)
    return wrapped
