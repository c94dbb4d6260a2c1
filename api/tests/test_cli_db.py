"""`planwise db …` run as a user runs it: a subprocess, its output and its exit code."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from planwise.db import migrations
from planwise.db.cluster import Cluster
from tests.support.cli import discard_cluster, planwise
from tests.support.databases import DatabaseUnderTest
from tests.support.migrations import revision_chain

SPARE_PORT = 15491


def test_up_is_idempotent_and_prints_the_url(cluster: Cluster) -> None:
    result = planwise("db", "up")
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert re.search(r"DATABASE_URL=postgresql://app_service:\S+@127\.0\.0\.1:\d+/", result.stdout)


def test_status_of_the_running_cluster(cluster: Cluster) -> None:
    result = planwise("db", "status")
    assert result.returncode == 0, result.stderr
    assert "running" in result.stdout and str(cluster.directory) in result.stdout
    assert "15." in result.stdout and "MiB" in result.stdout


def test_url_for_each_role(cluster: Cluster) -> None:
    users = {role: planwise("db", "url", "--as", role).stdout for role in ("admin", "app", "read")}
    assert users["admin"].startswith("postgresql://postgres:")
    assert users["app"].startswith("postgresql://app_service:")
    assert users["read"].startswith("postgresql://app_read:")
    bad = planwise("db", "url", "--as", "root")
    assert bad.returncode == 1 and "unknown role" in bad.stderr


@pytest.fixture
def spare_home(tmp_path: Path) -> Iterator[Path]:
    """A second managed cluster for this test only, on its own port."""
    home = tmp_path / "home"
    yield home
    discard_cluster({"PLANWISE_HOME": str(home), "PLANWISE_PG_PORT": str(SPARE_PORT)})


@pytest.mark.slow
def test_full_lifecycle_of_a_new_cluster(spare_home: Path) -> None:
    env = {"PLANWISE_HOME": str(spare_home), "PLANWISE_PG_PORT": str(SPARE_PORT)}
    first = planwise("db", "up", **env)
    assert first.returncode == 0, first.stderr
    assert "initialised" in first.stdout and f":{SPARE_PORT}/planwise" in first.stdout
    assert (spare_home / "local.env").stat().st_mode & 0o777 == 0o600
    if os.geteuid() == 0 and str(spare_home).startswith("/tmp/pytest-of-"):  # noqa: S108
        # pytest's tmp dir is 0700 root: postgres cannot enter, so the cluster moves.
        assert "/var/tmp/planwise-" in first.stdout  # noqa: S108
    again = planwise("db", "up", **env)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    migrate = planwise("db", "migrate", **env)
    assert migrate.returncode == 0, migrate.stderr
    roles = planwise("db", "roles", **env)
    assert roles.returncode == 0 and "app_service" in roles.stdout, roles.stderr
    assert_no_password_in_statement_history(spare_home / "local.env", env)
    assert planwise("db", "check", **env).returncode == 0
    assert planwise("db", "down", **env).returncode == 0
    stopped = planwise("db", "status", **env)
    assert stopped.returncode == 3 and "stopped" in stopped.stdout


def assert_no_password_in_statement_history(local_env: Path, env: dict[str, str]) -> None:
    """Passwords reach the server only as SCRAM verifiers: pg_stat_statements keeps the text
    of every ALTER ROLE, so a plain password would be readable there."""
    secrets = [
        line.split("=", 1)[1].strip()
        for line in local_env.read_text().splitlines()
        if line.split("=", 1)[0].endswith("_PASSWORD")
    ]
    assert len(secrets) >= 3
    admin_url = planwise("db", "url", "--as", "admin", **env).stdout.strip().splitlines()[-1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        texts = [str(row[0]) for row in conn.execute("SELECT query FROM pg_stat_statements")]
    assert any("SCRAM-SHA-256$" in text for text in texts)
    assert not [text for text in texts for secret in secrets if secret in text]


def test_external_database_url_never_starts_a_cluster(
    test_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": test_db.admin_url, "PLANWISE_HOME": str(tmp_path / "home")}
    up = planwise("db", "up", **env)
    assert up.returncode == 0, up.stderr
    assert "no local cluster started" in up.stdout and "reachable" in up.stdout
    assert not (tmp_path / "home" / "pg").exists()
    status = planwise("db", "status", **env)
    assert status.returncode == 0 and "external" in status.stdout


def test_unreachable_external_server_is_a_clear_error(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": "postgresql://app:pw@127.0.0.1:1/planwise",
        "PLANWISE_HOME": str(tmp_path),
    }
    up = planwise("db", "up", **env)
    assert up.returncode == 1 and "database unreachable" in up.stderr
    assert "Traceback" not in up.stderr
    status = planwise("db", "status", **env)
    assert status.returncode == 3 and "unreachable" in status.stdout


def test_bad_configuration_exits_2_naming_the_variable() -> None:
    result = planwise("db", "status", DATABASE_POOL_SIZE="lots")
    assert result.returncode == 2
    assert "DATABASE_POOL_SIZE" in result.stderr and "Traceback" not in result.stderr


def test_downgrade_needs_confirmation(test_db: DatabaseUnderTest) -> None:
    env = {"MIGRATION_DATABASE_URL": test_db.admin_url}
    result = planwise("db", "downgrade", "base", **env)
    assert result.returncode == 3 and "not confirmed" in result.stderr
    assert "dropped with their data" in result.stdout
    assert planwise("db", "check", **env).returncode == 0


@pytest.mark.parametrize("variable", ["MIGRATION_ENVIRONMENTS", "STORAGE_ALLOWED_MIME_TYPES"])
def test_a_json_setting_that_is_not_json_exits_2_naming_it(variable: str) -> None:
    result = planwise("migrate", "status", **{variable: '{"staging": '})
    assert result.returncode == 2, result.stderr
    assert f"{variable}: not valid JSON" in result.stderr and "Traceback" not in result.stderr


def test_downgrade_by_steps_and_to_an_unknown_revision(test_db: DatabaseUnderTest) -> None:
    env = {"MIGRATION_DATABASE_URL": test_db.admin_url}
    chain = revision_chain()  # head first
    unknown = planwise("db", "downgrade", "fedcba987654", "--yes", **env)
    assert unknown.returncode == 1 and "unknown revision 'fedcba987654'" in unknown.stderr
    assert "Traceback" not in unknown.stderr and "This downgrades" not in unknown.stdout
    past_base = planwise("db", "downgrade", f"-{len(chain) + 1}", "--yes", **env)
    assert past_base.returncode == 1 and "past base" in past_base.stderr
    step = planwise("db", "downgrade", "-1", "--yes", **env)
    assert step.returncode == 0, step.stdout + step.stderr
    assert f"to {chain[1]}" in step.stdout and f"schema at {chain[1]}" in step.stdout
    assert migrations.current_revision(test_db.admin_url) == chain[1]
    migrations.upgrade(test_db.admin_url)
    typo = planwise("db", "migrate", "fedcba987654", **env)
    assert typo.returncode == 1 and "Can't locate revision" in typo.stderr
    assert "Traceback" not in typo.stderr


def test_serve_on_a_busy_port_exits_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = planwise("serve", "--port", str(port), PLANWISE_ENV="development")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_psql_passes_its_arguments_and_no_password_in_argv(
    test_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    env = {"MIGRATION_DATABASE_URL": test_db.admin_url}
    script = tmp_path / "q.sql"
    script.write_text("select count(*) from place;\n")
    # -c, -f and -c again, in order; the last one has psql's shell print psql's own
    # command line (/proc/<psql>/cmdline): no URL, no password there.
    result = planwise(
        "db", "psql", "-At", "-c", "select current_database()", "-f", str(script),
        "-c", r"\! cat /proc/$PPID/cmdline", **env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    name, count, argv = result.stdout.split("\n", 2)
    assert (name, count) == (test_db.name, "0")
    assert argv.split("\0")[0].endswith("psql") and "postgresql://" not in argv
    password = make_url(test_db.admin_url).password
    assert password and password not in result.stdout
