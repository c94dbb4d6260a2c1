"""`planwise places …`: bulk import of Google Places API results.

Exit codes of `import`: 0 every record imported; 4 some records were rejected (listed)
while the valid ones were imported; 1 a file is missing or unreadable (nothing imported).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from planwise.cli_support import console
from planwise.config import get_settings
from planwise.places.importer import ImportReport, import_places

app = typer.Typer(no_args_is_help=True, help="Places: import Google Places API results.")

EXIT_REJECTED = 4
SHOW_REJECTED = 20


def print_report(report: ImportReport) -> None:
    summary = Table(show_header=False, title="Places import")
    summary.add_column(justify="left")
    summary.add_column(justify="right")
    summary.add_row("read", f"{report.read:,}")
    summary.add_row("inserted", f"{report.inserted:,}")
    summary.add_row("updated", f"{report.updated:,}")
    summary.add_row("unchanged", f"{report.unchanged:,}")
    summary.add_row("duplicates (last one kept)", f"{report.duplicates:,}")
    summary.add_row("rejected", f"{len(report.rejected):,}")
    summary.add_row("seconds", f"{report.seconds:.2f}")
    summary.add_row("places/s", f"{report.rate:,.0f}")
    if report.rebuilt_indexes:
        summary.add_row("indexes rebuilt", ", ".join(report.rebuilt_indexes))
        summary.add_row("index build seconds", f"{report.index_seconds:.2f}")
    console.print(summary)
    if report.rejected:
        shown = report.rejected[:SHOW_REJECTED]
        more = len(report.rejected) - len(shown)
        title = f"Rejected records (first {len(shown)} of {len(report.rejected):,})"
        table = Table(title=title if more else "Rejected records")
        table.add_column("file")
        table.add_column("line/record", justify="right")
        table.add_column("reason")
        for rejection in shown:
            table.add_row(escape(rejection.source), str(rejection.line), escape(rejection.reason))
        console.print(table)


@app.command("import")
def import_(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Search (`results`), Details (`result`) responses or place objects: "
            "JSON, or JSON Lines (.jsonl/.ndjson)",
            show_default=False,
        ),
    ],
    progress: Annotated[bool, typer.Option(help="show a progress bar on stderr")] = True,
    rebuild_indexes: Annotated[
        bool,
        typer.Option(
            help="drop idx_place_location and idx_place_category and build them again "
            "before the commit (place is locked for readers and writers until then; "
            "measured: 1-15 % less server CPU, not reliably faster, see the README)",
        ),
    ] = False,
) -> None:
    """Import Google Places API results in one transaction; re-importing changes nothing.

    Bad records are listed and skipped (exit code 4); the others are imported.
    """
    report = import_places(
        get_settings().admin_url, files, progress=progress, rebuild_indexes=rebuild_indexes,
        announce=lambda message: console.print(escape(message)),
    )  # fmt: skip
    print_report(report)
    if report.rejected:
        raise typer.Exit(EXIT_REJECTED)
