"""Which runs of the journal still have jobs pending or running, as SLURM tells it.

Only runs with a job the journal shows unfinished (no ``ended`` record) are asked about;
every alive job SLURM lists under such a run's name counts, recorded or not. A job SLURM
cannot be asked about (run locally, or SLURM unreachable) counts as ``unknown``: whoever
would remove what it needs must keep it.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import queue
from .history import History


@dataclass(frozen=True)
class RunState:
    pending: int = 0  # held jobs too
    running: int = 0
    unknown: int = 0

    @property
    def active(self) -> bool:
        """Something of the run may still be needed by one of its jobs."""
        return bool(self.pending or self.running or self.unknown)


@dataclass(frozen=True)
class Activity:
    runs: dict[str, RunState]  # only runs with unfinished jobs in the journal
    slurm: str  # "asked", "not needed" (nothing unfinished), or why it could not be asked

    def of(self, run: str) -> RunState:
        return self.runs.get(run, RunState())


def survey(history: History) -> Activity:
    unfinished = {run.id: run.unfinished() for run in history.runs.values() if run.unfinished()}
    to_ask = [run for run, jobs in unfinished.items() if any(not job.local for job in jobs)]
    if not to_ask:
        found = queue.Queue({})
        slurm = "not needed"
    else:
        found = queue.ask(to_ask)
        slurm = "asked" if found.reachable else found.why
    states = {}
    for run, jobs in unfinished.items():
        local = sum(1 for job in jobs if job.local)
        if found.reachable:
            pending, running = found.pending_running(run)
            states[run] = RunState(pending, running, local)
        else:
            states[run] = RunState(unknown=len(jobs))
    return Activity(states, slurm)
