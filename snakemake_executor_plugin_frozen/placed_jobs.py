"""Where a Snakemake job's files go and how it is submitted: its folder among the rule logs,
its batch script, its log's name, its comment for SLURM, which jobs share an array.

Pure but for ``write_executable``: the executor renders the script and calls the backend.
"""

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakemake_executor_plugin_frozen import arrays
from snakemake_executor_plugin_frozen.job_names import wildcards_comment, wildcards_dir
from snakemake_executor_plugin_frozen.slurm.submit import JobSpec
from snakemake_executor_plugin_frozen.workflow_sources import job_resources, job_wildcards


@dataclass(frozen=True)
class PlacedJob:
    """A Snakemake job (or group job) with the places of its files."""

    job: Any  # JobExecutorInterface
    label: str  # for messages: "rule align (rule_align_wildcards_a)"
    comment: str  # rule and wildcards, as the stock plugin's --comment
    rule_dir: Path  # the rule's log folder, where the run's code archive lies too
    job_dir: Path  # the job's log folder: the rule's, or a subfolder per wildcards
    script: Path  # its batch script


def place(job: Any, logdir: Path, run_id: str) -> PlacedJob:
    wildcards = job_wildcards(job)
    if job.is_group():
        folder, comment, label = f"group_{job.name}", f"group_{job.name}", f"group {job.name}"
    else:
        folder = f"rule_{job.name}"
        comment = wildcards_comment(job.name, wildcards)
        label = f"rule {job.name}" + (f" ({comment})" if wildcards else "")
    rule_dir = logdir / folder
    job_dir = rule_dir / wildcards_dir(wildcards) if wildcards else rule_dir
    script = job_dir / f"job-{run_id[:8]}-{job.jobid}.sh"
    return PlacedJob(job, label, comment, rule_dir, job_dir, script)


def write_executable(path: Path, text: str) -> None:
    """The batch script, for its owner only: it names the job's paths and wildcard values."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o700)
    with open(fd, "w", encoding="utf-8", errors="surrogateescape") as script:
        os.fchmod(script.fileno(), 0o700)  # whatever the umask or an older file said
        script.write(text)
    os.replace(temporary, path)


def array_batches(
    placed: list[PlacedJob], array_jobs: str, limit: int
) -> tuple[list[PlacedJob], list[list[PlacedJob]]]:
    """Jobs submitted alone, and arrays of at most ``limit`` tasks, for the
    ``--frozen-array-jobs`` setting (empty: none)."""
    if not array_jobs:
        return placed, []
    rules = arrays.array_rules(array_jobs)

    def key(p: PlacedJob) -> tuple | None:
        if p.job.is_group() or (rules is not None and p.job.name not in rules):
            return None
        # Tasks share one set of sbatch options: jobs of a rule whose resources differ
        # (by wildcard, by attempt) go into separate arrays.
        return (p.job.name, p.job.threads, repr(sorted(job_resources(p.job).items())))

    return arrays.batches(placed, key, limit)


def submission_token() -> str:
    """Names one submission in the job's comment: it tells whether an sbatch call that
    failed (a timeout) made the job anyway (slurm/commands.py)."""
    return f"submission={uuid.uuid4().hex[:16]}"


def slurm_comment(comment: str, snapshot_id: str | None, token: str) -> str:
    """The job's comment: its rule and wildcards (as the stock plugin writes them), the
    snapshot it runs (so that sacct alone tells which code ran) and the submission."""
    snapshot = f" snapshot={snapshot_id[:12]}" if snapshot_id else ""
    return f"{comment}{snapshot} {token}"


def alone_spec(
    p: PlacedJob, run_id: str, workdir: Path, snapshot_id: str | None, token: str
) -> JobSpec:
    return JobSpec(
        job_label=p.label,
        job_name=run_id,
        comment=slurm_comment(p.comment, snapshot_id, token),
        # The run's tag too: local job ids restart every run, and SLURM's wrap around
        # or restart on a new cluster; no two jobs of two runs may share a log.
        log_path=p.job_dir / f"%j-{run_id[:8]}.log",
        workdir=workdir,
        script=p.script,
        resources=job_resources(p.job),
        threads=p.job.threads,
    )


def array_label(batch: list[PlacedJob]) -> str:
    return f"rule {batch[0].job.name} (array of {len(batch)} jobs)"


def array_script(batch: list[PlacedJob], run_id: str) -> Path:
    first = batch[0]
    return first.rule_dir / f"array-{run_id[:8]}-{first.job.jobid}.sh"


def write_array_script(batch: list[PlacedJob], run_id: str) -> Path:
    """The array's batch script, which runs each task's own job script (arrays.render)."""
    script = array_script(batch, run_id)
    text = arrays.render(f"{array_label(batch)}, run {run_id}", [p.script for p in batch])
    write_executable(script, text)
    return script


def array_spec(
    batch: list[PlacedJob], run_id: str, workdir: Path, snapshot_id: str | None, token: str
) -> JobSpec:
    first = batch[0]
    return JobSpec(
        job_label=array_label(batch),
        job_name=run_id,
        comment=slurm_comment(f"rule_{first.job.name}_array", snapshot_id, token),
        log_path=first.rule_dir / f"%A_%a-{run_id[:8]}.log",
        workdir=workdir,
        script=array_script(batch, run_id),
        resources=job_resources(first.job),
        threads=first.job.threads,
        array=f"0-{len(batch) - 1}",
    )


def threads_hint(threads: int, error: Exception) -> str:
    """sbatch refuses more CPUs per task than a node has; say how to ask for fewer."""
    text = str(error)
    if "node configuration is not available" not in text and "CPU count" not in text:
        return ""
    return (
        f"\n    The job asks for {threads} thread(s) per task; if no node has that many "
        "CPUs, cap them with --max-threads N, or per rule with --set-threads RULE=N "
        "(or the cpus_per_task resource)."
    )
