"""Where a rendered batch script runs: SLURM (`sbatch`) or a local process.

Both answer the same three questions for the executor (``Backend``): submit this script,
how did these jobs end, cancel these jobs; and say how they are to be asked.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import count
from typing import Protocol

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_frozen.settings import ExecutorSettings
from snakemake_executor_plugin_frozen.slurm import commands, status
from snakemake_executor_plugin_frozen.slurm.call_budget import CallBudget
from snakemake_executor_plugin_frozen.slurm.sbatch_options import node_list
from snakemake_executor_plugin_frozen.slurm.status import Outcome
from snakemake_executor_plugin_frozen.slurm.submit import (
    JobSpec,
    SubmitSettings,
    build_sbatch_argv,
    cluster_of,
)


@dataclass(frozen=True)
class JobEnd:
    outcome: Outcome
    message: str = ""
    state: str = ""  # as SLURM tells it: "COMPLETED", "FAILED", ...
    node: str = ""  # where it ran, if known


class Backend(Protocol):
    """What the executor asks of where its jobs run."""

    log_label: str  # what a job's log is called in messages ("SLURM log")
    # Asked at the poll interval, its jobs leaving an end hint to ask sooner (SLURM); else
    # asked at every tick, which costs nothing (a local child process).
    polled: bool
    status_calls: int  # queries made so far (for the end-of-run figure)

    def submit(self, spec: JobSpec, token: str) -> tuple[str, list[str]]: ...

    async def states(self, job_ids: Sequence[str]) -> dict[str, JobEnd]: ...

    def cancel(self, job_ids: Sequence[str]) -> None: ...

    def max_array_size(self) -> int | None: ...


def backend_for(settings: ExecutorSettings, run_id: str) -> "Backend":
    """The backend the settings ask for; the values were checked with the settings
    (settings_checks.py)."""
    if settings.submit == "local":
        return LocalBackend()
    if shutil.which("sbatch") is None:
        raise WorkflowError(
            "frozen: sbatch was not found on PATH, so jobs cannot be submitted to SLURM. "
            "Run on a SLURM login node, or use --frozen-submit local to run the jobs on "
            "this machine from the same snapshot."
        )
    submit_settings = SubmitSettings(
        qos=settings.qos or None,
        reservation=settings.reservation or None,
        requeue=settings.requeue,
        no_requeue=settings.no_requeue,
        exclude_nodes=frozenset(node_list(settings.exclude_failed_nodes)),
    )
    return SbatchBackend(
        submit_settings,
        run_id,
        stuck_seconds=settings.stuck_minutes * 60,
        budget=CallBudget(settings.status_calls_per_minute),
    )


class SbatchBackend:
    log_label = "SLURM log"
    polled = True

    def __init__(
        self,
        settings: SubmitSettings,
        run_name: str,
        stuck_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        budget: CallBudget | None = None,
    ) -> None:
        self.settings = settings
        self.run_name = run_name
        # Submit host and controller clocks may differ a little; sacct filters by start.
        self.since = datetime.now() - timedelta(minutes=10)
        self.missing = status.MissingJobs(grace_seconds=stuck_seconds, clock=clock)
        self.stuck = status.StuckJobs(stuck_seconds, requeue=settings.requeue, clock=clock)
        self.used_clusters = False
        self.budget = budget or CallBudget()
        self.excluded = set(settings.exclude_nodes)

    def submit(self, spec: JobSpec, token: str) -> tuple[str, list[str]]:
        """Submit and return (SLURM job id, warnings); raises SlurmSubmitError/SbatchError.
        ``token`` is in the job's comment: it tells whether a failed call made the job."""
        settings = replace(self.settings, exclude_nodes=frozenset(self.excluded))
        argv, warnings = build_sbatch_argv(spec, settings)
        self.used_clusters |= cluster_of(spec.resources) is not None
        return commands.run_sbatch(argv, commands.Submission(self.run_name, token)), warnings

    async def states(self, job_ids: Sequence[str]) -> dict[str, JobEnd]:
        answer = await commands.query_states(
            job_ids, self.run_name, self.since, clusters=self.used_clusters, budget=self.budget
        )
        found = answer.states
        # Absent from a partial answer says nothing about a job.
        asked = job_ids if answer.complete else list(found)
        given_up = self.missing.update(asked, found)
        ends = {
            job_id: JobEnd(Outcome.FAILED, message, state="MISSING")
            for job_id, message in given_up.items()
        }
        for job_id, state in found.items():
            result = status.outcome(state.state, requeue=self.settings.requeue)
            if result is not Outcome.RUNNING:
                message = status.failure_message(job_id, state)
                ends[job_id] = JobEnd(result, message, state.state, state.nodes)
                if state.base == "NODE_FAIL":
                    self.exclude(state.nodes)
        stuck = self.stuck.update(found)
        for job_id, message in stuck.items():
            ends[job_id] = JobEnd(Outcome.FAILED, message, found[job_id].state, found[job_id].nodes)
        if given_up or stuck:
            # Given up on by Snakemake, such a job must not start later and write outputs.
            self.cancel([*given_up, *stuck])
        return ends

    @property
    def status_calls(self) -> int:
        return self.budget.calls

    def max_array_size(self) -> int | None:
        """The cluster's MaxArraySize; asked before the run's first status call, as one."""
        size = commands.max_array_size()
        self.budget.note_call()
        return size

    def exclude(self, nodes: str) -> None:
        """Later submissions of the run avoid the nodes a job failed on."""
        with contextlib.suppress(ValueError):  # SLURM named no node we could pass on
            self.excluded.update(node_list(nodes))

    def cancel(self, job_ids: Sequence[str]) -> None:
        commands.scancel(job_ids, clusters=self.used_clusters)


class LocalBackend:
    """Runs the batch script as a local process: freezing on a workstation, no SLURM."""

    log_label = "job log"
    polled = False
    status_calls = 0

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}
        self.ids = count(1)
        self.host = socket.gethostname()

    def submit(self, spec: JobSpec, token: str) -> tuple[str, list[str]]:
        job_id = f"local{next(self.ids)}"
        with open(spec.log_file(job_id), "wb") as out:
            self.processes[job_id] = subprocess.Popen(
                ["bash", str(spec.script)],
                cwd=spec.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so that cancel() can signal the whole job
            )
        return job_id, []

    async def states(self, job_ids: Sequence[str]) -> dict[str, JobEnd]:
        ends = {}
        for job_id in job_ids:
            code = self.processes[job_id].poll()
            if code is None:
                continue
            del self.processes[job_id]
            if code == 0:
                ends[job_id] = JobEnd(Outcome.SUCCESS, state="COMPLETED", node=self.host)
            else:
                message = f"local job {job_id} exited with {code}"
                ends[job_id] = JobEnd(Outcome.FAILED, message, state="FAILED", node=self.host)
        return ends

    def max_array_size(self) -> int | None:
        return None  # no arrays: each job is a process of its own

    def cancel(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            process = self.processes.get(job_id)
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
