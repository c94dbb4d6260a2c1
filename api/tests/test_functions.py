"""Edge Functions (`/functions/v1`) on real Deno behind a real server: Supabase's layout,
JWT verification and its opt-out, Supabase's error shapes, the per-call time limit and the
per-process memory limit, the environment and permissions a function gets, the CLI, and
the shipped `trip-digest` through supabase-py and supabase-js (`functions.invoke`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from planwise import cli
from planwise.config import REPO_ROOT, Settings, get_settings
from planwise.functions.catalog import FunctionsError, deno_bin
from planwise.supabase.keys import api_keys
from planwise.users.security import sign_jwt
from tests.support.cli import planwise
from tests.support.databases import TEST_SUPABASE_JWT_SECRET
from tests.support.live import LiveServer

API_DIR = Path(__file__).resolve().parents[1]
JS_DIR = REPO_ROOT / "clients" / "js"
TIMEOUT_S = 2.0
MEMORY_MB = 96

ECHO = """
Deno.serve(async (req) => {
  const url = new URL(req.url);
  const env = Object.fromEntries(["SUPABASE_URL", "SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_URL", "DATABASE_URL", "JWT_SECRET",
    "PLANWISE_FUNCTION_PORT"].map((name) => [name, Deno.env.get(name) ?? null]));
  let outside = "allowed";
  try { await fetch("http://10.255.255.1/"); } catch (error) { outside = String(error); }
  let read = "allowed";
  try { Deno.readTextFileSync("/etc/hostname"); } catch (error) { read = String(error); }
  return Response.json({
    method: req.method, path: url.pathname, query: url.search, body: await req.text(),
    authorization: req.headers.get("authorization"), apikey: req.headers.get("apikey"),
    env, outside, read, pid: Deno.pid,
  }, { headers: { "set-cookie": "a=1", "x-echo": "yes" } });
});
"""
FUNCTIONS = {
    "echo": ECHO,
    "public-echo": ECHO,
    "slow": "Deno.serve(async () => { await new Promise((r) => setTimeout(r, 30000));"
    " return new Response('late'); });",
    "hog": "const kept = []; Deno.serve(() => { for (;;) kept.push(new Array(1e6).fill(7)); });",
    "drip": "Deno.serve(() => new Response(new ReadableStream({ start(c) {"
    " c.enqueue(new TextEncoder().encode(`first ${Deno.pid}`)); } })));",
    "crash": "Deno.serve(() => { Deno.exit(3); });",
    "broken": "Deno.serve(() => new Response('x'); this is not TypeScript",
}
CONFIG = """
[functions.public-echo]
verify_jwt = false
"""


@pytest.fixture(scope="module")
def functions_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project's `supabase/` with test functions and a copy of the shipped trip-digest."""
    project = tmp_path_factory.mktemp("project") / "supabase"
    root = project / "functions"
    for name, source in FUNCTIONS.items():
        (root / name).mkdir(parents=True)
        (root / name / "index.ts").write_text(source)
    shutil.copytree(REPO_ROOT / "supabase" / "functions" / "trip-digest", root / "trip-digest")
    (project / "config.toml").write_text(CONFIG)
    return root


@pytest.fixture(scope="module")
def live_settings(api_settings: Settings, functions_root: Path) -> Settings:
    assert deno_bin(api_settings).exists(), "Deno is missing: run `make install`"
    return api_settings.model_copy(
        update={
            "functions_dir": functions_root,
            "functions_timeout_s": TIMEOUT_S,
            "functions_memory_mb": MEMORY_MB,
        }
    )


@pytest.fixture(scope="module")
def functions(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{live.url}/functions/v1", timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def keys(api_settings: Settings) -> Any:
    return api_keys(api_settings)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "apikey": token}


def test_a_function_gets_the_request_its_environment_and_only_its_permissions(
    functions: httpx.Client, keys: Any, live: LiveServer
) -> None:
    answer = functions.post("/echo/sub/path?x=1", content=b"hello", headers=bearer(keys.anon))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["method"], body["path"], body["query"], body["body"]) == (
        "POST", "/echo/sub/path", "?x=1", "hello"
    )  # fmt: skip
    assert body["authorization"] == f"Bearer {keys.anon}" and body["apikey"] == keys.anon
    env = body["env"]
    assert env["SUPABASE_URL"] == live.url
    assert env["SUPABASE_ANON_KEY"] == keys.anon
    assert env["SUPABASE_SERVICE_ROLE_KEY"] == keys.service_role
    assert env["SUPABASE_DB_URL"].startswith("postgresql://")
    # Nothing of the API's own environment, nor the bootstrap's variables.
    assert env["DATABASE_URL"] is None and env["JWT_SECRET"] is None
    assert env["PLANWISE_FUNCTION_PORT"] is None
    assert "Requires net access" in body["outside"], body["outside"]
    assert "Requires read access" in body["read"], body["read"]
    assert answer.headers["x-echo"] == "yes" and answer.headers["set-cookie"] == "a=1"
    # Kept warm: the next call is answered by the same process.
    again = functions.get("/echo", headers=bearer(keys.service_role))
    assert again.json()["pid"] == body["pid"] and again.json()["method"] == "GET"


def test_concurrent_first_calls_start_one_process_and_an_edit_restarts_it(
    functions: httpx.Client, keys: Any, functions_root: Path
) -> None:
    (functions_root / "fresh").mkdir()
    entrypoint = functions_root / "fresh" / "index.ts"
    entrypoint.write_text("Deno.serve(() => new Response(`one ${Deno.pid}`));")
    with ThreadPoolExecutor(6) as pool:
        calls = [pool.submit(functions.get, "/fresh", headers=bearer(keys.anon)) for _ in range(6)]
        answers = [call.result() for call in calls]
    assert {answer.text for answer in answers} == {answers[0].text}, [a.text for a in answers]
    assert answers[0].text.startswith("one ")
    entrypoint.write_text("Deno.serve(() => new Response(`two ${Deno.pid}`));")
    os.utime(entrypoint, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    assert functions.get("/fresh", headers=bearer(keys.anon)).text.startswith("two ")


def test_jwt_is_required_by_default_in_supabase_shape(
    functions: httpx.Client, keys: Any, api_settings: Settings
) -> None:
    missing = functions.post("/echo")
    assert missing.status_code == 401
    assert missing.json() == {"msg": "Error: Missing authorization header"}
    basic = functions.post("/echo", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401
    assert basic.json() == {"msg": "Error: Auth header is not 'Bearer {token}'"}
    forged = sign_jwt("x" * 40, {"role": "service_role", "exp": int(time.time()) + 60})
    for token in (forged, "not-a-jwt"):
        answer = functions.post("/echo", headers=bearer(token))
        assert (answer.status_code, answer.json()) == (401, {"msg": "Invalid JWT"})
    expired = sign_jwt(TEST_SUPABASE_JWT_SECRET, {"role": "anon", "exp": int(time.time()) - 5})
    assert functions.post("/echo", headers=bearer(expired)).status_code == 401
    # The opt-out of supabase/config.toml; and CORS preflights never need a token.
    assert functions.post("/public-echo").json()["authorization"] is None
    assert functions.options("/echo").status_code == 200


def test_unknown_functions_and_methods(functions: httpx.Client, keys: Any) -> None:
    for name in ("nope", "-x", "_echo", "a" * 101, "Echo"):
        answer = functions.post(f"/{name}", headers=bearer(keys.anon))
        assert (answer.status_code, answer.text) == (404, "Function not found"), name
        assert answer.headers["content-type"].startswith("text/plain")
    assert functions.post("/", headers=bearer(keys.anon)).text == "Function not found"
    assert functions.request("TRACE", "/echo", headers=bearer(keys.anon)).status_code == 405


def test_time_limit_kills_the_call_and_the_next_call_gets_a_new_process(
    functions: httpx.Client, keys: Any
) -> None:
    started = time.monotonic()
    answer = functions.post("/slow", headers=bearer(keys.anon))
    elapsed = time.monotonic() - started
    assert answer.status_code == 546
    assert answer.json()["code"] == "WORKER_LIMIT"
    assert TIMEOUT_S <= elapsed < TIMEOUT_S + 15  # boot, then the call's own limit


def test_bodies_stream_and_the_time_limit_cuts_a_body_short(
    functions: httpx.Client, keys: Any
) -> None:
    started = time.monotonic()
    with functions.stream("GET", "/drip", headers=bearer(keys.anon)) as answer:
        assert answer.status_code == 200
        chunks = answer.iter_raw()
        first = next(chunks).decode()
        first_at = time.monotonic() - started
        rest = b"".join(chunks)
    ended_at = time.monotonic() - started
    assert first.startswith("first ") and rest == b""
    assert first_at < ended_at - TIMEOUT_S / 2  # the first chunk came long before the end
    assert TIMEOUT_S <= ended_at < TIMEOUT_S + 15
    # The process was killed at the limit: the next call is served by another one.
    again = functions.get("/drip", headers=bearer(keys.anon), timeout=TIMEOUT_S + 15)
    assert again.text.startswith("first ") and again.text != first


def test_the_function_process_ends_with_the_api_process(
    functions_root: Path, live_settings: Settings
) -> None:
    """Even when the API is SIGKILLed, its functions' processes do not outlive it."""
    script = (
        "import asyncio, os, sys\n"
        "from pathlib import Path\n"
        "from planwise.config import get_settings\n"
        "from planwise.functions.catalog import find_function\n"
        "from planwise.functions.runtime import start\n"
        "settings = get_settings()\n"
        "function = find_function(settings, 'drip')\n"
        "worker = asyncio.run(start(settings, function, 'http://127.0.0.1:9'))\n"
        "print(worker.process.pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    env = {**os.environ, "FUNCTIONS_DIR": str(functions_root)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == -9, result.stderr
    pid = int(result.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _running(pid):
        assert time.monotonic() < deadline, f"Deno (pid {pid}) outlived the API process"
        time.sleep(0.1)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_memory_limit_and_crashes_and_boot_errors(functions: httpx.Client, keys: Any) -> None:
    hog = functions.post("/hog", headers=bearer(keys.anon))
    assert hog.status_code == 546 and hog.json()["code"] == "WORKER_LIMIT", hog.text
    crash = functions.post("/crash", headers=bearer(keys.anon))
    assert crash.status_code == 500 and crash.json()["code"] == "WORKER_ERROR", crash.text
    broken = functions.post("/broken", headers=bearer(keys.anon))
    assert broken.status_code == 503 and broken.json()["code"] == "BOOT_ERROR", broken.text
    # A function that died is started again by its next call.
    assert functions.get("/echo", headers=bearer(keys.anon)).status_code == 200


def test_cli_new_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "supabase" / "functions"
    root.parent.mkdir(parents=True)
    (root.parent / "config.toml").write_text("[functions.hello]\nverify_jwt = false\n")
    monkeypatch.setenv("FUNCTIONS_DIR", str(root))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        assert "No functions" in runner.invoke(cli.app, ["functions", "list"]).output
        created = runner.invoke(cli.app, ["functions", "new", "hello"])
        assert created.exit_code == 0, created.output
        assert "Deno.serve" in (root / "hello" / "index.ts").read_text()
        assert (root / "hello" / "deno.json").is_file()
        for name, message in (("hello", "already exists"), ("9lives", "invalid function name")):
            refused = runner.invoke(cli.app, ["functions", "new", name])
            assert isinstance(refused.exception, FunctionsError), refused.output
            assert message in str(refused.exception) and refused.exception.exit_code == 1
    finally:
        get_settings.cache_clear()
    # The console script, as a user runs it: the new function, its opt-out, its URL.
    listed = planwise("functions", "list", FUNCTIONS_DIR=str(root))
    assert listed.returncode == 0, listed.stderr
    assert "hello" in listed.stdout and "false" in listed.stdout
    assert "/functions/v1/hello" in listed.stdout


def _contract(live: LiveServer, keys: Any, command: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "SUPABASE_URL": live.url,
        "SUPABASE_ANON_KEY": keys.anon,
        "SUPABASE_SERVICE_ROLE_KEY": keys.service_role,
    }
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    print(result.stdout)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-3000:]}"
    assert result.stdout.rstrip().endswith(" passed, 0 failed")
    return result.stdout


def test_trip_digest_through_supabase_py(live: LiveServer, keys: Any) -> None:
    _contract(live, keys, [sys.executable, "-m", "tests.contract.functions_contract"], API_DIR)


def test_trip_digest_through_supabase_js(live: LiveServer, keys: Any) -> None:
    assert (JS_DIR / "node_modules").is_dir(), "supabase-js is missing: run `make install`"
    _contract(live, keys, ["node", "functions-contract.mjs"], JS_DIR)
