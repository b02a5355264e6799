"""Job arrays (--frozen-array-jobs): one sbatch per batch of ready jobs of a rule, each task
running its own job from the run's snapshot, with per-task status, logs and cancellation."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.cluster import run_id_of, wait_for_sacct
from helpers.snakemake import BackgroundRun, make_workflow, run_snakemake

from snakemake_executor_plugin_frozen import jobscript
from snakemake_executor_plugin_frozen.slurm.status import job_ids_of

EXECUTOR = ["--executor", "frozen", "--jobs", "20", "--latency-wait", "5"]


# -- on the cluster --------------------------------------------------------------------------


@pytest.mark.slurm
def test_array_tasks_run_the_snapshot_each_its_own_job(tmp_path: Path):
    workdir = make_workflow(tmp_path, "arrays")
    args = [*EXECUTOR, "--frozen-array-jobs", "square", "--config", "count=6", "sleep=4"]
    with BackgroundRun(workdir, *args) as run:
        run.wait_for_submissions(6)
        # Edited while the tasks wait or run: they must still compute with v1.
        (workdir / "lib" / "version.py").write_text('VERSION = "v2"\n')
        code, output = run.finish()
    assert code == 0, output
    for n in range(6):
        assert (workdir / "out" / f"{n}.txt").read_text() == f"v1 {n * n}\n"
    jobs = wait_for_sacct(run_id_of(output), 6)
    # Even and odd n ask for different memory: two arrays of three tasks each.
    arrays_seen = {job_id.split("_")[0] for job_id, _, _ in jobs}
    assert len(arrays_seen) == 2 and all("_" in job_id for job_id, _, _ in jobs), jobs
    assert {state for _, state, _ in jobs} == {"COMPLETED"}
    assert all(
        comment.startswith("rule_square_array snapshot=") and "submission=" in comment
        for _, _, comment in jobs
    ), jobs
    logs = sorted((workdir / ".snakemake" / "frozen_logs" / "rule_square").glob("*_*.log"))
    assert len(logs) == 6
    for job_id, _, _ in jobs:
        (log,) = (workdir / ".snakemake" / "frozen_logs" / "rule_square").glob(f"{job_id}-*.log")
        assert f"submitted as {job_id} (log: {log})" in output
        assert "Finished job" in log.read_text() or "Finished jobid" in log.read_text()


@pytest.mark.slurm
def test_a_failing_task_is_that_jobs_error(tmp_path: Path):
    workdir = make_workflow(tmp_path, "arrays")
    result = run_snakemake(
        workdir, *EXECUTOR, "--keep-going", "--frozen-array-jobs", "all",
        "--config", "count=4", "fail=2", check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert sorted(p.name for p in (workdir / "out").iterdir()) == ["0.txt", "1.txt", "3.txt"]
    errors = [line for line in output.splitlines() if line.startswith("Error in rule")]
    assert errors == ["Error in rule square:"], output
    assert "wildcards: n=2" in output and "ended FAILED" in output


@pytest.mark.slurm
def test_ctrl_c_cancels_every_task(tmp_path: Path):
    workdir = make_workflow(tmp_path, "arrays")
    args = [*EXECUTOR, "--frozen-array-jobs", "all", "--config", "count=12", "sleep=300"]
    with BackgroundRun(workdir, *args) as run:
        submitted = run.wait_for_submissions(12)
        run.process.send_signal(signal.SIGINT)
        code, _ = run.finish(timeout=120)
    assert code != 0
    ids = {job_id for job_id, _ in submitted}
    # Every task is cancelled by us, whether it ran or pended; an array cancelled before
    # any of its tasks started is one row of the array's id, which `sacct --name` omits.
    arrays_submitted = sorted({i.split("_")[0] for i in ids})
    argv = ["sacct", "-X", "-n", "-P", "-j", ",".join(arrays_submitted), "-o", "JobID,State"]
    deadline = time.monotonic() + 60
    while True:
        rows = subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()
        states = {task: row.split("|")[1] for row in rows for task in job_ids_of(row.split("|")[0])}
        if not any(s in ("PENDING", "RUNNING") for s in states.values()) and states:
            break
        assert time.monotonic() < deadline, states
        time.sleep(1)
    assert {states.get(i) or states.get(i.split("_")[0]) for i in ids} == {"CANCELLED by 0"}, (
        ids,
        states,
    )


def test_a_job_script_says_when_it_ended(tmp_path: Path):
    """The end hint names the job as the executor tracks it, and keeps the exit code."""
    ended = tmp_path / "ended $(x)"
    ended.mkdir()
    script = tmp_path / "job.sh"
    script.write_text(jobscript.render("rule r", "echo ran; exit 3", None, ended=ended))
    for env, name in (
        ({"SLURM_JOB_ID": "55"}, "55"),
        ({"SLURM_JOB_ID": "56", "SLURM_ARRAY_JOB_ID": "50", "SLURM_ARRAY_TASK_ID": "2"}, "50_2"),
    ):
        done = subprocess.run(
            ["bash", script], capture_output=True, text=True, env={**os.environ, **env}
        )
        assert (done.returncode, done.stdout) == (3, "ran\n"), done.stderr
        assert (ended / name).exists()


@pytest.mark.slurm
def test_the_end_of_a_job_is_noticed_within_a_second_or_two(tmp_path: Path):
    """Status checks far apart (30 s) would notice the job's end late; its end hint makes
    the executor ask SLURM at once."""
    workdir = make_workflow(tmp_path, "arrays")
    args = [*EXECUTOR, "--seconds-between-status-checks", "30", "--config", "count=1", "sleep=8"]
    with BackgroundRun(workdir, *args) as run:
        (job_id, _), *_ = run.wait_for_submissions(1)
        code, output = run.finish()
        finished = time.time()
    assert code == 0, output
    end = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "End"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ended_at = time.mktime(time.strptime(end, "%Y-%m-%dT%H:%M:%S"))
    # sacct's End has 1 s resolution; Snakemake then still checks the output and exits.
    assert finished - ended_at < 4, (end, finished)
