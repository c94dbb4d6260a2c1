"""`planwise pitr setup|backup|info|restore|server|repo-host-config` (pgBackRest) for the
managed cluster, or for the Patroni cluster configured in this checkout (setup, backup
from a standby, info; not restore).

Exit codes: 0 done; 1 failed; 3 not confirmed.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from planwise.cli_support import confirm_or_abort, console, managed_cluster_settings
from planwise.db.cluster import Cluster
from planwise.ops.cluster.patroni import HACluster
from planwise.ops.pitr.conf import RepoHostFiles
from planwise.ops.pitr.pgbackrest import Pitr, parse_target
from planwise.progress import steps

app = typer.Typer(no_args_is_help=True, help="WAL archiving and point-in-time recovery.")

Yes = Annotated[bool, typer.Option("--yes", help="do not ask")]
Repo = Annotated[int, typer.Option("--repo", min=1, max=2, help="1 local, 2 off this disk")]


def pitr() -> Pitr:
    settings = managed_cluster_settings(
        "WAL archiving and point-in-time recovery are the host's job there (on Supabase: "
        "the PITR add-on). `planwise backup` still takes verified logical backups of it."
    )
    ha = HACluster(settings)
    if ha.node_indexes():
        return ha.pitr()
    return Pitr(Cluster(settings))


@app.command()
def setup(yes: Yes = False) -> None:
    """Repositories, WAL archiving (archive_timeout 60 s), stanza; restarts if needed."""
    manager = pitr()
    if manager.cluster.running and manager.needs_restart():
        confirm_or_abort(
            f"This turns on WAL archiving in {manager.cluster.data_dir} and RESTARTS the "
            "cluster: every open connection is dropped and the API fails its requests "
            "until it is back (a few seconds).",
            yes,
        )
    for line in manager.setup():
        console.print(f"- {line}")


@app.command()
def backup(
    kind: Annotated[str, typer.Option("--type", help="full | diff | incr")] = "full",
    repo: Repo = 1,
) -> None:
    """Take a pgBackRest backup into a repository (repo2 only when it is S3)."""
    with steps(console) as step:
        made = pitr().backup(kind, repo, step)
    console.print(
        f"{made['type']} backup {made['label']} in repo{repo}: "
        f"{made['size_bytes'] / 1024**2:.1f} MiB, "
        f"{made['repository_bytes'] / 1024**2:.1f} MiB in the repository, "
        f"{made['started']} → {made['stopped']}"
    )


def _moment(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")


def _mib(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB"


def _print_info(facts: dict[str, Any]) -> None:
    window = facts["restore_window"]
    console.print(
        f"Restore window (UTC): {_moment(window['earliest'])} → {_moment(window['latest'])}\n"
        f"  from the oldest backup's end to the {window['latest_from']}",
        highlight=False,
    )
    repos = Table("repo", "kind", "status", "earliest", "latest", box=box.SIMPLE_HEAD,
                  title="Repositories", title_justify="left")  # fmt: skip
    for item in facts["repositories"]:
        status = item["status"] if item["cipher"] == "none" else f"{item['status']}, encrypted"
        repos.add_row(str(item["repo"]), item["kind"], status, _moment(item["earliest"]),
                      _moment(item["latest"]))  # fmt: skip
    console.print(repos)
    backups = Table("repo", "label", "type", "finished (UTC)", "size", box=box.SIMPLE_HEAD,
                    title="Backups", title_justify="left")  # fmt: skip
    for item in facts["backups"]:
        backups.add_row(str(item["repo"]), item["label"], item["type"],
                        _moment(item["stopped"]), _mib(item["size_bytes"]))  # fmt: skip
    console.print(backups)
    archive = Table("", "", box=None, show_header=False, title="Archive",
                    title_justify="left")  # fmt: skip
    for item in facts["repositories"]:
        span = f"{item['wal_min']} … {item['wal_max']}" if item["wal_min"] else "none"
        archive.add_row(f"repo{item['repo']} WAL", span)
    archiver = facts["archiver"]
    if archiver is None:
        archive.add_row("archiver", "cluster not running")
    else:
        archive.add_row("archived", f"{archiver['archived_count']}, last "
                        f"{archiver['last_archived_wal'] or '-'} at "
                        f"{_moment(archiver['last_archived_time'])}")  # fmt: skip
        failed = str(archiver["failed_count"])
        if archiver["failed_count"]:
            failed = (f"[red]{failed}[/red], last {archiver['last_failed_wal']} at "
                      f"{_moment(archiver['last_failed_time'])}")  # fmt: skip
        archive.add_row("failed", failed)
    console.print(archive)


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Restore window, backups per repository, archived WAL and archiving status."""
    facts = pitr().info()
    if as_json:
        console.print_json(json.dumps(facts))
        return
    _print_info(facts)


@app.command()
def restore(
    to: Annotated[str, typer.Option("--to", help="ISO 8601 time; UTC if no zone")],
    repo: Annotated[
        int | None, typer.Option("--repo", min=1, max=2, help="default: the first that has it")
    ] = None,
    yes: Yes = False,
) -> None:
    """Put the whole cluster back to a moment: stop, restore, replay WAL, promote, start."""
    target = parse_target(to)
    manager = pitr()
    source = f" from repo{repo}" if repo else ""
    confirm_or_abort(
        f"This stops the cluster in {manager.cluster.directory}, restores every database in it "
        f"to {target.isoformat()}{source} (later changes are lost), promotes and starts it.",
        yes,
    )
    with steps(console) as step:
        seconds, notes = manager.restore(target, repo, step)
    console.print(f"restored to {target.isoformat()} and promoted in {seconds:.1f}s")
    for note in notes:
        console.print(f"- {note}")


@app.command()
def server() -> None:
    """Run pgBackRest's TLS server here (foreground), for the repository host's backups."""
    command = pitr().server_command()
    console.print(f"pgBackRest TLS server: {' '.join(command)}", highlight=False)
    raise typer.Exit(subprocess.run(command, check=False).returncode)


@app.command("repo-host-config")
def repo_host_config(
    ca_file: Annotated[Path, typer.Option(help="the CA file on the repository host")],
    cert_file: Annotated[Path, typer.Option(help="its certificate (CN: PITR_TLS_REPO_HOST_CN)")],
    key_file: Annotated[Path, typer.Option(help="its certificate's key")],
    log_path: Annotated[Path, typer.Option()] = Path("/var/log/pgbackrest"),
    lock_path: Annotated[Path, typer.Option()] = Path("/tmp/pgbackrest"),  # noqa: S108
) -> None:
    """Print pgbackrest.conf for the repository host of a `tls` repo2."""
    files = RepoHostFiles(ca_file, cert_file, key_file, log_path, lock_path)
    typer.echo(pitr().repo_host_config(files), nl=False)
