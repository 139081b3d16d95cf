"""Progress bars on the terminal: the `Progress` the CLI commands hand to the cores.

`reporter()` chooses: live rich bars (with rate and time left) when stderr is an interactive
terminal, else one log line per stage (`LoggedProgress`), so that pipes and logs get no escape
codes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichBars
from rich.table import Column
from rich.text import Text

from genecommons.progress import LoggedProgress, Progress, Stage


class _Amount(ProgressColumn):
    """Done of total: bytes as sizes, counts with their unit, fractions as a percentage."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()
        self._count = MofNCompleteColumn()
        self._percent = TaskProgressColumn()

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "")
        if unit == "bytes":
            return self._bytes.render(task)
        if not unit:
            return self._percent.render(task) if task.total is not None else Text("")
        if task.total is None:
            return Text(f"{task.completed:,.0f} {unit}", style="progress.download")
        return Text(f"{task.completed:,.0f}/{task.total:,.0f} {unit}", style="progress.download")


class _Rate(ProgressColumn):
    """Units per second: bytes as a transfer speed, counts with their unit."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(min_width=12))
        self._bytes = TransferSpeedColumn()

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "")
        if unit == "bytes":
            return self._bytes.render(task)
        speed = task.finished_speed or task.speed
        if not unit:
            return Text("")
        if speed is None:
            return Text(f"? {unit}/s", style="progress.data.speed")
        return Text(f"{speed:,.1f} {unit}/s", style="progress.data.speed")


class _BarStage:
    def __init__(self, bars: RichBars, task: TaskID) -> None:
        self._bars = bars
        self._task = task

    def advance(self, amount: float = 1) -> None:
        self._bars.advance(self._task, amount)

    def update(self, completed: float) -> None:
        self._bars.update(self._task, completed=completed)

    def total(self, total: float | None) -> None:
        self._bars.update(self._task, total=total)


class BarProgress:
    """Rich bars on `console`, one per stage, each kept (ticked off) when the stage ends.

    Use it as a context manager around the work: the display runs while it is open."""

    def __init__(self, console: Console) -> None:
        self._bars = RichBars(
            SpinnerColumn(finished_text="[green]✓[/green]"),
            TextColumn("{task.description}"),
            BarColumn(),
            _Amount(),
            _Rate(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            # each redraw costs milliseconds of CPU: 4 a second keeps it a few percent of the
            # work, and is plenty for stages that last seconds to minutes
            refresh_per_second=4,
        )

    def __enter__(self) -> BarProgress:
        self._bars.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._bars.stop()

    @contextmanager
    def stage(
        self, description: str, *, total: float | None = None, unit: str = ""
    ) -> Iterator[Stage]:
        """A bar for `description`, completed when the stage ends without an error."""
        task_id = self._bars.add_task(escape(description), total=total, unit=unit)
        yield _BarStage(self._bars, task_id)
        task = next(t for t in self._bars.tasks if t.id == task_id)
        end = task.total if task.total is not None else max(task.completed, 1)
        self._bars.update(task_id, total=end, completed=end)


class _Logged(LoggedProgress):
    """`LoggedProgress` usable where a `BarProgress` is (a context manager)."""

    def __enter__(self) -> _Logged:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def reporter(console: Console | None = None) -> AbstractContextManager[Progress]:
    """Bars on `console` (default: stderr) when it is an interactive terminal, else one log
    line a stage. Rich's conventions decide: a dumb terminal (TERM=dumb) or TTY_INTERACTIVE=0
    gets log lines, TTY_INTERACTIVE=1 bars."""
    console = console or Console(stderr=True)
    if console.is_interactive:
        return BarProgress(console)
    return _Logged()
