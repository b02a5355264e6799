"""Faults around the jobs, on the real cluster where they can be made real: sbatch failing
after SLURM made the job, a full disk while a job is prepared, a node failing under a job,
a job that would pend forever; and the bookkeeping of a partial status answer."""

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cluster import Clock, no_wait, run_id_of, run_jobs, wait_for_sacct
from helpers.snakemake import BackgroundRun, make_workflow, run_snakemake

from snakemake_executor_plugin_frozen.backends import SbatchBackend
from snakemake_executor_plugin_frozen.slurm import commands
from snakemake_executor_plugin_frozen.slurm.call_budget import CallBudget
from snakemake_executor_plugin_frozen.slurm.status import JobState
from snakemake_executor_plugin_frozen.slurm.submit import SubmitSettings

EXECUTOR = ["--executor", "frozen", "--jobs", "8", "--latency-wait", "5"]


# -- pure logic ------------------------------------------------------------------------------


def test_a_partial_status_answer_counts_no_job_missing(monkeypatch):
    """squeue failing while sacct does not know new jobs yet (slurmdbd lags): the jobs are
    not missing, however long it lasts; once both answer, absence counts again."""
    answers = []

    async def query_states(job_ids, run_name, since, clusters=False, budget=None):
        for _ in range(2):  # sacct, and squeue for the jobs sacct does not know
            await budget.turn()
        return answers.pop(0)

    monkeypatch.setattr(commands, "query_states", query_states)
    cancelled = []
    monkeypatch.setattr(commands, "scancel", lambda ids, clusters: cancelled.extend(ids))
    clock = Clock(100.0)
    budget = CallBudget(sleep=no_wait)
    backend = SbatchBackend(SubmitSettings(), "run", stuck_seconds=60, clock=clock, budget=budget)
    running = {"1": JobState("RUNNING")}
    for _ in range(5):
        answers.append(commands.StatusAnswer(running, complete=False))
        assert asyncio.run(backend.states(["1", "2"])) == {}
        clock.now += 600
    answers.append(commands.StatusAnswer(running, complete=True))
    assert asyncio.run(backend.states(["1", "2"])) == {}
    clock.now += 61
    answers.append(commands.StatusAnswer(running, complete=True))
    ends = asyncio.run(backend.states(["1", "2"]))
    assert list(ends) == ["2"] and "has not been visible" in ends["2"].message
    # Given up on, so cancelled: should it turn up after all, it must not run.
    assert cancelled == ["2"]
    assert backend.status_calls == 14


def test_node_failures_exclude_the_node_from_later_submissions(monkeypatch):
    async def query_states(job_ids, run_name, since, clusters=False, budget=None):
        states = {"1": JobState("NODE_FAIL", "0:0", nodes="node[2,5]"), "2": JobState("FAILED")}
        return commands.StatusAnswer(states)

    monkeypatch.setattr(commands, "query_states", query_states)
    backend = SbatchBackend(SubmitSettings(exclude_nodes=frozenset({"node9"})), "run")
    ends = asyncio.run(backend.states(["1", "2"]))
    assert "its node failed" in ends["1"].message
    assert backend.excluded == {"node9", "node[2,5]"}


# -- on the cluster --------------------------------------------------------------------------


@pytest.mark.slurm
def test_sbatch_failing_after_slurm_made_the_job_leaves_no_duplicate(tmp_path: Path):
    """The first sbatch call creates the job, then reports "Socket timed out" as a busy
    controller does: the executor must find and track that job, not submit a second."""
    workdir = make_workflow(tmp_path, "arrays")
    wrapper = tmp_path / "bin"
    wrapper.mkdir()
    failed_once = tmp_path / "failed-once"
    (wrapper / "sbatch").write_text(
        "#!/bin/bash\n"
        f'out=$({shutil.which("sbatch")} "$@") || exit $?\n'
        f"if [ ! -e {failed_once} ]; then\n"
        f"    touch {failed_once}\n"
        '    echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv'
        ' operation" >&2\n'
        "    exit 1\n"
        "fi\n"
        'echo "$out"\n'
    )
    (wrapper / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{wrapper}:{os.environ['PATH']}"}
    with BackgroundRun(workdir, *EXECUTOR, "--config", "count=1", env=env) as run:
        code, output = run.finish()
    assert code == 0, output
    assert failed_once.exists()
    assert (workdir / "out" / "0.txt").read_text() == "v1 0\n"
    jobs = wait_for_sacct(run_id_of(output), 1)
    assert [state for _, state, _ in jobs] == ["COMPLETED"], jobs


@contextlib.contextmanager
def full_disk(path: Path) -> Iterator[Path]:
    """A 64 kB tmpfs at `path`, filled up: every write there fails with ENOSPC."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], check=True)
    try:
        with contextlib.suppress(OSError), open(path / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.mark.slurm
def test_a_full_disk_while_preparing_is_each_jobs_error(tmp_path: Path):
    workdir = make_workflow(tmp_path, "arrays")
    with full_disk(tmp_path / "full") as logdir:
        result = run_snakemake(
            workdir, *EXECUTOR, "--keep-going", "--frozen-logdir", str(logdir),
            "--config", "count=3", check=False,
        )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    assert output.count("Error in rule square:") == 3, output
    assert "not submitted: [Errno 28] No space left on device" in output, output


@pytest.mark.slurm
def test_a_job_that_would_pend_forever_ends_and_is_cancelled(tmp_path: Path):
    """More CPUs per task than any node has: sbatch accepts it, SLURM pends it forever
    (PartitionConfig). With --frozen-stuck-minutes it ends as an error and is cancelled."""
    workdir = make_workflow(tmp_path, "arrays")
    started = time.monotonic()
    result = run_snakemake(
        workdir, *EXECUTOR, "--frozen-stuck-minutes", "0.1",
        "--set-resources", "square:cpus_per_task=64", "--config", "count=1", check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert time.monotonic() - started < 120
    assert "has been PENDING (PartitionConfig) for" in output, output
    assert "frozen cancelled it" in output
    (job_id, state, _), *_ = run_jobs(run_id_of(output))
    assert state == "CANCELLED by 0", (job_id, state)


def node_of(job_id: str) -> str:
    return subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%N"], capture_output=True, text=True
    ).stdout.strip()


@pytest.mark.slurm
@pytest.mark.slow  # takes a node down: jobs of others on it would fail
def test_a_node_failing_under_a_job_is_its_error_and_later_jobs_avoid_it(tmp_path: Path):
    workdir = make_workflow(tmp_path, "arrays")
    (workdir / "Snakefile").write_text(
        (workdir / "Snakefile").read_text()
        + "\n\nrule doomed:\n    output: 'out/doomed'\n    resources: runtime=5, mem_mb=100\n"
        "    shell: 'sleep 300; touch {output}'\n"
        # Local, so that the node's failure cannot touch it; `later` is submitted after.
        "\n\nrule gate:\n    output: 'out/gate'\n    localrule: True\n"
        "    shell: 'while [ ! -e go ]; do sleep 0.5; done; touch {output}'\n"
        "\n\nrule later:\n    input: 'out/gate'\n    output: 'out/later'\n"
        "    resources: runtime=5, mem_mb=100\n    shell: 'touch {output}'\n"
    )
    args = [*EXECUTOR, "--keep-going", "out/doomed", "out/later"]
    with BackgroundRun(workdir, *args) as run:
        submitted = dict((log.parent.name, job_id) for job_id, log in run.wait_for_submissions(1))
        doomed = submitted["rule_doomed"]
        deadline = time.monotonic() + 120
        while not (node := node_of(doomed)) or "(log:" not in run.output():
            assert time.monotonic() < deadline, run.output()
            time.sleep(0.5)
        try:
            down = ["scontrol", "update", f"nodename={node}", "state=down", "reason=frozen-test"]
            subprocess.run(down, check=True)
            deadline = time.monotonic() + 120
            while "ended NODE_FAIL" not in run.output():
                assert time.monotonic() < deadline, run.output()
                time.sleep(0.5)
        finally:
            # The cluster may have taken the node back already (ReturnToService).
            resume = ["scontrol", "update", f"nodename={node}", "state=resume"]
            subprocess.run(resume, capture_output=True)
        (workdir / "go").touch()
        code, output = run.finish()
    assert code == 1, output
    assert "Error in rule doomed:" in output and "its node failed" in output
    assert (workdir / "out" / "later").exists()
    later = [job_id for job_id, log in run.submitted() if log.parent.name == "rule_later"]
    shown = subprocess.run(
        ["scontrol", "show", "job", later[0]], capture_output=True, text=True
    ).stdout
    assert f"ExcNodeList={node}" in shown, shown


@pytest.mark.slurm
def test_a_run_block_calling_sys_exit_ends_its_job(tmp_path: Path):
    """Snakemake's thread dies with SystemExit and the job's Snakemake would wait for ever:
    the job ends failed within seconds, not at its time limit."""
    workdir = make_workflow(tmp_path, "arrays")
    started = time.monotonic()
    result = run_snakemake(
        workdir, *EXECUTOR, "--config", "count=1", "fail=0", "how=exit", check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "ended FAILED (exit 1:0)" in output, output
    assert time.monotonic() - started < 90, output
