"""Run pgbench with a custom script and read true latency percentiles from its log.

pgbench's own summary has only the mean; with `--log` it writes one line per
transaction (`client transaction latency_us script epoch_s epoch_us`), from which the
percentiles are exact. Throughput is pgbench's "tps … without initial connection time".
Credentials reach pgbench through PGPASSWORD, never argv.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from planwise.db.cluster import PG_BIN
from planwise.errors import PlanwiseError

PGBENCH = PG_BIN / "pgbench"


@dataclass(frozen=True)
class Latencies:
    """Per-transaction latencies in milliseconds, sorted."""

    values: list[float]

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile (no interpolation: a latency that really happened)."""
        if not self.values:
            return float("nan")
        rank = max(1, -(-len(self.values) * p // 100))
        return self.values[int(rank) - 1]

    def summary(self) -> dict[str, float | int]:
        count = len(self.values)
        return {
            "transactions": count,
            "p50_ms": round(self.percentile(50), 3),
            "p95_ms": round(self.percentile(95), 3),
            "p99_ms": round(self.percentile(99), 3),
            "mean_ms": round(sum(self.values) / count, 3) if count else float("nan"),
            "max_ms": round(self.values[-1], 3) if count else float("nan"),
        }


def read_logs(directory: Path, prefix: str) -> Latencies:
    values: list[float] = []
    for path in directory.glob(f"{prefix}.*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                values.append(int(fields[2]) / 1000.0)
    return Latencies(sorted(values))


def _number(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def run(
    url: str,
    script: str,
    *,
    clients: int,
    seconds: float,
    variables: dict[str, str],
    seed: int = 20231124,
    log: bool = True,
) -> dict[str, Any]:
    """`pgbench -M prepared` for `seconds` with `clients` connections (threads: up to 2).

    Returns tps, percentiles and counts; raises PlanwiseError if any transaction failed.
    """
    if not PGBENCH.exists():
        raise PlanwiseError(f"{PGBENCH} missing: `make install` installs postgresql-15")
    target = make_url(url)
    env = {**os.environ, "PGPASSWORD": target.password or "", "PGAPPNAME": "planwise-bench"}
    with tempfile.TemporaryDirectory(prefix="planwise-pgbench-") as work:
        directory = Path(work)
        (directory / "script.sql").write_text(script)
        command = [
            str(PGBENCH), "--no-vacuum", "--protocol=prepared",
            f"--client={clients}", f"--jobs={min(clients, 2)}",
            f"--time={max(1, round(seconds))}", f"--random-seed={seed}",
            f"--file={directory / 'script.sql'}",
            f"--host={target.host or '127.0.0.1'}", f"--port={target.port or 5432}",
            f"--username={target.username}",
        ]  # fmt: skip
        for name, value in variables.items():
            command.append(f"--define={name}={value}")
        if log:
            command += ["--log", f"--log-prefix={directory / 'tx'}"]
        command.append(str(target.database))
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        output = result.stdout + result.stderr
        failed = _number(r"number of failed transactions: (\d+)", output)
        if result.returncode != 0 or failed:
            raise PlanwiseError(f"pgbench failed (exit {result.returncode}):\n{output[-2000:]}")
        tps = _number(r"tps = ([\d.]+) \(without initial connection time\)", output)
        latencies = read_logs(directory, "tx") if log else Latencies([])
    return {
        "clients": clients,
        "seconds": max(1, round(seconds)),
        "tps": round(tps or 0.0, 2),
        **latencies.summary(),
    }
