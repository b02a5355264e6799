"""The run's submitted jobs that have not ended yet, their end hints, and when to ask where
they run about them.

A job's batch script leaves an end hint as its command is over: a file named by its job id
in the run's ``.ended`` folder, holding the command's exit status and the node. A hint of
success ends the job for Snakemake at once; SLURM confirms it at its next call, and a
disagreement is said. A hint of failure makes the next call come as soon as the call
budget allows (``slurm/call_budget.py``): the failure's message is SLURM's. Otherwise SLURM
is asked at the poll interval, which starts short and backs off while nothing ends
(``PollInterval``). A local backend costs nothing to ask: at every tick.

The folder is made by the run, for its owner alone, and read through the descriptor opened
as it was made: a folder put at its path later is not read. Hints are believed only from
regular files of the run's own user.
"""

import asyncio
import contextlib
import os
import stat
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakemake_executor_plugin_frozen.backends import JobEnd
from snakemake_executor_plugin_frozen.slurm.status import Outcome, PollInterval

# Bytes: more than any hint the batch script writes ("<status> <node>").
HINT_LIMIT = 512
# The journal's state of a job ended by its own hint of success.
HINTED_SUCCESS = "EXIT 0"


@dataclass(frozen=True)
class EndHint:
    exit_status: int | None  # None: the hint could not be read
    node: str = ""

    @property
    def success(self) -> bool:
        return self.exit_status == 0


def parse_hint(data: bytes) -> EndHint:
    """A hint's content: "<exit status> <node>" (the node may be empty)."""
    words = data.decode("utf-8", "replace").split()
    if not words or not words[0].isdigit():
        return EndHint(None)
    return EndHint(int(words[0]), words[1] if len(words) > 1 else "")


class JobTracker:
    def __init__(
        self,
        poll: PollInterval,
        ended_dir: Path | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``ended_dir``: the folder just made for the jobs' end hints, None for a backend
        asked at every tick."""
        # Snakemake's own list of active jobs is empty while a status query runs, so a
        # Ctrl-C then would cancel nothing: the tracker keeps its own.
        self.unfinished: dict[str, Any] = {}  # job id -> Snakemake's SubmittedJobInfo
        # Ended for Snakemake by a hint of success, until SLURM confirms it: job id -> what
        # the executor keeps until then (the job's journal record).
        self.confirming: dict[str, Any] = {}
        self.ended_dir = ended_dir
        self._dir_fd = (
            os.open(ended_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            if ended_dir is not None
            else None
        )
        self._hints: dict[str, EndHint] = {}  # read, of jobs still unfinished
        self.asking = PendingAnswer()  # the query under way
        self._poll = poll
        self._wait = poll.current
        self._clock = clock
        self._last_query = clock()

    @classmethod
    def for_run(cls, seconds_between_checks: float, ended_dir: Path | None) -> "JobTracker":
        """Polling fast at first, backing off to the user's --seconds-between-status-checks;
        ``ended_dir`` made here for the owner alone (OSError when it cannot be, or exists)."""
        longest = max(seconds_between_checks, 0.5)
        poll = PollInterval(initial=min(2.0, longest), maximum=longest)
        if ended_dir is not None:
            ended_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            ended_dir.mkdir(mode=0o700)
        return cls(poll, ended_dir)

    def add(self, job_id: str, info: Any) -> None:
        self.unfinished[job_id] = info

    def new_hints(self) -> dict[str, EndHint]:
        """The end hints of unfinished jobs that appeared since the last look."""
        if self._dir_fd is None:
            return {}
        try:
            names = set(os.listdir(self._dir_fd))
        except OSError:  # a hint only: the poll interval still applies
            return {}
        new = {}
        for job_id in sorted((names & self.unfinished.keys()) - self._hints.keys()):
            new[job_id] = self._hints[job_id] = self._read_hint(job_id)
        return new

    def _read_hint(self, name: str) -> EndHint:
        assert self._dir_fd is not None
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=self._dir_fd)
        except OSError:
            return EndHint(None)
        with open(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                return EndHint(None)
            return parse_hint(f.read(HINT_LIMIT))

    def query_due(self) -> bool:
        """Whether to ask about the unfinished jobs now (the call budget may still make the
        call wait for its turn)."""
        if self._dir_fd is None:
            return True
        if self._clock() - self._last_query >= self._wait:
            return True
        # A failure (or a hint that could not be read) waits for SLURM's word.
        return any(not hint.success for hint in self._hints.values())

    def queried(self, finished: bool) -> None:
        """A query was answered (or failed); ``finished``: some job was found ended."""
        self._last_query = self._clock()
        self._wait = self._poll.next(finished=finished)

    def hinted_ends(self) -> dict[str, JobEnd]:
        """The jobs that ended successfully by their own new hints."""
        return {
            job_id: JobEnd(Outcome.SUCCESS, state=HINTED_SUCCESS, node=hint.node)
            for job_id, hint in self.new_hints().items()
            if hint.success
        }

    def answered(
        self, ends: dict[str, JobEnd]
    ) -> tuple[dict[str, JobEnd], list[tuple[Any, JobEnd]]]:
        """A query's answer taken: the ends of unfinished jobs, and (what was kept, SLURM's
        end) of each job ended by its hint of success that SLURM now confirms."""
        self.queried(finished=bool(ends))
        confirmed = [(self.confirming.pop(j), ends[j]) for j in ends.keys() & self.confirming]
        return {j: end for j, end in ends.items() if j in self.unfinished}, confirmed

    def forget(self, job_id: str, kept: Any = None) -> bool:
        """The job ended: no longer asked about, its hint removed. True when it ended by
        its hint of success: ``kept`` then waits for SLURM to confirm it (``answered``)."""
        del self.unfinished[job_id]
        hint = self._hints.pop(job_id, None)
        if hint is not None and self._dir_fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(job_id, dir_fd=self._dir_fd)
        if hint is None or not hint.success:
            return False
        self.confirming[job_id] = kept
        return True

    def close(self) -> None:
        """The run is over: its hints folder goes."""
        if self._dir_fd is None:
            return
        with contextlib.suppress(OSError):
            for name in os.listdir(self._dir_fd):  # hints only: files, no folders
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self._dir_fd)
        os.close(self._dir_fd)
        self._dir_fd = None
        assert self.ended_dir is not None
        with contextlib.suppress(OSError):
            self.ended_dir.rmdir()


class PendingAnswer:
    """At most one status query at a time, running in the background while the executor
    goes on reading end hints at every tick (the query may wait for its call budget)."""

    def __init__(self) -> None:
        self._task: asyncio.Future | None = None

    @property
    def busy(self) -> bool:
        """A query was started and its answer not yet taken."""
        return self._task is not None

    def start(self, query: Coroutine[Any, Any, dict]) -> None:
        self._task = asyncio.ensure_future(query)

    def answer(self) -> dict | None:
        """The query's answer once it has come (taken once), else None."""
        if self._task is None or not self._task.done():
            return None
        task, self._task = self._task, None
        return task.result()
