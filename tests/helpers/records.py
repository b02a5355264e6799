"""The record in tests: a working directory whose code is a git repository, snapshots packed
into its store as the executor packs them, rule-log copies, and runs written to its journal
with their SLURM logs, batch scripts and outputs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers.files import write
from helpers.snapshots import git, make_repo
from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.cli import main
from snakemake_executor_plugin_frozen.record.layout import Layout
from snakemake_executor_plugin_frozen.rule_copies import independent_copy
from snakemake_executor_plugin_frozen.snapshot import PackResult, SelectionSettings, pack

CODE = {
    "Snakefile": 'rule count:\n    output: "results/{s}.tsv"\n    shell: "echo v1 > {output}"\n',
    "scripts/count.py": "VERSION = 'v1'\n",
    "config/config.yaml": "samples: [a, b]\n",
}
# Run ids; in the ``three`` fixture (tests/record/conftest.py) the runs of these ages:
RUN_A = "aaaaaaaa-0000-4000-8000-000000000001"  # 30 days ago, snapshot 1
RUN_B = "bbbbbbbb-0000-4000-8000-000000000002"  # 10 days ago, snapshot 2
RUN_C = "cccccccc-0000-4000-8000-000000000003"  # 1 day ago, snapshot 3


@dataclass(frozen=True)
class Job:
    rule: str
    output: str
    slurm_id: str
    wildcards: tuple[tuple[str, str], ...] = ()
    outcome: str | None = "success"  # None: no ended record (pending, running or lost)


@dataclass
class Site:
    """A working directory that is its own code root (as the demo workflow is)."""

    workdir: Path

    @property
    def layout(self) -> Layout:
        return Layout.of(self.workdir)

    def pack(self) -> PackResult:
        layout = self.layout
        settings = SelectionSettings(extra_excluded_dirs=(layout.logdir, layout.store))
        return pack(self.workdir, layout.store, settings, explicit=[self.workdir / "Snakefile"])

    def edit(self, rel: str, content: str) -> None:
        write(self.workdir, rel, content)

    def commit(self) -> None:
        git(self.workdir, "commit", "-qam", "edit")

    def place(self, snapshot: PackResult, rule: str) -> Path:
        """The snapshot beside the rule's logs, a copy of its own (``rule_copies``)."""
        folder = self.layout.logdir / f"rule_{rule}"
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"code-{snapshot.id[:12]}"
        for source, suffix in ((snapshot.archive, ".tar.zst"), (snapshot.manifest, ".json")):
            target = folder / (stem + suffix)
            if not target.exists():
                independent_copy(source, target)
        return folder / (stem + ".tar.zst")

    def log_path(self, run: str, job: Job) -> Path:
        folder = self.layout.logdir / f"rule_{job.rule}"
        for _, value in job.wildcards:
            folder = folder / value
        return folder / f"{job.slurm_id}.log"

    def run(
        self,
        run: str,
        snapshot: PackResult | None,
        jobs: Sequence[Job],
        time: str | None = None,
        ended_time: str | None = None,
    ) -> None:
        """A run in the journal: its records, and each job's log, batch script and output;
        ``time``: of its run and submitted records, ``ended_time`` of its ended records
        (default: now, after the outputs were written)."""
        snapshot_id = snapshot.id if snapshot else None
        records = [
            journal.run_started(
                run=run,
                snapshot=snapshot_id,
                code_root=self.workdir,
                workdir=self.workdir,
                argv=["snakemake", "--executor", "frozen"],
                time=time,
            )
        ]
        for number, job in enumerate(jobs, start=1):
            log = self.log_path(run, job)
            write(log.parent, log.name, f"job {job.slurm_id} of run {run}\n")
            write(log.parent, f"job-{run[:8]}-{number}.sh", "#!/bin/bash\n")
            if snapshot is not None:
                self.place(snapshot, job.rule)
            if job.outcome == "success":
                write(self.workdir, job.output, f"made by {job.slurm_id}\n")
            records.append(
                journal.submitted(
                    run=run,
                    rule=job.rule,
                    wildcards=dict(job.wildcards),
                    outputs=[job.output],
                    job=number,
                    slurm_id=job.slurm_id,
                    snapshot=snapshot_id,
                    log=log,
                    workdir=self.workdir,
                    mode="freeze" if snapshot else "off",
                    time=time,
                )
            )
        for job in jobs:
            if job.outcome is not None:
                state = "COMPLETED" if job.outcome == "success" else "FAILED"
                records.append(
                    journal.ended(
                        run=run,
                        slurm_id=job.slurm_id,
                        outcome=job.outcome,
                        state=state,
                        node="node1",
                        time=ended_time or time,
                    )
                )
        journal.append(self.layout.journal, records)


def make_site(root: Path) -> Site:
    workdir = make_repo(root, CODE, ignore="results/\n")
    return Site(workdir)


def days_ago(days: float) -> str:
    """A journal time ``days`` before now."""
    return (datetime.now(UTC) - timedelta(days=days)).isoformat().replace("+00:00", "Z")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def flip_byte(path: Path, offset: int = -20) -> None:
    """Damage ``path`` in place (every hard link of it sees the damage)."""
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    with open(path, "r+b") as f:
        f.write(data)


def unlink_copy(path: Path) -> None:
    """Make a hard-linked rule-log copy a file of its own (a copy across file systems)."""
    temporary = path.with_name(path.name + ".tmp")
    shutil.copyfile(path, temporary)
    os.replace(temporary, path)
