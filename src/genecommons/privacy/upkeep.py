"""Measuring again, while the node serves, the datasets that have outgrown their privacy
measurement: `genecommons serve` looks every GENECOMMONS_PRIVACY_REASSESS_INTERVAL_SECONDS and
runs `genecommons privacy reassess DATASET` for each, in a process of its own at low priority
(an attack measurement takes minutes of CPU, which the workers answering requests must not
lose), one at a time.

A measurement whose recorded inputs are gone, or whose re-measurement failed, is not tried
again until a new measurement is recorded for its dataset: the log says why, and the privacy
report keeps saying the measurement is stale.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from genecommons.config import Settings
from genecommons.privacy.assessments import stale_datasets
from genecommons.privacy.report_model import Measurement

logger = logging.getLogger(__name__)

COMMAND = (sys.executable, "-m", "genecommons", "privacy", "reassess")
NICENESS = 10


class Reassessor:
    """Re-measurement of outgrown datasets in a thread of the server's process: every
    `privacy_reassess_interval_seconds` (never when 0), until `stop`."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        # the re-measuring process's environment (None: this process's, which the settings
        # came from, inherited)
        self.environment = None if environment is None else dict(environment)
        # dataset -> the time of the measurement that failed to be repeated
        self.failed: dict[str, datetime] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="privacy-reassess", daemon=True)
        self._running: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the thread (nothing to do when the interval is 0)."""
        if self.settings.privacy_reassess_interval_seconds > 0:
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread, ending a re-measurement under way (a measurement is recorded only
        when complete)."""
        self._stop.set()
        running = self._running
        if running is not None and running.poll() is None:
            running.terminate()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.privacy_reassess_interval_seconds):
            try:
                self.run_once()
            except Exception:  # the next pass tries again; the server keeps serving
                logger.exception("re-measuring the datasets' privacy failed")

    def due(self, stale: Mapping[str, Measurement]) -> list[str]:
        """Of the outgrown datasets `stale`, those to measure again now: not failed on their
        latest measurement."""
        for dataset in list(self.failed):
            if dataset not in stale or stale[dataset].measured_at != self.failed[dataset]:
                del self.failed[dataset]  # measured since (or current again): try anew
        return [d for d, m in stale.items() if self.failed.get(d) != m.measured_at]

    def run_once(self) -> dict[str, int]:
        """Measure each due dataset again, one after the other; each one's exit status."""
        done: dict[str, int] = {}
        stale = stale_datasets(self.factory, self.settings)
        for dataset in self.due(stale):
            if self._stop.is_set():
                break
            logger.info("re-measuring the privacy of %s: it outgrew its measurement", dataset)
            status = self._measure(dataset)
            done[dataset] = status
            if status != 0:
                self.failed[dataset] = stale[dataset].measured_at
                logger.warning(
                    "re-measuring the privacy of %s failed (exit %d); not tried again until it is "
                    "measured anew: run `genecommons privacy attack-beacon` with its inputs",
                    dataset,
                    status,
                )
        return done

    def _measure(self, dataset: str, command: Sequence[str] = COMMAND) -> int:
        # at low priority through nice(1): a preexec_fn is not safe in a process with threads
        nice = shutil.which("nice")
        lowered = [nice, "-n", str(NICENESS)] if nice else []
        self._running = subprocess.Popen(  # noqa: S603 (our own command, a catalog accession)
            [*lowered, *command, dataset],
            env=self.environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, errors = self._running.communicate()
        if self._running.returncode:
            logger.warning("%s", errors.decode("utf-8", "replace")[-2000:])
        return self._running.returncode
