"""`planwise serve` as a subprocess, the way a user runs it (contract scripts, workers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.cli import PLANWISE
from tests.support.databases import TEST_JWT_SECRET, TEST_SUPABASE_JWT_SECRET, DatabaseUnderTest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_healthy(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            pytest.fail(f"planwise serve exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"planwise serve not healthy within 60 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def serve_environment(database: DatabaseUnderTest, home: Path, **extra: str) -> dict[str, str]:
    """What `planwise serve` needs over `database`: this process's environment, the
    database's URLs, the test secrets, test mode and files under `home`; `extra` on top."""
    return {
        **os.environ,
        "DATABASE_URL": database.app_url,
        "MIGRATION_DATABASE_URL": database.admin_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "SUPABASE_JWT_SECRET": TEST_SUPABASE_JWT_SECRET,
        "PLANWISE_ENV": "test",
        "STORAGE_DIR": str(home / "storage"),
        **extra,
    }


@contextmanager
def planwise_serve(env: dict[str, str], log: Path, *options: str) -> Iterator[tuple[str, int]]:
    """`planwise serve` on a free port until the block ends; yields its base URL and pid."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [PLANWISE, "serve", "--host", "127.0.0.1", "--port", str(port), *options],
            env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_healthy(base, server, log)
        yield base, server.pid
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
