"""The executor's backends (``Backend``): the local one runs, reports and cancels real
processes; both say how they are to be asked (issue 17: the executor asks the protocol, not
the class)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from snakemake_executor_plugin_frozen.backends import LocalBackend, SbatchBackend
from snakemake_executor_plugin_frozen.slurm.status import Outcome
from snakemake_executor_plugin_frozen.slurm.submit import JobSpec, SubmitSettings


def _spec(tmp_path: Path, body: str) -> JobSpec:
    script = tmp_path / "job.sh"
    script.write_text(body)
    return JobSpec("rule a", "run", "c", tmp_path / "%j-run.log", tmp_path, script, {}, 1)


def _ends(backend: LocalBackend, job_ids: list[str], timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ends = asyncio.run(backend.states(job_ids))
        if ends:
            return ends
        time.sleep(0.05)
    raise AssertionError(f"{job_ids} did not end")


def test_the_local_backend_runs_reports_and_cancels(tmp_path: Path) -> None:
    backend = LocalBackend()
    ok, _ = backend.submit(_spec(tmp_path, "echo hello; exit 0\n"), "t")
    assert ok == "local1"
    end = _ends(backend, [ok])[ok]
    assert (end.outcome, end.state, end.node) == (
        Outcome.SUCCESS,
        "COMPLETED",
        socket.gethostname(),
    )
    assert (tmp_path / "local1-run.log").read_text() == "hello\n"
    failed, _ = backend.submit(_spec(tmp_path, "exit 3\n"), "t")
    end = _ends(backend, [failed])[failed]
    assert end.outcome is Outcome.FAILED and "exited with 3" in end.message
    slow, _ = backend.submit(_spec(tmp_path, "sleep 60\n"), "t")
    assert asyncio.run(backend.states([slow])) == {}  # running
    backend.cancel([slow])
    assert _ends(backend, [slow])[slow].outcome is Outcome.FAILED


def test_each_backend_says_how_it_is_asked() -> None:
    """Local jobs are asked at every tick and leave no end hint; SLURM's at the poll
    interval, sooner on a hint; their logs are named accordingly in error messages."""
    local, sbatch = LocalBackend(), SbatchBackend(SubmitSettings(), "run")
    assert (local.polled, local.log_label, local.status_calls) == (False, "job log", 0)
    assert (sbatch.polled, sbatch.log_label, sbatch.status_calls) == (True, "SLURM log", 0)
