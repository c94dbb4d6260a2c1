"""The `planwise` console script, run as a user runs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PLANWISE = str(Path(sys.executable).parent / "planwise")


def planwise(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the `planwise` console script as a user would: no terminal, wide output."""
    return subprocess.run(
        [PLANWISE, *args], capture_output=True, text=True, check=False, timeout=300,
        stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200", **env},
    )  # fmt: skip


def discard_cluster(env: dict[str, str]) -> None:
    """Stop a test's own managed cluster and delete its files (in /var/tmp too)."""
    planwise("db", "down", **env)
    match = re.search(r"directory\s*│\s*(\S+)", planwise("db", "status", **env).stdout)
    if match:
        directory = Path(match.group(1))
        shutil.rmtree(directory, ignore_errors=True)
        if directory.parent.name.startswith("planwise-"):  # the /var/tmp fallback
            shutil.rmtree(directory.parent, ignore_errors=True)


STEP_LINE = re.compile(r"^step (.+): done in \d+\.\d\ds$")


def steps_shown(output: str) -> list[str]:
    """The steps a command reported, off a terminal: one plain line each, with its time."""
    return [match[1] for line in output.splitlines() if (match := STEP_LINE.match(line))]
