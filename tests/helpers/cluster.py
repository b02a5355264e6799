"""The test cluster's SLURM asked about jobs (sacct), and a clock for the executor's status
bookkeeping that the test moves."""

from __future__ import annotations

import subprocess
import time

import pytest

from snakemake_executor_plugin_frozen.slurm.status import job_ids_of


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    """The state of each job (by raw job id), as sacct has it."""
    result = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-o", "JobIdRaw,State", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(line.split("|", 1) for line in result.stdout.splitlines() if line)


def run_jobs(run_name: str) -> list[tuple[str, str, str]]:
    """(JobID, State, Comment) of every job of the run, as sacct has them."""
    argv = ["sacct", "-X", "-n", "-P", f"--name={run_name}", "--starttime=now-1hour"]
    argv += ["-o", "JobID,State,Comment"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|", 2) for line in out.splitlines() if line]
    # Tasks cancelled while pending are one row, "12_[6-11]".
    return [(task, state, comment) for row, state, comment in rows for task in job_ids_of(row)]


def run_id_of(output: str) -> str:
    """The run id the executor announces in Snakemake's output ("frozen: mode ..., run ID,")."""
    return output.split("frozen: mode ", 1)[1].split(", run ", 1)[1].split(",", 1)[0]


def wait_for_sacct(run_name: str, count: int, timeout: float = 60) -> list[tuple[str, str, str]]:
    deadline = time.monotonic() + timeout
    while len(jobs := run_jobs(run_name)) < count or any(
        state in ("PENDING", "RUNNING") for _, state, _ in jobs
    ):
        if time.monotonic() > deadline:
            pytest.fail(f"sacct does not show {count} ended jobs of {run_name}: {jobs}")
        time.sleep(1)
    return jobs


class Clock:
    """A monotonic clock that stands still until the test moves ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def no_wait(seconds: float) -> None:
    """A call budget's sleep that does not wait (the budget still counts the calls)."""
