"""Bounded waits of an API request: for a worker thread, and for a frozen server.

**Threads.** FastAPI runs every sync dependency and path operation in anyio's worker
threads, 40 by default. When they are all busy (e.g. each waiting for a pooled
connection), further requests queue for a thread with no limit: ~50 s with no 503 in
issue 15. `bound_thread_waits` makes the event loop's default thread limiter one whose
waits draw from a budget per request of DATABASE_POOL_TIMEOUT seconds (all of that
request's waits for a thread together); when it is spent the request gets the pool's 503
(`ThreadWaitTimeout` is a `sqlalchemy.exc.TimeoutError`, which the app maps to 503 with
`Retry-After: 1`). A free thread costs no wait and no budget. `BudgetedQueuePool` then
waits for a connection only what is left of the same budget, so a request waits at most
DATABASE_POOL_TIMEOUT for a thread and a connection together.

**Frozen servers.** A server that stops answering (its process stopped, its host gone)
left a request waiting forever for the reply. `ReadTimeoutConnection` gives every wait
for the server a limit (`Settings.database_read_timeout_seconds`, longer than
`statement_timeout`, which the server enforces itself when it is alive), then drops the
connection, so the pool replaces it and the request gets 503.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any, TypeVar

import anyio
import psycopg
from anyio import WouldBlock
from anyio._backends._asyncio import CapacityLimiter as AsyncioCapacityLimiter
from anyio._backends._asyncio import _default_thread_limiter
from psycopg.abc import PQGen
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool

RV = TypeVar("RV")

THREAD_WAITED: ContextVar[float] = ContextVar("planwise_thread_waited", default=0.0)
"""Seconds this request (its task's context) has spent waiting for worker threads."""


class ThreadWaitTimeout(PoolTimeout):
    """Every worker thread stayed busy for the request's whole DATABASE_POOL_TIMEOUT."""


class BoundedThreadLimiter(AsyncioCapacityLimiter):
    """anyio's asyncio capacity limiter, with waits limited by a per-request budget."""

    def __new__(cls, total_tokens: float, budget_seconds: float = 0.0) -> BoundedThreadLimiter:
        return object.__new__(cls)

    def __init__(self, total_tokens: int, budget_seconds: float) -> None:
        super().__init__(total_tokens)
        self.budget_seconds = budget_seconds

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        try:
            self.acquire_on_behalf_of_nowait(borrower)
        except WouldBlock:
            pass
        else:  # a free thread: take it, with anyio's usual (shielded) checkpoint
            try:
                await anyio.lowlevel.cancel_shielded_checkpoint()
            except BaseException:
                self.release_on_behalf_of(borrower)
                raise
            return
        left = self.budget_seconds - THREAD_WAITED.get()
        started = time.monotonic()
        try:
            with anyio.fail_after(max(left, 0.0)):
                await super().acquire_on_behalf_of(borrower)
        except TimeoutError:
            raise ThreadWaitTimeout(
                f"all {self.total_tokens:g} worker threads stayed busy for "
                f"{self.budget_seconds:g} s (DATABASE_POOL_TIMEOUT)"
            ) from None
        finally:
            THREAD_WAITED.set(THREAD_WAITED.get() + time.monotonic() - started)


def bound_thread_waits(total_threads: int, budget_seconds: float) -> BoundedThreadLimiter:
    """Install a BoundedThreadLimiter as the running event loop's default thread limiter
    (the one Starlette's `run_in_threadpool` uses); call it from the app's lifespan.

    anyio keeps that limiter in a run variable of its asyncio backend; there is no
    public way to replace it (`tests/test_bounded_waits.py` notices if that changes)."""
    limiter = BoundedThreadLimiter(total_threads, budget_seconds)
    _default_thread_limiter.set(limiter)
    return limiter


class BudgetedQueuePool(QueuePool):
    """SQLAlchemy's QueuePool, whose wait for a connection (`pool_timeout`) is what the
    request's waits for worker threads left of it. Outside a request nothing was waited
    (THREAD_WAITED is 0): the whole timeout. anyio copies the request's context into the
    worker thread after the thread was acquired, so the checkout sees the wait."""

    @property
    def _timeout(self) -> float:
        return max(0.0, self._budget - THREAD_WAITED.get())

    @_timeout.setter
    def _timeout(self, value: float) -> None:
        self._budget = value

    def recreate(self) -> QueuePool:
        waited = THREAD_WAITED.set(0.0)  # the new pool gets the whole budget
        try:
            return super().recreate()
        finally:
            THREAD_WAITED.reset(waited)


class ReadTimeoutConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait for the server ends after `read_timeout`
    seconds: the connection is then closed and `psycopg.OperationalError` raised (so
    SQLAlchemy sees a disconnect and invalidates it). Subclass per timeout with
    `with_read_timeout`."""

    read_timeout: float | None = None

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        limit = timeout if timeout is not None else self.read_timeout
        try:
            return super().wait(gen, interval=interval, timeout=limit)
        except psycopg.errors._WaitTimeout:
            if timeout is not None:  # the caller's own timeout: theirs to handle
                raise
            self.close()
            raise psycopg.OperationalError(
                f"the server did not answer within {limit:g} s (frozen, or cut off?): "
                "connection dropped"
            ) from None


_connection_classes: dict[float, type[ReadTimeoutConnection]] = {}


def with_read_timeout(seconds: float) -> type[ReadTimeoutConnection]:
    """The ReadTimeoutConnection class for `seconds` (one class per value)."""
    if seconds not in _connection_classes:
        _connection_classes[seconds] = type(
            "ReadTimeoutConnection", (ReadTimeoutConnection,), {"read_timeout": seconds}
        )
    return _connection_classes[seconds]
