"""Login throttling and bounded password hashing, for both login surfaces (`/api/v1/auth/
token` and `/auth/v1/token?grant_type=password`), each of which answers in its own shape.

Counters live in PostgreSQL (`login_throttle`, migration c9d0e1f2a3b4), so every API worker
and every process sees the same ones; they are written by SECURITY DEFINER functions in
autocommit statements of their own, so a failed login (whose request transaction rolls
back) is still counted. Three counters are asked about each attempt, and the longest wait
wins:

* the username from this client address (LOGIN_THROTTLE_PAIR_FREE attempts free);
* the username from any address (LOGIN_THROTTLE_USERNAME_FREE), except from an address the
  user logged in from before (LOGIN_THROTTLE_KNOWN_ADDRESS_DAYS): strangers guessing a
  user's password slow the guessing down for everyone but that user's own address;
* the address, whatever the username (LOGIN_THROTTLE_ADDRESS_FREE), against spraying.

After its free attempts a counter makes each attempt wait LOGIN_THROTTLE_BASE_SECONDS *
2^(attempts - free) after the previous one, up to LOGIN_THROTTLE_MAX_SECONDS; refused
attempts are not counted, so hammering does not lengthen the wait. A success deletes the
username's counters. IPv6 addresses count per /64 (one host usually has the whole /64).
The address is the one uvicorn reports: with `--proxy-headers` (as `planwise serve` runs)
it is taken from X-Forwarded-For when the peer is in FORWARDED_ALLOW_IPS (127.0.0.1).

Password hashing runs at most PASSWORD_HASH_CONCURRENCY at a time per process
(`hashing_slot`); a request that cannot get a slot within PASSWORD_HASH_WAIT_SECONDS is
refused (`HashingBusy`) instead of queueing, so a login flood cannot starve other routes
of CPU.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Literal

from sqlalchemy import Engine, TextClause, text

from planwise.config import Settings

Surface = Literal["api", "auth"]
"""Whose usernames: ours (`/api/v1`) or the local Supabase Auth's emails (`/auth/v1`)."""

BUSY_RETRY_AFTER_SECONDS = 1
MAX_ADDRESS_LENGTH = 200

ATTEMPT = text(
    "SELECT planwise_login_attempt(:pair, :username, :address, :pair_free, :username_free, "
    ":address_free, :base, :max, :forget)"
)
SUCCEEDED = text("SELECT planwise_login_succeeded(:pair, :username, :address, :known)")
RELEASED = text("SELECT planwise_login_released(:pair, :username, :address)")


class Throttled(Exception):
    """Too many failed logins: try again in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        unit = "second" if retry_after == 1 else "seconds"
        super().__init__(f"too many failed logins; try again in {retry_after} {unit}")
        self.retry_after = retry_after


class HashingBusy(Exception):
    """Every password-hashing slot stayed taken for PASSWORD_HASH_WAIT_SECONDS."""

    retry_after = BUSY_RETRY_AFTER_SECONDS

    def __init__(self) -> None:
        super().__init__("the server is busy checking passwords; retry shortly")


@cache
def _slots(size: int) -> threading.BoundedSemaphore:
    """One semaphore per size in this process (apps of one process share the CPUs)."""
    return threading.BoundedSemaphore(size)


@contextmanager
def hashing_slot(settings: Settings) -> Iterator[None]:
    """Hold one of the process's password-hashing slots; HashingBusy if none frees up."""
    slots = _slots(settings.password_hash_concurrency)
    if not slots.acquire(timeout=settings.password_hash_wait_seconds):
        raise HashingBusy
    try:
        yield
    finally:
        slots.release()


def client_address(host: str | None) -> str:
    """The throttling key of a client address: IPv4 as is, IPv6 by its /64."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:MAX_ADDRESS_LENGTH]  # e.g. the test client's "testclient"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Keys:
    pair: bytes
    username: bytes
    address: bytes

    @classmethod
    def of(cls, surface: Surface, username: str, host: str | None) -> Keys:
        name = username.casefold()
        address = client_address(host)
        return cls(
            pair=_digest("pair", surface, name, address),
            username=_digest("username", surface, name),
            address=_digest("address", address),
        )

    def params(self) -> dict[str, bytes]:
        return {"pair": self.pair, "username": self.username, "address": self.address}


@dataclass
class Attempt:
    """One counted login attempt: a failure unless `succeeded()` is called."""

    engine: Engine
    settings: Settings
    keys: Keys | None

    def succeeded(self) -> None:
        """The password was right: forget the username's failures, remember the address."""
        if self.keys is not None:
            known = self.settings.login_throttle_known_address_days * 86_400
            _run(self.engine, SUCCEEDED, {**self.keys.params(), "known": known})
            self.keys = None


def _run(engine: Engine, statement: TextClause, params: Mapping[str, object]) -> object:
    """One statement in autocommit: it stays done whatever the request's transaction does."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return connection.execute(statement, params).scalar_one()


def _count(engine: Engine, settings: Settings, keys: Keys) -> None:
    """Count the attempt, or raise Throttled without counting it."""
    wait = _run(
        engine,
        ATTEMPT,
        {
            **keys.params(),
            "pair_free": settings.login_throttle_pair_free,
            "username_free": settings.login_throttle_username_free,
            "address_free": settings.login_throttle_address_free,
            "base": settings.login_throttle_base_seconds,
            "max": settings.login_throttle_max_seconds,
            "forget": settings.login_throttle_forget_seconds,
        },
    )
    assert isinstance(wait, float)
    if wait > 0:
        raise Throttled(max(1, math.ceil(wait)))


@dataclass(frozen=True)
class LoginGuard:
    """What a login surface needs to throttle: where the counters are, and the limits."""

    engine: Engine
    settings: Settings

    @contextmanager
    def attempt(self, surface: Surface, username: str, host: str | None) -> Iterator[Attempt]:
        """Count a login attempt (Throttled when it must wait), then hold a hashing slot
        (HashingBusy, the attempt taken back, when none frees up) while the block checks
        the password; the block calls `succeeded()` when it was right."""
        settings = self.settings
        keys = Keys.of(surface, username, host) if settings.login_throttle_enabled else None
        if keys is not None:
            _count(self.engine, settings, keys)
        try:
            with hashing_slot(settings):
                yield Attempt(self.engine, settings, keys)
        except HashingBusy:
            if keys is not None:
                _run(self.engine, RELEASED, keys.params())
            raise
