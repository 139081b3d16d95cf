"""Progress reporting: one log line per stage off a terminal, live bars on one."""

from __future__ import annotations

import logging
from io import StringIO

import pytest
from rich.console import Console

from genecommons.progress import SILENT, Fractions, LoggedProgress
from genecommons.progress_bars import BarProgress, reporter

PROGRESS = "genecommons.progress"


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == PROGRESS]


def test_logged_progress_writes_one_line_per_stage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS)
    now = iter([0.0, 2.0, 2.0, 4.0, 4.0, 5.0])
    progress = LoggedProgress(clock=lambda: next(now))
    with progress.stage("counting sites", total=100, unit="sites") as step:
        for _ in range(100):
            step.advance()
    with progress.stage("copying", total=3_000_000, unit="bytes") as step:
        step.update(3_000_000)
    with progress.stage("thinking"):
        pass
    assert _lines(caplog) == [
        "counting sites: done, 100 sites in 2.0 s (50 sites/s)",
        "copying: done, 3.0 MB in 2.0 s (1.5 MB/s)",
        "thinking: done in 1.0 s",
    ]


def test_logged_progress_says_where_a_stage_stopped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS)
    progress = LoggedProgress()

    def build() -> None:
        with progress.stage("building", unit="sites") as step:
            step.advance(7)
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        build()
    (line,) = _lines(caplog)
    assert line.startswith("building: stopped after 7 sites in ")


def test_off_a_terminal_no_bar_is_drawn(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS)
    out = StringIO()
    with (
        reporter(Console(file=out, force_terminal=False)) as progress,
        progress.stage("validating", total=10, unit="rows") as step,
    ):
        step.update(10)
    assert out.getvalue() == ""
    assert [line.split(" in ")[0] for line in _lines(caplog)] == ["validating: done, 10 rows"]


def test_on_a_terminal_a_bar_shows_the_stage_its_rate_and_time_left(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("TTY_INTERACTIVE", raising=False)
    caplog.set_level(logging.INFO, logger=PROGRESS)
    out = StringIO()
    with reporter(Console(file=out, force_terminal=True, width=150)) as progress:
        assert isinstance(progress, BarProgress)
        with progress.stage("building the variant store", total=1000, unit="sites") as step:
            for _ in range(10):
                step.advance(100)
        with progress.stage("archiving cohort.vcf.gz", total=2_000_000, unit="bytes") as step:
            for _ in range(4):
                step.advance(500_000)
    screen = out.getvalue()
    assert "\x1b[" in screen  # a live display
    assert "building the variant store" in screen and "archiving cohort.vcf.gz" in screen
    assert "1,000/1,000 sites" in screen and "sites/s" in screen  # the amount and its rate
    assert "2.0/2.0 MB" in screen and "B/s" in screen
    assert "eta" in screen
    assert _lines(caplog) == []  # the bar instead of the log lines


def test_a_dumb_or_non_interactive_terminal_gets_log_lines(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS)
    for variable, value in (("TERM", "dumb"), ("TTY_INTERACTIVE", "0")):
        with monkeypatch.context() as env:
            env.setenv("TERM", "xterm-256color")
            env.setenv(variable, value)
            out = StringIO()
            with reporter(Console(file=out, force_terminal=True)) as progress:
                assert not isinstance(progress, BarProgress)
                with progress.stage("validating", total=1, unit="rows") as step:
                    step.advance()
            assert "validating" not in out.getvalue()
    assert [line.split(":")[0] for line in _lines(caplog)] == ["validating", "validating"]


def test_fractions_open_a_stage_per_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS)
    with Fractions(LoggedProgress(), end="done") as report:
        report("simulating genomes", 0.0)
        report("simulating genomes", 1.0)
        report("writing VCFs", 0.5)
        report("writing VCFs", 1.0)
        report("done", 1.0)
    assert [line.split(":")[0] for line in _lines(caplog)] == [
        "simulating genomes",
        "writing VCFs",
    ]


def test_the_silent_progress_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with SILENT.stage("anything", total=3, unit="rows") as step:
        step.advance()
        step.update(3)
        step.total(4)
    assert _lines(caplog) == []
