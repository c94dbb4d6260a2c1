"""Progress of long backup work, step by step: a rich display (spinner, step, elapsed
time) when stdout is a terminal, else one plain line per finished step,
`step NAME: done in 1.23s` (or `failed after …`), which logs and cron mail keep."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.text import Text

StepHook = Callable[[str], AbstractContextManager[None]]
"""`with step("pg_dump"): …` around each stage of the work."""


class _Seconds(ProgressColumn):
    """How long the step has taken (it stops when the step is done), to 0.1 s."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.elapsed or 0:.1f}s", style="yellow")


@contextmanager
def no_progress(_name: str) -> Iterator[None]:
    """The hook for callers that show nothing (`migrate apply`'s pre-migration backup)."""
    yield


@contextmanager
def steps(console: Console) -> Iterator[StepHook]:
    """A step hook that reports on `console` while the block runs."""
    if not console.is_terminal:
        yield lambda name: _plain_step(console, name)
        return
    display = Progress(
        SpinnerColumn(finished_text="[green]✓[/green]"),
        TextColumn("{task.description}"),
        _Seconds(),
        console=console,
    )
    with display:
        yield lambda name: _live_step(display, name)


@contextmanager
def _plain_step(console: Console, name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        console.print(
            f"step {name}: failed after {time.perf_counter() - started:.2f}s", highlight=False
        )
        raise
    console.print(f"step {name}: done in {time.perf_counter() - started:.2f}s", highlight=False)


@contextmanager
def _live_step(display: Progress, name: str) -> Iterator[None]:
    task = display.add_task(name, total=1)
    try:
        yield
    except BaseException:
        display.update(task, description=f"[red]{name}: failed[/red]")
        display.stop_task(task)
        raise
    display.update(task, completed=1)
