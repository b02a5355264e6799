"""``gc`` and ``list`` asking the real SLURM cluster: a held job keeps what its run needs.

Until the executor writes the journal, the journal here is written by the test, naming a
real job submitted with ``--hold`` under a run id as its name, as the executor names jobs.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.records import Job, days_ago, make_site, run_cli

from snakemake_executor_plugin_frozen.record import gc

pytestmark = pytest.mark.slurm


@pytest.fixture
def held_job(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(run id, SLURM job id) of a held job named after a fresh run id; cancelled after."""
    run = str(uuid.uuid4())
    job_id = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--hold",
            "--job-name",
            run,
            "-o",
            str(tmp_path / "held.log"),
            "--wrap",
            "true",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        yield run, job_id
    finally:
        subprocess.run(["scancel", job_id], capture_output=True)


def _wait_until_finished(job_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True
        ).stdout.strip()
        if state in ("", "CANCELLED"):
            return
        time.sleep(0.5)
    pytest.fail(f"job {job_id} is still {state} after 60 s")


def test_gc_keeps_what_a_held_job_needs_and_frees_it_once_cancelled(
    tmp_path: Path,
    held_job: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(gc, "GRACE", 0.0)  # the journal's times are old; the packs are not
    held_run, held_id = held_job
    site = make_site(tmp_path / "wf")
    needed = site.pack()
    site.run(
        held_run, needed, [Job("count", "results/a.tsv", held_id, outcome=None)], time=days_ago(30)
    )
    site.edit("scripts/count.py", "VERSION = 'v2'\n")
    finished = site.pack()
    finished_run = str(uuid.uuid4())
    site.run(finished_run, finished, [Job("count", "results/b.tsv", "1")], time=days_ago(30))
    layout = site.layout

    _, out, _ = run_cli(capsys, "-C", str(site.workdir), "list", "--json")
    rows = {s["id"]: s for s in json.loads(out)["snapshots"]}
    assert json.loads(out)["slurm"] == "asked"
    assert (rows[needed.id]["pending"], rows[needed.id]["running"]) == (1, 0)
    assert (rows[finished.id]["pending"], rows[finished.id]["running"]) == (0, 0)

    report = gc.collect(layout.workdir, layout.logdir, None, 0, dry_run=False)
    assert report.slurm == "asked"
    assert report.kept_for_jobs == {held_run: "1 pending, 0 running"}
    assert (report.snapshots, report.runs) == ([finished.id], [finished_run])
    held_log = site.log_path(held_run, Job("count", "", held_id))
    assert needed.archive.exists() and needed.manifest.exists() and held_log.exists()
    assert (layout.logdir / f"rule_count/code-{needed.id[:12]}.tar.zst").exists()
    assert not finished.archive.exists()

    subprocess.run(["scancel", held_id], check=True)
    _wait_until_finished(held_id)
    report = gc.collect(layout.workdir, layout.logdir, None, 0, dry_run=False)
    assert (report.snapshots, report.runs) == ([needed.id], [held_run])
    assert not needed.archive.exists() and not held_log.exists()
