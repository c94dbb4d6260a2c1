"""`planwise pitr setup|backup|info|restore` (pgBackRest, managed cluster only).

Exit codes: 0 done; 1 failed; 3 not confirmed.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from planwise.cli_support import confirm_or_abort, console, managed_cluster_settings
from planwise.db.cluster import Cluster
from planwise.ops.pitr.pgbackrest import Pitr, parse_target

app = typer.Typer(no_args_is_help=True, help="WAL archiving and point-in-time recovery.")


def pitr() -> Pitr:
    settings = managed_cluster_settings(
        "WAL archiving and point-in-time recovery are the host's job there (on Supabase: "
        "the PITR add-on). `planwise backup` still takes verified logical backups of it."
    )
    return Pitr(Cluster(settings))


@app.command()
def setup() -> None:
    """Repository, WAL archiving (archive_timeout 60 s), stanza; restarts if needed."""
    for line in pitr().setup():
        console.print(f"- {line}")


@app.command()
def backup(
    kind: Annotated[str, typer.Option("--type", help="full | diff | incr")] = "full",
) -> None:
    """Take a pgBackRest backup into the local repository."""
    made = pitr().backup(kind)
    console.print(
        f"{made['type']} backup {made['label']}: {made['size_bytes'] / 1024**2:.1f} MiB, "
        f"{made['repository_bytes'] / 1024**2:.1f} MiB in the repository, "
        f"{made['started']} → {made['stopped']}"
    )


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Backups in the repository, the WAL range archived, and archiving status."""
    facts = pitr().info()
    if as_json:
        console.print_json(json.dumps(facts))
        return
    table = Table("label", "type", "started", "stopped", "size")
    for item in facts["backups"]:
        table.add_row(item["label"], item["type"], item["started"], item["stopped"],
                      f"{item['size_bytes'] / 1024**2:.1f} MiB")  # fmt: skip
    console.print(f"stanza status: {facts['status']}")
    console.print(table)
    console.print(f"WAL archived: {facts['wal_archive']}")
    console.print(f"archiver: {facts['archiver']}")


@app.command()
def restore(
    to: Annotated[str, typer.Option("--to", help="ISO 8601 time; UTC if no zone")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Put the whole cluster back to a moment: stop, restore, replay WAL, promote, start."""
    target = parse_target(to)
    manager = pitr()
    confirm_or_abort(
        f"This stops the cluster in {manager.cluster.directory}, restores every database in it "
        f"to {target.isoformat()} (later changes are lost), promotes and starts it.",
        yes,
    )
    seconds = manager.restore(target)
    console.print(f"restored to {target.isoformat()} and promoted in {seconds:.1f}s")
