"""HTTP throughput of /api/v1/recommendations, next to pgbench running the same SQL.

`planwise serve` runs in a subprocess against the bench database; wrk (a separate process,
C + LuaJIT, cheap on the CPU the server needs) drives it with rotating bearer tokens and
locations from the same request pairs the SQL benchmark uses
(`bench/wrk/recommendations.lua`). At each connection count, pgbench then runs our
recommendation transaction at the same concurrency: the ceiling the API could reach.

CPU time is read from /proc for the API's processes and for the PostgreSQL backends of the
bench database, so the report says where each request's CPU goes, and so is the largest
resident size an API process (a worker, with one worker the server itself) reached.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from planwise.bench import pgbench, sql
from planwise.bench.data import BenchDatabase, request_rows
from planwise.bench.machine import load_average
from planwise.config import PLANWISE_HOME, REPO_ROOT
from planwise.errors import PlanwiseError
from planwise.users.security import create_access_token

WRK_SCRIPT = REPO_ROOT / "bench" / "wrk" / "recommendations.lua"
PLANWISE = Path(sys.executable).parent / "planwise"
ROTATION = 2_000
"""Distinct (token, location) pairs the load rotates through."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def wrk_path() -> str | None:
    return shutil.which("wrk")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str, token: str | None = None, timeout: float = 5) -> tuple[int, bytes]:
    request = urllib.request.Request(url)  # noqa: S310  (http://127.0.0.1 only)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _process_stats(select: Callable[[str, int], bool]) -> dict[int, tuple[float, int]]:
    """CPU seconds (utime + stime) and resident bytes of each process `select(cmdline,
    process group)` picks."""
    found: dict[int, tuple[float, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        if select(cmdline, int(fields[2])):
            cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            found[int(entry.name)] = (cpu, int(fields[21]) * PAGE_BYTES)
    return found


class CpuMeter:
    """CPU used by a set of processes over a measurement, short-lived ones included, and
    the largest resident size each reached.

    PostgreSQL backends come and go with the API's overflow connections, so /proc is read
    every half second and each process's last reading kept; a process born during the
    measurement started from zero. What one ended with after its last reading is lost.
    """

    def __init__(self, select: Callable[[str, int], bool]) -> None:
        self._select = select
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._peak_rss: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> dict[int, float]:
        stats = _process_stats(self._select)
        for pid, (_cpu, rss) in stats.items():
            self._peak_rss[pid] = max(rss, self._peak_rss.get(pid, 0))
        return {pid: cpu for pid, (cpu, _rss) in stats.items()}

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._last.update(self._read())

    def __enter__(self) -> CpuMeter:
        self._first = self._read()
        self._last = dict(self._first)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._last.update(self._read())

    @property
    def seconds(self) -> float:
        return sum(last - self._first.get(pid, 0.0) for pid, last in self._last.items())

    @property
    def peak_rss_bytes(self) -> int:
        """The largest resident size any one of the processes reached (read each 0.5 s)."""
        return max(self._peak_rss.values(), default=0)


@contextmanager
def serving(
    db: BenchDatabase, *, workers: int, log_path: Path, code: Path | None = None
) -> Iterator[tuple[str, int]]:
    """`planwise serve` on a free port against the bench database; yields (base URL,
    process group). `code`: the `api/` directory of another checkout to serve instead of
    this one (a `git worktree` of main, for a before/after on the same data)."""
    env = {
        **os.environ,
        "DATABASE_URL": db.app_url,
        "MIGRATION_DATABASE_URL": db.admin_url,
        "JWT_SECRET": db.settings.jwt_secret.get_secret_value(),
    }
    if code is not None:  # that checkout's code with this one's cluster and settings
        env |= {"PYTHONPATH": str(code.resolve()), "PLANWISE_HOME": str(PLANWISE_HOME)}
    with serve_subprocess(env, log_path, "--workers", str(workers)) as served:
        yield served


@contextmanager
def serve_subprocess(
    env: dict[str, str], log_path: Path, *options: str
) -> Iterator[tuple[str, int]]:
    """`planwise serve` on a free port with `env`, once `/health` answers 200; yields (base
    URL, pid), its output in `log_path`. The whole process group is stopped at the end."""
    port = free_port()
    command = [str(PLANWISE), "serve", "--host", "127.0.0.1", "--port", str(port), *options]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise PlanwiseError(
                    f"planwise serve exited ({process.returncode}): {log_path.read_text()[-3000:]}"
                )
            try:
                if _get(f"{base}/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise PlanwiseError(
                    f"planwise serve not healthy in 60 s: {log_path.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield base, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wrk(base: str, connections: int, seconds: float, requests_file: Path) -> dict[str, Any]:
    wrk = wrk_path()
    assert wrk is not None
    command = [wrk, "--threads", "1", "--connections", str(connections),
               "--duration", f"{max(1, round(seconds))}s", "--timeout", "10s",
               "--script", str(WRK_SCRIPT), base, "--", str(requests_file)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise PlanwiseError(f"wrk failed: {result.stdout[-1500:]}{result.stderr[-1500:]}")
    raw = json.loads(lines[-1])
    errors = sum(raw[key] for key in raw if key.startswith("errors_"))
    seconds_run = raw["duration_us"] / 1e6
    return {
        "connections": connections,
        "requests": raw["requests"],
        "requests_per_second": round(raw["requests"] / seconds_run, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "mean_ms": round(raw["mean_us"] / 1000, 2),
        "errors": errors,
        "non_2xx": raw["errors_status"],
    }


def run(
    db: BenchDatabase,
    *,
    seconds: float,
    warmup: float,
    requests: int,
    connections: tuple[int, ...] = (1, 8, 32),
    workers: int = 1,
    work_dir: Path,
    code: Path | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """req/s and p50/p99 of the API at each connection count, and pgbench's tps there;
    `code` as in `serving`."""
    if wrk_path() is None:
        return {"skipped": "not measured: wrk not installed (`make install` installs it)"}
    work_dir.mkdir(parents=True, exist_ok=True)
    settings = db.settings.model_copy(update={"jwt_expire_minutes": 24 * 60})
    pairs = request_rows(db, min(requests, ROTATION))
    requests_file = work_dir / "api-requests.txt"
    requests_file.write_text(
        "".join(
            f"{create_access_token(settings, pair.user_id)} {pair.lat} {pair.lng}\n"
            for pair in pairs
        )
    )
    requests_file.chmod(0o600)
    variables = {**sql.VARIABLES, "requests": str(requests)}
    results: dict[str, Any] = {"workers": workers, "levels": {}}
    if code is not None:
        results["code"] = str(code)
    log_path = work_dir / "api-server.log"
    with serving(db, workers=workers, log_path=log_path, code=code) as (base, group):
        first = requests_file.read_text().split("\n", 1)[0].split()
        status, body = _get(f"{base}/api/v1/recommendations?lat={first[1]}&lng={first[2]}",
                            token=first[0])  # fmt: skip
        if status != 200:
            raise PlanwiseError(f"sanity request answered {status}: {body[:300]!r}")
        results["sample_response_items"] = len(json.loads(body)["items"])

        def api_meter() -> CpuMeter:
            return CpuMeter(lambda _cmd, pgrp: pgrp == group)

        def db_meter() -> CpuMeter:
            backend = f" {db.name} "
            return CpuMeter(lambda cmd, _pgrp: cmd.startswith("postgres: ") and backend in cmd)

        for count in connections:
            progress(f"API: wrk {count} connection(s), {seconds:g} s; then pgbench")
            if warmup > 0:
                _wrk(base, count, warmup, requests_file)
            before = load_average()
            with api_meter() as api_cpu, db_meter() as db_cpu:
                api = _wrk(base, count, seconds, requests_file)
            handled = max(api["requests"], 1)
            api["api_cpu_ms_per_request"] = round(api_cpu.seconds * 1000 / handled, 3)
            api["db_cpu_ms_per_request"] = round(db_cpu.seconds * 1000 / handled, 3)
            api["api_peak_rss_mib"] = round(api_cpu.peak_rss_bytes / 1024**2, 1)
            api["load_average"] = [before, load_average()]
            if warmup > 0:
                pgbench.run(db.app_url, sql.OURS_SCRIPT, clients=count, seconds=warmup,
                            variables=variables, log=False)  # fmt: skip
            raw = pgbench.run(db.app_url, sql.OURS_SCRIPT, clients=count, seconds=seconds,
                              variables=variables)  # fmt: skip
            results["levels"][f"c{count}"] = {
                "api": api,
                "pgbench": raw,
                "api_share_of_sql_throughput": round(api["requests_per_second"] / raw["tps"], 3)
                if raw["tps"]
                else None,
            }
    return results
