"""Job arrays (--frozen-array-jobs): one sbatch per batch of ready jobs of a rule, each task
running its own job from the run's snapshot, with per-task status, logs and cancellation."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BackgroundRun, run_snakemake

from snakemake_executor_plugin_frozen import arrays, jobscript
from snakemake_executor_plugin_frozen.slurm.status import job_ids_of

ARRAYS = Path(__file__).parent / "workflows" / "arrays"
EXECUTOR = ["--executor", "frozen", "--jobs", "20", "--latency-wait", "5"]


# -- pure logic ------------------------------------------------------------------------------


def test_batches_by_key_and_limit():
    jobs = [("a", 1), ("a", 2), ("b", 3), ("a", 4), ("c", 5), ("a", 6), ("a", 7)]
    alone, batches = arrays.batches(jobs, key=lambda j: None if j[0] == "c" else j[0], limit=3)
    assert batches == [[("a", 1), ("a", 2), ("a", 4)], [("a", 6), ("a", 7)]]
    # A batch of one is no array.
    assert alone == [("c", 5), ("b", 3)]


def test_array_rules_setting():
    assert arrays.array_rules("all") is None
    assert arrays.array_rules(" a, b ,") == {"a", "b"}


def test_array_script_runs_the_task_of_its_index(tmp_path: Path):
    """Paths with quotes, `$()` and newlines stay data; the task's exit code is the array
    task's."""
    odd = tmp_path / "we'ird $(touch pwned)\ndir"
    odd.mkdir()
    scripts = []
    for i in range(3):
        script = odd / f"job {i}.sh"
        script.write_text(f"echo task {i}; exit {i}\n")
        scripts.append(script)
    text = arrays.render("rule r, run x\nrm -rf /", scripts)
    assert "\nrm -rf" not in text
    batch = tmp_path / "array.sh"
    batch.write_text(text)
    for i in range(3):
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_JOB_ID": "77"}
        done = subprocess.run(
            ["bash", batch], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert (done.returncode, done.stdout) == (i, f"task {i}\n")
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_JOB_ID": "77"}
    done = subprocess.run(["bash", batch], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "array task 3 has no job" in done.stderr
    assert not (tmp_path / "pwned").exists()


# -- on the cluster --------------------------------------------------------------------------


def copy_workflow(tmp_path: Path) -> Path:
    workdir = tmp_path / "wf"
    shutil.copytree(ARRAYS, workdir)
    return workdir


def run_jobs(run_name: str) -> list[tuple[str, str, str]]:
    """(JobID, State, Comment) of every job of the run, as sacct has them."""
    argv = ["sacct", "-X", "-n", "-P", f"--name={run_name}", "--starttime=now-1hour"]
    argv += ["-o", "JobID,State,Comment"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|", 2) for line in out.splitlines() if line]
    # Tasks cancelled while pending are one row, "12_[6-11]".
    return [(task, state, comment) for row, state, comment in rows for task in job_ids_of(row)]


def run_id_of(output: str) -> str:
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


@pytest.mark.slurm
def test_array_tasks_run_the_snapshot_each_its_own_job(tmp_path: Path):
    workdir = copy_workflow(tmp_path)
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
    workdir = copy_workflow(tmp_path)
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
    workdir = copy_workflow(tmp_path)
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
    workdir = copy_workflow(tmp_path)
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
