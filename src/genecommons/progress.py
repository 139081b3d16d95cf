"""Progress of long work, as the plain-Python cores report it.

A core takes a `Progress` and opens one `Stage` per step of its work (`with progress.stage(
"validating", total=rows, unit="rows") as step: ... step.advance()`); what the reports become is
the caller's choice: nothing (`SILENT`, the default of every core), one log line per stage
(`LoggedProgress`, for pipes and logs), or a live bar (`genecommons.progress_bars`, the only
module that draws them). Reporting never changes what the work computes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Protocol

logger = logging.getLogger(__name__)


class Stage(Protocol):
    """One step of a piece of work, with its own count and (when known) total."""

    def advance(self, amount: float = 1) -> None:
        """Count `amount` more units done."""

    def update(self, completed: float) -> None:
        """Set the units done so far (a position, for work that reports where it is)."""

    def total(self, total: float | None) -> None:
        """Set (or correct) how many units the stage has, once known."""


class Progress(Protocol):
    """Where a core reports the stages of its work."""

    def stage(
        self, description: str, *, total: float | None = None, unit: str = ""
    ) -> AbstractContextManager[Stage]:
        """A stage named `description` of `total` units (None: unknown) counted in `unit`
        ("bytes" for sizes; "" for a fraction or a step without a count)."""


class _SilentStage:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, completed: float) -> None:
        pass

    def total(self, total: float | None) -> None:
        pass


class SilentProgress:
    """Reports nothing: the default where no caller asked for progress."""

    @contextmanager
    def stage(
        self, description: str, *, total: float | None = None, unit: str = ""
    ) -> Iterator[Stage]:
        """A stage that records nothing."""
        yield _SilentStage()


SILENT: Progress = SilentProgress()


class _CountingStage:
    def __init__(self, total: float | None) -> None:
        self.completed = 0.0
        self.planned = total

    def advance(self, amount: float = 1) -> None:
        self.completed += amount

    def update(self, completed: float) -> None:
        self.completed = completed

    def total(self, total: float | None) -> None:
        self.planned = total


class LoggedProgress:
    """One log line per stage, when it ends: what it counted, how long it took, its rate.

    For output that is not a terminal (pipes, CI logs, services): no escape codes, no lines
    per item."""

    def __init__(
        self, log: logging.Logger | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = log or logger
        self._clock = clock

    @contextmanager
    def stage(
        self, description: str, *, total: float | None = None, unit: str = ""
    ) -> Iterator[Stage]:
        """A stage logged once, with its outcome, when it ends."""
        step = _CountingStage(total)
        started = self._clock()
        try:
            yield step
        except BaseException:
            self._log.info(
                "%s: stopped after %s", description, _summary(step, unit, self._clock() - started)
            )
            raise
        done = _summary(step, unit, self._clock() - started)
        self._log.info("%s: done%s %s", description, "," if unit else " in", done)


def _summary(step: _CountingStage, unit: str, seconds: float) -> str:
    """What a stage did: "1,234 sites in 2.0 s (617 sites/s)", or "2.0 s" without a count."""
    elapsed = f"{seconds:.1f} s"
    if not unit:
        return elapsed
    if unit == "bytes":
        amount = _bytes(step.completed)
        rate = f"{_bytes(step.completed / seconds)}/s" if seconds > 0 else ""
    else:
        amount = f"{step.completed:,.0f} {unit}"
        rate = f"{step.completed / seconds:,.0f} {unit}/s" if seconds > 0 else ""
    return f"{amount} in {elapsed}" + (f" ({rate})" if rate else "")


def _bytes(amount: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(amount) < 1000:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} TB"


class Fractions:
    """Drives a `Progress` from a `(stage, fraction)` callback: a new stage each time the
    name changes, its completion the fraction reached (for cores that report that way). A
    report named `end` only ends the stage before it."""

    def __init__(self, progress: Progress, *, end: str | None = None) -> None:
        self._progress = progress
        self._end = end
        self._name: str | None = None
        self._open: AbstractContextManager[Stage] | None = None
        self._stage: Stage | None = None

    def __call__(self, name: str, fraction: float) -> None:
        """Report that stage `name` is `fraction` (0..1) done."""
        if name == self._end:
            self.close()
            return
        if name != self._name:
            self.close()
            self._name = name
            self._open = self._progress.stage(name, total=1.0)
            self._stage = self._open.__enter__()
        assert self._stage is not None
        self._stage.update(fraction)

    def close(self) -> None:
        """End the stage being reported, if any."""
        if self._open is not None:
            self._open.__exit__(None, None, None)
        self._open = self._stage = None
        self._name = None

    def __enter__(self) -> Fractions:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._open is not None and error is not None:
            self._open.__exit__(kind, error, trace)  # the stage learns it stopped
            self._open = self._stage = None
        self.close()
