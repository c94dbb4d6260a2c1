"""`planwise backup …` for real: pg_dump, manifests, scratch-restore verification,
restore with a safety backup, and grandfather-father-son retention."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from planwise.ops.backup.dumps import Backup, plan_retention
from tests.support.cli import PLANWISE, planwise, steps_shown
from tests.support.databases import DatabaseUnderTest, connect


@pytest.fixture
def backup_env(
    create_migrated_database: Callable[[str], DatabaseUnderTest], tmp_path: Path
) -> tuple[DatabaseUnderTest, dict[str, str]]:
    db = create_migrated_database("planwise_backup")
    with connect(db.admin_url) as conn:
        conn.execute(
            "INSERT INTO place (id, name, lat, lng, category) VALUES "
            "('b1', 'One', 1, 1, 'museum'), ('b2', 'Two', 2, 2, 'park')"
        )
        conn.execute(
            'INSERT INTO "user" (username, hashed_password, full_name, role) '
            "VALUES ('backed_up', 'h', 'B', 'user')"
        )
    return db, {"MIGRATION_DATABASE_URL": db.admin_url, "BACKUP_DIR": str(tmp_path / "backups")}


def only_backup(directory: Path) -> Path:
    dumps = sorted(directory.glob("backup_*.dump"))
    assert len(dumps) == 1, dumps
    return dumps[0]


def test_create_list_verify_restore(backup_env: tuple[DatabaseUnderTest, dict[str, str]]) -> None:
    """…and, off a terminal, one line per step with how long it took."""
    db, env = backup_env
    created = planwise("backup", "create", **env)
    assert created.returncode == 0, created.stderr
    dump_steps = ["pg_dump", "sha256 of the dump", "writing the manifest"]
    assert steps_shown(created.stdout) == dump_steps, created.stdout
    dump = only_backup(Path(env["BACKUP_DIR"]))
    manifest = json.loads(dump.with_suffix(".json").read_text())
    assert manifest["row_counts"] == {
        "user": 1, "place": 2, "review": 0, "preference": 0, "alembic_version": 1,
    }  # fmt: skip
    assert manifest["size_bytes"] == dump.stat().st_size and len(manifest["sha256"]) == 64
    assert manifest["kind"] == "daily" and manifest["alembic_revision"]

    verified = planwise("backup", "verify", dump.stem, **env)
    assert verified.returncode == 0, verified.stderr
    assert steps_shown(verified.stdout) == [
        "sha256", "pg_restore --list", "scratch restore and row counts", "writing the manifest",
    ], verified.stdout  # fmt: skip
    assert json.loads(dump.with_suffix(".json").read_text())["verified"] is True
    listing = planwise("backup", "list", **env)
    assert dump.name in listing.stdout and "yes" in listing.stdout

    with connect(db.admin_url) as conn:  # changes after the backup
        conn.execute("DELETE FROM place WHERE id = 'b1'")
        conn.execute("INSERT INTO place (id, name, lat, lng) VALUES ('b3', 'Three', 3, 3)")
    refused = planwise("backup", "restore", dump.stem, **env)
    assert refused.returncode == 3 and "replaces everything" in refused.stdout
    with connect(db.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM place WHERE id = 'b3'").fetchone() == (1,)

    restored = planwise("backup", "restore", dump.stem, "--yes", **env)
    assert restored.returncode == 0, restored.stderr
    assert "safety backup" in restored.stdout
    assert steps_shown(restored.stdout) == [
        "sha256 and last verification",
        *(f"safety backup: {name}" for name in dump_steps),
        "pg_restore",
    ], restored.stdout
    with connect(db.admin_url) as conn:
        ids = conn.execute("SELECT id FROM place ORDER BY id").fetchall()
        assert ids == [("b1",), ("b2",)]
        assert conn.execute('SELECT count(*) FROM "user"').fetchone() == (1,)
    safety = [
        json.loads(path.read_text())
        for path in Path(env["BACKUP_DIR"]).glob("backup_*.json")
        if json.loads(path.read_text())["kind"] == "safety"
    ]
    assert len(safety) == 1 and safety[0]["row_counts"]["place"] == 2  # b2 and b3


def test_create_and_verify_through_a_multi_host_url(
    backup_env: tuple[DatabaseUnderTest, dict[str, str]],
) -> None:
    """A Patroni cluster's URL (`host=a,b&port=…&target_session_attrs=read-write`): pg_dump
    and the scratch restore reach the server libpq picks, here the second host, as the
    first refuses connections (a port bound and not listening)."""
    db, env = backup_env
    server = make_url(db.admin_url)
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))
        ports = f"{refusing.getsockname()[1]},{server.port}"
        url = URL.create(
            "postgresql", server.username, server.password, database=server.database,
            query={"host": "127.0.0.1,127.0.0.1", "port": ports,
                   "target_session_attrs": "read-write"},
        ).render_as_string(hide_password=False)  # fmt: skip
        created = planwise("backup", "create", **{**env, "MIGRATION_DATABASE_URL": url})
        assert created.returncode == 0, created.stdout + created.stderr
        dump = only_backup(Path(env["BACKUP_DIR"]))
        assert json.loads(dump.with_suffix(".json").read_text())["row_counts"]["place"] == 2
        verified = planwise("backup", "verify", dump.stem, **{**env, "MIGRATION_DATABASE_URL": url})
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_tampered_backup_fails_verification(
    backup_env: tuple[DatabaseUnderTest, dict[str, str]],
) -> None:
    _db, env = backup_env
    assert planwise("backup", "create", **env).returncode == 0
    dump = only_backup(Path(env["BACKUP_DIR"]))
    with dump.open("r+b") as handle:
        handle.seek(dump.stat().st_size // 2)
        handle.write(b"corrupted")
    result = planwise("backup", "verify", dump.stem, **env)
    assert result.returncode == 4 and "checksum" in result.stderr


def safety_backups(directory: Path) -> list[Path]:
    manifests = directory.glob("backup_*.json")
    return [path for path in manifests if json.loads(path.read_text())["kind"] == "safety"]


def test_restore_refuses_what_verification_refuses(
    backup_env: tuple[DatabaseUnderTest, dict[str, str]],
) -> None:
    """A dump edited in place (same length: `DEFAULT true` became `DEFAULT null`) fails
    its checksum: restore refuses it (exit 4) before its safety backup or any change,
    and so it does a dump whose last verification failed; `--force` restores anyway."""
    db, env = backup_env
    directory = Path(env["BACKUP_DIR"])
    assert planwise("backup", "create", **env).returncode == 0
    dump = only_backup(directory)
    data = dump.read_bytes()
    assert data.count(b"DEFAULT true") >= 1  # the TOC (DDL) of a custom dump is plain text
    dump.write_bytes(data.replace(b"DEFAULT true", b"DEFAULT null"))
    assert dump.stat().st_size == len(data)
    with connect(db.admin_url) as conn:
        conn.execute("INSERT INTO place (id, name, lat, lng) VALUES ('after', 'After', 3, 3)")

    refused = planwise("backup", "restore", dump.stem, "--yes", **env)
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "checksum differs" in refused.stderr and "Nothing was changed" in refused.stderr
    assert "Traceback" not in refused.stderr and safety_backups(directory) == []
    with connect(db.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM place").fetchone() == (3,)

    assert planwise("backup", "verify", dump.stem, **env).returncode == 4
    dump.write_bytes(data)  # the bytes are right again, but the manifest says it failed
    failed = planwise("backup", "restore", dump.stem, "--yes", **env)
    assert failed.returncode == 4 and "last verification" in failed.stderr, failed.stderr
    assert safety_backups(directory) == []

    dump.write_bytes(data.replace(b"DEFAULT true", b"DEFAULT null"))
    forced = planwise("backup", "restore", dump.stem, "--yes", "--force", **env)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "--force: restoring although its checksum differs" in forced.stdout
    assert len(safety_backups(directory)) == 1
    with connect(db.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM place").fetchone() == (2,)


def test_restore_refuses_an_unknown_revision(
    backup_env: tuple[DatabaseUnderTest, dict[str, str]],
) -> None:
    _db, env = backup_env
    assert planwise("backup", "create", **env).returncode == 0
    dump = only_backup(Path(env["BACKUP_DIR"]))
    manifest_path = dump.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "alembic_revision": "ffffffffffff"}))
    result = planwise("backup", "restore", dump.stem, "--yes", **env)
    assert result.returncode == 1 and "does not know" in result.stderr
    assert len(list(Path(env["BACKUP_DIR"]).glob("backup_*.dump"))) == 1, "no safety backup"


def test_failed_dump_leaves_nothing_that_looks_complete(
    backup_env: tuple[DatabaseUnderTest, dict[str, str]],
) -> None:
    """pg_dump dies mid-dump (its server session is killed): no backup is left behind."""
    db, env = backup_env
    with connect(db.admin_url) as holder, connect(db.admin_url) as watcher:
        holder.execute("LOCK TABLE spatial_ref_sys IN ACCESS EXCLUSIVE MODE")  # stalls pg_dump
        running = subprocess.Popen(
            [PLANWISE, "backup", "create"], env={**os.environ, **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        watcher.autocommit = True
        deadline = time.monotonic() + 30
        killed = False
        while not killed and time.monotonic() < deadline:
            killed = bool(
                watcher.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND state = 'active' AND wait_event_type = 'Lock' "
                    "AND application_name = 'planwise-backup'",
                    (db.name,),
                ).fetchall()
            )
            time.sleep(0.1)
        _out, err = running.communicate(timeout=60)
    assert killed and running.returncode == 1 and "pg_dump failed" in err
    directory = Path(env["BACKUP_DIR"])
    assert list(directory.glob("backup_*")) == [] and list(directory.glob(".*")) == []


def fake_backup(
    directory: Path, taken: datetime, verified: bool | None = None, kind: str = "daily"
) -> Backup:
    path = directory / f"backup_{taken:%Y%m%d_%H%M%S}.dump"
    manifest = {"finished_at": taken.isoformat(), "kind": kind, "verified": verified,
                "verified_at": taken.isoformat() if verified else None, "size_bytes": 1,
                "alembic_revision": None}  # fmt: skip
    return Backup(path, manifest)


def test_retention_over_two_years_of_backups(tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    start = now - timedelta(days=730)
    calendar = [fake_backup(tmp_path, start + timedelta(hours=6 * n)) for n in range(730 * 4 + 1)]
    decisions = plan_retention(calendar, now)
    kept = [decision.backup.taken_at for decision in decisions if decision.keep]
    days = {t.date() for t in kept if t.date() > (now - timedelta(days=30)).date()}
    assert len(days) == 30
    weeks = {t.isocalendar()[:2] for t in kept}
    months = {(t.year, t.month) for t in kept}
    assert len(months) == 24 and len(weeks) >= 26
    # Each kept backup is the newest (18:00, or 12:00 today) of its day, week or month.
    assert all(t.hour in (18, 12) for t in kept)
    assert len(kept) == len({*kept}) < 30 + 26 + 24
    oldest_month_start = datetime(2024, 12, 1, tzinfo=UTC)
    assert min(kept) >= oldest_month_start
    reasons = {d.backup.taken_at: d.reasons for d in decisions if d.keep}
    assert any("week" in r for rs in reasons.values() for r in rs)


def test_retention_never_deletes_the_only_verified_backup(tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    ancient = fake_backup(tmp_path, now - timedelta(days=1000), verified=True)
    recent = [fake_backup(tmp_path, now - timedelta(days=n)) for n in range(3)]
    decisions = {d.backup.path: d for d in plan_retention([ancient, *recent], now)}
    assert decisions[ancient.path].keep
    assert decisions[ancient.path].reasons == ("newest verified backup",)


def test_retention_keeps_fresh_safety_backups_and_ignores_the_future(tmp_path: Path) -> None:
    """A restore's safety backup taken 13 s before the prune is kept (it used to be the
    older of its day and go); a week later it may go. A backup newer than --now neither
    goes nor displaces the newest backup of its day."""
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    daily = fake_backup(tmp_path, now - timedelta(minutes=1))
    safety = fake_backup(tmp_path, now - timedelta(seconds=13), kind="safety")
    old_safety = fake_backup(tmp_path, now - timedelta(days=7, seconds=1), kind="safety")
    migration = fake_backup(tmp_path, now - timedelta(days=6), kind="pre-migration")
    later = fake_backup(tmp_path, now + timedelta(minutes=5))
    decisions = {
        d.backup.path: d
        for d in plan_retention([daily, safety, old_safety, migration, later], now, 7)
    }
    assert decisions[daily.path].reasons[0] == "newest of day 2026-11-24"
    assert decisions[safety.path].reasons == ("safety backup, kept until 2026-12-01 11:59 UTC",)
    assert decisions[migration.path].keep and not decisions[old_safety.path].keep
    assert decisions[later.path].reasons == ("taken after --now: ignored",)
    shorter = {d.backup.path: d.keep for d in plan_retention([daily, migration], now, 5)}
    assert shorter == {daily.path: True, migration.path: False}


def test_prune_command_on_real_files(backup_env: tuple[DatabaseUnderTest, dict[str, str]]) -> None:
    _db, env = backup_env
    assert planwise("backup", "create", **env).returncode == 0
    directory = Path(env["BACKUP_DIR"])
    real = only_backup(directory)
    manifest = json.loads(real.with_suffix(".json").read_text())
    # One kept by the monthly rule, one outside every window, a safety backup of 8 days ago.
    for days_ago, kind in ((400, "daily"), (800, "daily"), (8, "safety")):
        taken = datetime.now(UTC) - timedelta(days=days_ago)
        name = f"backup_{taken:%Y%m%d_%H%M%S}"
        (directory / f"{name}.dump").write_bytes(real.read_bytes())
        (directory / f"{name}.json").write_text(
            json.dumps(
                {**manifest, "finished_at": taken.isoformat(), "name": f"{name}.dump", "kind": kind}
            )
        )
    ten_days = planwise("backup", "prune", "--dry-run", BACKUP_KEEP_SAFETY_DAYS="10", **env)
    assert ten_days.returncode == 0 and "1 to delete" in ten_days.stdout
    dry = planwise("backup", "prune", "--dry-run", **env)
    assert dry.returncode == 0 and "2 to delete" in dry.stdout
    assert len(list(directory.glob("backup_*.dump"))) == 4
    unconfirmed = planwise("backup", "prune", **env)
    assert unconfirmed.returncode == 3
    done = planwise("backup", "prune", "--yes", **env)
    assert done.returncode == 0 and "deleted 2 backup" in done.stdout
    assert len(list(directory.glob("backup_*.dump"))) == 2


def _free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def _fill(mount: Path, leave: int) -> None:
    """Fill the tmpfs until `leave` bytes (a multiple of its 4 KiB pages) are free."""
    filler = mount / "filler"
    filler.unlink(missing_ok=True)
    with filler.open("wb") as handle:
        handle.write(b"\0" * (_free_bytes(mount) - leave))
    assert _free_bytes(mount) == leave


def _leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_private_files_and_a_full_disk_at_every_step(
    backup_env: tuple[DatabaseUnderTest, dict[str, str]],
) -> None:
    """BACKUP_DIR is a 2 MiB tmpfs, really filled: a dump that does not fit, a manifest
    that does not fit (the dump did), a verification whose manifest update does not fit.
    Each: exit 1, one line, no traceback, no partial or temporary file. A stale
    temporary of a dead run is removed by the next run (a live run's is not). Modes:
    directory 0700, dump and manifest 0600."""
    _db, env = backup_env
    reference = planwise("backup", "create", **env)
    assert reference.returncode == 0, reference.stderr
    dump_size = only_backup(Path(env["BACKUP_DIR"])).stat().st_size
    page = 4096
    mount = Path(tempfile.mkdtemp(prefix="pw-full-"))  # short: the message fits one line
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        directory = mount / "backups"
        directory.mkdir(mode=0o755)
        env = {**env, "BACKUP_DIR": str(directory)}
        for leave, step in (
            (page, "(pg_dump)"),
            (-(-dump_size // page) * page, "(writing the manifest)"),
        ):
            _fill(mount, leave)
            full = planwise("backup", "create", **env)
            assert full.returncode == 1, full.stdout + full.stderr
            assert len(full.stderr.strip().splitlines()) == 1, full.stderr
            assert "no space left on the device" in full.stderr and step in full.stderr
            assert "Traceback" not in full.stderr and _leftovers(directory) == []
            assert f"step {step.strip('()')}: failed after" in full.stdout, full.stdout

        (mount / "filler").unlink()
        stale = directory / ".backup_20260101_000000.dump.999999999.tmp"
        stale.write_bytes(b"half a dump")
        old_style = directory / ".backup_20260101_000000.json.tmp"
        old_style.write_bytes(b"{")
        live = directory / f".backup_20260101_000001.dump.{os.getpid()}.tmp"
        live.write_bytes(b"being written")
        made = planwise("backup", "create", **env)
        assert made.returncode == 0, made.stderr
        dump = only_backup(directory)
        assert _leftovers(directory) == sorted([live.name, dump.name, f"{dump.stem}.json"])
        assert directory.stat().st_mode & 0o777 == 0o700
        for path in (dump, dump.with_suffix(".json")):
            assert path.stat().st_mode & 0o777 == 0o600, path
        live.unlink()

        manifest = dump.with_suffix(".json").read_bytes()
        _fill(mount, 0)
        verified = planwise("backup", "verify", dump.stem, **env)
        assert verified.returncode == 1, verified.stdout + verified.stderr
        assert len(verified.stderr.strip().splitlines()) == 1, verified.stderr
        assert "no space left on the device" in verified.stderr and "manifest" in verified.stderr
        assert _leftovers(directory) == sorted([dump.name, f"{dump.stem}.json"])
        assert dump.with_suffix(".json").read_bytes() == manifest
        (mount / "filler").unlink()
        assert planwise("backup", "verify", dump.stem, **env).returncode == 0
        assert dump.with_suffix(".json").stat().st_mode & 0o777 == 0o600
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)
        mount.rmdir()


def test_progress_on_a_terminal(
    backup_env: tuple[DatabaseUnderTest, dict[str, str]],
) -> None:
    """On a terminal (a pty from `script`) the steps are a rich display, each ticked off
    with its time, and no plain `step …` lines."""
    _db, env = backup_env
    shown = subprocess.run(
        ["script", "-qec", f"{PLANWISE} backup create", "/dev/null"],
        env={**os.environ, "COLUMNS": "100", **env}, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.stdout)
    for name in ("pg_dump", "sha256 of the dump", "writing the manifest"):
        assert re.search(rf"✓ {name} +\d+\.\ds", screen), screen
    assert "step pg_dump" not in screen and "created " in screen
    assert len(list(Path(env["BACKUP_DIR"]).glob("backup_*.dump"))) == 1
