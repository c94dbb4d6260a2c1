"""Continuous WAL archiving and point-in-time recovery of the managed cluster, with
pgBackRest: a local repository beside the cluster (repo1) and, when configured, a second
one off this disk (repo2: a repository host over TLS, or S3-compatible storage).

`archive_timeout = 60` switches WAL at least every minute when anything was written, and
`archive_command` succeeds only once a segment is in every repository, so with repo2 a
lost disk loses at most the writes of the last minute plus what is still queued for the
archiver. On a hosted server (Supabase, RDS…) WAL archiving and PITR are the host's job;
`planwise backup` still takes logical backups there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from planwise.db.cluster import (
    CLUSTER_OS_USER,
    Cluster,
    as_cluster_user,
    running_as_root,
)
from planwise.errors import PlanwiseError
from planwise.ops.pitr.conf import STANZA, Layout, RepoHostFiles, render_local, render_repo_host
from planwise.progress import StepHook, no_progress

PGBACKREST = "pgbackrest"
ARCHIVE_TIMEOUT_SECONDS = 60
BACKUP_TYPES = ("full", "diff", "incr")


class Pitr:
    def __init__(self, cluster: Cluster, layout: Layout | None = None) -> None:
        """`cluster` is the managed cluster, or a Patroni cluster's leader; then `layout`
        lists every member and archiving is in Patroni's hands (`patroni` is True)."""
        self.cluster = cluster
        self.settings = cluster.settings
        self.patroni = layout is not None
        self.layout = layout or Layout(
            directory=cluster.directory / "pgbackrest",
            data_dir=cluster.data_dir,
            socket_dir=cluster.directory,
            pg_port=cluster.settings.planwise_pg_port,
        )
        self.directory = self.layout.directory
        self.config = self.layout.config
        self.repository = self.layout.repository
        self.settings_file = cluster.data_dir / "pitr.conf"

    def _command(self, *arguments: str) -> list[str]:
        return [PGBACKREST, f"--config={self.config}", f"--stanza={STANZA}", *arguments]

    def _run(self, *arguments: str, timeout: float | None = None) -> str:
        try:
            result = subprocess.run(
                as_cluster_user(self._command(*arguments)), capture_output=True, text=True,
                check=False, timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired as error:
            raise PlanwiseError(f"pgbackrest {arguments[-1]} took over {timeout:g} s") from error
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip()
            raise PlanwiseError(f"pgbackrest {arguments[-1]} failed: {message}")
        return result.stdout

    def _own(self, path: Path) -> None:
        if running_as_root():
            shutil.chown(path, CLUSTER_OS_USER, CLUSTER_OS_USER)

    @property
    def configured(self) -> bool:
        """pgbackrest.conf is there (pitr.conf may be lost with the data directory)."""
        return self.config.exists()

    @property
    def repositories(self) -> list[int]:
        return [1] if self.settings.pitr_repo2_type == "none" else [1, 2]

    def _archiving(self) -> str:
        return (
            "wal_level = replica\n"
            "archive_mode = on\n"
            f"archive_command = '{' '.join(self._command('archive-push'))} %p'\n"
            f"archive_timeout = {ARCHIVE_TIMEOUT_SECONDS}\n"
            "max_wal_senders = 3\n"
        )

    def needs_restart(self) -> bool:
        """True when `setup` would change the archiving settings (and so restart). On a
        Patroni cluster archiving is on from `cluster up`: never."""
        if self.patroni:
            return False
        current = self.settings_file.read_text() if self.settings_file.exists() else ""
        return current != self._archiving()

    def _write_config(self) -> None:
        """pgbackrest.conf, 0600 from the start: it may hold the passphrase and S3 keys."""
        text = render_local(self.settings, self.layout)
        partial = self.config.with_suffix(".tmp")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        self._own(partial)
        partial.replace(self.config)

    def _prepare(self) -> None:
        """pgBackRest's directories and config (again, after a lost disk)."""
        for path in (self.directory, self.repository, self.directory / "log",
                     self.directory / "lock", self.directory / "spool"):  # fmt: skip
            path.mkdir(parents=True, exist_ok=True)
            self._own(path)
        self.directory.chmod(0o700)
        self._write_config()

    def setup(self) -> list[str]:
        """Repositories, archiving settings, restart if they changed, stanza, check."""
        if not self.cluster.running:
            raise PlanwiseError("the database server is not running: `planwise db up` first")
        done = []
        self._prepare()
        if self.needs_restart():
            self.settings_file.write_text(self._archiving())
            self._own(self.settings_file)
            self.cluster.restart()
            done.append("enabled WAL archiving (archive_timeout 60 s) and restarted the cluster")
        self._run("stanza-create")
        self._run("check")
        where = f"repo1 {self.repository}"
        if self.settings.pitr_repo2_type == "tls":
            where += f", repo2 on {self.settings.pitr_repo2_host} (TLS, encrypted)"
        elif self.settings.pitr_repo2_type == "s3":
            where += f", repo2 s3://{self.settings.pitr_repo2_s3_bucket} (encrypted)"
        done.append(f"stanza {STANZA!r} ready, archiving to every repository checked: {where}")
        if self.patroni:
            done.append("every member archives with this config once it leads; backups are "
                        "taken from a standby (backup-standby)")  # fmt: skip
        return done

    def check(self) -> None:
        """`pgbackrest check`: WAL reaches every repository from the current primary."""
        self._require_setup()
        self._run("check")

    def _require_setup(self) -> None:
        if not self.configured:
            raise PlanwiseError("PITR is not set up: run `planwise pitr setup` first")

    def backup(
        self, kind: str = "full", repo: int = 1, progress: StepHook = no_progress
    ) -> dict[str, Any]:
        """A pgBackRest backup (full, diff or incr) into `repo`; returns its info entry."""
        self._require_setup()
        if kind not in BACKUP_TYPES:
            raise PlanwiseError(f"unknown backup type {kind!r}: full, diff or incr")
        if repo not in self.repositories:
            raise PlanwiseError(f"there is no repo{repo} (PITR_REPO2_TYPE is none)")
        if repo == 2 and self.settings.pitr_repo2_type == "tls":
            raise PlanwiseError(
                "backups into a repository host are taken there (pgBackRest 2.45): run "
                f"`pgbackrest --stanza={STANZA} --repo=2 --type={kind} backup` on "
                f"{self.settings.pitr_repo2_host} (see `planwise pitr repo-host-config`)"
            )
        with progress(f"pgbackrest {kind} backup into repo{repo}"):
            self._run(f"--repo={repo}", f"--type={kind}", "backup")
        with progress("pgbackrest info"):
            mine = [item for item in self.info()["backups"] if item["repo"] == repo]
        newest: dict[str, Any] = mine[-1]
        return newest

    def _archiver(self) -> dict[str, Any] | None:
        """pg_stat_archiver, or None when the cluster is not running."""
        if not self.cluster.running:
            return None
        with self.cluster.admin_connect() as conn:
            row = conn.execute(
                "SELECT archived_count, failed_count, last_archived_wal, last_archived_time, "
                "last_failed_wal, last_failed_time FROM pg_stat_archiver"
            ).fetchone()
        assert row is not None
        return dict(zip(
            ("archived_count", "failed_count", "last_archived_wal", "last_archived_time",
             "last_failed_wal", "last_failed_time"),
            [value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
             for value in row],
            strict=True,
        ))  # fmt: skip

    def info(
        self, archiver: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Backups per repository, archived WAL, archiver status and the restore window.

        `archiver`: pg_stat_archiver as the caller read it (the console, as the API's
        role); without it, read here as the superuser. `timeout` bounds pgBackRest's part
        (monitoring must not hang on a slow repository)."""
        self._require_setup()
        stanzas = json.loads(self._run("--output=json", "info", timeout=timeout))
        stanza = stanzas[0] if stanzas else {}
        backups = [
            {
                "repo": item["database"]["repo-key"],
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
        wal = {item["database"]["repo-key"]: item for item in stanza.get("archive", [])}
        archiver = self._archiver() if archiver is None else {
            key: _utc(value) if key.endswith("_time") else value
            for key, value in archiver.items()
        }  # fmt: skip
        latest_archived = archiver["last_archived_time"] if archiver else None
        repositories = []
        for entry in stanza.get("repo", []):
            repo = entry["key"]
            mine = [item for item in backups if item["repo"] == repo]
            newest = mine[-1]["stopped"] if mine else None
            repositories.append({
                "repo": repo,
                "kind": "local" if repo == 1 else self.settings.pitr_repo2_type,
                "status": entry.get("status", {}).get("message", "unknown"),
                "cipher": entry.get("cipher", "none"),
                "wal_min": wal[repo]["min"] if repo in wal else None,
                "wal_max": wal[repo]["max"] if repo in wal else None,
                "earliest": mine[0]["stopped"] if mine else None,
                "latest": max(filter(None, (newest, latest_archived)), default=None)
                if mine else None,
            })  # fmt: skip
        usable = [item for item in repositories if item["earliest"]]
        first = wal.get(1)
        return {
            "status": stanza.get("status", {}).get("message", "unknown"),
            "repositories": repositories,
            "backups": backups,
            "wal_archive": {"min": first["min"], "max": first["max"]} if first else None,
            "archiver": archiver,
            "restore_window": {
                "earliest": min((item["earliest"] for item in usable), default=None),
                "latest": max((item["latest"] for item in usable), default=None),
                "latest_from": "last archived WAL" if latest_archived else "newest backup's end",
            },
        }

    def restore(
        self, target: datetime, repo: int | None = None, progress: StepHook = no_progress
    ) -> tuple[float, list[str]]:
        """Stop, restore the data directory to `target`, promote, start.

        Returns the seconds it took and notes (a repository re-created afterwards…).
        """
        if self.patroni:
            raise PlanwiseError(
                "pitr restore works on the single managed cluster: a Patroni cluster is "
                "restored by bootstrapping a new one from the backup (not supported here)"
            )
        notes = []
        if not self.configured:
            self._prepare()
            notes.append(f"wrote {self.config} again from the settings")
        facts = self.info()
        backups = [item for item in facts["backups"] if repo is None or item["repo"] == repo]
        if not backups:
            where = f"repo{repo}" if repo else "any repository"
            raise PlanwiseError(f"no pgBackRest backup in {where}: `planwise pitr backup`")
        earliest = min(datetime.fromisoformat(item["stopped"]) for item in backups)
        if target < earliest:
            raise PlanwiseError(
                f"{target.isoformat()} is before the oldest backup finished "
                f"({earliest.isoformat()}): nothing to restore it from"
            )
        if target > datetime.now(UTC):
            raise PlanwiseError(f"{target.isoformat()} is in the future")
        started = time.perf_counter()
        with progress("stop the cluster"):
            self.cluster.stop()
        if not self.cluster.data_dir.exists():  # a lost disk: restore into a new directory
            self.cluster.data_dir.mkdir(mode=0o700, parents=True)
            self._own(self.cluster.data_dir)
        # pgBackRest wants "YYYY-MM-DD HH:MM:SS.mmm+00" (milliseconds, rounded down).
        stamp = target.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "+00"
        chosen = [f"--repo={repo}"] if repo else []
        with progress("pgbackrest restore"):
            self._run(*chosen, "--delta", "--type=time", f"--target={stamp}",
                      "--target-action=promote", "restore")  # fmt: skip
        with progress("start, replay WAL to the moment, promote"):
            self.cluster.start()
            self._wait_for_promotion()
        with progress("repositories"):
            notes += self._recreate_lost_repositories()
        return time.perf_counter() - started, notes

    def _wait_for_promotion(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with self.cluster.admin_connect() as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row == (False,):
                    return
            except psycopg.OperationalError:
                pass  # still starting up or replaying WAL
            time.sleep(0.5)
        raise PlanwiseError(f"the cluster did not leave recovery:\n{self.cluster.log_tail()}")

    def _recreate_lost_repositories(self) -> list[str]:
        """A repository that lost its stanza (the local one, with the disk) is made again,
        or WAL archiving would fail from now on."""
        if (self.repository / "archive" / STANZA / "archive.info").exists():
            return []
        deadline = time.monotonic() + 30
        while True:  # the archiver's async process may hold the archive lock for a moment
            try:
                self._run("stanza-create")
                break
            except PlanwiseError as error:
                if "unable to acquire lock" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        return [f"re-created the stanza in repo1 ({self.repository}); take a new backup"]

    def server_command(self) -> list[str]:
        """`pgbackrest server` on this host, for a repository host taking backups."""
        self._require_setup()
        if self.settings.pitr_repo2_type != "tls" or not self.settings.pitr_tls_repo_host_cn:
            raise PlanwiseError(
                "`pitr server` serves a repository host: set PITR_REPO2_TYPE=tls, "
                "PITR_TLS_REPO_HOST_CN and the PITR_TLS_* files, then `planwise pitr setup`"
            )
        return as_cluster_user([PGBACKREST, f"--config={self.config}", "server"])

    def repo_host_config(self, files: RepoHostFiles) -> str:
        return render_repo_host(self.settings, self.layout, files)


def _time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _utc(moment: str | None) -> str | None:
    """An ISO 8601 time in UTC, as `_time` writes them (they are compared as text)."""
    return None if moment is None else datetime.fromisoformat(moment).astimezone(UTC).isoformat()


def parse_target(text: str) -> datetime:
    """ISO 8601; a time without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise PlanwiseError(
            f"not a timestamp: {text!r} (use ISO 8601, e.g. 2026-11-24T20:15:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
