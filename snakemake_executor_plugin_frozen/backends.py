"""Where a rendered batch script runs: SLURM (`sbatch`) or a local process.

Both answer the same three questions for the executor: submit this script, how did these
jobs end, cancel these jobs.
"""

import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count

from snakemake_executor_plugin_frozen.slurm import commands, status
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


class SbatchBackend:
    def __init__(self, settings: SubmitSettings) -> None:
        self.settings = settings
        self.missing = status.MissingJobs()
        self.used_clusters = False

    def submit(self, spec: JobSpec) -> tuple[str, list[str]]:
        """Submit and return (SLURM job id, warnings); raises SlurmSubmitError/SbatchError."""
        argv, warnings = build_sbatch_argv(spec, self.settings)
        self.used_clusters |= cluster_of(spec.resources) is not None
        return commands.run_sbatch(argv), warnings

    async def states(self, job_ids: Sequence[str]) -> dict[str, JobEnd]:
        found = await commands.query_states(job_ids, clusters=self.used_clusters)
        ends = {
            job_id: JobEnd(Outcome.FAILED, message)
            for job_id, message in self.missing.update(job_ids, found).items()
        }
        for job_id, state in found.items():
            result = status.outcome(state.state, requeue=self.settings.requeue)
            if result is not Outcome.RUNNING:
                ends[job_id] = JobEnd(result, status.failure_message(job_id, state))
        return ends

    def cancel(self, job_ids: Sequence[str]) -> None:
        commands.scancel(job_ids, clusters=self.used_clusters)


class LocalBackend:
    """Runs the batch script as a local process: freezing on a workstation, no SLURM."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}
        self.ids = count(1)

    def submit(self, spec: JobSpec) -> tuple[str, list[str]]:
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
                ends[job_id] = JobEnd(Outcome.SUCCESS)
            else:
                ends[job_id] = JobEnd(Outcome.FAILED, f"local job {job_id} exited with {code}")
        return ends

    def cancel(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            process = self.processes.get(job_id)
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
