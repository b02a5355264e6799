"""1,000 jobs on the two-node cluster, submitted as job arrays: every output right, a few
sbatch calls, the status queries bounded. About 17 minutes here (each job starts a Snakemake
on the node), so deselected by default: `scripts/test -m scale` runs it."""

import re
import time
from pathlib import Path

import pytest
from helpers.cluster import run_id_of, run_jobs
from helpers.snakemake import BackgroundRun, make_workflow

pytestmark = [pytest.mark.slurm, pytest.mark.scale]

JOBS = 1000


def test_a_thousand_jobs_in_arrays(tmp_path: Path):
    workdir = make_workflow(tmp_path, "arrays")
    args = ["--executor", "frozen", "--jobs", str(JOBS), "--latency-wait", "5"]
    args += ["--frozen-array-jobs", "all", "--config", f"count={JOBS}"]
    started = time.monotonic()
    with BackgroundRun(workdir, *args) as run:
        code, output = run.finish(timeout=3600)
    minutes = (time.monotonic() - started) / 60
    assert code == 0, output[-5000:]
    for n in range(JOBS):
        assert (workdir / "out" / f"{n}.txt").read_text() == f"v1 {n * n}\n"
    arrays = {job_id.split("_")[0] for job_id, _, _ in run_jobs(run_id_of(output))}
    # Snakemake hands ready jobs over in rounds, and even and odd n ask for different
    # memory: some arrays per round, never one sbatch per job (20 seen for 1,000 jobs).
    assert len(arrays) <= JOBS // 20, arrays
    queries = re.search(r"frozen: (\d+) status queries in ([\d.]+) minutes", output)
    assert queries, output[-2000:]
    # At most one round a second (poll or end hints), at most three calls a round.
    assert int(queries.group(1)) <= 180 * max(minutes, 1), queries.group(0)
