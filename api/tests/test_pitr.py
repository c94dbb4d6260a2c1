"""Point-in-time recovery for real, on a cluster of its own: back up, write, note the
time, write more and drop a table, restore to the noted time; from the local repository,
and from a repository host off this machine's network namespace (pgBackRest's TLS server
inside a namespace this module creates, reached over a veth pair on 10.200.N.1/2, with
client certificates made here by openssl) after the data directory and the local
repository are gone."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, pool

from planwise.config import Settings
from planwise.console.routes import PAGES, TEMPLATES
from planwise.db.cluster import Cluster
from planwise.db.engine import sqlalchemy_url
from planwise.errors import PlanwiseError
from planwise.ops.monitor import report as monitor
from planwise.ops.pitr.conf import Layout, render_local
from tests.support.cli import PLANWISE, discard_cluster, planwise, steps_shown
from tests.support.served import planwise_serve, serve_environment
from tests.test_prometheus import CONDITIONAL

PORT = 15493
NET = os.getpid() % 200 + 20
DB_ADDRESS, REPO_ADDRESS = f"10.200.{NET}.1", f"10.200.{NET}.2"
NAMESPACE = f"planwise-pitr-{os.getpid()}"
VETH = f"pwp{os.getpid() % 100000}"
CIPHER_PASS = "a-test-passphrase-0123456789abcdef"


@dataclass
class RepoHost:
    """The off-host repository: a directory only the namespace's server writes to."""

    root: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.root / "repohost" / "pgbackrest.conf"

    @property
    def repository(self) -> Path:
        return self.root / "repohost" / "repo"

    def tls(self, name: str) -> Path:
        return self.root / "tls" / name

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """pgbackrest on the repository host, as its cron would run it."""
        return subprocess.run(
            ["ip", "netns", "exec", NAMESPACE, "runuser", "-u", "postgres", "--", "env",
             f"PGBACKREST_REPO2_CIPHER_PASS={CIPHER_PASS}", "pgbackrest",
             f"--config={self.config}", "--stanza=planwise", *arguments],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip

    def start(self, command: list[str], address: str, env: dict[str, str]) -> None:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.processes.append(process)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                probe.settimeout(0.5)
                if probe.connect_ex((address, 8432)) == 0:
                    return
            assert process.poll() is None, f"{command} exited {process.returncode}"
            time.sleep(0.1)
        raise AssertionError(f"nothing listens on {address}:8432")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
        self.processes.clear()


def _sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def _certificates(directory: Path) -> None:
    """A CA, and a certificate for each host (its address as a DNS name: pgBackRest 2.45
    matches the host against CN and DNS names only)."""
    directory.mkdir()
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    _sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=planwise-test-ca", "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    for name, address in (("db", DB_ADDRESS), ("repo", REPO_ADDRESS)):
        key, request = directory / f"{name}.key", directory / f"{name}.csr"
        extensions = directory / f"{name}.ext"
        extensions.write_text(f"subjectAltName=DNS:{address}\n")
        _sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=pitr-{name}",
            "-keyout", str(key), "-out", str(request))  # fmt: skip
        _sh("openssl", "x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey",
            str(ca_key), "-CAcreateserial", "-days", "1", "-extfile", str(extensions),
            "-out", str(directory / f"{name}.crt"))  # fmt: skip
        key.chmod(0o600)


def _network_up() -> None:
    _sh("ip", "netns", "add", NAMESPACE)
    _sh("ip", "link", "add", f"{VETH}a", "type", "veth", "peer", "name", f"{VETH}b")
    _sh("ip", "link", "set", f"{VETH}b", "netns", NAMESPACE)
    _sh("ip", "addr", "add", f"{DB_ADDRESS}/30", "dev", f"{VETH}a")
    _sh("ip", "link", "set", f"{VETH}a", "up")
    inside = ("ip", "netns", "exec", NAMESPACE)
    _sh(*inside, "ip", "addr", "add", f"{REPO_ADDRESS}/30", "dev", f"{VETH}b")
    _sh(*inside, "ip", "link", "set", f"{VETH}b", "up")
    _sh(*inside, "ip", "link", "set", "lo", "up")


def _network_down() -> None:
    subprocess.run(["ip", "link", "del", f"{VETH}a"], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "del", NAMESPACE], capture_output=True, check=False)


@pytest.fixture(scope="module")
def repo_host() -> Iterator[RepoHost]:
    # Under /var/tmp: the `postgres` OS user cannot enter pytest's root-only tmp dirs.
    host = RepoHost(Path(tempfile.mkdtemp(prefix="planwise-pitr-", dir="/var/tmp")))
    try:
        _certificates(host.root / "tls")
        for path in (host.root / "repohost", host.repository, host.root / "repohost" / "log",
                     host.root / "repohost" / "lock"):  # fmt: skip
            path.mkdir(exist_ok=True)
        _network_up()
        subprocess.run(["chown", "-R", "postgres:postgres", str(host.root)], check=True)
        yield host
    finally:
        host.stop()
        _network_down()
        shutil.rmtree(host.root, ignore_errors=True)


@pytest.fixture(scope="module")
def pitr_env(
    tmp_path_factory: pytest.TempPathFactory, repo_host: RepoHost
) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("pitr") / "home"
    env = {
        "PLANWISE_HOME": str(home), "PLANWISE_PG_PORT": str(PORT),
        "PITR_REPO2_TYPE": "tls", "PITR_REPO2_HOST": REPO_ADDRESS,
        "PITR_REPO2_PATH": str(repo_host.repository),
        "PITR_REPO2_HOST_CONFIG": str(repo_host.config),
        "PITR_REPO2_CIPHER_PASS": CIPHER_PASS,
        "PITR_TLS_CA_FILE": str(repo_host.tls("ca.crt")),
        "PITR_TLS_CERT_FILE": str(repo_host.tls("db.crt")),
        "PITR_TLS_KEY_FILE": str(repo_host.tls("db.key")),
        "PITR_TLS_SERVER_ADDRESS": DB_ADDRESS, "PITR_TLS_REPO_HOST_CN": "pitr-repo",
    }  # fmt: skip
    try:
        for step in (("db", "up"), ("db", "migrate")):
            result = planwise(*step, **env)
            assert result.returncode == 0, (step, result.stdout, result.stderr)
        printed = planwise(
            "pitr", "repo-host-config", "--ca-file", str(repo_host.tls("ca.crt")),
            "--cert-file", str(repo_host.tls("repo.crt")),
            "--key-file", str(repo_host.tls("repo.key")),
            "--log-path", str(repo_host.root / "repohost" / "log"),
            "--lock-path", str(repo_host.root / "repohost" / "lock"), **env,
        )  # fmt: skip
        assert printed.returncode == 0, printed.stderr
        assert "tls-server-auth=pitr-db=planwise" in printed.stdout
        assert "cipher-pass" not in printed.stdout
        repo_host.config.write_text(printed.stdout)
        shutil.chown(repo_host.config, "postgres", "postgres")
        repo_host.start(
            ["ip", "netns", "exec", NAMESPACE, "runuser", "-u", "postgres", "--",
             "pgbackrest", f"--config={repo_host.config}", "server"],
            REPO_ADDRESS, {"PGBACKREST_REPO2_CIPHER_PASS": CIPHER_PASS},
        )  # fmt: skip
        yield env
    finally:
        discard_cluster(env)  # first: with repo2 gone, archive-push would wait at shutdown
        repo_host.stop()


@functools.cache
def _admin_url(home: str) -> str:
    return planwise(
        "db", "url", "--as", "admin", PLANWISE_HOME=home, PLANWISE_PG_PORT=str(PORT)
    ).stdout.strip()


def admin(env: dict[str, str]) -> psycopg.Connection[tuple[object, ...]]:
    """The superuser on the test's cluster (its password survives restores: it is in them)."""
    return psycopg.connect(_admin_url(env["PLANWISE_HOME"]), autocommit=True)


@functools.cache
def _cluster_directory(home: str) -> Path:
    status = planwise("db", "status", PLANWISE_HOME=home, PLANWISE_PG_PORT=str(PORT))
    match = re.search(r"directory\s*│\s*(\S+)", status.stdout)
    assert match, status.stdout
    return Path(match.group(1))


def cluster_directory(env: dict[str, str]) -> Path:
    return _cluster_directory(env["PLANWISE_HOME"])


def write_and_note_a_moment(env: dict[str, str]) -> datetime:
    """100 rows and a place before the moment; 100 more, another place and a DROP after;
    returns once WAL up to the DROP is archived (in every repository)."""
    with admin(env) as conn:
        conn.execute("CREATE TABLE pitr_probe (n int)")
        conn.execute("INSERT INTO pitr_probe SELECT generate_series(1, 100)")
        conn.execute("INSERT INTO place (id, name, lat, lng) VALUES ('kept', 'Kept', 1, 1)")
        time.sleep(1.1)
        moment = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
        time.sleep(1.1)
        conn.execute("INSERT INTO pitr_probe SELECT generate_series(101, 200)")
        conn.execute("INSERT INTO place (id, name, lat, lng) VALUES ('lost', 'Lost', 2, 2)")
        conn.execute("DROP TABLE pitr_probe")
        wait_archived(conn)
    assert isinstance(moment, datetime)
    return moment


def wait_archived(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]  # type: ignore[index]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        archived = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
        if archived and archived[0] and str(archived[0])[8:] >= str(segment)[8:]:
            return
        time.sleep(0.2)
    raise AssertionError(f"{segment} was not archived within 60 s")


def assert_restored_to_the_moment(env: dict[str, str]) -> None:
    with admin(env) as conn:
        assert conn.execute("SELECT count(*), max(n) FROM pitr_probe").fetchone() == (100, 100)
        assert conn.execute("SELECT id FROM place ORDER BY id").fetchall() == [("kept",)]
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        conn.execute("DROP TABLE pitr_probe")
        conn.execute("DELETE FROM place")


def info(env: dict[str, str]) -> dict[str, object]:
    result = planwise("pitr", "info", "--json", **env)
    assert result.returncode == 0, result.stderr
    facts: dict[str, object] = json.loads(result.stdout)
    return facts


@pytest.mark.slow
def test_setup_says_it_restarts_the_cluster_and_asks(pitr_env: dict[str, str]) -> None:
    env = pitr_env
    with admin(env) as conn:
        started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    refused = planwise("pitr", "setup", **env)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "RESTARTS the cluster" in refused.stdout and "--yes" in refused.stderr
    with admin(env) as conn:
        assert conn.execute("SELECT pg_postmaster_start_time()").fetchone() == started
        assert conn.execute("SHOW archive_mode").fetchone() == ("off",)

    done = planwise("pitr", "setup", "--yes", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "restarted the cluster" in done.stdout and "repo2 on " + REPO_ADDRESS in done.stdout
    config = cluster_directory(env) / "pgbackrest" / "pgbackrest.conf"
    assert config.stat().st_mode & 0o777 == 0o600  # it holds the passphrase
    text = config.read_text()
    for line in ("compress-type=zst", "archive-async=y", "process-max=2",
                 "repo2-cipher-type=aes-256-cbc", "repo2-host-type=tls"):  # fmt: skip
        assert f"\n{line}\n" in text


@pytest.mark.slow
def test_restore_to_a_moment(pitr_env: dict[str, str]) -> None:
    env = pitr_env
    backup = planwise("pitr", "backup", **env)
    assert backup.returncode == 0, backup.stdout + backup.stderr
    assert steps_shown(backup.stdout) == ["pgbackrest full backup into repo1", "pgbackrest info"]
    moment = write_and_note_a_moment(env)
    facts = info(env)
    assert [item["repo"] for item in facts["backups"]] == [1]  # type: ignore[attr-defined]
    assert facts["archiver"]["failed_count"] == 0  # type: ignore[index]

    refused = planwise("pitr", "restore", "--to", moment.isoformat(), **env)
    assert refused.returncode == 3
    with admin(env) as conn:
        assert conn.execute("SELECT to_regclass('pitr_probe')").fetchone() == (None,)

    restored = planwise("pitr", "restore", "--to", moment.isoformat(), "--yes", **env)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert steps_shown(restored.stdout) == [
        "stop the cluster",
        "pgbackrest restore",
        "start, replay WAL to the moment, promote",
        "repositories",
    ]
    assert_restored_to_the_moment(env)


@pytest.mark.slow
def test_offhost_restore_after_the_disk_is_lost(
    pitr_env: dict[str, str], repo_host: RepoHost
) -> None:
    """The repository host takes a full backup (connecting back to `pitr server`); WAL
    reaches it by archive-push; the data directory and repo1 are deleted; `pitr restore
    --repo 2` brings back exactly what was committed before the noted moment."""
    env = pitr_env
    repo_host.start([PLANWISE, "pitr", "server"], DB_ADDRESS, env)
    started = time.monotonic()
    backup = repo_host.run("--repo=2", "--type=full", "backup")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    moment = write_and_note_a_moment(env)

    facts = info(env)
    repos = {item["repo"]: item for item in facts["repositories"]}  # type: ignore[attr-defined]
    assert repos[2]["kind"] == "tls" and repos[2]["cipher"] == "aes-256-cbc"
    assert repos[2]["wal_max"] and repos[2]["earliest"]
    stored = list(repo_host.repository.glob("archive/planwise/*/*/*.zst"))
    assert stored and all(path.read_bytes()[:8] == b"Salted__" for path in stored)

    directory = cluster_directory(env)
    assert planwise("db", "down", **env).returncode == 0
    shutil.rmtree(directory / "data")
    shutil.rmtree(directory / "pgbackrest")  # repo1, its config, the spool
    restored = planwise("pitr", "restore", "--to", moment.isoformat(), "--repo", "2", "--yes",
                        **env)  # fmt: skip
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "re-created the stanza in repo1" in restored.stdout
    assert_restored_to_the_moment(env)
    assert time.monotonic() - started < 60
    with admin(env) as conn:  # archiving goes on, into both repositories
        wait_archived(conn)  # (the new timeline's history file failed once, before repo1 was back)
        row = conn.execute("SELECT last_archived_time > coalesce(last_failed_time, '-infinity')"
                           " FROM pg_stat_archiver").fetchone()  # fmt: skip
        assert row == (True,)


@pytest.mark.slow
def test_backup_schedule_takes_the_pitr_backup_and_a_size_sample_from_its_cron_line(
    pitr_env: dict[str, str],
) -> None:
    """The printed crontab line, run as cron runs it (no environment but its own)."""
    env = pitr_env
    printed = planwise("backup", "schedule", "--print-cron", **env)
    assert printed.returncode == 0, printed.stderr
    minute, hour, *days, command = printed.stdout.strip().split(" ", 5)
    assert (minute, hour, days) == ("15", "3", ["*", "*", "*"])
    assert (
        f"PLANWISE_PG_PORT={PORT} " in command
        and f"PLANWISE_HOME={env['PLANWISE_HOME']} " in command
    )
    assert f" {PLANWISE} backup schedule --once >> " in command and "<" not in command
    with admin(env) as conn:
        samples = conn.execute("SELECT count(*) FROM db_size_sample").fetchone()
    ran = subprocess.run(["env", "-i", "sh", "-c", command], capture_output=True, text=True,
                         timeout=300, check=False)  # fmt: skip
    log = (Path(env["PLANWISE_HOME"]) / "backup-schedule.log").read_text()
    assert ran.returncode == 0, log
    # repo1 lost its backups with the disk: pgBackRest makes the day's differential a full
    assert re.search(r"pitr: full backup \S+F in repo1", log), log
    assert "verified backup_" in log and "recorded" in log and "size samples" in log
    with admin(env) as conn:
        after = conn.execute("SELECT count(*) FROM db_size_sample").fetchone()
    assert samples and after and int(str(after[0])) > int(str(samples[0]))


@pytest.mark.slow
def test_retention_by_count_expires_older_full_backups(pitr_env: dict[str, str]) -> None:
    one = {**pitr_env, "PITR_RETENTION_FULL": "1"}
    before = [item["label"] for item in info(one)["backups"] if item["repo"] == 1]  # type: ignore[attr-defined]
    assert len(before) == 1
    again = planwise("pitr", "setup", **one)  # rewrites the config: no restart, no question
    assert again.returncode == 0 and "restarted" not in again.stdout, again.stderr
    made = planwise("pitr", "backup", "--type", "full", **one)
    assert made.returncode == 0, made.stdout + made.stderr
    after = [item["label"] for item in info(one)["backups"] if item["repo"] == 1]  # type: ignore[attr-defined]
    assert len(after) == 1 and after != before


def test_info_shows_the_restore_window_backups_and_archive_in_80_columns(
    pitr_env: dict[str, str], tmp_path: Path
) -> None:
    """`pitr info` in 80 columns; and /metrics of an API on this archiving cluster: PITR
    configured, the same restore window, the WAL archiving figures alerts.yml uses."""
    shown = planwise("pitr", "info", **{**pitr_env, "COLUMNS": "80"})
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, shown.stdout
    facts = info(pitr_env)
    window = facts["restore_window"]
    backups = facts["backups"]
    assert isinstance(window, dict) and isinstance(backups, list)
    assert window["earliest"] == min(item["stopped"] for item in backups)
    assert window["earliest"] < window["latest"] and window["latest_from"] == "last archived WAL"
    earliest = datetime.fromisoformat(window["earliest"]).strftime("%Y-%m-%d %H:%M:%S")
    assert lines[0].startswith(f"Restore window (UTC): {earliest} → ")
    assert lines[1].strip() == "from the oldest backup's end to the last archived WAL"
    for item in backups:
        assert re.search(rf"^\s*{item['repo']}\s+{item['label']}\s+full\s", shown.stdout, re.M)
    assert re.search(r"^\s*2\s+tls\s+ok, encrypted\s", shown.stdout, re.M), shown.stdout
    assert "repo2 WAL" in shown.stdout and re.search(r"^\s*failed\s+\d", shown.stdout, re.M)

    roles = planwise("db", "roles", **pitr_env)  # as `make db` does: app_service can log in
    assert roles.returncode == 0, roles.stdout + roles.stderr
    env = serve_environment(None, tmp_path, **pitr_env)
    with planwise_serve(env, tmp_path / "serve.log") as (base, _pid):
        text = httpx.get(f"{base}/metrics", timeout=30).raise_for_status().text
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }
    assert samples["planwise_pitr_configured"] == 1
    earliest_seconds = samples["planwise_pitr_restore_window_earliest_timestamp_seconds"]
    assert earliest_seconds == datetime.fromisoformat(window["earliest"]).timestamp()
    latest_seconds = samples["planwise_pitr_restore_window_latest_timestamp_seconds"]
    assert latest_seconds >= datetime.fromisoformat(window["latest"]).timestamp()
    assert CONDITIONAL - set(samples) == set()
    assert samples["planwise_db_wal_archive_failing"] == 0


def test_the_console_shows_pgbackrest_backups_and_the_restore_window(
    pitr_env: dict[str, str],
) -> None:
    """What the console's Overview and Backups pages read (pg_stat_archiver from the
    monitoring report, the rest from pgBackRest) is what `pitr info` says, and the Backups
    page lists every backup with the window."""
    settings = Settings(_env_file=None, **{name.lower(): value for name, value in pitr_env.items()})
    engine = create_engine(sqlalchemy_url(_admin_url(pitr_env["PLANWISE_HOME"])),
                           poolclass=pool.NullPool)  # fmt: skip
    with engine.connect() as connection:
        archiver = monitor.collect(connection)["archiver"]
    engine.dispose()
    state = monitor.pitr_state(settings, archiver, Cluster(settings, cluster_directory(pitr_env)))
    assert state["note"] is None, state
    shown, expected = state["info"], info(pitr_env)
    labels = [item["label"] for item in expected["backups"]]  # type: ignore[attr-defined]
    assert [item["label"] for item in shown["backups"]] == labels
    window = shown["restore_window"]
    assert window["earliest"] == expected["restore_window"]["earliest"]  # type: ignore[index]
    assert window["latest_from"] == "last archived WAL" and window["latest"] > window["earliest"]
    html = TEMPLATES.get_template("backups.html").render(
        pages=PAGES, admin=None, report={"archiver": archiver}, dumps=[], directory=None,
        note=None, pitr=state, archive_age_seconds=1, notes={},
    )  # fmt: skip
    assert f"Restore window: <b>{window['earliest']}</b> → <b>{window['latest']}</b>" in html
    assert all(f'data-label="{label}"' in html for label in labels), html


def test_bad_timestamps_are_refused(pitr_env: dict[str, str]) -> None:
    garbage = planwise("pitr", "restore", "--to", "yesterday-ish", "--yes", **pitr_env)
    assert garbage.returncode == 1 and "not a timestamp" in garbage.stderr
    future = planwise("pitr", "restore", "--to", "2999-01-01T00:00:00Z", "--yes", **pitr_env)
    assert future.returncode == 1 and "future" in future.stderr


def test_pitr_refuses_servers_we_do_not_manage() -> None:
    result = planwise("pitr", "info", DATABASE_URL="postgresql://u:p@db.example:5432/x")
    assert result.returncode == 1 and "host's job" in result.stderr


def test_retention_settings_reach_pgbackrest() -> None:
    layout = Layout(Path("/x/pgbackrest"), Path("/x/data"), Path("/x"), 5432)
    by_time = render_local(
        Settings(_env_file=None, pitr_retention_full_type="time", pitr_retention_full=14), layout
    )
    assert "repo1-retention-full-type=time\nrepo1-retention-full=14\n" in by_time
    by_count = render_local(Settings(_env_file=None), layout)
    assert "repo1-retention-full-type=count\nrepo1-retention-full=2\n" in by_count
    assert "repo1-retention-diff=7\n" in by_count and "repo2" not in by_count


def test_offhost_settings_are_checked() -> None:
    layout = Layout(Path("/x/pgbackrest"), Path("/x/data"), Path("/x"), 5432)
    with pytest.raises(PlanwiseError, match="PITR_REPO2_CIPHER_PASS"):
        render_local(Settings(_env_file=None, pitr_repo2_type="s3"), layout)
    s3 = render_local(
        Settings(
            _env_file=None, pitr_repo2_type="s3", pitr_repo2_cipher_pass="p",
            pitr_repo2_s3_endpoint="s3.test",
            pitr_repo2_s3_bucket="b", pitr_repo2_s3_region="r", pitr_repo2_s3_key="k",
            pitr_repo2_s3_key_secret="s", pitr_repo2_path="/planwise",
        ),  # type: ignore[arg-type]
        layout,
    )  # fmt: skip
    for line in ("repo2-type=s3", "repo2-s3-bucket=b", "repo2-path=/planwise",
                 "repo2-cipher-type=aes-256-cbc", "repo2-cipher-pass=p"):  # fmt: skip
        assert f"\n{line}\n" in s3
