"""A two-member Patroni cluster (`planwise cluster up --nodes 2 --sync`) for a test module,
and the settings of an API whose DATABASE_URL is the cluster's read-write URL."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from planwise.config import Settings
from planwise.ops.cluster.patroni import HACluster
from tests.support.accounts import PASSWORD
from tests.support.cli import planwise
from tests.support.databases import TEST_JWT_SECRET, TEST_SUPABASE_JWT_SECRET


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
