"""Bounded waits (issue 15, item 9), for real: a pooled connection to a server that froze
(its backend stopped with SIGSTOP) and requests queued for a worker thread both end in a
503 within their bounds instead of hanging."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from planwise.app import create_app
from planwise.config import Settings
from planwise.db.engine import build_engine
from planwise.db.waits import BoundedThreadLimiter
from tests.support.databases import DatabaseUnderTest, connect


@pytest.fixture(scope="module")
def waits_db(create_migrated_database: Callable[[str], DatabaseUnderTest]) -> DatabaseUnderTest:
    """A database only these tests' apps connect to, so their backends are easy to find."""
    return create_migrated_database("planwise_waits")


@contextmanager
def client_for(
    api_settings: Settings, db: DatabaseUnderTest, **changes: Any
) -> Iterator[TestClient]:
    settings = api_settings.model_copy(
        update={"database_url": db.app_url, "migration_database_url": db.admin_url, **changes}
    )
    app = create_app(settings)
    try:
        with TestClient(app, base_url="http://testserver/api/v1") as client:
            yield client
    finally:
        app.state.engine.dispose()


def api_backends(db: DatabaseUnderTest, *, waiting_on_a_lock: bool = False) -> list[int]:
    """The backends of the API apps of these tests (only they use this database)."""
    with connect(db.admin_url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s "
            "AND application_name = 'planwise-api' "
            "AND (NOT %s OR wait_event_type IS NOT DISTINCT FROM 'Lock')",
            (db.name, waiting_on_a_lock),
        ).fetchall()
    return [int(row[0]) for row in rows]


def test_the_defaults_keep_the_pool_and_statement_timeouts_apart() -> None:
    defaults = Settings.model_fields
    pool = defaults["database_pool_timeout"].default
    statement = defaults["database_statement_timeout_ms"].default / 1000
    assert pool * 3 <= statement
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_read_timeout_seconds == statement + 2


def test_the_engine_sets_keepalives_and_tcp_user_timeout(
    waits_db: DatabaseUnderTest, settings: Settings
) -> None:
    engine = build_engine(
        waits_db.app_url, settings.model_copy(update={"database_read_timeout": 7})
    )
    try:
        with engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            params = raw.info.get_parameters()  # type: ignore[attr-defined]
            assert params["keepalives"] == "1" and params["tcp_user_timeout"] == "7000"
            assert type(raw).read_timeout == 7  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_a_frozen_server_answers_503_after_the_read_timeout(
    api_settings: Settings, waits_db: DatabaseUnderTest
) -> None:
    """The pooled connection's backend is stopped (SIGSTOP): the kernel still acknowledges
    our bytes, so only a read timeout ends the wait (18.7 s and counting before)."""
    with client_for(api_settings, waits_db, database_read_timeout=1.5,
                    database_pool_size=1, database_max_overflow=0) as client:  # fmt: skip
        assert client.get("/places").status_code == 200  # the pool now holds a connection
        (backend,) = api_backends(waits_db)
        os.kill(backend, signal.SIGSTOP)
        thaw = threading.Timer(15, os.kill, (backend, signal.SIGCONT))  # fail, not hang
        thaw.start()
        try:
            started = time.monotonic()
            frozen = client.get("/places")
            waited = time.monotonic() - started
        finally:
            thaw.cancel()
            os.kill(backend, signal.SIGCONT)
        assert frozen.status_code == 503, frozen.text
        assert frozen.headers["retry-after"] == "5" and "unavailable" in frozen.json()["detail"]
        assert 1.4 < waited < 5, waited
        assert client.get("/places").status_code == 200, "a new connection replaced it"
        assert backend not in api_backends(waits_db)


def test_requests_queued_for_a_worker_thread_get_503_within_the_pool_timeout(
    api_settings: Settings, waits_db: DatabaseUnderTest
) -> None:
    """Two worker threads, both held by requests blocked on a locked table, and free
    connections in the pool: a third request waited for a thread until one was free (~50 s
    in the issue, with all 40); now its wait counts against DATABASE_POOL_TIMEOUT and it
    gets the pool's 503."""
    answers: list[httpx.Response] = []
    with (
        client_for(api_settings, waits_db, api_worker_threads=2, database_pool_size=5,
                   database_max_overflow=0, database_pool_timeout=1.0) as client,
        connect(waits_db.admin_url) as holder,
    ):  # fmt: skip
        holder.execute("LOCK TABLE place IN ACCESS EXCLUSIVE MODE")
        blocked = [
            threading.Thread(target=lambda: answers.append(client.get("/places"))) for _ in range(2)
        ]
        for thread in blocked:
            thread.start()
        deadline = time.monotonic() + 10
        while len(api_backends(waits_db, waiting_on_a_lock=True)) < 2:
            assert time.monotonic() < deadline, "the two requests never blocked on the lock"
            time.sleep(0.05)
        started = time.monotonic()
        queued = client.get("/places")
        waited = time.monotonic() - started
        still_blocked = all(thread.is_alive() for thread in blocked)
        holder.rollback()  # the lock goes; the two blocked requests finish
        for thread in blocked:
            thread.join(timeout=10)
    assert still_blocked, "the third request was answered while both threads were busy"
    assert queued.status_code == 503 and queued.headers["retry-after"] == "1", queued.text
    assert 0.9 < waited < 3, waited
    assert [answer.status_code for answer in answers] == [200, 200]


def test_the_api_runs_on_the_bounded_limiter(
    api_settings: Settings, waits_db: DatabaseUnderTest
) -> None:
    """anyio keeps its default thread limiter in a private run variable; should that
    change, this fails instead of the bound silently disappearing."""
    import anyio.to_thread

    with client_for(api_settings, waits_db, api_worker_threads=3) as client:
        limiter = client.portal.call(anyio.to_thread.current_default_thread_limiter)  # type: ignore[union-attr]
    assert isinstance(limiter, BoundedThreadLimiter) and limiter.total_tokens == 3


def test_a_wait_for_a_thread_leaves_less_to_wait_for_a_connection(
    api_settings: Settings, waits_db: DatabaseUnderTest
) -> None:
    """One thread, one connection (held by the test), a 2 s budget. A holds the thread
    while it waits 2 s for the connection; B, 0.5 s later, waits ~1.5 s for the thread and
    then only the ~0.5 s left for the connection: 503 after ~2 s, where separate timeouts
    made it ~3.5 s."""
    answers: dict[str, tuple[int, float]] = {}

    def ask(name: str, client: TestClient) -> None:
        started = time.monotonic()
        status = client.get("/places").status_code
        answers[name] = (status, time.monotonic() - started)

    with client_for(api_settings, waits_db, api_worker_threads=1, database_pool_size=1,
                    database_max_overflow=0, database_pool_timeout=2.0) as client:  # fmt: skip
        engine = client.app.state.engine  # type: ignore[attr-defined]
        with engine.connect():  # the pool's only connection
            first = threading.Thread(target=ask, args=("A", client))
            first.start()
            time.sleep(0.5)
            ask("B", client)
            first.join()
    (status_a, waited_a), (status_b, waited_b) = answers["A"], answers["B"]
    assert (status_a, status_b) == (503, 503)
    assert 1.9 < waited_a < 2.9 and 1.4 < waited_b < 2.4, answers
