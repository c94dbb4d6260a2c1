"""Continuous WAL archiving and point-in-time recovery of the managed cluster, with
pgBackRest and a local repository beside the cluster.

`archive_timeout = 60` switches WAL at least every minute when anything was written, so
a lost disk loses at most the last minute; the repository keeps two full backups and the
WAL since the older one. On a hosted server (Supabase, RDS…) WAL archiving and PITR are
the host's job; `planwise backup` still takes logical backups there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from planwise.db.cluster import (
    CLUSTER_OS_USER,
    SUPERUSER,
    Cluster,
    as_cluster_user,
    running_as_root,
)
from planwise.errors import PlanwiseError

PGBACKREST = "pgbackrest"
STANZA = "planwise"
ARCHIVE_TIMEOUT_SECONDS = 60


class Pitr:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.directory = cluster.directory / "pgbackrest"
        self.config = self.directory / "pgbackrest.conf"
        self.repository = self.directory / "repo"
        self.settings_file = cluster.data_dir / "pitr.conf"

    def _command(self, *arguments: str) -> list[str]:
        return [PGBACKREST, f"--config={self.config}", f"--stanza={STANZA}", *arguments]

    def _run(self, *arguments: str) -> str:
        result = subprocess.run(
            as_cluster_user(self._command(*arguments)), capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip()
            raise PlanwiseError(f"pgbackrest {arguments[-1]} failed: {message}")
        return result.stdout

    def _own(self, path: Path) -> None:
        if running_as_root():
            shutil.chown(path, CLUSTER_OS_USER, CLUSTER_OS_USER)

    @property
    def configured(self) -> bool:
        return self.settings_file.exists() and self.config.exists()

    def setup(self) -> list[str]:
        """Repository, archiving settings, restart if they changed, stanza, check."""
        if not self.cluster.running:
            raise PlanwiseError("the managed cluster is not running: `planwise db up` first")
        done = []
        for path in (self.directory, self.repository, self.directory / "log",
                     self.directory / "lock", self.directory / "spool"):  # fmt: skip
            path.mkdir(exist_ok=True)
            self._own(path)
        self.config.write_text(
            "[global]\n"
            f"repo1-path={self.repository}\n"
            "repo1-retention-full=2\n"
            f"log-path={self.directory / 'log'}\n"
            f"lock-path={self.directory / 'lock'}\n"
            f"spool-path={self.directory / 'spool'}\n"
            "start-fast=y\n"
            "log-level-console=warn\n"
            f"\n[{STANZA}]\n"
            f"pg1-path={self.cluster.data_dir}\n"
            f"pg1-port={self.cluster.settings.planwise_pg_port}\n"
            f"pg1-socket-path={self.cluster.directory}\n"
            f"pg1-user={SUPERUSER}\n"
        )
        self._own(self.config)
        wanted = (
            "wal_level = replica\n"
            "archive_mode = on\n"
            f"archive_command = '{' '.join(self._command('archive-push'))} %p'\n"
            f"archive_timeout = {ARCHIVE_TIMEOUT_SECONDS}\n"
            "max_wal_senders = 3\n"
        )
        current = self.settings_file.read_text() if self.settings_file.exists() else ""
        if current != wanted:
            self.settings_file.write_text(wanted)
            self._own(self.settings_file)
            self.cluster.restart()
            done.append("enabled WAL archiving (archive_timeout 60 s) and restarted the cluster")
        self._run("stanza-create")
        self._run("check")
        done.append(f"stanza {STANZA!r} ready, archiving checked, repository {self.repository}")
        return done

    def _require_setup(self) -> None:
        if not self.configured:
            raise PlanwiseError("PITR is not set up: run `planwise pitr setup` first")

    def backup(self, kind: str = "full") -> dict[str, Any]:
        """A pgBackRest backup (full, diff or incr); returns its info entry."""
        self._require_setup()
        if kind not in ("full", "diff", "incr"):
            raise PlanwiseError(f"unknown backup type {kind!r}: full, diff or incr")
        self._run(f"--type={kind}", "backup")
        newest: dict[str, Any] = self.info()["backups"][-1]
        return newest

    def info(self) -> dict[str, Any]:
        self._require_setup()
        stanzas = json.loads(self._run("--output=json", "info"))
        stanza = stanzas[0] if stanzas else {}
        backups = [
            {
                "label": item["label"],
                "type": item["type"],
                "started": _time(item["timestamp"]["start"]),
                "stopped": _time(item["timestamp"]["stop"]),
                "size_bytes": item["info"]["size"],
                "repository_bytes": item["info"]["repository"]["size"],
                "wal_start": item["archive"]["start"],
                "wal_stop": item["archive"]["stop"],
            }
            for item in stanza.get("backup", [])
        ]
        archives = stanza.get("archive", [])
        with self.cluster.admin_connect() as conn:
            row = conn.execute(
                "SELECT archived_count, failed_count, last_archived_wal, last_archived_time, "
                "last_failed_wal, last_failed_time FROM pg_stat_archiver"
            ).fetchone()
        assert row is not None
        return {
            "status": stanza.get("status", {}).get("message", "unknown"),
            "backups": backups,
            "wal_archive": {"min": archives[0]["min"], "max": archives[0]["max"]}
            if archives
            else None,
            "archiver": dict(zip(
                ("archived_count", "failed_count", "last_archived_wal", "last_archived_time",
                 "last_failed_wal", "last_failed_time"),
                [value.isoformat() if isinstance(value, datetime) else value for value in row],
                strict=True,
            )),
        }  # fmt: skip

    def restore(self, target: datetime) -> float:
        """Stop, restore the data directory to `target`, promote, start. Returns seconds."""
        backups = self.info()["backups"]
        if not backups:
            raise PlanwiseError("no pgBackRest backup to restore from: `planwise pitr backup`")
        earliest = datetime.fromisoformat(backups[0]["stopped"])
        if target < earliest:
            raise PlanwiseError(
                f"{target.isoformat()} is before the oldest backup finished "
                f"({earliest.isoformat()}): nothing to restore it from"
            )
        if target > datetime.now(UTC):
            raise PlanwiseError(f"{target.isoformat()} is in the future")
        started = time.perf_counter()
        self.cluster.stop()
        # pgBackRest wants "YYYY-MM-DD HH:MM:SS.mmm+00" (milliseconds, rounded down).
        stamp = target.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "+00"
        self._run("--delta", "--type=time", f"--target={stamp}",
                  "--target-action=promote", "restore")  # fmt: skip
        self.cluster.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with self.cluster.admin_connect() as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row == (False,):
                    return time.perf_counter() - started
            except psycopg.OperationalError:
                pass  # still starting up or replaying WAL
            time.sleep(0.5)
        raise PlanwiseError(f"the cluster did not leave recovery:\n{self.cluster.log_tail()}")


def _time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def parse_target(text: str) -> datetime:
    """ISO 8601; a time without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise PlanwiseError(
            f"not a timestamp: {text!r} (use ISO 8601, e.g. 2026-11-24T20:15:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
