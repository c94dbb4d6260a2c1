"""`planwise places import` speed on a generated Google Places JSON Lines file.

The file holds one Place Details `result` object per line (what a crawler saves), made by
the same generator as the bench data (`planwise.bench.world`) and kept under the work
directory for the next run. The command runs as a user runs it, in a subprocess, into
a scratch database migrated to head (empty `place`, its indexes in place), which is
dropped afterwards. In alternating rounds (side by side, in one run): a first import as
the command runs by default (every index maintained row by row), the same file again
(nothing changes, the idempotent path), and a first import with `--rebuild-indexes`.
Medians over the rounds.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from planwise.bench import world
from planwise.bench.api import PLANWISE
from planwise.bench.data import BenchDatabase, scratch_database
from planwise.db import migrations
from planwise.errors import PlanwiseError

ROUNDS = 2


def places_file(work_dir: Path, records: int) -> Path:
    """The JSON Lines file of `records` places, generated unless already there."""
    path = work_dir / f"places-{records}-{world.SEED}.jsonl"
    if path.exists():
        return path
    work_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as handle:
        for record in world.places(records):
            handle.write(orjson.dumps(record))
            handle.write(b"\n")
    partial.rename(path)
    return path


def _import(path: Path, admin_url: str, *flags: str) -> dict[str, Any]:
    """One `planwise places import` run: its summary's figures, and the command's time."""
    env = {**os.environ, "MIGRATION_DATABASE_URL": admin_url, "DATABASE_URL": admin_url,
           "COLUMNS": "200"}  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(
        [str(PLANWISE), "places", "import", "--no-progress", *flags, str(path)],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise PlanwiseError(
            f"places import failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}"
        )
    rows = dict(re.findall(r"[│|]\s*([a-z/ ()]+?)\s*[│|]\s*([\d,.]+)\s*[│|]", result.stdout))
    figures = {key: float(value.replace(",", "")) for key, value in rows.items()}
    return {
        "places_per_second": int(figures["places/s"]),
        "seconds": figures["seconds"],
        "command_seconds": round(seconds, 2),
        "inserted": int(figures.get("inserted", 0)),
        "unchanged": int(figures.get("unchanged", 0)),
        "index_build_seconds": figures.get("index build seconds"),
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda run: run["places_per_second"])[len(runs) // 2]


def run(
    db: BenchDatabase,
    *,
    records: int,
    work_dir: Path,
    rounds: int = ROUNDS,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    progress(f"import: generating {records:,} Google Places records (once)")
    path = places_file(work_dir, records)
    fresh: dict[str, list[dict[str, Any]]] = {"default": [], "rebuild_indexes": []}
    again: list[dict[str, Any]] = []
    for number in range(rounds):
        for mode in ("rebuild_indexes", "default")[:: 1 if number % 2 == 0 else -1]:
            cluster, scratch, admin_url = scratch_database(db, "import")
            try:
                migrations.upgrade(admin_url)
                progress(f"import: round {number + 1}/{rounds}, fresh import ({mode})")
                first = _import(
                    path, admin_url, *(["--rebuild-indexes"] if mode != "default" else [])
                )
                if first["inserted"] != records:
                    raise PlanwiseError(f"import inserted {first['inserted']} of {records}")
                fresh[mode].append(first)
                if mode == "default":
                    progress(f"import: round {number + 1}/{rounds}, the same file again")
                    again.append(_import(path, admin_url))
            finally:
                cluster.drop_database(scratch)
    reimport = _median_run(again)
    return {
        "records": records,
        "file_bytes": path.stat().st_size,
        "rounds": rounds,
        "fresh": _median_run(fresh["default"]),
        "fresh_rebuild_indexes": _median_run(fresh["rebuild_indexes"]),
        "reimport_unchanged": reimport,
        "runs": {
            "fresh": fresh["default"],
            "fresh_rebuild_indexes": fresh["rebuild_indexes"],
            "reimport_unchanged": again,
        },
    }
