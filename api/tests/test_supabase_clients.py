"""The official Supabase clients against a real `planwise serve`: the contract scripts of
supabase-py (sync and async, tests/contract/) and supabase-js (clients/js/contract.mjs),
unchanged, with the URL and keys a user gets from `planwise supabase status -o json`.
The same scripts run against a Supabase project (README: Supabase clients)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import PLANWISE
from tests.support.databases import (
    DatabaseUnderTest,
    connect,
)
from tests.support.served import planwise_serve, serve_environment

API_DIR = Path(__file__).resolve().parents[1]
JS_DIR = API_DIR.parent / "clients" / "js"
REALTIME_POLICIES = API_DIR.parent / "clients" / "realtime-policies.sql"
SCRIPT_TIMEOUT_S = 180


@dataclass(frozen=True)
class Stack:
    env: dict[str, str]  # the server's environment plus SUPABASE_URL and the two keys
    log: Path


@pytest.fixture(scope="module")
def stack(
    create_migrated_database: Callable[[str], DatabaseUnderTest],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """`planwise serve` on a free port over a database of its own, and its keys."""
    database = create_migrated_database("planwise_clients")
    home = tmp_path_factory.mktemp("clients")
    env = serve_environment(database, home)
    # The contract's private channel needs its policies, as a Supabase project does.
    with connect(database.admin_url) as conn:
        conn.execute(REALTIME_POLICIES.read_text())
    log = home / "serve.log"
    with planwise_serve(env, log) as (base, _pid):
        status = subprocess.run(
            [PLANWISE, "supabase", "status", "-o", "json", "--api-url", base],
            env=env, capture_output=True, text=True, check=False, timeout=60,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert status.returncode == 0, f"planwise supabase status: {status.stderr}"
        values = json.loads(status.stdout)
        yield Stack(
            env={
                **env,
                "SUPABASE_URL": values["API_URL"],
                "SUPABASE_ANON_KEY": values["ANON_KEY"],
                "SUPABASE_SERVICE_ROLE_KEY": values["SERVICE_ROLE_KEY"],
            },
            log=log,
        )


def _run_contract(stack: Stack, command: list[str], cwd: Path) -> None:
    started = time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=cwd, env=stack.env, capture_output=True, text=True, check=False,
            timeout=SCRIPT_TIMEOUT_S, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        output = error.stdout.decode() if isinstance(error.stdout, bytes) else error.stdout
        pytest.fail(f"{' '.join(command)} ran over {SCRIPT_TIMEOUT_S} s:\n{output or ''}")
    elapsed = time.monotonic() - started
    print(f"{' '.join(command)}: exit {result.returncode} in {elapsed:.1f} s\n{result.stdout}")
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode} after {elapsed:.1f} s\n"
        f"--- output\n{result.stdout}\n--- stderr\n{result.stderr[-4000:]}\n"
        f"--- planwise serve log (tail)\n{stack.log.read_text()[-4000:]}"
    )
    lines = result.stdout.rstrip().splitlines()
    assert lines and lines[-1].endswith(" passed, 0 failed"), result.stdout


@pytest.mark.slow
def test_supabase_py_sync_contract(stack: Stack) -> None:
    _run_contract(stack, [sys.executable, "-m", "tests.contract.sync_contract"], API_DIR)


@pytest.mark.slow
def test_supabase_py_async_contract(stack: Stack) -> None:
    _run_contract(stack, [sys.executable, "-m", "tests.contract.async_contract"], API_DIR)


@pytest.mark.slow
def test_supabase_js_contract(stack: Stack) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: Node.js >= 20 is needed, then run `make install`")
    version = subprocess.run(
        [node, "-p", "process.versions.node"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if int(version.split(".")[0]) < 20:
        pytest.fail(f"node {version} is too old for supabase-js: install Node.js >= 20")
    if not (JS_DIR / "node_modules" / "@supabase" / "supabase-js").is_dir():
        pytest.fail(f"{JS_DIR / 'node_modules'} is missing: run `make install`")
    _run_contract(stack, [node, "contract.mjs"], JS_DIR)
