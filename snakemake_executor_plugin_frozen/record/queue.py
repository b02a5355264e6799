"""Which of a run's jobs SLURM still has pending or running: ``squeue`` by job name (the
executor names every job after its run's id), array tasks one by one."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

# The states a job never leaves. Anything else (PENDING, held or not, RUNNING, COMPLETING,
# SUSPENDED, REQUEUED, PREEMPTED or NODE_FAIL awaiting a requeue, a state this list does not
# know) still needs its snapshot, batch script and log folder.
FINISHED_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
)
PENDING = "PENDING"
NAMES_PER_CALL = 1000  # run ids of 36 characters: far below the 128 kB limit of one argument
TIMEOUT = 30


@dataclass(frozen=True)
class Queue:
    """The alive jobs of the runs asked about: run id -> {job id: state}. ``reachable``
    False: squeue could not be run or failed, so nothing is known (``why`` says why)."""

    alive: dict[str, dict[str, str]]
    reachable: bool = True
    why: str = ""

    def pending_running(self, run: str) -> tuple[int, int]:
        """(pending, otherwise alive) jobs of ``run``; a held job is pending."""
        states = self.alive.get(run, {}).values()
        pending = sum(1 for state in states if state == PENDING)
        return pending, len(states) - pending


def _squeue(names: Sequence[str]) -> str:
    argv = ["squeue", "-h", "-r", "-t", "all", "--name", ",".join(names), "-o", "%j|%i|%T"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    if result.returncode != 0:
        raise OSError(result.stderr.strip() or f"squeue exited with {result.returncode}")
    return result.stdout


def ask(runs: Sequence[str]) -> Queue:
    """The alive jobs of ``runs``; never raises (an unreachable SLURM is a Queue saying so)."""
    alive: dict[str, dict[str, str]] = {}
    wanted = set(runs)
    ordered = sorted(wanted)
    for start in range(0, len(ordered), NAMES_PER_CALL):
        try:
            output = _squeue(ordered[start : start + NAMES_PER_CALL])
        except (OSError, subprocess.SubprocessError) as e:
            return Queue({}, reachable=False, why=f"squeue failed: {e}")
        for line in output.splitlines():
            name, _, rest = line.partition("|")
            job_id, _, state = rest.partition("|")
            # "CANCELLED by 0" in some versions' long form: the first word is the state
            state = state.split(" ")[0]
            if name in wanted and state not in FINISHED_STATES:
                alive.setdefault(name, {})[job_id] = state
    return Queue(alive)
