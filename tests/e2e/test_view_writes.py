"""A job that writes into a file of its code (tests/workflows/writes): in the read-only view
the write fails, naming the setting that allows it, and the live file stays as it was; with
frozen-copy per-job each job writes into a private copy of its own, which neither the live
tree nor the other job sees, and which goes with the job."""

from pathlib import Path

import pytest
from helpers.paths import CLUSTER_NODES
from helpers.snakemake import make_workflow, run_snakemake

pytestmark = pytest.mark.slurm

ARGS = ("--executor", "frozen", "--jobs", "2", "--latency-wait", "10")
# The same path on every node, a different folder behind it on each; kept after the job.
SCRATCH = ("--frozen-scratch", "{SLURM_CI_NODE_SCRATCH}")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return make_workflow(tmp_path, "writes", git_repo=True)


def test_a_write_into_the_code_fails_and_says_how_to_allow_it(workdir: Path) -> None:
    result = run_snakemake(workdir, *ARGS, "out/a.txt", check=False)
    assert result.returncode != 0
    (log,) = (workdir / ".snakemake" / "frozen_logs" / "rule_append").rglob("*.log")
    text = log.read_text()
    assert "Read-only file system: 'scripts/state.yaml'" in text
    assert "frozen-copy: per-job (--frozen-copy per-job)" in text
    assert (workdir / "scripts" / "state.yaml").read_text() == "jobs:\n"


def test_with_a_per_job_copy_each_job_writes_its_own(workdir: Path) -> None:
    run_snakemake(workdir, *ARGS, *SCRATCH, "--frozen-copy", "per-job")
    assert (workdir / "out" / "a.txt").read_text() == "jobs:\n- a\n"
    assert (workdir / "out" / "b.txt").read_text() == "jobs:\n- b\n"
    assert (workdir / "scripts" / "state.yaml").read_text() == "jobs:\n"
    logs = list((workdir / ".snakemake" / "frozen_logs" / "rule_append").rglob("*.log"))
    assert len(logs) == 2
    assert all("a private writable copy" in log.read_text() for log in logs)
    # The private copies went with their jobs' leases.
    assert list(CLUSTER_NODES.glob("*/scratch/snakemake-frozen-0/*.leases/*/code")) == []


def test_a_per_job_copy_needs_the_mount_view(workdir: Path) -> None:
    args = ("--frozen-copy", "per-job", "--frozen-view", "python")
    result = run_snakemake(workdir, *ARGS, *args, check=False)
    assert result.returncode != 0
    assert "--frozen-copy per-job needs the mount view" in result.stderr


def test_a_file_the_workflow_writes_while_parsed_stays_live(tmp_path: Path) -> None:
    """Snakemake's test_update_flag: the Snakefile writes a file of the code root each time it
    is parsed, also in every job; the view leaves that file live instead of read-only."""
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        'shell("date > stamp.txt")\n'
        "rule all:\n    input: 'out.txt'\n"
        "rule a:\n    output: 'out.txt'\n    shell: 'cat stamp.txt > {output}'\n"
    )
    result = run_snakemake(workdir, *ARGS)
    assert "1 file(s) of the code were written while the workflow was parsed" in result.stderr
    assert (workdir / "out.txt").read_text().strip()
    (log,) = (workdir / ".snakemake" / "frozen_logs" / "rule_a").glob("*.log")
    assert "frozen: view: mount" in log.read_text()
