"""`planwise places import` speed on a generated Google Places JSON Lines file.

The file holds one Place Details `result` object per line (what a crawler saves), made by
the same generator as the bench data (`planwise.bench.world`) and kept under the work
directory for the next run. The command runs as a user runs it, in a subprocess, into
a scratch database migrated to head (empty `place`, its indexes in place), which is
dropped afterwards. Timed twice: the first import (all inserts) and a second one of the
same file (nothing changes, the idempotent path).
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


def _import(path: Path, admin_url: str) -> tuple[float, dict[str, str]]:
    env = {**os.environ, "MIGRATION_DATABASE_URL": admin_url, "DATABASE_URL": admin_url,
           "COLUMNS": "200"}  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(
        [str(PLANWISE), "places", "import", "--no-progress", str(path)],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise PlanwiseError(
            f"places import failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}"
        )
    rows = dict(re.findall(r"[│|]\s*([a-z/ ()]+?)\s*[│|]\s*([\d,.]+)\s*[│|]", result.stdout))
    return seconds, rows


def run(
    db: BenchDatabase, *, records: int, work_dir: Path, progress: Callable[[str], None] = print
) -> dict[str, Any]:
    progress(f"import: generating {records:,} Google Places records (once)")
    path = places_file(work_dir, records)
    cluster, scratch, admin_url = scratch_database(db, "import")
    try:
        migrations.upgrade(admin_url)
        progress(f"import: planwise places import {path.name} (fresh, then again)")
        first_seconds, first = _import(path, admin_url)
        again_seconds, again = _import(path, admin_url)
    finally:
        cluster.drop_database(scratch)
    inserted = int(first.get("inserted", "0").replace(",", ""))
    if inserted != records:
        raise PlanwiseError(f"import inserted {inserted} of {records} records: {first}")
    return {
        "records": records,
        "file_bytes": path.stat().st_size,
        "fresh": {
            "places_per_second": int(first["places/s"].replace(",", "")),
            "seconds": float(first["seconds"]),
            "command_seconds": round(first_seconds, 2),
        },
        "reimport_unchanged": {
            "places_per_second": int(again["places/s"].replace(",", "")),
            "seconds": float(again["seconds"]),
            "command_seconds": round(again_seconds, 2),
            "unchanged": int(again.get("unchanged", "0").replace(",", "")),
        },
    }
