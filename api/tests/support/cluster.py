"""A two-member Patroni cluster (`planwise cluster up --nodes 2 --sync`) for a test module,
the settings of an API whose DATABASE_URL is the cluster's read-write URL, and a realtime
subscriber to that API's place changes (PlaceEvents)."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates
from sqlalchemy.engine import make_url

from planwise.config import Settings
from planwise.ops.cluster.patroni import HACluster
from tests.support.accounts import PASSWORD
from tests.support.cli import planwise
from tests.support.databases import TEST_JWT_SECRET, TEST_SUPABASE_JWT_SECRET
from tests.support.live import LiveServer


@dataclass
class RunningCluster:
    env: dict[str, str]
    root: Path
    ha: HACluster
    output: str = ""
    cleaned: list[bool] = field(default_factory=list)
    urls: dict[tuple[str, ...], str] = field(default_factory=dict)

    def url(self, *args: str) -> str:
        """`planwise cluster url ARGS`, asked once (it stays the same while the cluster runs)."""
        if args not in self.urls:
            result = planwise("cluster", "url", *args, **self.env)
            assert result.returncode == 0, result.stderr
            self.urls[args] = result.stdout.strip()
        return self.urls[args]

    def member_url(self, member: dict[str, object]) -> str:
        """The owner's URL of this one member (a single host: `backup` takes no other)."""
        url = make_url(self.url("--as", "admin"))
        one = url.set(host=str(member["host"]), port=int(str(member["port"])), query={})
        return one.render_as_string(hide_password=False)

    def members(self) -> list[dict[str, object]]:
        result = planwise("cluster", "status", "--json", **self.env)
        assert result.returncode in (0, 3), result.stderr
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    def api_settings(self, settings: Settings, **update: Any) -> Settings:
        """An API on the cluster: DATABASE_URL is the read-write URL (as app_service)."""
        return settings.model_copy(
            update={
                "database_url": self.url("--as", "app"),
                "migration_database_url": self.url("--as", "admin"),
                "planwise_env": "test",
                "jwt_secret": SecretStr(TEST_JWT_SECRET),
                "supabase_jwt_secret": SecretStr(TEST_SUPABASE_JWT_SECRET),
                **update,
            }
        )


@contextmanager
def two_member_cluster(settings: Settings, home: Path) -> Iterator[RunningCluster]:
    """`cluster up --nodes 2 --sync` in `home`; down and deleted afterwards."""
    env = {"PLANWISE_HOME": str(home), "PLANWISE_PG_PORT": str(settings.planwise_pg_port)}
    started = time.monotonic()
    result = planwise("cluster", "up", "--nodes", "2", "--sync", **env)
    match = re.search(r"Cluster directory: (\S+)", result.stdout)
    root = Path(match.group(1)) if match else home / "cluster"
    running = RunningCluster(env, root, HACluster(settings, root), result.stdout)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        print(f"cluster up --nodes 2 --sync: {time.monotonic() - started:.1f} s")
        yield running
    finally:
        if not running.cleaned:
            planwise("cluster", "down", "--delete", "--yes", **env)


def cluster_fixture(home: str) -> Any:
    """A module-scoped `ha_cluster` fixture: `ha_cluster = cluster_fixture("x-home")`."""

    @pytest.fixture(scope="module")
    def ha_cluster(
        settings: Settings, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[RunningCluster]:
        with two_member_cluster(settings, tmp_path_factory.mktemp(home)) as running:
            yield running

    return ha_cluster


def account_headers(
    http: httpx.Client, admin_url: str, username: str, *, admin: bool = False
) -> dict[str, str]:
    """A new account through the API (an administrator, made so by the owner, if asked)."""
    registered = http.post(
        "/auth/register", json={"username": username, "password": PASSWORD, "full_name": "HA"}
    )
    assert registered.status_code == 201, registered.text
    if admin:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("UPDATE \"user\" SET role = 'admin' WHERE username = %s", (username,))
    token = http.post("/auth/token", data={"username": username, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def admin_headers(http: httpx.Client, admin_url: str) -> dict[str, str]:
    """A new administrator through the API."""
    return account_headers(http, admin_url, f"ha_admin_{os.getpid()}", admin=True)


class Writer(threading.Thread):
    """Inserts numbered rows into ha_probe through `url`, reconnecting on any error; keeps
    the numbers the server acknowledged (committed: autocommit)."""

    def __init__(self, url: str, **connect: Any) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.connect = connect
        self.acknowledged: list[int] = []
        self.ack_times: list[float] = []
        self.failures: list[float] = []
        self.last_ack_at = 0.0
        self.stop = threading.Event()

    def outage(self, since: float, until: float = math.inf) -> float:
        """The longest time without an acknowledged write from 1 s before `since`."""
        times = [at for at in self.ack_times if since - 1 < at < until]
        return max(later - earlier for earlier, later in itertools.pairwise(times))

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            try:
                with psycopg.connect(
                    self.url, connect_timeout=2, autocommit=True, **self.connect
                ) as conn:
                    while not self.stop.is_set():
                        number += 1
                        conn.execute("INSERT INTO ha_probe (n) VALUES (%s)", (number,))
                        self.acknowledged.append(number)
                        self.last_ack_at = time.monotonic()
                        self.ack_times.append(self.last_ack_at)
            except psycopg.Error:
                self.failures.append(time.monotonic())
                time.sleep(0.1)

    def served_again(self, since: float) -> float:
        """When the first write after `since` was acknowledged."""
        return min(at for at in self.ack_times if at > since)


class ApiWriter(threading.Thread):
    """Creates places one by one through the live API (`PUT /places/ha-N`, an admin),
    keeping each response's status and time."""

    def __init__(self, http: httpx.Client, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.http = http
        self.headers = headers
        self.responses: list[tuple[float, int, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            place_id = f"ha-{number}"
            body = {"name": f"HA {number}", "lat": 48.85, "lng": 2.35, "types": ["museum"]}
            status = self.http.put(f"/places/{place_id}", json=body, headers=self.headers)
            self.responses.append((time.monotonic(), status.status_code, place_id))

    def acknowledged(self) -> set[str]:
        return {place for _, code, place in self.responses if code in (200, 201)}

    def outage(self, since: float, until: float = math.inf) -> float:
        """The longest time without a successful write from 1 s before `since`."""
        times = [at for at, code, _ in self.responses
                 if since - 1 < at < until and code in (200, 201)]  # fmt: skip
        return max(later - earlier for earlier, later in itertools.pairwise(times))

    def served_again(self, since: float) -> float | None:
        """When the first write after `since` succeeded."""
        return min((at for at, code, _ in self.responses if at > since and code in (200, 201)),
                   default=None)  # fmt: skip


class PlaceEvents(threading.Thread):
    """A realtime subscriber to `place` INSERTs on the live API (the official `realtime`
    client in a thread of its own), keeping the id of every place it was told about."""

    def __init__(self, realtime_url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.realtime_url = realtime_url
        self.token = token
        self.received: list[str] = []
        self.subscribed = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        asyncio.run(self._listen())

    async def _listen(self) -> None:
        client = AsyncRealtimeClient(self.realtime_url, self.token, max_retries=1, timeout=5)
        channel = client.channel("ha-places")
        channel.on_postgres_changes(
            "INSERT", table="place",
            callback=lambda payload: self.received.append(payload["data"]["record"]["id"]),
        )  # fmt: skip
        await channel.subscribe(
            lambda state, _error: (
                self.subscribed.set() if state == RealtimeSubscribeStates.SUBSCRIBED else None
            )
        )
        while not self.stop.is_set():
            await asyncio.sleep(0.05)
        await client.close()

    def wait_for(self, ids: set[str], seconds: float = 15) -> set[str]:
        """The ids of `ids` not received within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not ids <= set(self.received):
            time.sleep(0.05)
        return ids - set(self.received)


def place_events(live: LiveServer, http: httpx.Client, admin_url: str) -> PlaceEvents:
    """A subscribed PlaceEvents thread, as a new user of the API."""
    headers = account_headers(http, admin_url, f"ha_subscriber_{uuid.uuid4().hex[:8]}")
    events = PlaceEvents(live.realtime_url, headers["Authorization"].removeprefix("Bearer "))
    events.start()
    assert events.subscribed.wait(10), "the realtime subscription did not start"
    return events
