"""The run's submitted jobs that have not ended yet, and when to ask where they run about them.

SLURM is asked at the poll interval, which starts short and backs off while nothing ends
(``PollInterval``), and within a second of a job's batch script leaving its end hint (a
file named by its job id in the run's ``.ended`` folder): at most once a second, so that a
thousand ending jobs cost no more than one query a second. The hint says only when to ask;
what SLURM answers decides the outcome. A local backend costs nothing to ask: every tick.
"""

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from snakemake_executor_plugin_frozen.slurm.status import PollInterval

# Seconds between two queries prompted by end hints.
HINTED_GAP = 1.0


class JobTracker:
    def __init__(
        self,
        poll: PollInterval,
        ended_dir: Path | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``ended_dir``: where the jobs leave their end hints, None for a backend asked at
        every tick."""
        # Snakemake's own list of active jobs is empty while a status query runs, so a
        # Ctrl-C then would cancel nothing: the tracker keeps its own.
        self.unfinished: dict[str, Any] = {}  # job id -> Snakemake's SubmittedJobInfo
        self.ended_dir = ended_dir
        self._hinted: set[str] = set()
        self._poll = poll
        self._wait = poll.current
        self._clock = clock
        self._last_query = clock()

    @classmethod
    def for_run(cls, seconds_between_checks: float, ended_dir: Path | None) -> "JobTracker":
        """Polling fast at first, backing off to the user's --seconds-between-status-checks;
        ``ended_dir`` made here for the owner alone (OSError when it cannot be)."""
        longest = max(seconds_between_checks, 0.5)
        poll = PollInterval(initial=min(2.0, longest), maximum=longest)
        if ended_dir is not None:
            ended_dir.mkdir(mode=0o700, parents=True)
        return cls(poll, ended_dir)

    def add(self, job_id: str, info: Any) -> None:
        self.unfinished[job_id] = info

    def query_due(self) -> bool:
        """Whether to ask about the unfinished jobs now."""
        if self.ended_dir is None:
            return True
        since = self._clock() - self._last_query
        if since >= self._wait:
            return True
        if since >= HINTED_GAP:
            with contextlib.suppress(OSError):  # a hint only: the poll interval still applies
                self._hinted |= set(os.listdir(self.ended_dir)) & self.unfinished.keys()
            return bool(self._hinted)
        return False

    def queried(self, finished: bool) -> None:
        """A query was made (or failed); ``finished``: some job was found ended."""
        self._last_query = self._clock()
        self._wait = self._poll.next(finished=finished)

    def forget(self, job_id: str) -> None:
        """The job ended: no longer asked about, its hint removed."""
        del self.unfinished[job_id]
        if job_id in self._hinted:
            self._hinted.discard(job_id)
            assert self.ended_dir is not None
            with contextlib.suppress(OSError):
                os.unlink(self.ended_dir / job_id)

    def close(self) -> None:
        """The run is over: its hints folder goes."""
        if self.ended_dir is not None:
            shutil.rmtree(self.ended_dir, ignore_errors=True)
