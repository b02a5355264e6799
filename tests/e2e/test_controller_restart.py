"""A run survives a restarting slurmctld (as after `systemctl restart slurmctld`).

The workflow (tests/workflows/restart) has more jobs than the cluster's 8 slots; while some
are PENDING and others RUNNING the controller is stopped, kept down for longer than the
executor's status poll, and started again from its saved state. The run must finish on
its own: the job that fails on purpose reported as that job's error, every other job done
with its output, and each job submitted once (the restart loses none)."""

import re
import subprocess
import time
from pathlib import Path

import pytest
from helpers.cluster import sacct_states
from helpers.paths import CLUSTER_SCRIPT
from helpers.snakemake import BackgroundRun, make_workflow

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

JOBS = 12  # more than the 8 slots, so that some wait
FAILING = "3"  # the workflow's FAILING
DOWN_SECONDS = 6  # longer than the poll interval below
POLL_SECONDS = 2
# Snakemake's block for a job it starts ("rule work:" ... "jobid: 4" ... "wildcards: i=3"),
# and the one for a job that failed ("Error in rule work:" ... "jobid: 4"); their jobid
# is Snakemake's own job number.
JOB_BLOCK_RE = re.compile(
    r"^rule (\w+):\n(?:[ \t]+.*\n)*?[ \t]+jobid: (\d+)\n(?:[ \t]+.*\n)*?[ \t]+wildcards: (.*)$",
    re.M,
)
ERROR_BLOCK_RE = re.compile(
    r"^Error in rule (\w+):\n\s+message: (.*?)\n\s+jobid: (\d+)$", re.M | re.S
)


def squeue_states(job_ids: list[str]) -> dict[str, str]:
    result = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%T", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(line.split("|", 1) for line in result.stdout.split())


def wait_until_pending_and_running(job_ids: list[str], run: BackgroundRun) -> dict[str, str]:
    """Until squeue shows at least one of the jobs RUNNING and one PENDING (other tests may
    hold slots for a while); returns the states then."""
    deadline = time.monotonic() + 180
    while True:
        states = squeue_states(job_ids)
        if {"RUNNING", "PENDING"} <= set(states.values()):
            return states
        if run.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"never saw jobs both PENDING and RUNNING ({states}):\n{run.output()}")
        time.sleep(0.3)


def restart_controller() -> str:
    result = subprocess.run(
        [str(CLUSTER_SCRIPT), "restart-controller", "--down-seconds", str(DOWN_SECONDS)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"restart-controller failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def test_run_survives_a_controller_restart(tmp_path: Path) -> None:
    workdir = make_workflow(tmp_path, "restart")
    args = ["--executor", "frozen", "--jobs", str(JOBS), "--keep-going", "--latency-wait", "10"]
    args += ["--seconds-between-status-checks", str(POLL_SECONDS)]
    with BackgroundRun(workdir, *args, "--config", f"jobs={JOBS}") as run:
        submitted = run.wait_for_submissions(JOBS)
        by_index = {log.parent.name: job_id for job_id, log in submitted}
        before = wait_until_pending_and_running(list(by_index.values()), run)
        restarted = restart_controller()
        code, output = run.finish(timeout=300)
    print(restarted, f"states at the restart: {before}")  # shown when the test fails

    assert code != 0, output  # the failing job fails the run
    assert "Traceback" not in output, output
    # Each job was submitted once: none was lost and submitted again.
    assert sorted(by_index) == sorted(str(i) for i in range(JOBS)), output
    assert len(submitted) == JOBS, output

    # Exactly the failing job is an error, named by its rule and wildcards.
    wildcards = {jobid: (rule, values) for rule, jobid, values in JOB_BLOCK_RE.findall(output)}
    errors = ERROR_BLOCK_RE.findall(output)
    assert [wildcards.get(jobid) for _, _, jobid in errors] == [("work", f"i={FAILING}")], output
    assert [rule for rule, _, _ in errors] == ["work"], output
    assert errors[0][1].startswith(f"SLURM job {by_index[FAILING]} ended FAILED"), output

    done = JOBS - 1
    assert re.search(rf"^{done} of {JOBS + 1} steps \(\d+%\) done$", output, re.M), output
    for index in by_index:
        result = workdir / "results" / f"{index}.txt"
        if index == FAILING:
            assert not result.exists()
            continue
        words = result.read_text().split()
        assert words[0] == index and words[1] in ("node1", "node2"), (index, words)

    # SLURM's accounting agrees, also for the jobs that were still waiting at the restart.
    ended = sacct_states(list(by_index.values()))
    expected = {job_id: "COMPLETED" for job_id in by_index.values()}
    expected[by_index[FAILING]] = "FAILED"
    assert ended == expected, (ended, before)
