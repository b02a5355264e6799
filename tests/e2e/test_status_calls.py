"""Kind to the controller: a run asks SLURM at most 10 times a minute and never twice within
3 s, while each job's end is noticed within about a second of its end, from the job's own
end hint. Every sacct/squeue/scontrol call of the run is counted by a wrapper in front of the real
command (it logs the time and runs the real one)."""

import itertools
import os
import shutil
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.cluster import run_id_of
from helpers.snakemake import BackgroundRun, make_workflow

from snakemake_executor_plugin_frozen import journal

pytestmark = pytest.mark.slurm

JOBS = 16


def counting_path(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose sacct, squeue and scontrol log each call's time, then run the real ones."""
    wrappers = tmp_path / "wrappers"
    wrappers.mkdir()
    calls = tmp_path / "calls.log"
    for name in ("sacct", "squeue", "scontrol"):
        real = shutil.which(name)
        assert real, f"{name} not found"
        script = wrappers / name
        script.write_text(
            f'#!/bin/bash\nprintf "%s {name}\\n" "$(date +%s.%N)" >> "{calls}"\nexec {real} "$@"\n'
        )
        script.chmod(0o755)
    return f"{wrappers}:{os.environ['PATH']}", calls


def sacct_ends(run_name: str) -> dict[str, datetime]:
    argv = ["sacct", "-X", "-n", "-P", f"--name={run_name}", "--starttime=now-1hour"]
    argv += ["-o", "JobID,End"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rows = (line.split("|") for line in out.splitlines() if line)
    # sacct prints the controller's local time; this machine is the controller.
    return {job: datetime.fromisoformat(end).astimezone(UTC) for job, end in rows}


@pytest.mark.parametrize("arrays", [False, True], ids=["jobs", "arrays"])
def test_few_status_calls_and_ends_noticed_at_once(tmp_path: Path, arrays: bool) -> None:
    """With arrays the run also asks scontrol for MaxArraySize: one call more to space."""
    workdir = make_workflow(tmp_path, "arrays")
    path, calls = counting_path(tmp_path)
    args = ["--executor", "frozen", "--jobs", str(JOBS), "--latency-wait", "5"]
    args += ["--frozen-array-jobs", "all"] if arrays else []
    args += ["--config", f"count={JOBS}", "sleep=3"]
    with BackgroundRun(workdir, *args, env={**os.environ, "PATH": path}) as run:
        code, output = run.finish(timeout=600)
    assert code == 0, output[-5000:]
    times = sorted(float(line.split()[0]) for line in calls.read_text().splitlines())
    assert times, "no status call at all"
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps, default=3.0) >= 3.0, gaps
    # The budget spaces calls evenly, 6 s apart: n calls span at least (n - 1) * 6 s. Each
    # logged time is the wrapper's start, a little after the call's turn, so the measured
    # span may fall short by that delay at its two ends (never more: it does not add up).
    span = times[-1] - times[0]
    assert (len(times) - 1) * 6.0 <= span + 0.5, (len(times), span)
    # Each job's end as SLURM has it, against when the run journaled it.
    records = journal.read(workdir / journal.JOURNAL).records
    noticed = {
        r["slurm_id"]: datetime.fromisoformat(r["time"].replace("Z", "+00:00"))
        for r in records
        if r["event"] == "ended"
    }
    ends = sacct_ends(run_id_of(output))
    assert len(noticed) == JOBS and set(noticed) <= set(ends)
    # sacct's End has whole seconds: up to 1 s of the latency is its rounding.
    latencies = [(noticed[j] - ends[j]).total_seconds() for j in noticed]
    assert max(latencies) <= 3.0 and statistics.median(latencies) <= 2.0, latencies
    # Each end came from the job's own hint; SLURM confirmed it at its next call (the last
    # ones, ending with the run, keep the hint's word: EXIT 0).
    states = [r["state"] for r in records if r["event"] == "ended"]
    assert set(states) <= {"COMPLETED", "EXIT 0"}, states
    # With arrays the run's first call is scontrol, as it starts: its sacct calls come 6 s
    # later, and on a loaded machine every task's hint may end it before one of them.
    assert arrays or "COMPLETED" in states, states
    assert "ended with exit status 0, but SLURM says" not in output
