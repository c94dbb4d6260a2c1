"""pgbackrest.conf for this host and for a repository host, rendered from the settings.

repo1 is the local repository beside the cluster. repo2, when configured, is off this
disk: a repository host reached over pgBackRest's TLS protocol (`tls`), or S3-compatible
object storage (`s3`). Both are encrypted with aes-256-cbc; all repositories and WAL are
zstd-compressed, WAL is pushed asynchronously (`archive-async`, through a spool) with
`process-max` processes.

pgBackRest 2.45 (Debian 12) cannot run `backup` into a repository on a repository host
from the database host: the repository host takes those backups itself, connecting back
to `planwise pitr server` on this host. `render_repo_host` writes its configuration.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from planwise.config import Settings
from planwise.errors import PlanwiseError

STANZA = "planwise"
CIPHER_TYPE = "aes-256-cbc"
COMPRESS_TYPE = "zst"


@dataclass(frozen=True)
class PgHost:
    """Another member of a Patroni cluster on this host: pg2, pg3… in pgbackrest.conf."""

    data_dir: Path
    socket_dir: Path
    port: int


@dataclass(frozen=True)
class Layout:
    """Where this host keeps pgBackRest's files, and where the cluster is (pg1; on a
    Patroni cluster, member 1, and the other members in `others`)."""

    directory: Path
    data_dir: Path
    socket_dir: Path
    pg_port: int
    others: tuple[PgHost, ...] = ()

    @property
    def config(self) -> Path:
        return self.directory / "pgbackrest.conf"

    @property
    def repository(self) -> Path:
        return self.directory / "repo"


def _secret(value: object | None) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter else None


def _require(settings: Settings, *names: str) -> None:
    missing = [name.upper() for name in names if getattr(settings, name) in (None, "")]
    if missing:
        raise PlanwiseError(
            f"PITR_REPO2_TYPE={settings.pitr_repo2_type} needs {', '.join(missing)} "
            "(see README, Point-in-time recovery)"
        )


def _retention(index: int, settings: Settings) -> list[str]:
    return [
        f"repo{index}-retention-full-type={settings.pitr_retention_full_type}",
        f"repo{index}-retention-full={settings.pitr_retention_full}",
        f"repo{index}-retention-diff={settings.pitr_retention_diff}",
    ]


def _repo2(settings: Settings) -> list[str]:
    kind = settings.pitr_repo2_type
    if kind == "none":
        return []
    _require(settings, "pitr_repo2_cipher_pass")
    cipher = [f"repo2-cipher-type={CIPHER_TYPE}",
              f"repo2-cipher-pass={_secret(settings.pitr_repo2_cipher_pass)}"]  # fmt: skip
    if kind == "tls":
        _require(settings, "pitr_repo2_host", "pitr_tls_ca_file", "pitr_tls_cert_file",
                 "pitr_tls_key_file")  # fmt: skip
        lines = [
            f"repo2-host={settings.pitr_repo2_host}",
            "repo2-host-type=tls",
            f"repo2-host-port={settings.pitr_repo2_port}",
            f"repo2-host-config={settings.pitr_repo2_host_config}",
            f"repo2-host-ca-file={settings.pitr_tls_ca_file}",
            f"repo2-host-cert-file={settings.pitr_tls_cert_file}",
            f"repo2-host-key-file={settings.pitr_tls_key_file}",
        ]
    else:
        _require(settings, "pitr_repo2_s3_endpoint", "pitr_repo2_s3_bucket", "pitr_repo2_s3_region",
                 "pitr_repo2_s3_key", "pitr_repo2_s3_key_secret")  # fmt: skip
        lines = [
            "repo2-type=s3",
            f"repo2-path={settings.pitr_repo2_path}",
            f"repo2-s3-endpoint={settings.pitr_repo2_s3_endpoint}",
            f"repo2-s3-bucket={settings.pitr_repo2_s3_bucket}",
            f"repo2-s3-region={settings.pitr_repo2_s3_region}",
            f"repo2-s3-key={_secret(settings.pitr_repo2_s3_key)}",
            f"repo2-s3-key-secret={_secret(settings.pitr_repo2_s3_key_secret)}",
            f"repo2-s3-uri-style={settings.pitr_repo2_s3_uri_style}",
        ]
    return lines + cipher + _retention(2, settings)


def _tls_server(settings: Settings) -> list[str]:
    """What `pitr server` needs: only with a repository host that connects back."""
    if settings.pitr_repo2_type != "tls" or not settings.pitr_tls_repo_host_cn:
        return []
    return [
        f"tls-server-address={settings.pitr_tls_server_address}",
        f"tls-server-port={settings.pitr_tls_server_port}",
        f"tls-server-ca-file={settings.pitr_tls_ca_file}",
        f"tls-server-cert-file={settings.pitr_tls_cert_file}",
        f"tls-server-key-file={settings.pitr_tls_key_file}",
        f"tls-server-auth={settings.pitr_tls_repo_host_cn}={STANZA}",
    ]


def render_local(settings: Settings, layout: Layout) -> str:
    """pgbackrest.conf of this (the database) host. Holds secrets: write it 0600."""
    lines = [
        "[global]",
        f"repo1-path={layout.repository}",
        *_retention(1, settings),
        *_repo2(settings),
        f"compress-type={COMPRESS_TYPE}",
        "archive-async=y",
        f"spool-path={layout.directory / 'spool'}",
        f"process-max={settings.pitr_process_max}",
        f"log-path={layout.directory / 'log'}",
        f"lock-path={layout.directory / 'lock'}",
        "start-fast=y",
        "log-level-console=warn",
        *_tls_server(settings),
        "",
        f"[{STANZA}]",
        f"pg1-path={layout.data_dir}",
        f"pg1-port={layout.pg_port}",
        f"pg1-socket-path={layout.socket_dir}",
        "pg1-user=postgres",
    ]
    for number, host in enumerate(layout.others, 2):
        lines += [
            f"pg{number}-path={host.data_dir}",
            f"pg{number}-port={host.port}",
            f"pg{number}-socket-path={host.socket_dir}",
            f"pg{number}-user=postgres",
        ]
    if layout.others:
        # pgBackRest finds the primary among the pgN itself; backups copy from a standby.
        lines.insert(lines.index(f"[{STANZA}]") + 1, "backup-standby=y")
    return "\n".join(lines) + "\n"


def certificate_cn(path: Path) -> str:
    """The common name of a PEM certificate (what pgBackRest's `tls-server-auth` matches)."""
    result = subprocess.run(
        ["openssl", "x509", "-in", str(path), "-noout", "-subject", "-nameopt", "RFC2253"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise PlanwiseError(f"cannot read the certificate {path}: {result.stderr.strip()}")
    for part in result.stdout.strip().removeprefix("subject=").split(","):
        key, _, value = part.strip().partition("=")
        if key == "CN":
            return value
    raise PlanwiseError(f"the certificate {path} has no common name (CN)")


@dataclass(frozen=True)
class RepoHostFiles:
    """The repository host's own paths (its certificate, key, CA; log and lock)."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    log_path: Path = Path("/var/log/pgbackrest")
    lock_path: Path = Path("/tmp/pgbackrest")  # noqa: S108 (pgBackRest's default)


def render_repo_host(settings: Settings, layout: Layout, files: RepoHostFiles) -> str:
    """pgbackrest.conf for the repository host of a `tls` repo2.

    Its repository is `repo2` there too (pgBackRest's remote uses the client's index).
    The passphrase is not written: start its `pgbackrest server` and run its backups with
    PGBACKREST_REPO2_CIPHER_PASS in the environment.
    """
    if settings.pitr_repo2_type != "tls":
        raise PlanwiseError("PITR_REPO2_TYPE is not `tls`: there is no repository host")
    _require(settings, "pitr_repo2_host", "pitr_tls_cert_file", "pitr_tls_repo_host_cn")
    assert settings.pitr_tls_cert_file is not None
    client = certificate_cn(settings.pitr_tls_cert_file)
    backup = f"pgbackrest --stanza={STANZA} --repo=2"
    lines = [
        "# pgBackRest repository host of Planwise's repo2 (`planwise pitr repo-host-config`).",
        "# Run with PGBACKREST_REPO2_CIPHER_PASS set: `pgbackrest server`, and from cron",
        f"# `{backup} --type=full backup` weekly, `{backup} --type=diff backup` daily.",
        "[global]",
        f"repo2-path={settings.pitr_repo2_path}",
        f"repo2-cipher-type={CIPHER_TYPE}",
        *_retention(2, settings),
        f"compress-type={COMPRESS_TYPE}",
        f"process-max={settings.pitr_process_max}",
        f"log-path={files.log_path}",
        f"lock-path={files.lock_path}",
        "start-fast=y",
        "log-level-console=warn",
        f"tls-server-address={settings.pitr_repo2_host}",
        f"tls-server-port={settings.pitr_repo2_port}",
        f"tls-server-ca-file={files.ca_file}",
        f"tls-server-cert-file={files.cert_file}",
        f"tls-server-key-file={files.key_file}",
        f"tls-server-auth={client}={STANZA}",
        "",
        f"[{STANZA}]",
        f"pg1-host={settings.pitr_tls_server_address}",
        "pg1-host-type=tls",
        f"pg1-host-port={settings.pitr_tls_server_port}",
        f"pg1-host-config={layout.config}",
        f"pg1-host-ca-file={files.ca_file}",
        f"pg1-host-cert-file={files.cert_file}",
        f"pg1-host-key-file={files.key_file}",
        f"pg1-path={layout.data_dir}",
        f"pg1-port={layout.pg_port}",
        f"pg1-socket-path={layout.socket_dir}",
    ]
    return "\n".join(lines) + "\n"
