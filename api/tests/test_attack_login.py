"""Attacks on the two login surfaces: password guessing and login floods (issue 14, item 2).

Against real uvicorn servers on the test database, with low limits so the module stays
fast. Client addresses are set with X-Forwarded-For, which uvicorn believes from
127.0.0.1 (its `forwarded_allow_ips` default, as behind a local reverse proxy).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from psycopg import errors

from planwise.config import Settings
from planwise.supabase import keys
from tests.support.databases import DatabaseUnderTest, connect
from tests.support.live import LiveServer, serve

PASSWORD = "correct horse battery"
WRONG = "wrong guess"
PAIR_FREE = 2
USERNAME_FREE = 3
ADDRESS_FREE = 4
API_VERSION = {"X-Supabase-Api-Version": "2024-01-01"}
_addresses = itertools.count(1)


def new_address() -> str:
    n = next(_addresses)
    return f"198.18.{n // 250}.{n % 250 + 1}"


@pytest.fixture(scope="module")
def live_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(
        update={
            "login_throttle_pair_free": PAIR_FREE,
            "login_throttle_username_free": USERNAME_FREE,
            "login_throttle_address_free": ADDRESS_FREE,
            # Waits are counted from the start of the last attempt, so they must outlast
            # one password check on a loaded machine.
            "login_throttle_base_seconds": 2.0,
            "login_throttle_max_seconds": 8.0,
            "login_throttle_forget_seconds": 60.0,
        }
    )


@pytest.fixture(scope="module")
def second(live_settings: Settings) -> Iterator[LiveServer]:
    """Another app instance (its own engine and pool) on the same database."""
    with serve(live_settings) as server:
        yield server


def register(http: httpx.Client) -> str:
    username = f"victim_{uuid.uuid4().hex[:10]}"
    created = http.post(
        "/auth/register",
        json={"username": username, "password": PASSWORD, "full_name": "Victim"},
    )
    assert created.status_code == 201, created.text
    return username


def login(http: httpx.Client, username: str, address: str, password: str = WRONG) -> Any:
    return http.post(
        "/auth/token",
        data={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
    )


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert "too many failed logins" in response.json()["detail"]


def test_guessing_from_one_address_gets_429_with_retry_after(http: httpx.Client) -> None:
    username = register(http)
    address = new_address()
    for _ in range(PAIR_FREE):
        assert login(http, username, address).status_code == 401
    assert_throttled(login(http, username, address))
    # Even the right password waits: nothing is checked while the wait lasts.
    assert_throttled(login(http, username, address, PASSWORD))
    # The pair's limit is not the user's: from elsewhere the user still gets in.
    assert login(http, username, new_address(), PASSWORD).status_code == 200


def test_the_wait_doubles_with_each_guess_and_refusals_do_not_count(http: httpx.Client) -> None:
    username = register(http)
    address = new_address()
    for _ in range(PAIR_FREE):
        assert login(http, username, address).status_code == 401
    refused = login(http, username, address)
    assert_throttled(refused)
    wait = int(refused.headers["Retry-After"])
    assert wait <= 2  # base * 2^0 after the free attempts, from the last attempt
    assert_throttled(login(http, username, address))  # hammering is refused, not counted
    time.sleep(wait + 0.1)
    assert login(http, username, address).status_code == 401
    again = login(http, username, address)
    assert_throttled(again)
    assert 3 <= int(again.headers["Retry-After"]) <= 4  # one more guess: twice the wait


def test_ipv6_addresses_count_per_64(http: httpx.Client) -> None:
    username = register(http)
    prefix = f"2001:db8:{next(_addresses):x}:1"
    for host in range(1, PAIR_FREE + 1):
        assert login(http, username, f"{prefix}::{host}").status_code == 401
    assert_throttled(login(http, username, f"{prefix}:ffff:ffff:ffff:ffff"))


def test_guessing_from_many_addresses_hits_the_username_but_not_its_known_address(
    http: httpx.Client,
) -> None:
    username = register(http)
    home = new_address()
    assert login(http, username, home, PASSWORD).status_code == 200
    for _ in range(USERNAME_FREE):
        assert login(http, username, new_address()).status_code == 401
    assert_throttled(login(http, username, new_address()))
    # The address the user logged in from is not counted with strangers.
    assert login(http, username, home).status_code == 401
    assert login(http, username, home, PASSWORD).status_code == 200
    # That success reset the username's counter: strangers count from zero again.
    assert login(http, username, new_address()).status_code == 401


def test_spraying_many_usernames_from_one_address_gets_429(http: httpx.Client) -> None:
    address = new_address()
    for _ in range(ADDRESS_FREE):
        assert login(http, f"nobody_{uuid.uuid4().hex[:8]}", address).status_code == 401
    assert_throttled(login(http, f"nobody_{uuid.uuid4().hex[:8]}", address))


def test_counters_are_shared_by_app_instances(http: httpx.Client, second: LiveServer) -> None:
    username = register(http)
    address = new_address()
    for _ in range(PAIR_FREE):
        assert login(http, username, address).status_code == 401
    with second.http() as other:
        assert_throttled(login(other, username, address, PASSWORD))


def test_a_success_resets_the_counters(http: httpx.Client) -> None:
    username = register(http)
    address = new_address()
    for _ in range(PAIR_FREE - 1):
        assert login(http, username, address).status_code == 401
    assert login(http, username, address, PASSWORD).status_code == 200
    for _ in range(PAIR_FREE):
        assert login(http, username, address).status_code == 401
    assert_throttled(login(http, username, address))


def test_counters_hold_digests_and_the_api_role_cannot_touch_them(
    http: httpx.Client, api_db: DatabaseUnderTest
) -> None:
    typed = f"typed_password_{uuid.uuid4().hex[:8]}"
    assert login(http, typed, new_address()).status_code == 401
    with connect(api_db.admin_url) as conn:
        rows = conn.execute("SELECT scope, key::text, length(key) FROM login_throttle").fetchall()
    assert {length for _, _, length in rows} == {32}  # SHA-256 digests
    assert not any(typed.encode().hex() in str(key) for _, key, _ in rows)
    with connect(api_db.app_url) as conn:
        for statement in ("SELECT count(*) FROM login_throttle", "DELETE FROM login_throttle"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()


# -- Supabase Auth (/auth/v1), in GoTrue's shape -----------------------------------------


def gotrue_sign_in(
    live: LiveServer, anon: str, email: str, address: str, **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{live.url}/auth/v1/token?grant_type=password",
        json={"email": email, "password": "wrong-password"},
        headers={"apikey": anon, "X-Forwarded-For": address, **headers},
        timeout=10,
    )


def test_gotrue_password_grant_answers_over_request_rate_limit(
    live: LiveServer, live_settings: Settings
) -> None:
    anon = keys.api_keys(live_settings).anon
    email = f"victim.{uuid.uuid4().hex[:10]}@example.org"
    signed_up = httpx.post(
        f"{live.url}/auth/v1/signup",
        json={"email": email, "password": PASSWORD},
        headers={"apikey": anon},
        timeout=10,
    )
    assert signed_up.status_code == 200, signed_up.text
    address = new_address()
    for _ in range(PAIR_FREE):
        wrong = gotrue_sign_in(live, anon, email, address)
        assert wrong.json()["error_code"] == "invalid_credentials"
    refused = gotrue_sign_in(live, anon, email, address)
    assert refused.status_code == 429
    assert refused.json() == {
        "code": 429,
        "error_code": "over_request_rate_limit",
        "msg": "Request rate limit reached",
    }
    assert refused.headers["x-sb-error-code"] == "over_request_rate_limit"
    assert int(refused.headers["Retry-After"]) >= 1
    versioned = gotrue_sign_in(live, anon, email, address, **API_VERSION)
    assert versioned.status_code == 429
    assert versioned.json() == {
        "code": "over_request_rate_limit",
        "message": "Request rate limit reached",
    }


# -- a login flood cannot take every CPU --------------------------------------------------


@pytest.fixture(scope="module")
def one_slot(api_settings: Settings) -> Iterator[LiveServer]:
    """A server with one password-hashing slot and no patience for it (throttling off, so
    only the slots decide)."""
    settings = api_settings.model_copy(
        update={
            "login_throttle_enabled": False,
            "password_hash_concurrency": 1,
            "password_hash_wait_seconds": 0.0,
        }
    )
    with serve(settings) as server:
        yield server


def flood(send: Any, count: int = 8) -> list[httpx.Response]:
    """`count` requests at once (each from its own thread and connection)."""
    start = threading.Barrier(count)
    answers: list[httpx.Response] = []

    def one(n: int) -> None:
        start.wait()
        answers.append(send(n))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_logins_beyond_the_hashing_slots_are_refused_not_queued(
    one_slot: LiveServer, api_settings: Settings
) -> None:
    answers = flood(
        lambda n: httpx.post(
            f"{one_slot.url}/api/v1/auth/token",
            data={"username": f"nobody_{n}", "password": "wrong"},
            timeout=10,
        )
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert 401 in statuses and 503 in statuses, statuses
    busy = next(answer for answer in answers if answer.status_code == 503)
    assert busy.headers["Retry-After"] == "1" and busy.json()["detail"]

    anon = keys.api_keys(api_settings).anon
    answers = flood(
        lambda n: httpx.post(
            f"{one_slot.url}/auth/v1/token?grant_type=password",
            json={"email": f"nobody{n}@example.org", "password": "wrong"},
            headers={"apikey": anon},
            timeout=10,
        )
    )
    refused = [answer for answer in answers if answer.status_code == 429]
    assert refused and len(refused) < len(answers), [a.status_code for a in answers]
    assert refused[0].json()["error_code"] == "over_request_rate_limit"
    assert refused[0].headers["Retry-After"] == "1"
