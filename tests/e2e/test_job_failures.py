"""Jobs that end badly on the real SLURM cluster, seen from the user's side: each one must
become an error of that Snakemake job, naming the SLURM state, the job id and the SLURM log,
and never crash the executor. The rules are in tests/workflows/failing/Snakefile."""

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.snakemake import BackgroundRun, make_workflow

pytestmark = pytest.mark.slurm

# One "Error in rule <name>:" block of Snakemake's output: its message runs up to "jobid:".
ERROR_RE = re.compile(r"^Error in rule (\w+):\n\s+message: (.*?)\n\s+jobid:", re.M | re.S)


def start(workdir: Path, *args: str, env: dict[str, str] | None = None) -> BackgroundRun:
    return BackgroundRun(
        workdir, "--executor", "frozen", "--jobs", "6", "--latency-wait", "5", *args, env=env
    )


def by_rule(submissions: list[tuple[str, Path]]) -> dict[str, tuple[str, Path]]:
    """{rule: (SLURM job id, log path)}; this workflow's rules have no wildcards."""
    return {log.parent.name.removeprefix("rule_"): (job_id, log) for job_id, log in submissions}


def squeue_state(job_id: str) -> str:
    result = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True
    )
    return result.stdout.strip()


def wait_until_running(job_id: str, run: BackgroundRun, timeout: float = 120) -> None:
    """Until squeue shows the job RUNNING (other tests may hold the cluster's CPUs)."""
    deadline = time.monotonic() + timeout
    while (state := squeue_state(job_id)) != "RUNNING":
        if state not in ("", "PENDING", "CONFIGURING") or time.monotonic() > deadline:
            pytest.fail(f"SLURM job {job_id} is {state!r}, not RUNNING:\n{run.output()}")
        if run.process.poll() is not None:
            pytest.fail(f"snakemake exited before job {job_id} ran:\n{run.output()}")
        time.sleep(0.3)


def wait_for_log_text(log: Path, text: str, run: BackgroundRun, timeout: float = 60) -> None:
    """Until the job's SLURM log shows `text` (the rule's command runs once the node-side
    snakemake has started, a second or so after SLURM reports RUNNING)."""
    deadline = time.monotonic() + timeout
    while not (log.exists() and text in log.read_text()):
        if run.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{log} does not show {text!r}:\n{run.output()}")
        time.sleep(0.3)


def sacct_state(job_id: str) -> str:
    result = subprocess.run(
        ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "State"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def wait_for_sacct_state(job_id: str, prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not (state := sacct_state(job_id)).startswith(prefix):
        if time.monotonic() > deadline:
            pytest.fail(f"SLURM job {job_id} is {state!r} in sacct after {timeout} s, not {prefix}")
        time.sleep(0.5)
    return state


def job_errors(output: str) -> dict[str, str]:
    """{rule: message} of each "Error in rule" block (the last one per rule wins)."""
    return dict(ERROR_RE.findall(output))


def scancel(job_id: str) -> None:
    subprocess.run(["scancel", job_id], check=True, capture_output=True)


# -- 1. FAILED, CANCELLED and TIMEOUT in one run --------------------------------------------


def test_failed_cancelled_and_timed_out_jobs_are_job_errors(tmp_path: Path) -> None:
    """`fails` exits 3, `cancelled` is scancelled from outside while it runs, `too_long`
    (runtime=1 minute, sleeps 300 s) hits its time limit: three job errors in one run."""
    workdir = make_workflow(tmp_path, "failing")
    with start(workdir, "--keep-going", "fails", "cancelled", "too_long") as run:
        jobs = by_rule(run.wait_for_submissions(3))
        assert set(jobs) == {"fails", "cancelled", "too_long"}, run.output()
        wait_until_running(jobs["too_long"][0], run)
        started = time.monotonic()
        wait_until_running(jobs["cancelled"][0], run)
        # TIMEOUT comes 60-90 s after the start (SLURM counts whole minutes and checks limits
        # every ~30 s). Cancelling ~50 s in instead of at once changes nothing the test checks,
        # but the executor polls faster again after any job ends, so it then notices the
        # TIMEOUT sooner (its poll interval otherwise grows towards 60 s).
        time.sleep(max(0.0, 50 - (time.monotonic() - started)))
        assert squeue_state(jobs["cancelled"][0]) == "RUNNING"
        scancel(jobs["cancelled"][0])
        code, output = run.finish(timeout=200)

    assert code != 0, output
    assert "Traceback" not in output, output
    errors = job_errors(output)
    assert set(errors) == {"fails", "cancelled", "too_long"}, output
    expected = {
        # The job runs `snakemake` on the node, which exits 1 when the rule's command fails;
        # the rule's own exit status (3) is in the SLURM log.
        "fails": ("FAILED", "FAILED (exit 1:0)", ""),
        "cancelled": ("CANCELLED", "CANCELLED by 0", "it was cancelled"),
        "too_long": ("TIMEOUT", "TIMEOUT", "it hit its time limit; raise the 'runtime'"),
    }
    for rule, (sacct_expected, ended, hint) in expected.items():
        job_id, log = jobs[rule]
        message = errors[rule]
        assert message.startswith(f"SLURM job {job_id} ended {ended}"), (rule, message)
        assert hint in message, (rule, message)
        assert str(log) in message, (rule, message)
        assert log.is_file(), (rule, log)
        assert f"external_jobid: {job_id}" in output
        assert not (workdir / "out" / f"{rule}.txt").exists()
        # SLURM's accounting tells the same story.
        assert sacct_state(job_id).split()[0] == sacct_expected, rule
    assert sacct_state(jobs["cancelled"][0]) == "CANCELLED by 0"

    logs = {rule: log.read_text() for rule, (_, log) in jobs.items()}
    assert "returned non-zero exit status 3" in logs["fails"]
    assert "about to fail" in logs["fails"]
    cancelled_id, too_long_id = jobs["cancelled"][0], jobs["too_long"][0]
    assert f"*** JOB {cancelled_id} ON " in logs["cancelled"]
    assert "CANCELLED AT" in logs["cancelled"]
    assert f"*** JOB {too_long_id} ON " in logs["too_long"]
    assert "DUE TO TIME LIMIT" in logs["too_long"]


# -- 2. Ctrl-C cancels the running SLURM job ------------------------------------------------


def test_ctrl_c_cancels_running_slurm_jobs(tmp_path: Path) -> None:
    workdir = make_workflow(tmp_path, "failing")
    with start(workdir, "interrupted") as run:
        job_id, log = by_rule(run.wait_for_submissions(1))["interrupted"]
        wait_until_running(job_id, run)
        wait_for_log_text(log, "started", run)  # the rule's `sleep 300` runs
        run.process.send_signal(signal.SIGINT)
        code, output = run.finish(timeout=60)
        assert code != 0, output
        assert "Terminating processes on user request" in output
        # The executor ran scancel: SLURM records the job as cancelled by us (uid 0).
        assert wait_for_sacct_state(job_id, "CANCELLED", timeout=20) == "CANCELLED by 0"
    assert not (workdir / "out" / "interrupted.txt").exists()
    # SLURM killed the job mid-sleep and says so in its log.
    deadline = time.monotonic() + 10
    while "CANCELLED AT" not in (text := log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert f"*** JOB {job_id} ON " in text and "CANCELLED AT" in text, text


# -- 3./4. Jobs SLURM or the executor refuses at submission ---------------------------------


@pytest.fixture(scope="module")
def refused_run(slurm_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One run with both refused jobs: `bad_partition` (sbatch refuses the partition) and
    `bad_extra` (slurm_extra sets --mem, which the executor manages). Asks for the cluster
    itself: a module fixture is set up before the function-scoped autouse one."""
    workdir = make_workflow(tmp_path_factory.mktemp("refused"), "failing")
    with start(workdir, "--keep-going", "bad_partition", "bad_extra") as run:
        code, output = run.finish(timeout=120)
        assert run.submitted() == [], output
    assert not (workdir / "out").exists()
    # A refused job fails the run, but as that job's error, not as a crash.
    assert code != 0, output
    assert "Traceback" not in output, output
    yield output


def test_sbatch_failure_is_the_jobs_error(refused_run: str) -> None:
    message = job_errors(refused_run)["bad_partition"]
    assert message.startswith("frozen: submitting rule bad_partition failed: sbatch failed")
    # sbatch's own words, and the call it was given.
    assert "invalid partition specified: nonexistent" in message, message
    assert "sbatch call: sbatch " in message and "-p nonexistent" in message, message


def test_bad_slurm_extra_is_the_jobs_error(refused_run: str) -> None:
    message = job_errors(refused_run)["bad_extra"]
    assert message.startswith("frozen: submitting rule bad_extra failed: rule bad_extra: ")
    assert "resource 'slurm_extra' must not contain '--mem=5G'" in message, message
    assert "use the 'mem_mb' resource instead" in message, message


# -- Cancellation when SLURM misbehaves --------------------------------------------------------


def shimmed_env(tmp_path: Path, name: str, script: str) -> dict[str, str]:
    """An environment whose PATH finds `script` as the SLURM command `name` first (for the
    snakemake process only; the test itself keeps calling the real commands)."""
    shims = tmp_path / "shims"
    shims.mkdir(exist_ok=True)
    (shims / name).write_text("#!/bin/sh\n" + script)
    (shims / name).chmod(0o755)
    return dict(os.environ, PATH=f"{shims}:{os.environ['PATH']}")


def test_ctrl_c_during_a_status_query_cancels_the_job(tmp_path: Path) -> None:
    """A slow sacct (a busy accounting database) keeps a status query in flight for 6 s;
    Ctrl-C lands inside it. The job must still be cancelled."""
    workdir = make_workflow(tmp_path, "failing")
    in_flight = tmp_path / "sacct-in-flight"
    sacct = shutil.which("sacct")
    env = shimmed_env(
        tmp_path, "sacct", f'touch "{in_flight}"; sleep 6; rm -f "{in_flight}"; exec {sacct} "$@"\n'
    )
    with start(workdir, "interrupted", env=env) as run:
        job_id, log = by_rule(run.wait_for_submissions(1))["interrupted"]
        wait_until_running(job_id, run)
        wait_for_log_text(log, "started", run)
        deadline = time.monotonic() + 60
        while not in_flight.exists():
            if time.monotonic() > deadline:
                pytest.fail(f"no status query started:\n{run.output()}")
            time.sleep(0.1)
        run.process.send_signal(signal.SIGINT)
        code, output = run.finish(timeout=60)
        assert code != 0, output
        assert wait_for_sacct_state(job_id, "CANCELLED", timeout=20) == "CANCELLED by 0"


def test_failing_scancel_on_ctrl_c_is_reported_without_traceback(tmp_path: Path) -> None:
    workdir = make_workflow(tmp_path, "failing")
    env = shimmed_env(
        tmp_path,
        "scancel",
        'echo "scancel: error: Kill job error on job id $1: Access/permission denied" >&2\n'
        "exit 1\n",
    )
    with start(workdir, "interrupted", env=env) as run:
        job_id, log = by_rule(run.wait_for_submissions(1))["interrupted"]
        wait_until_running(job_id, run)
        wait_for_log_text(log, "started", run)
        run.process.send_signal(signal.SIGINT)
        code, output = run.finish(timeout=60)
        # The job could not be cancelled: the user must learn which one still runs.
        assert squeue_state(job_id) == "RUNNING"
    assert code != 0, output
    assert "Access/permission denied" in output and job_id in output, output
    assert "Traceback" not in output, output
