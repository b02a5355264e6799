"""pipe() groups on the real cluster (issue 9), with tests/workflows/pipes.

When a pipe group's producer failed, its job's Snakemake logged its shutdown and then, in
many tries, waited for good for a consumer blocked opening the FIFO (Snakemake's local
executor kills only the group's shells that have started), so the SLURM job ran until its
time limit; and in every try a consumer's subshell stayed behind on the node, orphaned. Ten
such groups in one run: every job must fail within seconds, the run must fail, and nothing of
those jobs may be left on the nodes. A pipe group that works must still stream its data.
"""

import re
import subprocess
from pathlib import Path

import pytest
from helpers.node import processes_in
from helpers.snakemake import BackgroundRun, make_workflow

pytestmark = pytest.mark.slurm

BROKEN = 10  # the workflow's broken groups
# A broken group's job: the job's Snakemake starts (a few seconds on a busy node), fails, and
# if it then hangs, `node run` ends it after its 5 s grace.
JOB_SECONDS = 20
RUN_SECONDS = 120  # the whole workflow: 11 jobs of 2 CPUs on 8 CPUs, other users' jobs first
# A group job's Snakemake id is a uuid (helpers.snakemake's SUBMITTED_RE wants a number).
SUBMITTED_RE = re.compile(r"^Job \S+ submitted as (\S+) \(log: (\S+)\)$", re.MULTILINE)


def sacct(job_ids: list[str]) -> dict[str, tuple[str, int]]:
    """{job id: (state, elapsed seconds)}, from the accounting database, by id."""
    listing = subprocess.run(
        ["sacct", "-j", ",".join(job_ids), "-X", "-n", "-P", "-o", "JobIDRaw,State,ElapsedRaw"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("|") for line in listing.splitlines()]
    return {job_id: (state.split()[0], int(elapsed)) for job_id, state, elapsed in rows}


def test_failing_pipe_groups_end_their_jobs_promptly_and_leave_nothing_behind(
    tmp_path: Path,
) -> None:
    workdir = make_workflow(tmp_path, "pipes")
    args = ["--executor", "frozen", "--jobs", "11", "--keep-going", "--latency-wait", "5"]
    args += ["--seconds-between-status-checks", "1", "--default-resources", "runtime=2"]
    with BackgroundRun(workdir, *args) as run:
        try:
            code, output = run.finish(timeout=RUN_SECONDS)
        except BaseException:  # a job still running: BackgroundRun would not cancel it
            job_ids = [job_id for job_id, _ in SUBMITTED_RE.findall(run.output())]
            subprocess.run(["scancel", *job_ids], capture_output=True)
            raise
    submitted = [(job_id, Path(log)) for job_id, log in SUBMITTED_RE.findall(output)]
    assert code == 1, output
    broken = [(i, log) for i, log in submitted if "produce_broken" in log.parent.name]
    working = [(i, log) for i, log in submitted if "produce_ok" in log.parent.name]
    assert len(broken) == BROKEN and len(working) == 1, output
    ended = sacct([job_id for job_id, _ in submitted])
    for job_id, log in broken:
        state, seconds = ended[job_id]
        assert state == "FAILED", f"job {job_id} is {state}:\n{log.read_text()}"
        assert seconds <= JOB_SECONDS, f"job {job_id} took {seconds} s:\n{log.read_text()}"
        # Snakemake in the main process reports it as that group's error, with its log.
        assert f"log: {log} (check log file(s) for error details)" in output
        assert "Error in rule produce_broken" in log.read_text()
    assert not list((workdir / "out").glob("broken.*"))
    assert processes_in(workdir) == []

    job_id, log = working[0]
    assert ended[job_id][0] == "COMPLETED", log.read_text()
    assert (workdir / "out" / "ok.txt").read_text() == "1000 500500\n"
    assert "frozen: the job" not in log.read_text()  # nothing stuck, nothing left to end
