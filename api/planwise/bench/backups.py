"""`planwise backup create|restore` and `planwise pitr restore` times at bench scale.

All through the commands themselves, in subprocesses, as an operator runs them:
- `backup create` of the bench database into a temporary BACKUP_DIR (time, dump size);
- `backup restore` of that dump into a scratch database on the same cluster (time; the
  command's safety backup of the empty target is included, as an operator pays it too);
- PITR on a managed cluster of its own (own PLANWISE_HOME and port): point-in-time
  recovery stops and rewinds a whole cluster, which must never be the shared one. It is
  filled from the same dump, then `pitr setup`, `pitr backup` (timed), a moment is noted,
  a row is written after it, and `pitr restore --to` the moment (timed); the row must be
  gone and every place back. The cluster is deleted afterwards.
Commands that do not exist yet are reported as not measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from planwise.bench.api import PLANWISE, free_port
from planwise.bench.data import BenchDatabase, scratch_database
from planwise.errors import PlanwiseError

INHERITED_DATABASE_SETTINGS = (
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "BACKUP_DIR",
    "PLANWISE_HOME",
    "PLANWISE_PG_PORT",
    "PLANWISE_PG_DATABASE",
)
"""Never passed on to a command: each call says which database it works on."""


def _planwise(*args: str, env: dict[str, str], timeout: float = 3600) -> tuple[float, str]:
    """Run a planwise command; (seconds, output). Raises PlanwiseError on failure."""
    clean = {k: v for k, v in os.environ.items() if k not in INHERITED_DATABASE_SETTINGS}
    started = time.perf_counter()
    result = subprocess.run(
        [str(PLANWISE), *args], capture_output=True, text=True, timeout=timeout,
        env={**clean, "COLUMNS": "200", **env}, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise PlanwiseError(
            f"planwise {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-1500:]}{result.stderr[-1500:]}"
        )
    return seconds, result.stdout + result.stderr


def available(command: str) -> bool:
    result = subprocess.run(
        [str(PLANWISE), command, "--help"], capture_output=True, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return result.returncode == 0


def _place_count(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM place").fetchone()
    return int(row[0]) if row else 0


def _backup_and_restore(db: BenchDatabase, backup_dir: Path, progress: Callable[[str], None]
                        ) -> tuple[dict[str, Any], Path]:  # fmt: skip
    env = {"MIGRATION_DATABASE_URL": db.admin_url, "DATABASE_URL": db.app_url,
           "BACKUP_DIR": str(backup_dir)}  # fmt: skip
    with psycopg.connect(db.admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        database_bytes = int(row[0]) if row else None
    progress("backup: planwise backup create")
    create_seconds, _ = _planwise("backup", "create", env=env)
    manifests = sorted(backup_dir.glob("backup_*.json"))
    if not manifests:
        raise PlanwiseError(f"backup create left no manifest in {backup_dir}")
    manifest = json.loads(manifests[-1].read_text())
    dump = backup_dir / manifest["name"]

    cluster, scratch, target = scratch_database(db, "restore")
    try:
        progress("backup: planwise backup restore into a scratch database")
        restore_seconds, _ = _planwise(
            "backup", "restore", manifest["name"], "--target-url", target, "--yes", env=env
        )
        restored = _place_count(target)
    finally:
        cluster.drop_database(scratch)
    expected = manifest["row_counts"].get("place")
    if restored != expected:
        raise PlanwiseError(f"restore brought back {restored} places, the dump holds {expected}")
    return {
        "create_seconds": round(create_seconds, 1),
        "dump_bytes": manifest["size_bytes"],
        "database_bytes": database_bytes,
        "restore_seconds": round(restore_seconds, 1),
        "rows": manifest["row_counts"],
    }, dump


def _cluster_directory(status_output: str) -> Path | None:
    match = re.search(r"directory\s*[│|]\s*(\S+)", status_output)
    return Path(match.group(1)) if match else None


def _pitr(dump: Path, backup_dir: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    home = Path(tempfile.gettempdir()) / f"planwise-bench-pitr-{uuid.uuid4().hex[:8]}"
    env = {"PLANWISE_HOME": str(home), "PLANWISE_PG_PORT": str(free_port()),
           "BACKUP_DIR": str(backup_dir)}  # fmt: skip
    directory: Path | None = None
    try:
        progress("pitr: a cluster of its own, filled from the dump")
        for step in (("db", "up"), ("db", "migrate"), ("db", "roles")):
            _planwise(*step, env=env)
        directory = _cluster_directory(_planwise("db", "status", env=env)[1])
        admin_url = _planwise("db", "url", "--as", "admin", env=env)[1].strip().splitlines()[-1]
        _planwise("backup", "restore", dump.stem, "--target-url", admin_url, "--yes", env=env)
        places = _place_count(admin_url)
        progress("pitr: setup, full backup")
        _planwise("pitr", "setup", "--yes", env=env)
        backup_seconds, _ = _planwise("pitr", "backup", env=env)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            time.sleep(1.1)
            row = conn.execute("SELECT clock_timestamp()").fetchone()
            assert row is not None
            moment = row[0]
            time.sleep(1.1)
            conn.execute(
                "INSERT INTO place (id, name, lat, lng) VALUES ('bench-after-moment', 'x', 0, 0)"
            )
            row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
            assert row is not None
            segment = str(row[0])
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                archived = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
                if archived and archived[0] and str(archived[0]) >= segment:
                    break
                time.sleep(0.5)
        progress("pitr: restore to the noted moment")
        restore_seconds, output = _planwise(
            "pitr", "restore", "--to", moment.isoformat(), "--yes", env=env
        )
        promoted = re.search(r"promoted in ([\d.]+)s", output)
        after = _place_count(admin_url)
        if after != places:
            raise PlanwiseError(f"PITR restore brought back {after} places, expected {places}")
        return {
            "places": places,
            "pitr_backup_seconds": round(backup_seconds, 1),
            "pitr_restore_seconds": round(restore_seconds, 1),
            "pitr_restore_reported_seconds": float(promoted.group(1)) if promoted else None,
        }
    finally:
        with contextlib.suppress(PlanwiseError):
            _planwise("db", "down", env=env)
        for path in (directory, home):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
        if directory is not None and directory.parent.name.startswith("planwise-"):
            shutil.rmtree(directory.parent, ignore_errors=True)  # the /var/tmp fallback


def run(
    db: BenchDatabase, *, pitr: bool, work_dir: Path, progress: Callable[[str], None] = print
) -> dict[str, Any]:
    if not available("backup"):
        return {"skipped": "not measured: `planwise backup` not available yet"}
    work_dir.mkdir(parents=True, exist_ok=True)
    backup_dir = Path(tempfile.mkdtemp(prefix="backups-", dir=work_dir))
    try:
        result, dump = _backup_and_restore(db, backup_dir, progress)
        if not pitr:
            result["pitr"] = {"skipped": "not measured: --smoke"}
        elif not available("pitr"):
            result["pitr"] = {"skipped": "not measured: `planwise pitr` not available yet"}
        else:
            result["pitr"] = _pitr(dump, backup_dir, progress)
    finally:
        shutil.rmtree(backup_dir, ignore_errors=True)
    return result
